"""Bit-exactness of the aot runtime on the emulated board: the generated C compiled for qemu_m4 (Cortex-M4
DSP kernels) with the ``check`` firmware main (through the driver, :func:`tinykeras.pipeline.assemble`) runs
``samples`` inputs made on the device from a hash of (sample, byte); the same inputs go through the TFLM host
interpreter here, and every output byte is compared.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras import pipeline
from tinykeras.boards import load_board
from tinykeras.device import read_until
from tinykeras.errors import SerialError
from tinykeras.types import ModelInfo


def check_inputs(k: int, nbytes: int) -> np.ndarray:
    """Input bytes of sample ``k`` as tk_check_main.c makes them (uint8)."""
    i = np.arange(nbytes, dtype=np.uint64)
    x = (i * 2654435761 + k * 2246822519 + 0x9E3779B9) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    x ^= x >> 15
    return (x >> 24).astype(np.uint8)


def _inputs_header(inputs: list[bytes], nbytes: int) -> str:
    """tk_check_inputs.h: the given samples as one const table (each padded/cut to ``nbytes``)."""
    rows = []
    for data in inputs:
        row = (data + bytes(nbytes))[:nbytes]
        rows.append("  {" + ",".join(str(b) for b in row) + "},")
    return (f"#define TK_CHECK_SAMPLES {len(inputs)}u\n#define TK_CHECK_INPUT_BYTES {nbytes}u\n"
            f"static const uint8_t tk_check_inputs[{len(inputs)}][{nbytes}] = {{\n" + "\n".join(rows) + "\n};\n")


def check_on_qemu(model: bytes, info: ModelInfo, samples: int = 200, timeout: float = 600.0,
                  name: str = "model", inputs: list[bytes] | None = None, board: str = "qemu_m4") -> dict[str, Any]:
    """Run ``samples`` inputs through the aot firmware on an emulated board and the TFLM host interpreter;
    count the output bytes that differ. ``inputs`` (each the concatenated bytes of every input tensor, e.g. a
    fuzzing corpus) replace the hashed ones. Raises ToolchainError/SerialError when it cannot build or run."""
    from tinykeras.tflm_host import TflmRunner

    target = load_board(board)
    nbytes = sum(t.nbytes for t in info.input_tensors())
    if inputs is not None:
        samples = len(inputs)
        main_defines, extra = "#define TK_CHECK_FIXED_INPUTS 1\n", {"tk_check_inputs.h": _inputs_header(inputs, nbytes)}
    else:
        main_defines, extra = f"#define TK_CHECK_SAMPLES {int(samples)}u\n", {}
    planned = pipeline.plan_build(target, model, runtime="aot", info=info, name=name)
    with tempfile.TemporaryDirectory(prefix="tk-check-") as tmp:
        firmware = pipeline.assemble(planned, model, Path(tmp), name=name, main="check", main_defines=main_defines,
                                     extra_files=extra, runs=1, warmup=0)
        with pipeline.running(firmware) as url:
            text = read_until(url, lambda buf: b"@tkcheck end" in buf or b"@tkcheck error" in buf,
                              timeout=timeout).decode("ascii", "replace")
    lines = dict(re.findall(r"^@tkcheck (\d+) ([0-9a-f]*)\r?$", text, flags=re.M))
    if len(lines) != samples:
        raise SerialError(f"the check firmware reported {len(lines)} of {samples} samples: {text[-300:]!r}")
    ins = info.input_tensors()
    reference = TflmRunner(model, info)   # a load failure names the operator and tensor, in a child process
    mismatches = total = 0
    for k in range(samples):
        pos, sample = 0, []
        for j, t in enumerate(ins):
            if inputs is not None:
                raw = np.frombuffer((inputs[k] + bytes(nbytes))[pos:pos + t.nbytes], dtype=np.uint8)
                pos += t.nbytes
            else:
                raw = check_inputs(k * len(ins) + j, t.nbytes)
            sample.append(raw.view(np.dtype(t.dtype)).reshape(t.shape))
        expected = b"".join(np.ascontiguousarray(o).tobytes() for o in reference.invoke(sample))
        got = bytes.fromhex(lines[str(k)])
        total += len(expected)
        mismatches += sum(a != b for a, b in zip(got, expected, strict=False)) + abs(len(got) - len(expected))
    return {"samples": samples, "values": total, "mismatches": mismatches, "bit_exact": mismatches == 0,
            "board": target.name, "reference": "TFLM host interpreter"}
