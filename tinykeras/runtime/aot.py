"""The ``aot`` runtime: tinykeras' generated C (:mod:`tinykeras.aot`) and its static memory plan. No TensorFlow."""

from __future__ import annotations

from typing import Any

from tinykeras.aot import generate
from tinykeras.arena import ArenaPlan
from tinykeras.runtime.base import Banner, RuntimePlan, RuntimeSources
from tinykeras.types import ModelInfo

# Flash estimates of the runtime code (the fit check runs before anything is compiled; the ELF has the real sizes).
CORE_FLASH = 2 * 1024
FLASH_PER_OP = 2 * 1024
RAM_OVERHEAD = 0      # the plan is exact: no interpreter structures


def plan(model: bytes, info: ModelInfo, board: Any = None, *, name: str = "model", kernels: str | None = None,
         profile: bool = False) -> RuntimePlan:
    """Generate the C program (refusing an op aot lacks, naming it) and state its arena and costs.
    ``profile``: the program that reads the cycle counter after every op (the profile firmware main)."""
    program = generate(model, info, name=name, profile=profile)
    arena = ArenaPlan(measured_bytes=None, planned_bytes=int(program.arena_bytes),
                      method="tinykeras aot static memory plan (computed at build time)",
                      margin_rule="none: the plan is exact, no interpreter structures live in the arena")
    return RuntimePlan(name="aot", arena=arena, model_flash=int(program.weights_bytes),
                       runtime_flash=CORE_FLASH + FLASH_PER_OP * len(info.op_names), runtime_ram=RAM_OVERHEAD,
                       program=program)


def sources(p: RuntimePlan, model: bytes, info: ModelInfo, *, source_name: str = "", banner: Banner | None = None,
            tflm_dir: Any = None) -> RuntimeSources:
    """The generated sources of the planned program."""
    program = p.program
    return RuntimeSources(name="aot", files=dict(sorted(program.files.items())), arena=p.arena,
                          code_bytes=int(program.weights_bytes), program=program)

