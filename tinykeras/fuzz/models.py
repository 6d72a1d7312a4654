"""A seeded mutator for .tflite flatbuffers: byte flips and truncations, and schema-aware changes.

Schema-aware mutations unpack the model with the schema's object API, change one thing a hostile or
broken file could carry (a tensor's buffer index, a shape, a quantization scale, an opcode index, an
option type or value, a subgraph input, a buffer's length, ...) and pack it again. Byte-level mutations
flip bytes, truncate the file or poke large 32-bit values at aligned offsets (offsets and vector lengths).
Everything comes from one ``random.Random(seed)``, so a campaign is reproducible mutant by mutant.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import numpy as np

HOSTILE_INTS = (-(2**31), -2, -1, 0, 1, 2, 3, 4, 7, 255, 256, 65535, 65558, 2**31 - 1)
HOSTILE_FLOATS = (float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 1e-45, 1e38, 3.4e38)


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def pack(model: Any) -> bytes:
    """Serialise a schema ``ModelT`` with the 'TFL3' identifier."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class Mutator:
    """``mutate(rng)`` returns (description, mutated bytes) for one base model."""

    def __init__(self, data: bytes):
        self.data = data
        self.model = _schema().ModelT.InitFromPackedBuf(data, 0)

    # ---- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _int(rng: random.Random) -> int:
        return rng.choice(HOSTILE_INTS) if rng.random() < 0.7 else rng.randint(-1000, 1000)

    @staticmethod
    def _graph(m: Any, rng: random.Random) -> Any:
        return rng.choice(m.subgraphs)

    # ---- schema-aware mutations -------------------------------------------------------------------
    def tensor_buffer(self, m: Any, rng: random.Random) -> str:
        t = rng.choice(self._graph(m, rng).tensors)
        t.buffer = rng.choice([len(m.buffers), 65558, 2**31 - 1, 0, rng.randrange(len(m.buffers))])
        return f"tensor.buffer={t.buffer}"

    def tensor_shape(self, m: Any, rng: random.Random) -> str:
        t = rng.choice(self._graph(m, rng).tensors)
        shape = [int(d) for d in (t.shape if t.shape is not None else [])]
        kind = rng.choice(["dim", "drop", "add", "empty"])
        if kind == "dim" and shape:
            shape[rng.randrange(len(shape))] = self._int(rng)
        elif kind == "drop" and shape:
            shape.pop(rng.randrange(len(shape)))
        elif kind == "add":
            shape.insert(rng.randrange(len(shape) + 1), rng.choice([1, 2, 3, 2**31 - 1]))
        else:
            shape = []
        t.shape = np.array(shape, dtype=np.int32)
        return f"tensor.shape {kind} -> {shape}"

    def tensor_type(self, m: Any, rng: random.Random) -> str:
        t = rng.choice(self._graph(m, rng).tensors)
        t.type = rng.choice([0, 1, 2, 3, 4, 5, 7, 9, 10, 13, 17, 18, 40])
        return f"tensor.type={t.type}"

    def quantization(self, m: Any, rng: random.Random) -> str:
        ts = [t for t in self._graph(m, rng).tensors if t.quantization is not None and t.quantization.scale is not None]
        if not ts:
            return "noop"
        q = rng.choice(ts).quantization
        kind = rng.choice(["scale", "zp", "dim", "len", "none"])
        if kind == "scale":
            scales = np.array(q.scale, dtype=np.float32)
            scales[rng.randrange(len(scales))] = rng.choice(HOSTILE_FLOATS)
            q.scale = scales
        elif kind == "zp" and q.zeroPoint is not None and len(q.zeroPoint):
            zps = np.array(q.zeroPoint, dtype=np.int64)
            zps[rng.randrange(len(zps))] = rng.choice([-129, 128, 2**40, -(2**40), 0])
            q.zeroPoint = zps
        elif kind == "dim":
            q.quantizedDimension = self._int(rng)
        elif kind == "len":
            q.scale = np.concatenate([np.array(q.scale, dtype=np.float32), np.array([0.5], dtype=np.float32)])
        else:
            q.scale = None
        return f"quantization {kind}"

    def opcode_index(self, m: Any, rng: random.Random) -> str:
        op = rng.choice(self._graph(m, rng).operators)
        op.opcodeIndex = rng.choice([len(m.operatorCodes), 2**31 - 1, rng.randrange(len(m.operatorCodes))])
        return f"operator.opcode_index={op.opcodeIndex}"

    def op_tensors(self, m: Any, rng: random.Random) -> str:
        g = self._graph(m, rng)
        op = rng.choice(g.operators)
        field = rng.choice(["inputs", "outputs"])
        values = [int(i) for i in (getattr(op, field) if getattr(op, field) is not None else [])]
        kind = rng.choice(["index", "drop", "empty", "add"])
        if kind == "index" and values:
            values[rng.randrange(len(values))] = rng.choice([-1, -2, len(g.tensors), 2**31 - 1,
                                                              rng.randrange(len(g.tensors))])
        elif kind == "drop" and values:
            values.pop()
        elif kind == "add":
            values.append(rng.randrange(len(g.tensors)))
        else:
            values = []
        setattr(op, field, np.array(values, dtype=np.int32))
        return f"operator.{field} {kind} -> {values}"

    def option_type(self, m: Any, rng: random.Random) -> str:
        op = rng.choice(self._graph(m, rng).operators)
        op.builtinOptionsType = rng.choice([0, 0, 1, 2, 5, 8, 9, 17])
        if op.builtinOptionsType == 0:
            op.builtinOptions = None
        else:
            op.builtinOptions = _empty_options(op.builtinOptionsType)
        return f"operator.builtin_options_type={op.builtinOptionsType}"

    def option_value(self, m: Any, rng: random.Random) -> str:
        ops = [op for op in self._graph(m, rng).operators if op.builtinOptions is not None]
        if not ops:
            return "noop"
        opts = rng.choice(ops).builtinOptions
        keys = [k for k, v in vars(opts).items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not keys:
            return "noop"
        key = rng.choice(keys)
        value = self._int(rng) if isinstance(getattr(opts, key), int) else rng.choice(HOSTILE_FLOATS)
        setattr(opts, key, value)
        return f"options.{key}={value}"

    def graph_io(self, m: Any, rng: random.Random) -> str:
        g = self._graph(m, rng)
        field = rng.choice(["inputs", "outputs"])
        values = [int(i) for i in getattr(g, field)]
        if values and rng.random() < 0.7:
            values[rng.randrange(len(values))] = rng.choice([-1, len(g.tensors), 2**31 - 1, 0])
        else:
            values = []
        setattr(g, field, np.array(values, dtype=np.int32))
        return f"subgraph.{field} -> {values}"

    def buffer_data(self, m: Any, rng: random.Random) -> str:
        full = [b for b in m.buffers if b.data is not None and len(b.data)]
        if not full:
            return "noop"
        b = rng.choice(full)
        data = np.array(b.data, dtype=np.uint8)
        kind = rng.choice(["truncate", "extend", "empty"])
        if kind == "truncate":
            b.data = data[: rng.randrange(len(data))]
        elif kind == "extend":
            b.data = np.concatenate([data, np.zeros(rng.choice([1, 3, 16]), dtype=np.uint8)])
        else:
            b.data = None
        return f"buffer.data {kind}"

    def opcode(self, m: Any, rng: random.Random) -> str:
        code = rng.choice(m.operatorCodes)
        code.builtinCode = rng.choice([0, 3, 4, 9, 22, 25, 32, 127, 200, 1000, -1])
        code.deprecatedBuiltinCode = min(max(code.builtinCode, 0), 127)
        return f"opcode.builtin_code={code.builtinCode}"

    def remove(self, m: Any, rng: random.Random) -> str:
        g = self._graph(m, rng)
        kind = rng.choice(["operator", "tensor", "buffer", "subgraph"])
        if kind == "operator" and g.operators:
            g.operators.pop(rng.randrange(len(g.operators)))
        elif kind == "tensor" and g.tensors:
            g.tensors.pop()
        elif kind == "buffer" and m.buffers:
            m.buffers.pop()
        else:
            m.subgraphs = []
        return f"remove {kind}"

    SCHEMA_MUTATIONS = ("tensor_buffer", "tensor_shape", "tensor_type", "quantization", "opcode_index",
                        "op_tensors", "option_type", "option_value", "graph_io", "buffer_data", "opcode", "remove")

    # ---- byte-level mutations ---------------------------------------------------------------------
    def bytes_mutation(self, rng: random.Random) -> tuple[str, bytes]:
        data = bytearray(self.data)
        kind = rng.choice(["flip", "truncate", "poke"])
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            data = data[: rng.randrange(len(data))]
        else:
            at = rng.randrange(0, max(len(data) - 4, 1)) & ~3
            value = rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x10000, len(data), len(data) + 4, 0])
            data[at:at + 4] = value.to_bytes(4, "little")
        return f"bytes {kind}", bytes(data)

    def mutate(self, rng: random.Random) -> tuple[str, bytes]:
        """One mutant: 30% byte-level, 70% one to three schema-aware changes."""
        if rng.random() < 0.3:
            return self.bytes_mutation(rng)
        m = copy.deepcopy(self.model)
        done = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            try:
                done.append(getattr(self, rng.choice(self.SCHEMA_MUTATIONS))(m, rng))
            except (IndexError, ValueError):
                continue  # nothing to mutate there (an empty list)
        try:
            return "; ".join(done), pack(m)
        except Exception:  # a value the builder cannot store (out of range for the field): fall back to bytes
            return self.bytes_mutation(rng)


def _empty_options(kind: int) -> Any:
    """A default-valued options object of BuiltinOptions type ``kind``."""
    schema = _schema()
    names = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
    cls = getattr(schema, names[kind] + "T", None)
    return cls() if cls is not None else None


def mutants(bases: list[bytes], count: int, seed: int = 0) -> Iterator[tuple[int, str, bytes]]:
    """``count`` mutants (index, description, bytes) spread evenly over ``bases``, reproducible by seed."""
    mutators = [Mutator(b) for b in bases]
    for k in range(count):
        rng = random.Random(f"{seed}:{k}")
        mutator = mutators[k % len(mutators)]
        description, data = mutator.mutate(rng)
        yield k, f"base {k % len(mutators)}: {description}", data

