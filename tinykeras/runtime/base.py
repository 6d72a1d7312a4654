"""What every runtime hands the driver: a plan (arena, flash/RAM costs) and the sources a target places.

A runtime module (:mod:`tinykeras.runtime.tflm`, :mod:`tinykeras.runtime.aot`) has
``plan(model, info, board, *, name, kernels) -> RuntimePlan`` (checks the model against the runtime, plans the
arena, states the costs; writes nothing) and ``sources(plan, model, info, *, source_name, banner, tflm_dir)
-> RuntimeSources``. No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinykeras.arena import ArenaPlan
from tinykeras.libraries import Library

Banner = Callable[[str], str]   # comment prefix -> banner lines without the final newline


@dataclass(frozen=True)
class RuntimePlan:
    """A model checked against a runtime: its arena and what it costs beside the firmware main.

    ``model_flash``: the model array (tflm) or the weights and constants (aot); ``runtime_flash``: an estimate
    of the runtime's code; ``runtime_ram``: the runtime's RAM outside the arena."""

    name: str                       # "tflm" | "aot"
    arena: ArenaPlan
    model_flash: int
    runtime_flash: int
    runtime_ram: int
    library: Library | None = None  # tflm: the board's pinned library
    kernels: str | None = None      # tflm: "reference" | "cmsis-nn" | "esp-nn"
    program: Any = None             # aot: the AotProgram
    profile: bool = False           # tflm: the adapter counts every op (the per-op profile firmware)


@dataclass(frozen=True)
class RuntimeSources:
    """What a runtime puts into a project."""

    name: str                                    # "tflm" | "aot"
    files: dict[str, str]                        # generated sources, relative to the project's src/
    arena: ArenaPlan
    library: Library | None = None
    kernels: str | None = None                   # "reference" | "cmsis-nn" | "esp-nn" (tflm only)
    library_files: dict[str, Path] = field(default_factory=dict)  # copied from a TFLM tree (delivery "tree")
    code_bytes: int | None = None                # aot: weights + constants in flash
    program: Any = None                          # aot: the AotProgram

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runtime": self.name}
        if self.library is not None:
            out.update({"library": self.library.id, "library_commit": self.library.commit, "kernels": self.kernels,
                        "library_delivery": self.library.delivery["kind"]})
        return out
