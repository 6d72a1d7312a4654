"""Compile the generated aot C with the host gcc and run it from Python (ctypes), or under sanitizers.

The normal build is a shared library (-O2) loaded with ctypes. ``sanitize=True`` builds a small
standalone executable with ``-fsanitize=address,undefined -fno-sanitize-recover=all`` instead (an
ASan-instrumented library cannot be loaded into an uninstrumented Python without LD_PRELOAD); it reads
samples on stdin and writes outputs on stdout, so any sanitizer report fails the run loudly.
Builds are cached in the temp directory, keyed by the hash of every generated source and the flags.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tinykeras.aot.generator import KERNEL_FILES, AotProgram, generate
from tinykeras.errors import DataError, ToolchainError
from tinykeras.types import ModelInfo

CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
SANITIZE_FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all"]

_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "tk_model.h"

/* Host driver: read every input (concatenated) per sample from stdin, write every output to stdout. */
int main(void) {
  unsigned i;
  if (tk_model_init() != 0) return 2;
  for (;;) {
    for (i = 0; i < TK_NUM_INPUTS; ++i) {
      size_t want = tk_input_bytes_at(i);
      if (fread(tk_input_at(i), 1, want, stdin) != want) return i == 0 && feof(stdin) ? 0 : 3;
    }
    if (tk_invoke() != 0) return 4;
    for (i = 0; i < TK_NUM_OUTPUTS; ++i) {
      if (fwrite(tk_output_at(i), 1, tk_output_bytes_at(i), stdout) != tk_output_bytes_at(i)) return 5;
    }
  }
}
"""

_REPEAT = r"""
#include "tk_model.h"

/* Host benchmark helper: n inferences back to back (the input stays as written). */
int tk_host_repeat(int n) {
  int i, rc = 0;
  for (i = 0; i < n; ++i) rc |= tk_invoke();
  return rc;
}
"""


def find_gcc() -> str:
    gcc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("gcc")
    if gcc is None:
        raise ToolchainError("gcc not found: the aot host build needs the host C compiler "
                             "(Debian/Ubuntu: `sudo apt-get install gcc`)")
    return gcc


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:24]


def _cache_root() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"tinykeras-aot-{uid}"


