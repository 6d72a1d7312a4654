"""Tensor arena size for TFLite-Micro firmware: measured on the host interpreter, planned with a margin.

The TFLM host interpreter (PyPI ``tflite-micro``) runs with a ``RecordingMicroAllocator``; its
``print_allocations()`` writes ``Arena allocation total N bytes`` to the C-level stderr, so the file
descriptor 2 is redirected into a temporary file while it runs. That total leaves out the scratch memory the
memory planner needs during ``AllocateTensors`` (ad01: 3,984 B recorded, but AllocateTensors fails below
4,6xx B), so the measured size is the smallest ``arena_size`` that works, found by bisection from the
recorded total upwards. No TensorFlow.

Why a margin (recorded in every project): the host is 64-bit and the target 32-bit, so pointer-holding
structures differ in size and alignment (tensorflow#39673 reports arenas sized on one being too small on the
other), and optimized kernels on the target (CMSIS-NN, ESP-NN) request scratch buffers that the host's
reference kernels do not. CFU-Playground#822 saw 54 KB work where 53 KB failed.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from tinykeras.errors import ModelError
from tinykeras.stdio import capture_native_stderr
from tinykeras.types import ModelInfo

MARGIN_FRACTION = 0.20   # of the measured total
MARGIN_MIN_BYTES = 2048  # at least this much, for small models
ROUND_TO = 1024          # the planned size is a multiple of this (and so 16-byte aligned)

_TOTAL = re.compile(rb"Arena allocation total (\d+) bytes")


@dataclass(frozen=True)
class ArenaPlan:
    """Measured (host) and planned (target) arena bytes, with the rule that links them."""

    measured_bytes: int | None  # None where nothing was measured (aot: the plan is exact)
    planned_bytes: int
    method: str
    margin_rule: str
    recorded_bytes: int | None = None  # TFLM's print_allocations total (host), without planner scratch

    def to_json(self) -> dict[str, object]:
        return {"measured_bytes": self.measured_bytes, "planned_bytes": self.planned_bytes,
                "recorded_bytes": self.recorded_bytes, "method": self.method, "margin_rule": self.margin_rule}


def plan_from_measured(measured: int) -> int:
    """Planned arena bytes for a 32-bit target from the host measurement.

    >>> plan_from_measured(3984)
    6144
    >>> plan_from_measured(54340)
    65536
    """
    margin = max(MARGIN_MIN_BYTES, int(np.ceil(measured * MARGIN_FRACTION)))
    return -(-(measured + margin) // ROUND_TO) * ROUND_TO


MARGIN_RULE = (f"planned = roundup(measured + max({MARGIN_MIN_BYTES}, {MARGIN_FRACTION:.0%} of measured), "
               f"{ROUND_TO}); host is 64-bit (tensorflow#39673) and target kernels may add scratch buffers")


def recorded_arena_bytes(model: bytes, info: ModelInfo) -> int:
    """The ``Arena allocation total`` that TFLM's RecordingMicroAllocator prints after one inference.

    It leaves out the transient memory the planner needs inside ``AllocateTensors``, so an arena of exactly
    this size can fail; :func:`measure_arena_bytes` finds the smallest size that works.
    """
    interp = _interpreter(model, info, max(64 * 1024, 4 * info.activation_peak_bytes + len(model) + 64 * 1024))
    if interp is None:
        raise ModelError(f"{info.path or 'model'}: TFLite-Micro cannot run it to measure the arena")
    text = _capture_fd2(interp.print_allocations)
    match = _TOTAL.search(text)
    if match is None:
        raise ModelError("TFLite-Micro printed no 'Arena allocation total' line; cannot measure the arena "
                         f"(got {text[:200]!r})")
    return int(match.group(1))


def measure_arena_bytes(model: bytes, info: ModelInfo, recorded: int | None = None, step: int = 16) -> int:
    """Smallest ``arena_size`` (to ``step`` bytes) with which the TFLM host interpreter allocates and invokes.

    Bisection between the recorded total (a lower bound) and a working upper bound. Each probe runs in a
    child process: with some too-small arenas the host interpreter crashes (SIGSEGV) instead of failing.
    """
    low = (recorded if recorded is not None else recorded_arena_bytes(model, info)) - 1  # known to fail or 0
    high = max(low + step, 2 * low + 4096)
    with tempfile.TemporaryDirectory(prefix="tinykeras-arena-") as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as handle:
            handle.write(model)
        while not _works_in_child(path, high):
            high *= 2
            if high > 256 * 1024 * 1024:
                raise ModelError(f"{info.path or 'model'}: TFLite-Micro cannot allocate it even with 256 MB")
        while high - low > step:
            mid = (low + high) // 2
            if _works_in_child(path, mid):
                high = mid
            else:
                low = mid
    return high


def _interpreter(model: bytes, info: ModelInfo, size: int):  # type: ignore[no-untyped-def]
    """A host interpreter that has run one inference on zeros, or None when ``size`` is too small."""
    from tflite_micro import runtime

    def attempt():  # type: ignore[no-untyped-def]
        interp = runtime.Interpreter.from_bytes(model, arena_size=size)
        for k, t in enumerate(info.input_tensors()):
            interp.set_input(np.zeros(t.shape, dtype=np.dtype(t.dtype)), k)
        interp.invoke()
        return interp

    box: list = []

    def run() -> None:
        try:
            box.append(attempt())
        except Exception:  # TFLM reports a too-small arena as a RuntimeError; its log goes to fd 2
            box.append(None)

    _capture_fd2(run)
    return box[0]


def _works_in_child(path: str, size: int) -> bool:
    """Probe one arena size in a fresh interpreter process; a crash counts as 'too small'."""
    import subprocess

    done = subprocess.run([sys.executable, "-m", "tinykeras.arena", path, str(size)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return done.returncode == 0


_PLANS: dict[str, ArenaPlan] = {}  # by model SHA-256: measuring takes a dozen interpreter runs


def plan_arena(model: bytes, info: ModelInfo) -> ArenaPlan:
    """Measure on the host and add the documented margin for a 32-bit target."""
    cached = _PLANS.get(info.sha256)
    if cached is not None:
        return cached
    recorded = recorded_arena_bytes(model, info)
    measured = measure_arena_bytes(model, info, recorded)
    plan = ArenaPlan(measured_bytes=measured, planned_bytes=plan_from_measured(measured),
                     method=f"smallest arena_size (16 B steps) with which the tflite-micro host interpreter "
                            f"allocates and invokes; its print_allocations total is {recorded} B",
                     margin_rule=MARGIN_RULE, recorded_bytes=recorded)
    _PLANS[info.sha256] = plan
    return plan


def _capture_fd2(fn) -> bytes:  # type: ignore[no-untyped-def]
    """Run ``fn`` with the process's file descriptor 2 captured; return what native code wrote there."""
    with capture_native_stderr() as log:
        fn()
    return log.text.encode()


def _probe_main(argv: list[str]) -> int:
    """``python -m tinykeras.arena MODEL SIZE``: exit 0 when SIZE bytes are enough (used by the bisection)."""
    from tinykeras.inspect import inspect_bytes

    with open(argv[0], "rb") as handle:
        model = handle.read()
    return 0 if _interpreter(model, inspect_bytes(model), int(argv[1])) is not None else 1


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))
