"""Tensor arena size for TFLite-Micro firmware: measured on the host interpreter, planned with a margin.

The TFLM host interpreter (PyPI ``tflite-micro``) runs with a ``RecordingMicroAllocator``; its
``print_allocations()`` writes ``Arena allocation total N bytes`` to the C-level stderr, so the file
descriptor 2 is redirected into a temporary file while it runs. Every interpreter runs in a child process
(``native.Child``, shared with ``tflm_host``). That total leaves out the scratch memory the
memory planner needs during ``AllocateTensors`` (ad01: 3,984 B recorded, but AllocateTensors fails below
4,6xx B), so the measured size is the smallest ``arena_size`` that works, found by bisection from the
recorded total upwards. No TensorFlow.

Why a margin (recorded in every project): the host is 64-bit and the target 32-bit, so pointer-holding
structures differ in size and alignment (tensorflow#39673 reports arenas sized on one being too small on the
other), and optimized kernels on the target (CMSIS-NN, ESP-NN) request scratch buffers that the host's
reference kernels do not. CFU-Playground#822 saw 54 KB work where 53 KB failed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tinykeras.errors import ModelError
from tinykeras.native import Child, ChildFailed
from tinykeras.tflm_host import describe_failure, native_failure_message, with_growing_arena
from tinykeras.types import ModelInfo

# Measured on the real libraries (tests/test_firmware_libraries.py, scripts/bench_boards.py): a 32-bit target
# uses less than the 64-bit host (ad01: 2,260-2,580 B used vs 4,644 B measured; its pointers and structs are
# smaller), except where the library's allocator differs from the host interpreter's (str_ww on Chirale 2.0.0:
# 0.6 % more). 10 % (at least 1 KiB) covers that without planning several times what the board uses.
MARGIN_FRACTION = 0.10   # of the measured total
MARGIN_MIN_BYTES = 1024  # at least this much, for small models
ROUND_TO = 256           # the planned size is a multiple of this (and so 16-byte aligned)

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
    5120
    >>> plan_from_measured(54340)
    59904
    """
    margin = max(MARGIN_MIN_BYTES, int(np.ceil(measured * MARGIN_FRACTION)))
    return -(-(measured + margin) // ROUND_TO) * ROUND_TO


MARGIN_RULE = (f"planned = roundup(measured + max({MARGIN_MIN_BYTES}, {MARGIN_FRACTION:.0%} of measured), "
               f"{ROUND_TO}); host is 64-bit (tensorflow#39673) and target kernels may add scratch buffers")


def recorded_arena_bytes(model: bytes, info: ModelInfo, child: Child | None = None) -> int:
    """The ``Arena allocation total`` that TFLM's RecordingMicroAllocator prints after one inference.

    It leaves out the transient memory the planner needs inside ``AllocateTensors``, so an arena of exactly
    this size can fail; :func:`measure_arena_bytes` finds the smallest size that works. Runs in a child
    process (``native.Child``), so a native crash is a ModelError.
    """
    def failure(exc: Exception, size: int) -> Exception:
        if isinstance(exc, ChildFailed):
            return ModelError(native_failure_message(info, "measure its arena", exc))
        return ModelError(f"{info.path or 'model'}: TFLite-Micro cannot run it to measure the arena: "
                          f"{describe_failure(info, str(exc), size)}")

    first = _record_size(model, info)
    with _own(child) as worker:
        reply, size = with_growing_arena(lambda n: worker.call(("record", model, n, _inputs(info))), first, failure)
    if size != first:   # thousands of tensors (an unrolled RNN): the bisection starts from the size that worked
        _RECORD_SIZES[info.sha256] = size
    text = reply.encode()
    match = _TOTAL.search(text)
    if match is None:
        raise ModelError("TFLite-Micro printed no 'Arena allocation total' line; cannot measure the arena "
                         f"(got {text[:200]!r})")
    return int(match.group(1))


def measure_arena_bytes(model: bytes, info: ModelInfo, recorded: int | None = None, step: int = 16,
                        child: Child | None = None) -> int:
    """Smallest ``arena_size`` (to ``step`` bytes) with which the TFLM host interpreter allocates and invokes.

    Bisection between the recorded total (a lower bound) and a working upper bound, each probe a fresh
    interpreter in a child process. Only two outcomes count as "too small": TFLM's own allocation failure,
    and a SIGSEGV/SIGABRT/SIGBUS of the child below the size the recording run worked with (with some
    too-small arenas the host interpreter crashes instead of failing). A child killed (out of memory), one
    that hangs, or any other error is a ModelError, never a bigger arena.
    """
    with _own(child) as worker:
        low = (recorded if recorded is not None else recorded_arena_bytes(model, info, worker)) - 1
        high = max(low + step, 2 * low + 4096)
        while not _works(worker, model, info, high):
            high *= 2
            if high > 256 * 1024 * 1024:
                raise ModelError(f"{info.path or 'model'}: TFLite-Micro cannot allocate it even with 256 MB")
        while high - low > step:
            mid = (low + high) // 2
            if _works(worker, model, info, mid):
                high = mid
            else:
                low = mid
    return high


_TOO_SMALL_SIGNALS = ("SIGSEGV", "SIGABRT", "SIGBUS")


_RECORD_SIZES: dict[str, int] = {}   # by model SHA-256: a recording arena that had to grow


def _record_size(model: bytes, info: ModelInfo) -> int:
    """The generous arena the recording run uses; the bisection knows the model works with it."""
    return _RECORD_SIZES.get(info.sha256) or max(64 * 1024, 4 * info.activation_peak_bytes + len(model) + 64 * 1024)


def _works(worker: Child, model: bytes, info: ModelInfo, size: int) -> bool:
    """Probe one arena size: True (works), False (too small); raise ModelError on any other failure.

    A SIGSEGV/SIGABRT/SIGBUS counts as "too small" only below the size the recording run succeeded with.
    """
    try:
        return bool(worker.call(("probe", model, size, _inputs(info))))
    except ChildFailed as exc:
        if exc.reason == "crashed" and any(name in exc.detail for name in _TOO_SMALL_SIGNALS) \
                and size < _record_size(model, info):
            return False
        raise ModelError(native_failure_message(info, f"probe an arena of {size} bytes", exc)) from None
    except Exception as exc:  # not an allocation failure: TFLM cannot run the model at all
        raise ModelError(f"{info.path or 'model'}: TFLite-Micro failed with an arena of {size} bytes for "
                         f"another reason than its size ({str(exc).strip()[:300]})") from None


def _inputs(info: ModelInfo) -> list[tuple[tuple[int, ...], str]]:
    return [(tuple(t.shape), t.dtype) for t in info.input_tensors()]


@contextlib.contextmanager
def _own(child: Child | None) -> Iterator[Child]:
    """Use ``child``, or a new one that is closed afterwards."""
    if child is not None:
        yield child
        return
    with Child("tinykeras.tflm_host") as fresh:
        yield fresh


_PLANS: dict[str, ArenaPlan] = {}  # by model SHA-256: measuring takes a dozen interpreter runs


def plan_arena(model: bytes, info: ModelInfo) -> ArenaPlan:
    """Measure on the host and add the documented margin for a 32-bit target."""
    cached = _PLANS.get(info.sha256)
    if cached is not None:
        return cached
    with Child("tinykeras.tflm_host") as child:
        recorded = recorded_arena_bytes(model, info, child)
        measured = measure_arena_bytes(model, info, recorded, child=child)
    plan = ArenaPlan(measured_bytes=measured, planned_bytes=plan_from_measured(measured),
                     method=f"smallest arena_size (16 B steps) with which the tflite-micro host interpreter "
                            f"allocates and invokes; its print_allocations total is {recorded} B",
                     margin_rule=MARGIN_RULE, recorded_bytes=recorded)
    _PLANS[info.sha256] = plan
    return plan