def _compile(gcc: str, args: list[str], cwd: Path) -> None:
    proc = subprocess.run([gcc, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"gcc failed to compile the generated aot sources: {proc.stderr.strip()[-1500:]}")


def _publish(work: Path, final: Path) -> None:
    try:
        os.replace(work, final)
    except OSError:  # another process built the same thing first
        shutil.rmtree(work, ignore_errors=True)


def _kernel_objects(gcc: str, flags: list[str], kernels: dict[str, str], root: Path) -> Path:
    """Compile the kernel sources once per (sources, flags); every model links these objects."""
    final = root / ("k-" + _digest(gcc, " ".join(flags), *(f"{k}\0{v}" for k, v in sorted(kernels.items()))))
    if final.exists():
        return final
    work = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        for name, text in kernels.items():
            (work / name).write_text(text)
        for name in sorted(n for n in kernels if n.endswith(".c")):
            _compile(gcc, [*flags, "-c", name, "-o", name[:-2] + ".o"], work)
    except ToolchainError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _publish(work, final)
    return final


def build(program: AotProgram, sanitize: bool = False, cache_root: Path | None = None) -> Path:
    """Compile ``program`` and return the shared library (or, with ``sanitize``, the executable)."""
    gcc = find_gcc()
    flags = CFLAGS + (SANITIZE_FLAGS if sanitize else ["-O2", "-fPIC"])
    root = cache_root or _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    kernels = {k: v for k, v in program.files.items() if k in KERNEL_FILES}
    model = {k: v for k, v in program.files.items() if k not in KERNEL_FILES}
    model.update({"tk_host_main.c": _DRIVER} if sanitize else {"tk_host_repeat.c": _REPEAT})
    objects = _kernel_objects(gcc, flags, kernels, root)
    final = root / _digest(gcc, " ".join(flags), str(objects), *(f"{k}\0{v}" for k, v in sorted(model.items())))
    target = final / ("tk_model_asan" if sanitize else "libtk_model.so")
    if target.exists():
        return target
    work = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        for name, text in model.items():
            (work / name).write_text(text)
        c_files = sorted(name for name in model if name.endswith(".c"))
        link = [] if sanitize else ["-shared"]
        kernel_objs = sorted(str(p) for p in objects.glob("*.o"))
        _compile(gcc, [*flags, *link, f"-I{objects}", "-o", target.name, *c_files, *kernel_objs, "-lm"], work)
    except ToolchainError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _publish(work, final)
    return target


class AotHostRunner:
    """Run a model through the generated aot C on the host; mirrors ``tflm_host.TflmRunner``."""

    def __init__(self, model: bytes, info: ModelInfo, sanitize: bool = False, name: str = "model",
                 core: str | None = None):
        """``core``: generate the plan and weight layouts for that core (the host compiles its portable C)."""
        self.info = info
        self.sanitize = sanitize
        self.program = generate(model, info, name, core=core)
        self.path = build(self.program, sanitize=sanitize)
        self._in = info.input_tensors()
        self._out = info.output_tensors()
        self._lib = None
        if not sanitize:
            lib = ctypes.CDLL(str(self.path))
            for fn, res in (("tk_input_at", ctypes.c_void_p), ("tk_output_at", ctypes.c_void_p)):
                getattr(lib, fn).restype = res
                getattr(lib, fn).argtypes = [ctypes.c_uint]
            lib.tk_invoke.restype = ctypes.c_int
            lib.tk_host_repeat.argtypes = [ctypes.c_int]
            if lib.tk_model_init() != 0:
                raise ToolchainError("the aot model failed to initialise")
            self._lib = lib

    @property
    def arena_bytes(self) -> int:
        return self.program.arena_bytes

    def _pack(self, sample: np.ndarray | list[np.ndarray] | tuple[np.ndarray, ...]) -> bytes:
        """Bytes of every input for one sample: an array (one-input models) or one array per input."""
        parts = list(sample) if isinstance(sample, (list, tuple)) else [sample]
        if len(parts) != len(self._in):
            raise DataError(f"the model has {len(self._in)} inputs, got {len(parts)} arrays")
        return b"".join(self._sample_bytes(part, k) for k, part in enumerate(parts))

    def _sample_bytes(self, sample: np.ndarray, k: int = 0) -> bytes:
        t = self._in[k]
        arr = np.ascontiguousarray(sample, dtype=np.dtype(t.dtype))
        if arr.size != t.num_elements:
            raise DataError(f"input sample has {arr.size} values, the model's input '{t.name}' needs "
                            f"{t.num_elements}")
        return arr.tobytes()

    def _decode(self, raw: bytes) -> list[np.ndarray]:
        outs, pos = [], 0
        for t in self._out:
            outs.append(np.frombuffer(raw[pos:pos + t.nbytes], dtype=np.dtype(t.dtype)).reshape(t.shape).copy())
            pos += t.nbytes
        return outs

    def invoke(self, sample: np.ndarray) -> list[np.ndarray]:
        """Run one sample (with a batch axis of 1) and return every output in its raw dtype."""
        if self._lib is None:
            if isinstance(sample, (list, tuple)):
                return self.invoke_many([np.asarray(s)[None] for s in sample])[0]
            return self.invoke_many(np.asarray(sample)[None])[0]
        lib = self._lib
        data, pos = self._pack(sample), 0
        for k, t in enumerate(self._in):
            ctypes.memmove(lib.tk_input_at(k), data[pos:pos + t.nbytes], t.nbytes)
            pos += t.nbytes
        if lib.tk_invoke() != 0:
            raise ToolchainError("tk_invoke() failed")
        return self._decode(b"".join(ctypes.string_at(lib.tk_output_at(j), t.nbytes)
                                     for j, t in enumerate(self._out)))

    def invoke_many(self, x: np.ndarray | list[np.ndarray]) -> list[list[np.ndarray]]:
        """Every output for each sample of ``x`` (one subprocess for all of them in the sanitizer build).

        ``x`` is a batch (one-input models) or a list with one batch per input.
        """
        multi = isinstance(x, (list, tuple))
        count = len(x[0]) if multi else len(x)

        def sample(k: int) -> np.ndarray | list[np.ndarray]:
            return [arr[k:k + 1] for arr in x] if multi else x[k:k + 1]

        if self._lib is not None:
            return [self.invoke(sample(k)) for k in range(count)]
        payload = b"".join(self._pack(sample(k)) for k in range(count))
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
        proc = subprocess.run([str(self.path)], input=payload, capture_output=True, env=env, timeout=600)
        if proc.returncode != 0:
            raise ToolchainError(f"the sanitizer build of the aot model failed (exit {proc.returncode}): "
                                 f"{proc.stderr.decode(errors='replace')[-2000:]}")
        per = sum(t.nbytes for t in self._out)
        if len(proc.stdout) != per * count:
            raise ToolchainError(f"the aot model wrote {len(proc.stdout)} bytes, expected {per * count}")
        return [self._decode(proc.stdout[k * per:(k + 1) * per]) for k in range(count)]

    def run_all(self, x: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """First output for every sample, stacked along the batch axis."""
        return np.concatenate([outs[0] for outs in self.invoke_many(x)], axis=0)

    def time_us(self, sample: np.ndarray, runs: int = 100) -> float:
        """Mean host microseconds per inference (shared-library build only), best of three batches."""
        if self._lib is None:
            raise ToolchainError("timing needs the optimised build (sanitize=False)")
        self.invoke(sample)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            self._lib.tk_host_repeat(runs)
            best = min(best, (time.perf_counter() - start) / runs)
        return best * 1e6
