"""Structural checks of a parsed .tflite before any native code (TFLite-Micro, the aot generator) sees it.

``inspect.inspect_bytes`` calls :func:`verify_model` on every model it reads, so ``inspect``, ``emulate``,
``build``, ``carray`` and ``tinykeras.testing`` all refuse a malformed model with one ``ModelError`` that
names what is wrong. The flatbuffer reader itself already refuses offsets and vector lengths that point
past the end of the file (any such read raises); this module checks what a reader cannot: index bounds,
shapes, types, buffer sizes, quantization parameters, operator options, and size limits. It checks the
operators TFLite-Micro's kernels trust without checking themselves (convolutions, pooling, fully connected,
elementwise, concatenation, pad, mean); the host interpreter still runs in a child process
(``tflm_host``), so anything this misses becomes an error, not a crash.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

import numpy as np

from tinykeras.errors import ModelError
from tinykeras.libraries import resolver_methods

MAX_MODEL_BYTES = 256 * 1024 * 1024   # far above any microcontroller model
MAX_TENSOR_BYTES = 64 * 1024 * 1024   # one activation or weight tensor
MAX_RANK = 8
MAX_OPTION_VALUE = 65535               # strides, dilations, filter sizes

# Fixed element sizes of the TensorType enum (string, resource and variant have none).
ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 17: 1}
_KNOWN_TYPES = set(ITEMSIZE) | {5, 13, 14}
_INT_RANGE = {3: (0, 255), 9: (-128, 127), 7: (-32768, 32767), 17: (-8, 7)}

# Ops whose kernels divide by or loop over option values: options must be present and sane.
_OPTIONS_REQUIRED = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D",
                     "TRANSPOSE_CONV", "CONV_3D", "SOFTMAX"}
# Quantized kernels read the scale and zero point of these ops' integer tensors: they must be there.
_NEEDS_QUANTIZATION = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX",
                       "ADD", "MUL", "SUB", "LOGISTIC", "TANH", "MEAN", "QUANTIZE", "DEQUANTIZE", "TRANSPOSE_CONV",
                       "HARD_SWISH", "LEAKY_RELU", "PAD", "PADV2"}
_OPTIONS_ALIASES = {
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions", "REDUCE_PROD": "ReducerOptions", "REDUCE_ANY": "ReducerOptions",
    "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions", "L2_NORMALIZATION": "L2NormOptions",
    "LSTM": "LSTMOptions", "RNN": "RNNOptions", "SVDF": "SVDFOptions",
}
_ZERO_OUTPUT_OPS = {"ASSIGN_VARIABLE", "CALL_ONCE"}
_ELEMENTWISE_UNARY = {"SOFTMAX", "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "QUANTIZE", "DEQUANTIZE",
                      "HARD_SWISH", "LEAKY_RELU", "ABS", "NEG", "ELU", "PRELU", "LOG_SOFTMAX", "EXP", "SQRT",
                      "RSQRT", "GELU"}
_SAME_TYPE = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX", "ADD",
              "MUL", "SUB", "RESHAPE", "CONCATENATION", "PAD", "PADV2", "MEAN", "LOGISTIC", "TANH", "RELU", "RELU6",
              "HARD_SWISH", "LEAKY_RELU", "SQUEEZE", "EXPAND_DIMS", "STRIDED_SLICE"}
_RESOURCE_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "HASHTABLE", "HASHTABLE_FIND",
                 "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "CUSTOM", "WHILE", "IF"}
_BINARY = {"ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "FLOOR_DIV", "FLOOR_MOD"}


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _enum(cls: Any) -> dict[int, str]:
    return {value: name for name, value in vars(cls).items() if not name.startswith("_")}


def _runnable(op_name: str) -> bool:
    """Ops some runtime executes (the rest are refused later as unsupported, naming the op)."""
    return op_name in resolver_methods()


def expected_options(op_name: str) -> int | None:
    """The BuiltinOptions type an op carries (``CONV_2D`` -> Conv2DOptions), or None if it has none."""
    by_lower = {name.lower(): value for value, name in _enum(_schema().BuiltinOptions).items()}
    name = _OPTIONS_ALIASES.get(op_name, op_name.replace("_", "") + "Options")
    return by_lower.get(name.lower())


class _Verifier:
    def __init__(self, model: Any, data: bytes, where: str):
        self.model = model
        self.data = data
        self.where = where
        self.buffers = model.buffers or []
        self.op_names = _enum(_schema().BuiltinOperator)
        self.option_names = _enum(_schema().BuiltinOptions)
        self.buffer_sizes = [self._buffer_size(k, b) for k, b in enumerate(self.buffers)]

    def fail(self, message: str) -> NoReturn:
        raise ModelError(f"{self.where}: {message}; the file is corrupt or not a model tinykeras can use")

    # ---- buffers and tensors ------------------------------------------------------------------------
    def _buffer_size(self, index: int, buffer: Any) -> int:
        if buffer is None:
            return 0
        if buffer.data is not None and len(buffer.data):
            return len(buffer.data)
        offset, size = int(getattr(buffer, "offset", 0) or 0), int(getattr(buffer, "size", 0) or 0)
        if offset > 1 and size:
            if offset + size > len(self.data):
                self.fail(f"buffer #{index} lies past the end of the file ({offset} + {size} > {len(self.data)})")
            return size
        return 0

    def tensor(self, g: int, index: int, t: Any) -> None:
        name = f"subgraph {g} tensor #{index}"
        if t.type not in _KNOWN_TYPES:
            self.fail(f"{name} has unknown type {t.type}")
        shape = [int(d) for d in (t.shape if t.shape is not None else ())]
        if len(shape) > MAX_RANK:
            self.fail(f"{name} has rank {len(shape)} (at most {MAX_RANK})")
        if any(d < 0 for d in shape):
            self.fail(f"{name} has shape {shape}: a dimension is negative")
        count = math.prod(shape)
        size = ITEMSIZE.get(t.type, 1)
        if count * size > MAX_TENSOR_BYTES:
            self.fail(f"{name} has shape {shape}: {count * size:,} bytes, over the "
                      f"{MAX_TENSOR_BYTES // 2**20} MiB limit for one tensor")
        if t.shapeSignature is not None and len(t.shapeSignature):
            if len(t.shapeSignature) != len(shape) or any(int(d) < -1 for d in t.shapeSignature):
                signature = [int(d) for d in t.shapeSignature]
                self.fail(f"{name} has a shape signature {signature} that does not match {shape}")
        if not 0 <= t.buffer < len(self.buffers):
            self.fail(f"{name} names buffer {t.buffer}, but the model has {len(self.buffers)} buffers")
        if t.sparsity is not None:
            self.fail(f"{name} is sparse; TFLite-Micro and the aot runtime need dense tensors")
        stored = self.buffer_sizes[t.buffer]
        if stored and t.type in ITEMSIZE:
            needed = [count * size] if t.type != 17 else [count, (count + 1) // 2]
            if stored not in needed:
                self.fail(f"{name} has shape {shape} ({'/'.join(map(str, needed))} bytes) but its buffer "
                          f"#{t.buffer} holds {stored} bytes")
        self.quantization(name, t, shape)

    def quantization(self, name: str, t: Any, shape: list[int]) -> None:
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return
        scales = np.asarray(q.scale, dtype=np.float64)
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            bad = next(float(s) for s in scales if not (math.isfinite(s) and s > 0))
            self.fail(f"{name} has quantization scale {bad}: scales must be finite and positive")
        zps = q.zeroPoint if q.zeroPoint is not None else ()
        if len(zps) and len(zps) != len(scales):
            self.fail(f"{name} has {len(scales)} quantization scales but {len(zps)} zero points")
        low, high = _INT_RANGE.get(t.type, (-(2**63), 2**63 - 1))
        if len(zps) and (int(np.min(zps)) < low or int(np.max(zps)) > high):
            self.fail(f"{name} has a zero point outside [{low}, {high}]")
        if len(scales) > 1:
            dim = int(q.quantizedDimension)
            if not 0 <= dim < len(shape) or shape[dim] != len(scales):
                self.fail(f"{name} has {len(scales)} per-channel scales along dimension {dim} of shape {shape}")

    # ---- operators ----------------------------------------------------------------------------------
    def operator(self, g: int, index: int, op: Any, tensors: list[Any]) -> None:
        codes = self.model.operatorCodes or []
        where = f"subgraph {g} operator #{index}"
        if not 0 <= op.opcodeIndex < len(codes):
            self.fail(f"{where} names opcode {op.opcodeIndex}, but the model has {len(codes)} opcodes")
        code = codes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = self.op_names.get(builtin)
        if name is None:
            self.fail(f"{where} has unknown builtin operator code {builtin}")
        where += f" ({name})"
        n = len(tensors)
        inputs = [int(i) for i in (op.inputs if op.inputs is not None else ())]
        outputs = [int(i) for i in (op.outputs if op.outputs is not None else ())]
        for i in inputs + [int(i) for i in (op.intermediates if op.intermediates is not None else ())]:
            if not -1 <= i < n:
                self.fail(f"{where} refers to tensor {i}, but subgraph {g} has {n} tensors")
        for i in outputs:
            if not 0 <= i < n:
                self.fail(f"{where} writes tensor {i}, but subgraph {g} has {n} tensors")
            if self.buffer_sizes[tensors[i].buffer]:
                self.fail(f"{where} writes tensor #{i}, which is a constant")
        if not outputs and name not in _ZERO_OUTPUT_OPS:
            self.fail(f"{where} has no output")
        if inputs and inputs[0] < 0 and name != "CUSTOM":
            self.fail(f"{where} has no first input")
        self.options(where, name, op)
        if name in _SAME_TYPE and inputs and outputs:
            t_in, t_out = tensors[inputs[0]].type, tensors[outputs[0]].type
            if t_in != t_out and not (name == "SOFTMAX" and (t_in, t_out) == (9, 7)):
                self.fail(f"{where} reads type {t_in} and writes type {t_out}; they must be the same")
        for i in inputs + outputs:
            if i >= 0 and tensors[i].type in (5, 13, 14) and name not in _RESOURCE_OPS:
                self.fail(f"{where} uses tensor #{i} of non-numeric type {tensors[i].type}")
            q = tensors[i].quantization if i >= 0 else None
            if i >= 0 and name in _NEEDS_QUANTIZATION and tensors[i].type in (3, 7, 9) and \
                    (q is None or q.scale is None or len(q.scale) == 0):
                self.fail(f"{where} uses integer tensor #{i} without quantization parameters")
        shapes = [None if i < 0 else [int(d) for d in (tensors[i].shape if tensors[i].shape is not None else ())]
                  for i in inputs]
        out_shapes = [[int(d) for d in (tensors[i].shape if tensors[i].shape is not None else ())] for i in outputs]
        self.op_shapes(where, name, op, inputs, shapes, out_shapes, tensors)

    def options(self, where: str, name: str, op: Any) -> None:
        kind = int(op.builtinOptionsType)
        if kind not in self.option_names:
            self.fail(f"{where} has unknown options type {kind}")
        expected = expected_options(name)
        if expected is not None and kind not in (0, expected) and _runnable(name):
            self.fail(f"{where} carries {self.option_names[kind]} instead of {self.option_names[expected]}")
        if name in _OPTIONS_REQUIRED and (kind == 0 or op.builtinOptions is None):
            self.fail(f"{where} has no {self.option_names.get(expected or 0, 'options')} (builtin_options_type 0)")
        if op.builtinOptions is None:
            return
        beta = getattr(op.builtinOptions, "beta", None)
        if name == "SOFTMAX" and not (isinstance(beta, float) and 1e-30 <= beta < 1e6):
            self.fail(f"{where} has softmax beta {beta} (must be finite and positive)")
        for key, value in vars(op.builtinOptions).items():
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                continue
            value = int(value)
            low = key.lower()
            if key == "padding" and value not in (0, 1):
                self.fail(f"{where} has padding {value} (0 SAME or 1 VALID)")
            if key == "fusedActivationFunction" and not 0 <= value <= 5:
                self.fail(f"{where} has unknown fused activation {value}")
            if (low.startswith("stride") or low.startswith("dilation") or low.startswith("filter")) and \
                    not 1 <= value <= MAX_OPTION_VALUE:
                self.fail(f"{where} has {key} = {value} (must be 1..{MAX_OPTION_VALUE})")
            if key == "weightsFormat" and value not in (0, 1):
                self.fail(f"{where} has unknown weights format {value}")
            if key == "depthMultiplier" and not 0 <= value <= MAX_OPTION_VALUE:
                self.fail(f"{where} has depthMultiplier {value}")

    def op_shapes(self, where: str, name: str, op: Any, inputs: list[int], shapes: list[list[int] | None],
                  outs: list[list[int]], tensors: list[Any]) -> None:
        def need(count: int, optional: tuple[int, ...] = ()) -> None:
            if len(inputs) < count:
                self.fail(f"{where} has {len(inputs)} inputs, needs {count}")
            for k in range(count):
                if inputs[k] < 0 and k not in optional:
                    self.fail(f"{where} lacks its input {k}")

        def rank(shape: list[int] | None, r: int, what: str) -> list[int]:
            if shape is None or len(shape) != r:
                self.fail(f"{where}: the {what} has shape {shape}, expected rank {r}")
            if any(d <= 0 for d in shape):
                self.fail(f"{where}: the {what} has shape {shape}, with an empty dimension")
            return shape  # type: ignore[return-value]

        def elements(shape: list[int] | None) -> int:
            return math.prod(shape) if shape is not None else 0

        opts = op.builtinOptions
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"):
            pool = name.endswith("POOL_2D")
            need(1 if pool else 2)
            x = rank(shapes[0], 4, "input")
            y = rank(outs[0] if outs else None, 4, "output")
            if pool:
                kh, kw, channels = int(opts.filterHeight), int(opts.filterWidth), x[3]
                dh = dw = 1
            else:
                w = rank(shapes[1], 4, "filter")
                kh, kw = w[1], w[2]
                dh, dw = int(opts.dilationHFactor), int(opts.dilationWFactor)
                if name == "CONV_2D":
                    channels = w[0]
                    if x[3] % w[3]:
                        self.fail(f"{where}: filter depth {w[3]} does not divide input channels {x[3]}")
                else:
                    channels = w[3]
                    if w[0] != 1 or channels % x[3]:
                        self.fail(f"{where}: depthwise filter {w} does not fit input channels {x[3]}")
                if len(inputs) > 2 and inputs[2] >= 0 and elements(shapes[2]) != channels:
                    self.fail(f"{where}: bias has {elements(shapes[2])} values for {channels} channels")
            if y[0] != x[0] or y[3] != channels:
                self.fail(f"{where}: output shape {y} does not match input {x} with {channels} channels")
            for axis, k, d, stride in ((1, kh, dh, int(opts.strideH)), (2, kw, dw, int(opts.strideW))):
                eff = (k - 1) * d + 1
                expect = -(-x[axis] // stride) if opts.padding == 0 else -(-(x[axis] - eff + 1) // stride)
                if y[axis] != expect:
                    self.fail(f"{where}: output size {y[axis]} along axis {axis} should be {expect} for input "
                              f"{x[axis]}, window {eff}, stride {stride}")
        elif name == "FULLY_CONNECTED":
            need(2, optional=(2,))
            w = rank(shapes[1], 2, "weights")
            if not elements(shapes[0]) or elements(shapes[0]) % w[1]:
                self.fail(f"{where}: input of {elements(shapes[0])} values is not a multiple of depth {w[1]}")
            if len(inputs) > 2 and inputs[2] >= 0 and elements(shapes[2]) != w[0]:
                self.fail(f"{where}: bias has {elements(shapes[2])} values for {w[0]} units")
            if not outs or elements(outs[0]) != elements(shapes[0]) // w[1] * w[0]:
                self.fail(f"{where}: output shape {outs[0] if outs else None} does not match {w[0]} units")
        elif name in _ELEMENTWISE_UNARY and name != "PRELU":
            need(1)
            if not outs or elements(outs[0]) != elements(shapes[0]):
                self.fail(f"{where}: input {shapes[0]} and output {outs[0] if outs else None} differ in size")
            if name == "SOFTMAX" and not shapes[0]:
                self.fail(f"{where}: input is a scalar")
        elif name in _BINARY:
            need(2)
            out = outs[0] if outs else []
            if len(out) > 6:
                self.fail(f"{where}: output of rank {len(out)} (at most 6)")
            for s in shapes[:2]:
                assert s is not None
                if len(s) > len(out) or any(a not in (1, b) for a, b in zip(s[::-1], out[::-1], strict=False)):
                    self.fail(f"{where}: input {s} does not broadcast to output {out}")
        elif name == "RESHAPE":
            need(1)
            if not outs or elements(outs[0]) != elements(shapes[0]):
                self.fail(f"{where}: reshapes {shapes[0]} into {outs[0] if outs else None}")
        elif name == "CONCATENATION":
            need(1)
            out = outs[0] if outs else []
            axis = int(getattr(opts, "axis", 0)) if opts is not None else 0
            axis = axis + len(out) if axis < 0 else axis
            if not 0 <= axis < max(len(out), 1):
                self.fail(f"{where}: axis {axis} outside rank {len(out)}")
            total = 0
            for s in shapes:
                if s is None or len(s) != len(out) or \
                        any(a != b for k, (a, b) in enumerate(zip(s, out, strict=True)) if k != axis):
                    self.fail(f"{where}: input {s} does not concatenate into {out} along axis {axis}")
                total += s[axis] if s else 1
            if out and total != out[axis]:
                self.fail(f"{where}: inputs add up to {total} along axis {axis}, output has {out[axis]}")
        elif name in ("PAD", "PADV2"):
            need(2)
            x, out = shapes[0] or [], outs[0] if outs else []
            pads = self.constant(tensors, inputs[1])
            if len(out) != len(x) or len(x) > 5:
                self.fail(f"{where}: input {x} and output {out} differ in rank (or rank > 5)")
            if pads is not None:
                if pads.size != 2 * len(x) or np.any(pads < 0):
                    self.fail(f"{where}: paddings {pads.tolist()} do not fit input {x}")
                if [a + int(p[0]) + int(p[1]) for a, p in zip(x, pads.reshape(-1, 2), strict=True)] != out:
                    self.fail(f"{where}: input {x} padded by {pads.reshape(-1, 2).tolist()} is not {out}")
        elif name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
            need(2)
            x = shapes[0] or []
            axes = self.constant(tensors, inputs[1])
            if axes is not None and np.any((axes < -len(x)) | (axes >= max(len(x), 1))):
                self.fail(f"{where}: axes {axes.tolist()} outside rank {len(x)}")
            if len(x) > 6:
                self.fail(f"{where}: input of rank {len(x)} (at most 6)")

    def constant(self, tensors: list[Any], index: int) -> np.ndarray | None:
        t = tensors[index]
        size = self.buffer_sizes[t.buffer]
        if not size or t.type not in (2, 4):
            return None
        buffer = self.buffers[t.buffer]
        if buffer.data is not None and len(buffer.data):
            raw = bytes(np.asarray(buffer.data, dtype=np.uint8))
        else:
            raw = self.data[int(buffer.offset):int(buffer.offset) + size]
        return np.frombuffer(raw, dtype=np.int32 if t.type == 2 else np.int64).astype(np.int64)

    # ---- the model ----------------------------------------------------------------------------------
    def run(self) -> None:
        if not self.model.subgraphs:
            self.fail("the model has no subgraph")
        if not self.buffers:
            self.fail("the model has no buffers (the empty buffer #0 is required)")
        for g, graph in enumerate(self.model.subgraphs):
            if graph is None:
                self.fail(f"subgraph {g} is empty")
            tensors = list(graph.tensors or [])
            for index, t in enumerate(tensors):
                self.tensor(g, index, t)
            for kind in ("inputs", "outputs"):
                for i in getattr(graph, kind) if getattr(graph, kind) is not None else ():
                    if not 0 <= int(i) < len(tensors):
                        self.fail(f"subgraph {g} {kind[:-1]} {int(i)} does not exist ({len(tensors)} tensors)")
            if g == 0 and (graph.inputs is None or not len(graph.inputs)):
                self.fail("the main subgraph has no inputs")
            if g == 0 and (graph.outputs is None or not len(graph.outputs)):
                self.fail("the main subgraph has no outputs")
            for index, op in enumerate(graph.operators or []):
                self.operator(g, index, op, tensors)
        for entry in self.model.metadata or []:
            if not 0 <= entry.buffer < len(self.buffers):
                self.fail(f"metadata names buffer {entry.buffer}, but the model has {len(self.buffers)} buffers")


def verify_model(model: Any, data: bytes, where: str = "model") -> None:
    """Raise ModelError naming the first structural fault of ``model`` (a schema ``ModelT`` of ``data``)."""
    if len(data) > MAX_MODEL_BYTES:
        raise ModelError(f"{where}: {len(data):,} bytes, over the {MAX_MODEL_BYTES // 2**20} MiB limit for a model")
    _Verifier(model, data, where).run()
