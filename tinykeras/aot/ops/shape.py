"""Data movement: RESHAPE, EXPAND_DIMS, CONCATENATION, PACK, UNPACK, SPLIT, SPLIT_V, SLICE, STRIDED_SLICE,
TRANSPOSE, GATHER, PAD, PADV2, RESIZE_NEAREST_NEIGHBOR (kernels in tk_ops.c, tk_ops2.c)."""

from __future__ import annotations

from typing import Any

import numpy as np

import tinykeras.aot.fixedpoint as fp
from tinykeras.aot.declare import OpResult, Unsupported, aot_op
from tinykeras.aot.emit import c_struct
from tinykeras.aot.ops.layout import axis_index, pad6, prod, shape_nhwc
from tinykeras.types import OpInfo

_F32 = np.float32


def nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> list[int]:
    """Input coordinate of every output coordinate, as TFLM's ``GetNearestNeighbor`` (float32 arithmetic).

    >>> nearest_indices(2, 4, False, False)
    [0, 0, 1, 1]
    """
    if align_corners and out_size > 1:
        scale = _F32(in_size - 1) / _F32(out_size - 1)
    else:
        scale = _F32(in_size) / _F32(out_size)
    offset = _F32(0.5 if half_pixel else 0.0)
    result = []
    for v in range(out_size):
        x = (_F32(v) + offset) * scale
        idx = int(fp.tflite_round(float(x))) if align_corners else int(np.floor(x))
        idx = min(idx, in_size - 1)
        if half_pixel:
            idx = max(0, idx)
        result.append(idx)
    return result


