"""Run mutated models through inspect, the aot generator and the TFLM host interpreter; count outcomes.

Per stage each mutant ends as ``clean`` (a TinyKerasError: one line, non-zero exit in the CLI),
``accepted`` (no error), ``internal`` (any other exception: a bug), or ``hang`` (over the per-model
limit). Native crashes of the host interpreter happen in its child process and come back as clean
ModelErrors; they are also counted as ``contained_native_crashes`` so that they stay visible.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import TinyKerasError
from tinykeras.fuzz.models import mutants


class _Hang(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise _Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _peak_rss_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"self_mb": round(own, 1), "children_mb": round(children, 1)}


def run_models(bases: list[bytes], count: int, seed: int = 0, hang_s: float = 10.0,
               stages: tuple[str, ...] = ("inspect", "aot", "tflm"), keep_examples: int = 10) -> dict[str, Any]:
    """Mutate ``bases`` ``count`` times and run every stage; return counts, examples and peak memory."""
    from tinykeras.aot.generator import generate
    from tinykeras.inspect import inspect_bytes
    from tinykeras.native import Child
    from tinykeras.tflm_host import TflmRunner

    counts: dict[str, Counter[str]] = {stage: Counter() for stage in stages}
    examples: dict[str, list[dict[str, str]]] = {}
    contained = 0
    slowest = 0.0
    child = Child("tinykeras.tflm_host")
    start = time.monotonic()

    def note(stage: str, outcome: str, k: int, what: str, detail: str) -> None:
        counts[stage][outcome] += 1
        if outcome in ("internal", "hang", "native_crash"):
            examples.setdefault(f"{stage}:{outcome}", [])
            if len(examples[f"{stage}:{outcome}"]) < keep_examples:
                examples[f"{stage}:{outcome}"].append({"mutant": str(k), "mutation": what, "detail": detail[:400]})

    try:
        for k, what, data in mutants(bases, count, seed):
            info = None
            t0 = time.monotonic()
            for stage in stages:
                if stage != "inspect" and info is None:
                    break
                try:
                    with _deadline(hang_s):
                        if stage == "inspect":
                            info = inspect_bytes(data, path=f"mutant{k}.tflite")
                        elif stage == "aot":
                            generate(data, info)
                        else:
                            runner = TflmRunner(data, info, timeout=hang_s, child=child)
                            for t in info.input_tensors()[:1]:
                                runner.invoke(np.zeros(t.shape, dtype=np.dtype(t.dtype)))
                    note(stage, "accepted", k, what, "")
                except _Hang:
                    note(stage, "hang", k, what, "")
                    child.close()
                except TinyKerasError as exc:
                    note(stage, "clean", k, what, str(exc))
                    if "crashed with SIG" in str(exc):
                        contained += 1
                        counts[stage]["clean"] -= 1
                        note(stage, "native_crash", k, what, str(exc))
                except Exception as exc:
                    where = traceback.extract_tb(exc.__traceback__)[-1]
                    note(stage, "internal", k, what, f"{type(exc).__name__}: {exc} at "
                                                      f"{Path(where.filename).name}:{where.lineno}")
            slowest = max(slowest, time.monotonic() - t0)
    finally:
        child.close()
    for c in counts.values():
        c["clean"] += c.pop("native_crash", 0)
    return {
        "mutants": count, "seed": seed, "hang_limit_s": hang_s, "stages": {s: dict(c) for s, c in counts.items()},
        "internal_errors": sum(c["internal"] for c in counts.values()),
        "hangs": sum(c["hang"] for c in counts.values()),
        "crashes": 0,  # this process survived every mutant (it would not be writing this otherwise)
        "contained_native_crashes": contained,
        "slowest_mutant_s": round(slowest, 3), "wall_s": round(time.monotonic() - start, 1),
        "peak_rss": _peak_rss_mb(), "examples": examples,
    }
