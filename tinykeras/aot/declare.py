"""How an aot op is declared: once, on its generator handler, with its kernels, C file and constraints.

    @aot_op("SOFTMAX", kernels=("tk_softmax_s8",), c_files=("tk_ops.c",))
    def softmax(g, op, ins, out_i):
        \"\"\"int8, output scale 1/256 and zero point -128, any beta\"\"\"

The docstring is the constraint note: `docs/supported_ops.md` shows it (``tinykeras.supported_ops``) and
``tinykeras.aot.ops.OPS`` (the registry the generator dispatches through) carries it. A handler emits
declarations and calls through the generator ``g`` and returns (kernel run, scratch bytes, in place); it
raises ``Unsupported`` with a short reason for what its kernels do not implement. Ops the runtime refuses
on purpose are declared with ``refused(name, why)``: the why is the one-line note of the refusal.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinykeras.types import OpInfo

OpResult = tuple[str, int, bool]  # (kernel that runs, scratch bytes, output written in place)
Handler = Callable[[Any, OpInfo, list[int], int], OpResult]


class Unsupported(Exception):
    """An op outside what the aot kernels implement; ``reason`` goes into the one-line refusal."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AotOp:
    """One TFLite builtin op the aot runtime runs."""

    name: str  # the builtin op name (CONV_2D)
    handler: Handler
    kernels: tuple[str, ...]  # the C functions the handler may call
    c_files: tuple[str, ...]  # where they are, in firmware_templates/runtime/aot/
    family: str  # the module under tinykeras/aot/ops/ (conv, pool, elementwise, ...)
    constraints: str  # the handler's docstring: what the kernels implement


_DECLARED: dict[str, AotOp] = {}
_REFUSED: dict[str, str] = {}


def aot_op(name: str, kernels: tuple[str, ...], c_files: tuple[str, ...]) -> Callable[[Handler], Handler]:
    """Declare ``handler`` as the aot implementation of the builtin op ``name``."""

    def register(handler: Handler) -> Handler:
        if name in _DECLARED:
            raise ValueError(f"aot op {name} declared twice")
        family = handler.__module__.rsplit(".", 1)[-1]
        constraints = " ".join(inspect.cleandoc(handler.__doc__ or "").split())
        _DECLARED[name] = AotOp(name, handler, kernels, c_files, family, constraints)
        return handler

    return register


def refused(name: str, why: str) -> None:
    """Declare a builtin op the aot runtime does not run, with the one line that says what to do instead."""
    _REFUSED[name] = why


def declared() -> tuple[dict[str, AotOp], dict[str, str]]:
    """The ops declared so far (by the modules of tinykeras/aot/ops/) and the refusals, sorted by name."""
    return dict(sorted(_DECLARED.items())), dict(sorted(_REFUSED.items()))
