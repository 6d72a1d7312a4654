"""Read a .tflite flatbuffer into a ModelInfo: ops, tensors, quantization, MACs, memory. No TensorFlow.

The flatbuffer is read with the schema bindings that PyPI ``tflite-micro`` ships.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import InputFileError, ModelError
from tinykeras.libraries import REFERENCE_LIBRARY, Library, reference_library, resolver_methods
from tinykeras.types import ModelInfo, OpInfo, Quantization, TensorInfo, index_inputs
from tinykeras.verify import MAX_MODEL_BYTES, verify_model

_TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
    8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource", 14: "variant",
    15: "uint32", 16: "uint16", 17: "int4",
}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


@functools.lru_cache(maxsize=1)
def _op_names() -> dict[int, str]:
    ops = _schema().BuiltinOperator
    return {value: name for name, value in vars(ops).items() if not name.startswith("_")}


def tflm_resolver_methods(lib: Library | None = None) -> dict[str, str]:
    """Builtin op name -> ``MicroMutableOpResolver`` method (``CONV_2D`` -> ``AddConv2D``) of ``lib``
    (default: the reference TFLM, ``tinykeras.libraries.REFERENCE_LIBRARY``), generated from its sources."""
    return resolver_methods(lib)


def read_model_bytes(path: Path | str) -> bytes:
    """Read a .tflite file, or raise InputFileError naming it.

    Only regular files up to ``verify.MAX_MODEL_BYTES`` are read: a device (``/dev/zero``) or a FIFO is
    refused at once instead of filling memory or blocking.
    """
    import os
    import stat


    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise InputFileError(f"{path}: is a directory, expected a .tflite file")
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(f"{path}: not a regular file (a device, FIFO or socket); expected a .tflite file")
    if st.st_size > MAX_MODEL_BYTES:
        raise InputFileError(f"{path}: {st.st_size:,} bytes, over the {MAX_MODEL_BYTES // 2**20} MiB limit "
                             "for a model")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(data) > MAX_MODEL_BYTES:
        raise InputFileError(f"{path}: grew past the {MAX_MODEL_BYTES // 2**20} MiB limit while being read")
    return data


def load_model_info(path: Path | str) -> ModelInfo:
    """Inspect the .tflite file at ``path``."""
    return inspect_bytes(read_model_bytes(path), path=str(path))


def inspect_bytes(data: bytes, path: str | None = None) -> ModelInfo:
    """Inspect a .tflite flatbuffer held in memory. Raises ModelError if it is not a valid model."""
    where = path or "model"
    schema = _schema()
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise ModelError(f"{where}: not a TFLite flatbuffer (missing the 'TFL3' identifier); "
                         "re-export it with `tinykeras quantize`")

    if len(data) > MAX_MODEL_BYTES:
        raise ModelError(f"{where}: {len(data):,} bytes, over the {MAX_MODEL_BYTES // 2**20} MiB limit for a model")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
        verify_model(model, data, where)
        return _build_info(model, data, path)
    except ModelError:
        raise
    except Exception as exc:  # the flatbuffer runtime raises anything from struct.error to IndexError
        raise ModelError(f"{where}: corrupt or truncated .tflite file ({type(exc).__name__}: {exc}); "
                         "re-export it with `tinykeras quantize`") from exc


def _build_info(model: Any, data: bytes, path: str | None) -> ModelInfo:
    where = path or "model"
    if not model.subgraphs:
        raise ModelError(f"{where}: the model has no subgraph")
    graph = model.subgraphs[0]
    buffers = model.buffers or []

    tensors = []
    for index, t in enumerate(graph.tensors or []):
        buffer = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
        raw = _buffer_bytes(buffer, data)
        dtype = _TENSOR_TYPES.get(t.type, f"type{t.type}")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        array = None
        if raw is not None and dtype in ("float32", "int32", "int8", "uint8", "int16", "int64", "float16"):
            array = np.frombuffer(raw, dtype=np.dtype(dtype)).copy()
            expected = int(np.prod(shape)) if shape else 1
            if array.size != expected:
                raise ModelError(f"{where}: tensor #{index} '{_text(t.name)}' holds {array.size} values "
                                 f"but its shape {list(shape)} needs {expected}; the file is corrupt")
            array = array.reshape(shape)
        tensors.append(TensorInfo(
            index=index, name=_text(t.name), shape=shape, dtype=dtype, quantization=_quantization(t),
            is_constant=raw is not None, buffer_index=int(t.buffer), data=array,
        ))

    codes = model.operatorCodes or []
    names = _op_names()
    ops = []
    for index, op in enumerate(graph.operators or []):
        if not 0 <= op.opcodeIndex < len(codes):
            raise ModelError(f"{where}: operator #{index} names opcode {op.opcodeIndex}, which does not exist")
        code = codes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{_text(code.customCode)}"
        inputs = tuple(int(i) for i in (op.inputs if op.inputs is not None else ()))
        outputs = tuple(int(i) for i in (op.outputs if op.outputs is not None else ()))
        for i in inputs + outputs:
            if i >= len(tensors):
                raise ModelError(f"{where}: operator #{index} ({name}) refers to tensor {i}, which does not exist")
        options = _options(op.builtinOptions)
        in_t = [tensors[i] for i in inputs if i >= 0]
        out_t = [tensors[i] for i in outputs]
        ops.append(OpInfo(
            index=index, op=name, version=int(code.version), builtin_code=builtin, inputs=inputs, outputs=outputs,
            options=options, params=sum(t.num_elements for t in in_t if t.is_constant and t.dtype != "int64"),
            macs=_macs(name, [tensors[i] if i >= 0 else None for i in inputs], out_t, options),
            activation_bytes=sum(t.nbytes for t in in_t + out_t if not t.is_constant),
        ))

    metadata = {}
    for entry in model.metadata or []:
        raw = _buffer_bytes(buffers[entry.buffer], data) if 0 <= entry.buffer < len(buffers) else None
        metadata[_text(entry.name)] = raw or b""

    return ModelInfo(
        path=path, sha256=hashlib.sha256(data).hexdigest(), model_bytes=len(data), tensors=tuple(tensors),
        ops=tuple(ops), inputs=tuple(int(i) for i in graph.inputs), outputs=tuple(int(i) for i in graph.outputs),
        description=_text(model.description), metadata=metadata,
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _buffer_bytes(buffer: Any, data: bytes) -> bytes | None:
    if buffer is None:
        return None
    if buffer.data is not None and len(buffer.data):
        return bytes(np.asarray(buffer.data, dtype=np.uint8))
    offset, size = int(getattr(buffer, "offset", 0) or 0), int(getattr(buffer, "size", 0) or 0)
    if offset > 1 and size:
        if offset + size > len(data):
            raise ModelError("a weight buffer lies past the end of the file; the file is truncated")
        return data[offset:offset + size]
    return None


def _quantization(t: Any) -> Quantization | None:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zero_points = q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) else [0] * len(q.scale)
    return Quantization(
        scales=tuple(float(s) for s in q.scale), zero_points=tuple(int(z) for z in zero_points),
        quantized_dimension=int(q.quantizedDimension),
    )


def _options(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in vars(obj).items():
        if key == "padding":
            value = _PADDING.get(value, value)
        elif key == "fusedActivationFunction":
            value = _ACTIVATIONS.get(value, value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[key] = value
    return out


def _macs(name: str, inputs: list[TensorInfo | None], outputs: list[TensorInfo], options: dict[str, Any]) -> int:
    """Multiply-accumulates of one op, from its tensor shapes.

    Only weight layers count (the MLPerf Tiny convention): pooling, elementwise and data-movement ops are 0.
    """
    if not outputs or any(t is not None and not t.shape for t in inputs[:3]):
        return 0
    out = outputs[0]
    weights = inputs[1] if len(inputs) > 1 else None
    if weights is not None and name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV") and len(weights.shape) != 4:
        return 0
    if name == "CONV_2D" and weights is not None:  # filter [Cout, kh, kw, Cin]
        _, kh, kw, cin = weights.shape
        return out.num_elements * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D" and weights is not None:  # filter [1, kh, kw, Cout]
        return out.num_elements * weights.shape[1] * weights.shape[2]
    if name == "FULLY_CONNECTED" and weights is not None:  # weights [units, in]
        return out.num_elements * weights.shape[-1]
    if name == "TRANSPOSE_CONV" and len(inputs) > 2 and inputs[1] is not None and inputs[2] is not None \
            and len(inputs[1].shape) == 4:
        _, kh, kw, cout = inputs[1].shape  # filter [Cout, kh, kw, Cin]
        return inputs[2].num_elements * kh * kw * inputs[1].shape[0]
    if name == "BATCH_MATMUL" and len(inputs) > 1 and inputs[0] is not None:
        return out.num_elements * inputs[0].shape[-1]
    if name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(inputs) > 8 and inputs[0] is not None:
        # input weights [cells, in] (inputs 1-4) and recurrent weights [cells, out] (5-8), once per time step
        steps = inputs[0].shape[0 if options.get("timeMajor") else 1] if len(inputs[0].shape) == 3 else 1
        return steps * sum(w.num_elements for w in inputs[1:9] if w is not None)
    return 0


def unsupported_tflm_ops(info: ModelInfo, lib: Library | None = None) -> list[tuple[int, str]]:
    """Operators ``lib`` (default: the reference TFLM) registers no kernel for, as (operator index, op name)."""
    supported = (lib or reference_library()).ops
    return [(op.index, op.op) for op in info.ops if op.op not in supported]


def require_int8(info: ModelInfo, allow_index_inputs: bool = False) -> None:
    """Raise ModelError unless inputs and outputs are int8 (full-integer quantization).

    ``allow_index_inputs``: also accept int32 inputs that only index a GATHER (Embedding token ids)."""
    allowed = index_inputs(info) if allow_index_inputs else set()
    bad = [t for t in info.input_tensors() + info.output_tensors() if t.dtype != "int8" and t.index not in allowed]
    if not bad and not allow_index_inputs:
        return
    ids = [t for t in info.input_tensors() if t.index in index_inputs(info)]
    if ids and [t for t in bad if t not in ids] == [] and not allow_index_inputs:
        raise ModelError(f"{info.path or 'model'}: input '{ids[0].name}' takes int32 token ids (an Embedding); "
                         "the benchmark firmware fills inputs with random bytes, which are not valid ids, so "
                         "`build` takes int8 inputs only. Check the model on the host with `tinykeras validate`/"
                         "`emulate`, or feed the Embedding output (int8) from your own firmware code")
    if bad:
        listed = ", ".join(f"'{t.name}' is {t.dtype}" for t in bad)
        raise ModelError(f"{info.path or 'model'}: int8 model required, but {listed}; "
                         "convert it with `tinykeras quantize MODEL --rep-data DATA.npz`")


def summary(info: ModelInfo) -> dict[str, Any]:
    """The JSON form printed by ``tinykeras inspect --json``."""
    tensors = info.tensors

    def tensor_json(i: int) -> dict[str, Any] | None:
        if i < 0:
            return None
        t = tensors[i]
        q = t.quantization
        return {
            "index": t.index, "name": t.name, "shape": list(t.shape), "dtype": t.dtype, "constant": t.is_constant,
            "scale": q.scale if q else None, "zero_point": q.zero_point if q else None,
            "num_scales": len(q.scales) if q else 0,
        }

    unsupported = unsupported_tflm_ops(info)
    return {
        "tflm_library": REFERENCE_LIBRARY,
        "path": info.path,
        "sha256": info.sha256,
        "description": info.description,
        "inputs": [tensor_json(i) for i in info.inputs],
        "outputs": [tensor_json(i) for i in info.outputs],
        "ops": [
            {
                "index": op.index, "op": op.op, "version": op.version,
                "inputs": [tensor_json(i) for i in op.inputs], "outputs": [tensor_json(i) for i in op.outputs],
                "params": op.params, "macs": op.macs, "activation_bytes": op.activation_bytes,
                "options": {k: v for k, v in op.options.items() if not isinstance(v, (list, dict))},
            }
            for op in info.ops
        ],
        "totals": {
            "model_bytes": info.model_bytes, "macs": info.macs, "params": info.params,
            "activation_peak_bytes": info.activation_peak_bytes, "ops": len(info.ops),
            "distinct_ops": info.op_names,
        },
        "tflm_unsupported": [{"index": i, "op": name} for i, name in unsupported],
    }
