"""Bit-exactness of the aot runtime on the emulated board: the generated C compiled for qemu_m4 (Cortex-M4
DSP kernels) runs ``samples`` inputs made on the device from a hash of (sample, byte); the same inputs go
through the TFLM host interpreter here, and every output byte is compared.
"""

from __future__ import annotations

import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import SerialError
from tinykeras.resources import templates_dir
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


def _read_all(url: str, timeout: float) -> str:
    host, _, port = url[len("socket://"):].rpartition(":")
    buf, end = b"", time.monotonic() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.settimeout(0.5)
        while time.monotonic() < end and b"@tkcheck end" not in buf and b"@tkcheck error" not in buf:
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                break
            buf += chunk
    return buf.decode("ascii", "replace")


def check_on_qemu(model: bytes, info: ModelInfo, samples: int = 200, timeout: float = 600.0,
                  name: str = "model") -> dict[str, Any]:
    """Run ``samples`` inputs through the aot firmware on qemu_m4 and the TFLM host interpreter; count the
    output bytes that differ. Raises ToolchainError/SerialError when the firmware cannot be built or run."""
    from tflite_micro import runtime

    from tinykeras import aot
    from tinykeras.boards import load_board
    from tinykeras.target import qemu

    board = load_board("qemu_m4")
    program = aot.generate(model, info, name=name)
    with tempfile.TemporaryDirectory(prefix="tk-check-") as tmp:
        project = Path(tmp)
        qemu.render_project(board, model, info, project, runtime_files=program.files, runs=1, warmup=0, name=name,
                            arena_bytes=program.arena_bytes)
        main = (templates_dir() / "runtime" / "check" / "tk_check_main.c").read_text()
        (project / "src" / "main.c").write_text(f"#define TK_CHECK_SAMPLES {int(samples)}u\n" + main)
        elf = qemu.compile_project(project)
        with qemu.qemu_session(elf, board) as url:
            text = _read_all(url, timeout)
    lines = dict(re.findall(r"^@tkcheck (\d+) ([0-9a-f]*)\r?$", text, flags=re.M))
    if len(lines) != samples:
        raise SerialError(f"the check firmware reported {len(lines)} of {samples} samples: {text[-300:]!r}")
    ins, outs = info.input_tensors(), info.output_tensors()
    interp = runtime.Interpreter.from_bytes(model, arena_size=max(1 << 22, 8 * info.activation_peak_bytes))
    mismatches = total = 0
    for k in range(samples):
        for j, t in enumerate(ins):
            x = check_inputs(k * len(ins) + j, t.nbytes).view(np.dtype(t.dtype)).reshape(t.shape)
            interp.set_input(np.ascontiguousarray(x), j)
        interp.invoke()
        expected = b"".join(np.ascontiguousarray(interp.get_output(j)).tobytes() for j in range(len(outs)))
        got = bytes.fromhex(lines[str(k)])
        total += len(expected)
        mismatches += sum(a != b for a, b in zip(got, expected, strict=False)) + abs(len(got) - len(expected))
    return {"samples": samples, "values": total, "mismatches": mismatches, "bit_exact": mismatches == 0,
            "board": "qemu_m4", "reference": "TFLM host interpreter"}
