"""Typed values passed between pipeline stages. Plain frozen dataclasses, no TensorFlow."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of one tensor: real = scale * (q - zero_point)."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph. ``data`` is set for constant tensors (weights, biases, shapes)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: int8, int32, float32, ...
    quantization: Quantization | None
    is_constant: bool
    buffer_index: int
    data: Any = field(default=None, repr=False, compare=False)  # numpy array or None

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(d, 1)
        return n

    @property
    def itemsize(self) -> int:
        return DTYPE_SIZES.get(self.dtype, 1)

    @property
    def nbytes(self) -> int:
        return self.num_elements * self.itemsize


@dataclass(frozen=True)
class OpInfo:
    """One operator. ``options`` holds its builtin options (stride, padding, activation, ...)."""

    index: int
    op: str
    version: int
    builtin_code: int
    inputs: tuple[int, ...]  # tensor indices; -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any]
    params: int
    macs: int
    activation_bytes: int


@dataclass(frozen=True)
class ModelInfo:
    """Everything tinykeras knows about a .tflite flatbuffer, read without TensorFlow."""

    path: str | None
    sha256: str
    model_bytes: int
    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str
    metadata: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def params(self) -> int:
        return sum(t.num_elements for t in self.tensors if t.is_constant and _is_weight(t))

    @property
    def activation_peak_bytes(self) -> int:
        return activation_peak_bytes(self)

    @property
    def op_names(self) -> list[str]:
        """Distinct operator names in order of first use."""
        seen: dict[str, None] = {}
        for op in self.ops:
            seen.setdefault(op.op, None)
        return list(seen)

    def input_tensors(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.inputs]

    def output_tensors(self) -> list[TensorInfo]:
        return [self.tensors[i] for i in self.outputs]

    @property
    def is_int8(self) -> bool:
        """True when every input and output is int8 (full-integer quantization)."""
        return all(t.dtype == "int8" for t in self.input_tensors() + self.output_tensors())


RUNTIME_NAMES = ("tflm", "aot")   # the runtimes (tinykeras.runtime.RUNTIMES); boards and options name them

DTYPE_SIZES = {
    "float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "int16": 2, "int8": 1, "bool": 1,
    "float64": 8, "uint32": 4, "uint16": 2, "int4": 1, "uint64": 8,
}


def _is_weight(t: TensorInfo) -> bool:
    """Count weights and biases as parameters, not small shape/axis vectors."""
    return t.dtype not in ("int64",) and not (t.dtype == "int32" and t.quantization is None)


def to_jsonable(value: Any) -> Any:
    """Turn dataclasses, tuples and numpy scalars into plain JSON types."""
    if hasattr(value, "__dataclass_fields__"):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def activation_peak_bytes(info: ModelInfo) -> int:
    """Peak bytes of live activations when ops run in order and each tensor is freed after its last use.

    A lower bound for any arena planner (TFLM's greedy planner usually lands close to it) and the plan
    tinykeras' own runtime aims for. Excludes the runtime's bookkeeping.
    """
    last_use: dict[int, int] = {}
    first_def: dict[int, int] = {}
    n = len(info.ops)
    for op in info.ops:
        for i in op.inputs:
            if i >= 0 and not info.tensors[i].is_constant:
                last_use[i] = op.index
        for i in op.outputs:
            first_def.setdefault(i, op.index)
    for i in info.inputs:
        first_def[i] = -1
    for i in info.outputs:
        last_use[i] = n
    peak = 0
    for step in range(n):
        live = sum(
            info.tensors[t].nbytes for t in set(first_def) | set(last_use)
            if not info.tensors[t].is_constant and first_def.get(t, step) <= step <= last_use.get(t, step)
        )
        peak = max(peak, live)
    return peak


def index_inputs(info: ModelInfo) -> set[int]:
    """int32 model inputs used only as GATHER indices (token ids for an Embedding)."""
    found = set()
    for t in info.inputs:
        if info.tensors[t].dtype != "int32":
            continue
        users = [(op, k) for op in info.ops for k, i in enumerate(op.inputs) if i == t]
        if users and all(op.op == "GATHER" and k == 1 for op, k in users):
            found.add(t)
    return found


def index_limit(info: ModelInfo, k: int = 0) -> int | None:
    """Rows of the table input ``k`` indexes (the GATHER params' first dimension: an Embedding's vocabulary),
    or None when that input is not an int32 index input. Valid ids are 0..limit-1."""
    t = info.inputs[k]
    if t not in index_inputs(info):
        return None
    rows = [info.tensors[op.inputs[0]].shape[0] for op in info.ops
            if op.op == "GATHER" and len(op.inputs) > 1 and op.inputs[1] == t and info.tensors[op.inputs[0]].shape]
    return max(1, min(int(r) for r in rows)) if rows else None
