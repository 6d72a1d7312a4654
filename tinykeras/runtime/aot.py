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
# The call of each operator in tk_model.c (its arguments are constants): 137-144 B measured on a Cortex-M4 for
# unrolled RNNs of 2,169 and 3,831 ops (arm-none-eabi-size of tk_model.o minus the weights), with headroom.
FLASH_PER_CALL = 160
RAM_OVERHEAD = 0      # the plan is exact: no interpreter structures


def plan(model: bytes, info: ModelInfo, board: Any = None, *, name: str = "model", kernels: str | None = None,
         profile: bool = False) -> RuntimePlan:
    """Generate the C program (refusing an op aot lacks, naming it) and state its arena and costs.
    ``profile``: the program that reads the cycle counter after every op (the profile firmware main)."""
    core = board.mcu.core if board is not None and getattr(board, "mcu", None) is not None else None
    program = generate(model, info, name=name, profile=profile, core=core)
    arena = ArenaPlan(measured_bytes=None, planned_bytes=int(program.arena_bytes),
                      method="tinykeras aot static memory plan (computed at build time)",
                      margin_rule="none: the plan is exact, no interpreter structures live in the arena")
    return RuntimePlan(name="aot", arena=arena, model_flash=int(program.weights_bytes),
                       runtime_flash=CORE_FLASH + FLASH_PER_OP * len(info.op_names) + FLASH_PER_CALL * len(info.ops),
                       runtime_ram=RAM_OVERHEAD,
                       program=program)


def sources(p: RuntimePlan, model: bytes, info: ModelInfo, *, source_name: str = "", banner: Banner | None = None,
            tflm_dir: Any = None) -> RuntimeSources:
    """The generated sources of the planned program."""
    program = p.program
    return RuntimeSources(name="aot", files=dict(sorted(program.files.items())), arena=p.arena,
                          code_bytes=int(program.weights_bytes), program=program)

