"""Names and order of a .tflite's inputs and outputs, from its SignatureDef. No TensorFlow.

tinykeras exports Keras models with one signature whose input keys are the Keras input names and whose
output keys are the Keras output names; the converter may order the subgraph's inputs and outputs
differently, so :func:`reorder_io` puts them back in Keras order by rewriting the two index vectors in
place (same size, same bytes otherwise).
"""

from __future__ import annotations

import struct
from typing import Any

from tinykeras.errors import ModelError


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def signature_io(data: bytes) -> tuple[dict[str, int], dict[str, int]]:
    """(input name -> tensor index, output name -> tensor index) of the first signature; empty without one."""
    model = _schema().Model.GetRootAs(data, 0)
    if model.SignatureDefsLength() == 0:
        return {}, {}
    sig = model.SignatureDefs(0)

    def names(count: int, get: Any) -> dict[str, int]:
        return {get(k).Name().decode("utf-8", "replace"): int(get(k).TensorIndex()) for k in range(count)}

    return names(sig.InputsLength(), sig.Inputs), names(sig.OutputsLength(), sig.Outputs)


def io_names(data: bytes, inputs: tuple[int, ...], outputs: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """Names of the subgraph's inputs and outputs in subgraph order: signature keys where the model has a
    signature, else ``input_k`` / ``output_k``."""
    ins, outs = signature_io(data)
    by_in = {v: k for k, v in ins.items()}
    by_out = {v: k for k, v in outs.items()}
    return ([by_in.get(t, f"input_{k}") for k, t in enumerate(inputs)],
            [by_out.get(t, f"output_{k}") for k, t in enumerate(outputs)])


def _vector_positions(buf: bytes, field_offset: int) -> tuple[int, int]:
    schema = _schema()
    model = schema.Model.GetRootAs(buf, 0)
    graph = model.Subgraphs(0)
    o = graph._tab.Offset(field_offset)
    if not o:
        raise ModelError("the model's subgraph has no input/output vector")
    return graph._tab.Vector(o), graph._tab.VectorLen(o)


def reorder_io(data: bytes, input_names: list[str], output_names: list[str]) -> bytes:
    """``data`` with subgraph 0's inputs and outputs ordered as the given signature names."""
    ins, outs = signature_io(data)
    buf = bytearray(data)
    for field_offset, names, mapping in ((6, input_names, ins), (8, output_names, outs)):
        if not names or any(n not in mapping for n in names):
            continue
        start, length = _vector_positions(bytes(buf), field_offset)
        if length != len(names):
            continue
        current = [struct.unpack_from("<i", buf, start + 4 * k)[0] for k in range(length)]
        wanted = [mapping[n] for n in names]
        if sorted(current) != sorted(wanted):
            continue
        for k, index in enumerate(wanted):
            struct.pack_into("<i", buf, start + 4 * k, index)
    return bytes(buf)


SELECT, SELECT_V2 = 64, 123


def select_to_select_v2(data: bytes) -> bytes:
    """Rewrite SELECT as SELECT_V2 (identical results when no input broadcasts), in place.

    Keras 3's Embedding wraps negative token ids with ``where``, which the converter emits as SELECT;
    TFLite-Micro only has SELECT_V2."""
    from tinykeras.inspect import inspect_bytes

    info = inspect_bytes(data)
    selects = [op for op in info.ops if op.op == "SELECT"]
    if not selects:
        return data
    for op in selects:
        shapes = {info.tensors[i].shape for i in op.inputs if i >= 0}
        if len(shapes) != 1:
            return data
    schema = _schema()
    buf = bytearray(data)
    model = schema.Model.GetRootAs(bytes(buf), 0)
    for k in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(k)
        tab = code._tab
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != SELECT:
            continue
        for field_offset, fmt in ((4, "<b"), (10, "<i")):  # deprecated_builtin_code (int8), builtin_code
            o = tab.Offset(field_offset)
            if o:
                struct.pack_into(fmt, buf, tab.Pos + o, SELECT_V2)
    return bytes(buf)