@aot_op("RESHAPE", kernels=("memcpy",), c_files=())
def reshape(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """an alias of its input, no copy (a copy from a constant or into a graph input)"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    if x.nbytes != out.nbytes:
        raise Unsupported("input and output sizes differ")
    if x.is_constant or out_i in g.info.inputs:
        g.calls.append(f"  memcpy({g.ref(out_i)}, {g.ref(ins[0])}, {out.nbytes});")
        return "memcpy", 0, False
    g.union(ins[0], out_i)
    g.calls.append("  /* alias: the output shares the input's memory */")
    return "alias", 0, True


@aot_op("EXPAND_DIMS", kernels=("memcpy",), c_files=())
def expand_dims(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """an alias of its input, no copy"""
    return reshape(g, op, ins, out_i)


@aot_op("CONCATENATION", kernels=("tk_copy_rows",), c_files=("tk_ops.c",))
def concatenation(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """any type, inputs quantized as the output, no fused activation"""
    out = g.tensor(out_i)
    if op.options.get("fusedActivationFunction", "NONE") != "NONE":
        raise Unsupported("fused activation")
    rank = len(out.shape)
    axis = int(op.options.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    size = out.itemsize
    outer = int(np.prod([max(d, 1) for d in out.shape[:axis]])) if axis else 1
    out_stride = int(np.prod([max(d, 1) for d in out.shape[axis:]])) * size
    offset = 0
    for i in ins:
        t = g.tensor(i)
        if t.dtype != out.dtype or (out.dtype == "int8" and g.q(t) != g.q(out)):
            raise Unsupported("inputs quantized differently from the output")
        chunk = int(np.prod([max(d, 1) for d in t.shape[axis:]])) * size
        g.calls.append(f"  tk_copy_rows((uint8_t *){g.ref(out_i)} + {offset}, {out_stride}, "
                       f"{g.ref(i)}, {chunk}, {outer});")
        offset += chunk
    return "tk_copy_rows", 0, False


@aot_op("PACK", kernels=("tk_copy_strided",), c_files=("tk_ops2.c",))
def pack(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """any type, any axis"""
    out = g.tensor(out_i)
    axis = axis_index(int(op.options.get("axis", 0)), len(out.shape))
    outer = prod(out.shape[:axis])
    chunk = prod(out.shape[axis + 1:]) * out.itemsize
    for k, i in enumerate(ins):
        g.calls.append(f"  tk_copy_strided((uint8_t *){g.ref(out_i)} + {k * chunk}, {len(ins) * chunk}, "
                       f"{g.ref(i)}, {chunk}, {chunk}, {outer});")
    return "tk_copy_strided", 0, False


def _split_along(g: Any, op: OpInfo, x_i: int, axis: int) -> OpResult:
    x = g.tensor(x_i)
    axis = axis_index(axis, len(x.shape))
    outer = prod(x.shape[:axis])
    row = prod(x.shape[axis:]) * x.itemsize
    offset = 0
    for o in op.outputs:
        t = g.tensor(o)
        chunk = prod(t.shape[axis:]) * t.itemsize  # UNPACK's outputs lack the axis: what follows it
        g.calls.append(f"  tk_copy_strided({g.ref(o)}, {chunk}, (const uint8_t *){g.ref(x_i)} + {offset}, "
                       f"{row}, {chunk}, {outer});")
        offset += chunk
    if offset != row:
        raise Unsupported("outputs do not cover the input")
    return "tk_copy_strided", 0, False


@aot_op("UNPACK", kernels=("tk_copy_strided",), c_files=("tk_ops2.c",))
def unpack(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """any type, any axis"""
    return _split_along(g, op, ins[0], int(op.options.get("axis", 0)))


@aot_op("SPLIT", kernels=("tk_copy_strided",), c_files=("tk_ops2.c",))
def split(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """any type, constant axis"""
    return _split_along(g, op, ins[1], g.const_ints(ins[0], "axis")[0])


@aot_op("SPLIT_V", kernels=("tk_copy_strided",), c_files=("tk_ops2.c",))
def split_v(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """any type, constant axis"""
    return _split_along(g, op, ins[0], g.const_ints(ins[2], "axis")[0])


def _slice(g: Any, op: OpInfo, ins: list[int], out_i: int, dims: list[tuple[int, int, int]]) -> OpResult:
    """A strided copy: ``dims`` holds (start, step, count) per input axis."""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    if int(np.prod([c for _, _, c in dims])) != out.num_elements:
        raise Unsupported("slice size does not match the output")
    shape = [max(int(d), 1) for d in x.shape]
    strides, acc = [0] * len(shape), x.itemsize
    for d in range(len(shape) - 1, -1, -1):
        strides[d] = acc
        acc *= shape[d]
    pad = 6 - len(shape)
    if pad < 0:
        raise Unsupported(f"{len(shape)}-D tensor")
    start = sum(s * st for (s, _, _), st in zip(dims, strides, strict=True))
    g.decls.append(c_struct("tk_slice_params", f"tk_p_{op.index}", {
        "out_shape": [1] * pad + [c for _, _, c in dims],
        "in_stride": [0] * pad + [step * st for (_, step, _), st in zip(dims, strides, strict=True)],
        "start": start, "elem_bytes": x.itemsize}))
    g.calls.append(f"  tk_strided_slice(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_strided_slice", 0, False


@aot_op("SLICE", kernels=("tk_strided_slice",), c_files=("tk_ops2.c",))
def slice_(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """constant begin and size"""
    x = g.tensor(ins[0])
    begin, size = g.const_ints(ins[1], "begin"), g.const_ints(ins[2], "size")
    dims = []
    for d, full in enumerate(x.shape):
        full = max(int(full), 1)
        count = full - begin[d] if size[d] == -1 else size[d]
        dims.append((begin[d], 1, count))
    return _slice(g, op, ins, out_i, dims)


@aot_op("STRIDED_SLICE", kernels=("tk_strided_slice",), c_files=("tk_ops2.c",))
def strided_slice(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """constant begin/end/strides, negative strides, begin/end/shrink masks; no ellipsis or new-axis"""
    x = g.tensor(ins[0])
    o = op.options
    if o.get("ellipsisMask", 0) or o.get("newAxisMask", 0):
        raise Unsupported("ellipsis or new-axis masks")
    begin, end = g.const_ints(ins[1], "begin"), g.const_ints(ins[2], "end")
    steps = g.const_ints(ins[3], "strides") if len(ins) > 3 and ins[3] >= 0 else [1] * len(begin)
    dims = []
    for d, size in enumerate(x.shape):
        size = max(int(size), 1)
        b, e, s = begin[d], end[d], steps[d]
        if (o.get("shrinkAxisMask", 0) >> d) & 1:
            b = b + size if b < 0 else b
            if not 0 <= b < size:
                raise Unsupported("shrink index out of range")
            dims.append((b, 1, 1))
            continue
        if o.get("offset", False):
            e = b + e
        bb = None if (o.get("beginMask", 0) >> d) & 1 else b
        ee = None if (o.get("endMask", 0) >> d) & 1 else e
        idx = range(size)[slice(bb, ee, s)]
        dims.append((idx[0] if len(idx) else 0, s, len(idx)))
    return _slice(g, op, ins, out_i, dims)


@aot_op("TRANSPOSE", kernels=("tk_strided_slice",), c_files=("tk_ops2.c",))
def transpose(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """constant permutation, up to 6-D"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    perm = g.const_ints(ins[1], "permutation")
    shape = [max(int(d), 1) for d in x.shape]
    pad = 6 - len(shape)
    if pad < 0:
        raise Unsupported(f"{len(shape)}-D tensor")
    strides, acc = [0] * len(shape), x.itemsize
    for d in range(len(shape) - 1, -1, -1):
        strides[d] = acc
        acc *= shape[d]
    g.decls.append(c_struct("tk_slice_params", f"tk_p_{op.index}", {
        "out_shape": [1] * pad + [shape[p] for p in perm], "in_stride": [0] * pad + [strides[p] for p in perm],
        "start": 0, "elem_bytes": x.itemsize}))
    if out.nbytes != x.nbytes:
        raise Unsupported("output size differs from the input's")
    g.calls.append(f"  tk_strided_slice(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_strided_slice", 0, False


@aot_op("GATHER", kernels=("tk_gather",), c_files=("tk_ops2.c",))
def gather(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int32 indices, batch_dims 0; out-of-range indices are clamped"""
    params, idx, out = g.tensor(ins[0]), g.tensor(ins[1]), g.tensor(out_i)
    g.require_dtype(idx, "int32")
    if params.dtype != out.dtype:
        raise Unsupported("output type differs from the params'")
    if int(op.options.get("batchDims", 0)) != 0:
        raise Unsupported("batch_dims != 0")
    rank = len(params.shape)
    axis = int(op.options.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    g.decls.append(c_struct("tk_gather_params", f"tk_p_{op.index}", {
        "outer": prod(params.shape[:axis]), "axis_size": max(int(params.shape[axis]), 1),
        "n_idx": idx.num_elements, "inner_bytes": prod(params.shape[axis + 1:]) * params.itemsize}))
    g.calls.append(f"  tk_gather(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(ins[1], 'int32_t')}, "
                   f"{g.ref(out_i)});")
    return "tk_gather", 0, False


def _pad(g: Any, op: OpInfo, ins: list[int], out_i: int, value_input: bool) -> OpResult:
    x, out, pads = g.tensor(ins[0]), g.tensor(out_i), g.tensor(ins[1])
    g.require_dtype(x, "int8")
    if pads.data is None:
        raise Unsupported("non-constant paddings")
    value = None
    if value_input:  # PADV2: the pad value is an input (the output's zero point when absent)
        value = g.const_ints(ins[2], "pad value")[0] if len(ins) > 2 and ins[2] >= 0 else g.q(out)[1]
    rank = len(x.shape)
    before = [0] * 6
    for d, (lo_pad, _) in enumerate(pads.data.reshape(rank, 2).tolist()):
        before[6 - rank + d] = int(lo_pad)
    g.decls.append(c_struct("tk_pad_params", f"tk_p_{op.index}", {
        "in_shape": pad6(x.shape), "out_shape": pad6(out.shape), "before": before, "elem_bytes": 1,
        "pad_value": g.q(out)[1] if value is None else value}))
    g.calls.append(f"  tk_pad(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_pad", 0, False


@aot_op("PAD", kernels=("tk_pad",), c_files=("tk_ops.c",))
def pad(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, constant paddings, up to 6-D"""
    return _pad(g, op, ins, out_i, False)


@aot_op("PADV2", kernels=("tk_pad",), c_files=("tk_ops.c",))
def padv2(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, constant paddings and pad value, up to 6-D"""
    return _pad(g, op, ins, out_i, True)


@aot_op("RESIZE_NEAREST_NEIGHBOR", kernels=("tk_resize_nearest",), c_files=("tk_ops2.c",))
def resize_nearest_neighbor(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """align_corners and half_pixel_centers"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    n, h, w, c = shape_nhwc(x)
    _, oh, ow, _ = shape_nhwc(out)
    align, half = bool(op.options.get("alignCorners", False)), bool(op.options.get("halfPixelCenters", False))
    ys = g.add_array("int32_t", f"tk_ry_{op.index}", nearest_indices(h, oh, align, half))
    xs = g.add_array("int32_t", f"tk_rx_{op.index}", nearest_indices(w, ow, align, half))
    g.decls.append(c_struct("tk_resize_params", f"tk_p_{op.index}", {
        "batches": n, "in_h": h, "in_w": w, "depth_bytes": c * x.itemsize, "out_h": oh, "out_w": ow,
        "src_y": ys, "src_x": xs}))
    g.calls.append(f"  tk_resize_nearest(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_resize_nearest", 0, False
