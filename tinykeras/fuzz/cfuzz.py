"""Fuzzing the generated C: a model's aot sources compiled with clang's libFuzzer, ASan and UBSan.

libFuzzer mutates the input tensors (coverage of the kernels guides it); any out-of-bounds access, overflow or
other undefined behaviour stops it with a finding. The inputs it kept (its corpus) are then run through the
sanitizer build of the same C and the TFLM host interpreter, and every output byte is compared: a mismatch
is a finding too. Fuzz bytes become tensors by :func:`tensor_bytes`, the same rule as the C harness.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import ToolchainError
from tinykeras.fuzz.coverage import parse_libfuzzer
from tinykeras.types import ModelInfo

FUZZ_FLAGS = ["-std=c99", "-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=fuzzer,address,undefined",
              "-fno-sanitize-recover=all"]

HARNESS = r"""
#include <stddef.h>
#include <stdint.h>
#include "tk_model.h"

/* libFuzzer entry: the fuzz bytes, repeated cyclically, fill every input tensor in order (the rule of
 * tinykeras.fuzz.cfuzz.tensor_bytes); then one inference. A refused inference is not a finding. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int ready = 0;
  size_t pos = 0;
  unsigned i;
  if (!ready) {
    if (tk_model_init() != 0) __builtin_trap();
    ready = 1;
  }
  for (i = 0; i < TK_NUM_INPUTS; ++i) {
    uint8_t *dst = (uint8_t *)tk_input_at(i);
    size_t k, want = tk_input_bytes_at(i);
    for (k = 0; k < want; ++k) dst[k] = size ? data[(pos + k) % size] : 0;
    pos += want;
  }
  (void)tk_invoke();
  return 0;
}
"""


def find_clang() -> str:
    clang = shutil.which(os.environ.get("TINYKERAS_CLANG", "clang"))
    if clang is None:
        raise ToolchainError("clang not found: fuzzing the generated C needs clang with libFuzzer "
                             "(Debian: `apt-get install clang libclang-rt-14-dev`)")
    return clang


def tensor_bytes(data: bytes, info: ModelInfo) -> list[np.ndarray]:
    """The input tensors (batch of one) that the harness makes from fuzz bytes ``data``."""
    out, pos = [], 0
    for t in info.input_tensors():
        idx = (pos + np.arange(t.nbytes)) % max(1, len(data))
        raw = np.frombuffer(data, dtype=np.uint8)[idx] if data else np.zeros(t.nbytes, np.uint8)
        out.append(np.ascontiguousarray(raw).view(np.dtype(t.dtype)).reshape(t.shape))
        pos += t.nbytes
    return out


def build_fuzzer(model: bytes, info: ModelInfo, work: Path, name: str = "model") -> Path:
    """Generate the aot C for ``model`` and compile it with the libFuzzer harness; the executable's path."""
    from tinykeras.aot import generate

    clang = find_clang()
    program = generate(model, info, name=name)
    digest = hashlib.sha256(b"".join(f"{k}\0{v}\0".encode() for k, v in sorted(program.files.items()))
                            + HARNESS.encode() + " ".join(FUZZ_FLAGS).encode()).hexdigest()[:16]
    src = work / f"cfuzz-{name}-{digest}"
    exe = src / "tk_fuzz"
    if exe.exists():
        return exe
    src.mkdir(parents=True, exist_ok=True)
    for fname, text in program.files.items():
        (src / fname).write_text(text)
    (src / "tk_fuzz_main.c").write_text(HARNESS)
    c_files = sorted(p.name for p in src.glob("*.c"))
    proc = subprocess.run([clang, *FUZZ_FLAGS, "-o", exe.name, *c_files, "-lm"], cwd=src, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"clang failed to build the fuzzing harness: {proc.stderr.strip()[-1500:]}")
    return exe


def fuzz_model(model: bytes, info: ModelInfo, work: Path, *, name: str = "model", seconds: int = 30,
               runs: int | None = None, seed: int = 1, check: int = 64,
               qemu_boards: tuple[str, ...] = ()) -> dict[str, Any]:
    """libFuzzer on the model's generated C for ``seconds``, then ``check`` corpus inputs compared with TFLM
    on the host (sanitizer build) and on each emulated board of ``qemu_boards`` (its DSP/MVE kernels)."""
    exe = build_fuzzer(model, info, work, name)
    corpus, findings = work / f"corpus-c-{name}", work / f"findings-c-{name}"
    for d in (corpus, findings):
        d.mkdir(parents=True, exist_ok=True)
    total = sum(t.nbytes for t in info.input_tensors())
    (corpus / "seed-zero").write_bytes(bytes(total))
    (corpus / "seed-ramp").write_bytes(bytes(range(256)) * (total // 256 + 1))
    args = [str(exe), f"-seed={seed}", f"-max_len={total}", "-timeout=30", f"-artifact_prefix={findings}/",
            f"-max_total_time={seconds}", "-print_final_stats=1", str(corpus)]
    if runs is not None:
        args.insert(1, f"-runs={runs}")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    start = time.monotonic()
    proc = subprocess.run(args, capture_output=True, env=env, timeout=seconds + 300)
    stats = parse_libfuzzer(proc.stderr)
    artifacts = sorted(p.name for p in findings.iterdir())
    result: dict[str, Any] = {
        "model": name, "input_bytes": total, "wall_s": round(time.monotonic() - start, 1), "exit_code": proc.returncode,
        **stats, "corpus": len(list(corpus.iterdir())), "sanitizer_findings": artifacts,
        "log_tail": proc.stderr.decode("utf-8", "replace")[-1500:] if proc.returncode or artifacts else "",
    }
    kept = sorted(corpus.iterdir())[:check]
    result.update(compare_with_tflm(model, info, kept, name=name))
    if qemu_boards:
        from tinykeras.device_check import check_on_qemu

        inputs = [b"".join(t.tobytes() for t in tensor_bytes(p.read_bytes(), info)) for p in kept]
        result["qemu"] = {board: check_on_qemu(model, info, inputs=inputs, name=name, board=board)
                          for board in qemu_boards}
    return result


def compare_with_tflm(model: bytes, info: ModelInfo, files: list[Path], name: str = "model") -> dict[str, Any]:
    """Every output byte of the sanitizer build vs the TFLM host interpreter, on the inputs in ``files``."""
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.tflm_host import TflmRunner

    samples = [tensor_bytes(p.read_bytes(), info) for p in files]
    if not samples:
        return {"checked": 0, "values": 0, "mismatches": 0, "bit_exact": None}
    batches = [np.concatenate([s[j] for s in samples]) for j in range(len(info.input_tensors()))]
    aot = AotHostRunner(model, info, sanitize=True, name=name).invoke_many(batches if len(batches) > 1 else batches[0])
    tflm = TflmRunner(model, info)
    try:
        mismatches = values = 0
        for k, sample in enumerate(samples):
            expected = tflm.invoke(sample if len(sample) > 1 else sample[0])
            for got, want in zip(aot[k], expected, strict=True):
                values += want.size
                mismatches += int(np.count_nonzero(np.asarray(got).ravel() != np.asarray(want).ravel()))
    finally:
        tflm.close()
    return {"checked": len(samples), "values": values, "mismatches": mismatches, "bit_exact": mismatches == 0}
