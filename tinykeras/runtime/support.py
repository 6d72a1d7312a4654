"""What can run a model: a TFLite-Micro library op by op (ops its resolver registers, its known gaps, int8),
with the fix each problem allows (another library or board, ``--runtime aot``, per-tensor re-quantization).

Above :mod:`tinykeras.libraries` (the libraries as data), :mod:`tinykeras.boards` and the aot runtime's op set,
which the fixes name. ``tinykeras build`` and ``inspect --check`` ask it. No TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from tinykeras.aot import SUPPORTED_OPS
from tinykeras.boards import board_names, load_board
from tinykeras.errors import TinyKerasError, UnsupportedOpError
from tinykeras.libraries import PER_TENSOR_FIX, Library, board_library, list_libraries, reference_library
from tinykeras.types import ModelInfo, index_inputs


@dataclass(frozen=True)
class Problem:
    """One reason a library cannot run a model correctly, with what to do about it."""

    kind: str    # "missing-op" | "gap" | "not-int8"
    op: str      # operator name ("" for a model-wide problem)
    index: int   # operator index (-1 for a model-wide problem)
    reason: str  # without the library's name (messages put it in front)
    fix: str
    note: str = ""   # per-op detail, e.g. "12 scales"

    def __str__(self) -> str:
        where = f"{self.op} (operator #{self.index}" + (f", {self.note}" if self.note else "") + "): "
        return (where if self.index >= 0 else "") + self.reason

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "op": self.op or None, "index": self.index if self.index >= 0 else None,
                "note": self.note or None, "reason": self.reason, "fix": self.fix}


def _weights_scales(info: Any, op: Any) -> int:
    """Number of scales of an op's weights tensor (input 1), 0 when it has none."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return 0
    q = info.tensors[op.inputs[1]].quantization
    return len(q.scales) if q is not None else 0


def _libraries_with(op: str, exclude: str) -> list[str]:
    return [lib.id for lib in list_libraries() if lib.id != exclude and op in lib.ops]


def _aot_has(op: str) -> bool:
    return op in SUPPORTED_OPS


@cache
def _boards_without_gap(op: str) -> tuple[str, ...]:
    """Boards whose pinned library registers ``op`` with no gap on it."""
    out = []
    for name in board_names():
        try:
            lib = board_library(load_board(name))
        except TinyKerasError:
            continue
        if lib is not None and op in lib.ops and not any(g.op == op for g in lib.gaps):
            out.append(name)
    return tuple(out)


def check_model(info: Any, lib: Library) -> list[Problem]:
    """Everything that keeps ``lib`` from running the model ``info`` (a ModelInfo) correctly, op by op:
    ops its resolver does not register, known gaps (``[[gaps]]``: e.g. per-channel FULLY_CONNECTED) and a model
    that is not full-integer int8. Empty when the library runs it."""
    problems: list[Problem] = []
    token_ids = index_inputs(info)   # int32 token ids that only index a GATHER (Embedding) are fine for TFLM
    bad_io = [t for t in info.input_tensors() + info.output_tensors() if t.dtype != "int8" and t.index not in token_ids]
    if bad_io:
        listed = ", ".join(f"'{t.name}' is {t.dtype}" for t in bad_io)
        problems.append(Problem("not-int8", "", -1, f"int8 model required, but {listed}",
                                "quantize it with `tinykeras quantize MODEL.keras --rep-data REP.npz`"))
    for op in info.ops:
        if op.op not in lib.ops:
            others = _libraries_with(op.op, lib.id)
            fixes = (["use --runtime aot"] if _aot_has(op.op) else []) + (
                [f"a board whose library registers it (libraries: {', '.join(others)})"] if others else
                ["replace the layer (no known library registers it; see docs/supported_ops.md)"])
            problems.append(Problem("missing-op", op.op, op.index, "its op resolver does not register it "
                                    "(libraries/ops, generated from its sources)", " or ".join(fixes)))
            continue
        for gap in lib.gaps:
            if gap.op != op.op:
                continue
            scales = _weights_scales(info, op)
            if gap.quantization == "per-channel" and scales <= 1:
                continue
            if gap.quantization == "per-channel":
                boards = _boards_without_gap(op.op)
                fix = f"{PER_TENSOR_FIX}, or use --runtime aot, or " + (
                    f"another board ({', '.join(boards)})" if boards else
                    f"a library with per-channel {op.op}")
                problems.append(Problem("gap", op.op, op.index, f"per-channel weights: {gap.detail}", fix,
                                        note=f"{scales} scales"))
            else:
                problems.append(Problem("gap", op.op, op.index, gap.detail, "use --runtime aot or another board"))
    return problems


def problems_line(problems: list[Problem], lib: Library, where: str = "model") -> str:
    """One line: what ``lib`` cannot run and how to fix it (ops with the same reason grouped)."""
    groups: dict[tuple[str, str, str], list[Problem]] = {}
    for p in problems:
        groups.setdefault((p.op, p.reason, p.fix), []).append(p)
    parts = []
    for (op, reason, fix), members in groups.items():
        if members[0].index < 0:
            parts.append(f"{reason}; fix: {fix}")
            continue
        listed = ", ".join(f"{op} (operator #{p.index}" + (f", {p.note}" if p.note else "") + ")" for p in members)
        parts.append(f"{listed}: {reason}; fix: {fix}")
    return f"{where}: {lib.label} cannot run it correctly: " + " | ".join(parts)


def require_model_supported(info: Any, lib: Library) -> None:
    """Raise UnsupportedOpError (one line: op, index, library name and version, reason, fix) unless ``lib``
    runs the model ``info`` correctly."""
    problems = check_model(info, lib)
    if problems:
        raise UnsupportedOpError([(p.index, p.op) for p in problems if p.index >= 0], lib.label,
                                 message=problems_line(problems, lib, info.path or "model"))


def support_summary(info: Any) -> dict[str, Any]:
    """Per library: does it run the model correctly, and if not, why (the ``libraries`` of ``inspect --json``)."""
    out: dict[str, Any] = {}
    for lib in list_libraries():
        problems = check_model(info, lib)
        out[lib.id] = {"label": lib.label, "supported": not problems, "problems": [p.to_json() for p in problems]}
    return out


def require_tflm_ops(info: ModelInfo, lib: Library | None = None) -> None:
    """Raise UnsupportedOpError, in one line, unless ``lib`` (default: the reference TFLM) runs the model
    correctly: every op registered, no known gap hit (e.g. per-channel FULLY_CONNECTED), int8."""
    require_model_supported(info, lib or reference_library())
