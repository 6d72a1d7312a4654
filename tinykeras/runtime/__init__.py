"""Runtimes: what runs the model on the board (``tflm``: a TFLite-Micro library; ``aot``: tinykeras' generated C).

Each is one module with ``plan`` (checks, arena, flash/RAM costs; writes nothing) and ``sources`` (the files a
target places): the seam :mod:`tinykeras.pipeline` drives. No TensorFlow.
"""

from __future__ import annotations

from types import ModuleType

from tinykeras.runtime import aot, tflm
from tinykeras.types import RUNTIME_NAMES

__all__ = ["RUNTIMES", "RUNTIME_NAMES", "runtime_module"]

RUNTIMES: dict[str, ModuleType] = {"tflm": tflm, "aot": aot}


def runtime_module(name: str) -> ModuleType:
    """The runtime called ``name`` (boards and options are checked against :data:`RUNTIME_NAMES` before)."""
    return RUNTIMES[name]
