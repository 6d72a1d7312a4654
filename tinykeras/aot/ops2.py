"""Generator handlers for the second set of aot ops (kernels in firmware_templates/runtime/aot/tk_ops2.c).

Each ``op_<name>`` method is mixed into the generator (``generator._Generator``) and, like the handlers
there, emits declarations and one call, returning ``(kernel, scratch bytes, in place)``. Parameters are
computed the way TFLite-Micro's Prepare() computes them (float32 where its sources use float).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tinykeras.aot.fixedpoint as fp
from tinykeras.types import OpInfo

OPS2 = (
    "BATCH_MATMUL", "ELU", "EXPAND_DIMS", "GATHER", "HARD_SWISH", "LEAKY_RELU", "MAXIMUM", "MINIMUM", "NEG",
    "PACK", "PADV2", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SPLIT",
    "SPLIT_V", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB", "TRANSPOSE", "TRANSPOSE_CONV", "UNPACK",
)
KERNEL_FILES2 = ("tk_ops2.h", "tk_ops2.c")
AOT_NOTES = {  # constraints of the ops above, shown in docs/supported_ops.md
    "BATCH_MATMUL": "int8, adj_x/adj_y, broadcast batch dims (up to 5-D)",
    "REDUCE_MAX": "int8, any axes (GlobalMaxPooling)", "REDUCE_MIN": "int8, any axes",
    "ELU": "float32, between the DEQUANTIZE and QUANTIZE the converter puts around it",
    "EXPAND_DIMS": "an alias of its input (no copy)",
    "GATHER": "int32 indices, batch_dims 0; out-of-range indices are clamped",
    "HARD_SWISH": "int8",
    "LEAKY_RELU": "int8, any alpha",
    "MAXIMUM": "int8, broadcasting", "MINIMUM": "int8, broadcasting",
    "RESIZE_NEAREST_NEIGHBOR": "align_corners and half_pixel_centers",
    "NEG": "float32, between DEQUANTIZE and QUANTIZE (Keras PReLU converts to RELU, NEG, MUL, ADD)",
    "SLICE": "constant begin and size",
    "TRANSPOSE": "constant permutation, up to 6-D",
    "STRIDED_SLICE": "constant begin/end/strides, negative strides, begin/end/shrink masks; no ellipsis or new-axis",
    "RSQRT": "int8 (a 256-entry table computed at generation time)",
    "SQUARED_DIFFERENCE": "int8, broadcasting",
    "SUB": "int8, broadcasting, fused activation",
    "TRANSPOSE_CONV": "int8 per-channel, any stride, SAME/VALID, with or without bias, fused activation",
}
UNSUPPORTED_WHY = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "the fused int8/int16 LSTM is not in the aot runtime: build the Keras LSTM/GRU "
                                    "layer with unroll=True and it converts to ops aot runs bit-exact",
}
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


def _no_params(s1: float, s2: float, so: float) -> dict[str, int]:
    return {"left_shift": 0, "in1_mult": 0, "in1_shift": 0, "in2_mult": 0, "in2_shift": 0, "out_mult": 0,
            "out_shift": 0}


BINARY_PARAMS = {"sub": fp.sub_params, "squared_difference": fp.squared_difference_params, "maximum": _no_params,
                 "minimum": _no_params}


def _prod(values: Any) -> int:
    return int(np.prod([max(int(d), 1) for d in values])) if len(values) else 1


class Ops2Mixin:
    """The op handlers; ``self`` is the generator (tensor(), ref(), q(), decls, calls ...)."""

    # ---- elementwise -----------------------------------------------------------------------------------
    def op_sub(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.binary(op, ins, out_i, "sub")  # type: ignore[attr-defined]

    def op_maximum(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.binary(op, ins, out_i, "maximum")  # type: ignore[attr-defined]

    def op_minimum(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.binary(op, ins, out_i, "minimum")  # type: ignore[attr-defined]

    def _unary_s8(self, ins: list[int], out_i: int) -> tuple[Any, Any]:
        g: Any = self
        x, out = g.tensor(ins[0]), g.tensor(out_i)
        g.require_dtype(x, "int8")
        g.require_dtype(out, "int8")
        return x, out

    def op_squared_difference(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.binary(op, ins, out_i, "squared_difference")  # type: ignore[attr-defined]

    def op_rsqrt(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = self._unary_s8(ins, out_i)
        (si, zi), (so, zo) = g.q(x), g.q(out)
        table = g.add_array("int8_t", f"tk_lut_{op.index}", fp.rsqrt_table(si, zi, so, zo))
        in_place = g.try_in_place(op, [ins[0]], out_i)
        g.calls.append(f"  tk_lut_s8({x.num_elements}, {table}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_lut_s8", 0, in_place

    def op_leaky_relu(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = self._unary_s8(ins, out_i)
        (si, zi), (so, zo) = g.q(x), g.q(out)
        alpha = _F32(op.options.get("alpha", 0.2))
        m_alpha, s_alpha = fp.quantize_multiplier(float(_F32(si) * alpha / _F32(so)))
        m_id, s_id = fp.quantize_multiplier(float(_F32(si) / _F32(so)))
        g.decls.append(_g._struct("tk_leaky_params", f"tk_p_{op.index}", {
            "n": x.num_elements, "in_zp": zi, "out_zp": zo, "mult_identity": m_id, "mult_alpha": m_alpha,
            "shift_identity": s_id, "shift_alpha": s_alpha}))
        in_place = g.try_in_place(op, [ins[0]], out_i)
        g.calls.append(f"  tk_leaky_relu_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_leaky_relu_s8", 0, in_place

    def op_hard_swish(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = self._unary_s8(ins, out_i)
        (si, zi), (so, zo) = g.q(x), g.q(out)
        hires = _F32(1.0 / 128.0) * _F32(si)
        out_m, out_e = fp.quantize_multiplier(float(hires / _F32(so)))
        if out_e > 0:
            raise _g._Unsupported("output scale too small for the int8 hard-swish")
        rel_m, rel_e = fp.quantize_multiplier(float(hires / (_F32(3.0) / _F32(32768.0))))
        g.decls.append(_g._struct("tk_hswish_params", f"tk_p_{op.index}", {
            "n": x.num_elements, "in_zp": zi, "out_zp": zo, "out_mult": fp.downscale_q15(out_m),
            "reluish_mult": fp.downscale_q15(rel_m), "out_exp": out_e, "reluish_exp": rel_e}))
        in_place = g.try_in_place(op, [ins[0]], out_i)
        g.calls.append(f"  tk_hard_swish_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_hard_swish_s8", 0, in_place

    def op_relu(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = self._unary_s8(ins, out_i)
        (si, zi), (so, zo) = g.q(x), g.q(out)
        mult, shift = fp.quantize_multiplier(float(_F32(si) / _F32(so)))
        g.decls.append(_g._struct("tk_relu_params", f"tk_p_{op.index}", {
            "n": x.num_elements, "in_zp": zi, "out_zp": zo, "mult": mult, "shift": shift,
            "act_min": max(-128, zo), "act_max": 127}))
        in_place = g.try_in_place(op, [ins[0]], out_i)
        g.calls.append(f"  tk_relu_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_relu_s8", 0, in_place

    def op_relu6(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, _ = self._unary_s8(ins, out_i)
        si, zi = g.q(x)
        six = min(127, max(-128, zi + int(fp.tflite_round(float(_F32(6.0) / _F32(si))))))  # FloatToQuantizedType
        in_place = g.try_in_place(op, [ins[0]], out_i)
        g.calls.append(f"  tk_clamp_s8({x.num_elements}, {zi}, {six}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_clamp_s8", 0, in_place

    def op_elu(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = g.tensor(ins[0]), g.tensor(out_i)
        g.require_dtype(x, "float32")  # the converter keeps ELU in float between DEQUANTIZE and QUANTIZE
        g.require_dtype(out, "float32")
        in_place = g.try_in_place(op, [ins[0]], out_i)
        g.calls.append(f"  tk_elu_f32({x.num_elements}, {g.ref(ins[0], 'float')}, {g.ref(out_i, 'float')});")
        return "tk_elu_f32", 0, in_place

    def op_neg(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = g.tensor(ins[0]), g.tensor(out_i)
        g.require_dtype(x, "float32")  # what the converter emits for Keras PReLU
        g.require_dtype(out, "float32")
        in_place = g.try_in_place(op, [ins[0]], out_i)
        g.calls.append(f"  tk_neg_f32({x.num_elements}, {g.ref(ins[0], 'float')}, {g.ref(out_i, 'float')});")
        return "tk_neg_f32", 0, in_place

    # ---- data movement ---------------------------------------------------------------------------------
    def op_expand_dims(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.op_reshape(op, ins, out_i)  # type: ignore[attr-defined]

    def op_resize_nearest_neighbor(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = g.tensor(ins[0]), g.tensor(out_i)
        n, h, w, c = _g._shape_nhwc(x)
        _, oh, ow, _ = _g._shape_nhwc(out)
        align, half = bool(op.options.get("alignCorners", False)), bool(op.options.get("halfPixelCenters", False))
        ys = g.add_array("int32_t", f"tk_ry_{op.index}", nearest_indices(h, oh, align, half))
        xs = g.add_array("int32_t", f"tk_rx_{op.index}", nearest_indices(w, ow, align, half))
        g.decls.append(_g._struct("tk_resize_params", f"tk_p_{op.index}", {
            "batches": n, "in_h": h, "in_w": w, "depth_bytes": c * x.itemsize, "out_h": oh, "out_w": ow,
            "src_y": ys, "src_x": xs}))
        g.calls.append(f"  tk_resize_nearest(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_resize_nearest", 0, False

    def op_gather(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        params, idx, out = g.tensor(ins[0]), g.tensor(ins[1]), g.tensor(out_i)
        g.require_dtype(idx, "int32")
        if params.dtype != out.dtype:
            raise _g._Unsupported("output type differs from the params'")
        if int(op.options.get("batchDims", 0)) != 0:
            raise _g._Unsupported("batch_dims != 0")
        rank = len(params.shape)
        axis = int(op.options.get("axis", 0))
        axis = axis + rank if axis < 0 else axis
        g.decls.append(_g._struct("tk_gather_params", f"tk_p_{op.index}", {
            "outer": _prod(params.shape[:axis]), "axis_size": max(int(params.shape[axis]), 1),
            "n_idx": idx.num_elements, "inner_bytes": _prod(params.shape[axis + 1:]) * params.itemsize}))
        g.calls.append(f"  tk_gather(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(ins[1], 'int32_t')}, "
                       f"{g.ref(out_i)});")
        return "tk_gather", 0, False

    def _slice(self, op: OpInfo, ins: list[int], out_i: int, dims: list[tuple[int, int, int]]) -> tuple[str, int, bool]:
        """A strided copy: ``dims`` holds (start, step, count) per input axis."""
        g: Any = self
        x, out = g.tensor(ins[0]), g.tensor(out_i)
        if int(np.prod([c for _, _, c in dims])) != out.num_elements:
            raise _g._Unsupported("slice size does not match the output")
        shape = [max(int(d), 1) for d in x.shape]
        strides, acc = [0] * len(shape), x.itemsize
        for d in range(len(shape) - 1, -1, -1):
            strides[d] = acc
            acc *= shape[d]
        pad = 6 - len(shape)
        if pad < 0:
            raise _g._Unsupported(f"{len(shape)}-D tensor")
        start = sum(s * st for (s, _, _), st in zip(dims, strides, strict=True))
        g.decls.append(_g._struct("tk_slice_params", f"tk_p_{op.index}", {
            "out_shape": [1] * pad + [c for _, _, c in dims],
            "in_stride": [0] * pad + [step * st for (_, step, _), st in zip(dims, strides, strict=True)],
            "start": start, "elem_bytes": x.itemsize}))
        g.calls.append(f"  tk_strided_slice(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_strided_slice", 0, False

    def op_transpose(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = g.tensor(ins[0]), g.tensor(out_i)
        perm = self._const_ints(ins[1], "permutation")
        shape = [max(int(d), 1) for d in x.shape]
        pad = 6 - len(shape)
        if pad < 0:
            raise _g._Unsupported(f"{len(shape)}-D tensor")
        strides, acc = [0] * len(shape), x.itemsize
        for d in range(len(shape) - 1, -1, -1):
            strides[d] = acc
            acc *= shape[d]
        g.decls.append(_g._struct("tk_slice_params", f"tk_p_{op.index}", {
            "out_shape": [1] * pad + [shape[p] for p in perm], "in_stride": [0] * pad + [strides[p] for p in perm],
            "start": 0, "elem_bytes": x.itemsize}))
        if out.nbytes != x.nbytes:
            raise _g._Unsupported("output size differs from the input's")
        g.calls.append(f"  tk_strided_slice(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_strided_slice", 0, False

    def _const_ints(self, index: int, what: str) -> list[int]:
        g: Any = self
        t = g.tensor(index)
        if t.data is None:
            raise _g._Unsupported(f"non-constant {what}")
        return [int(v) for v in t.data.reshape(-1)]

    def op_strided_slice(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x = g.tensor(ins[0])
        o = op.options
        if o.get("ellipsisMask", 0) or o.get("newAxisMask", 0):
            raise _g._Unsupported("ellipsis or new-axis masks")
        begin, end = self._const_ints(ins[1], "begin"), self._const_ints(ins[2], "end")
        steps = self._const_ints(ins[3], "strides") if len(ins) > 3 and ins[3] >= 0 else [1] * len(begin)
        dims = []
        for d, size in enumerate(x.shape):
            size = max(int(size), 1)
            b, e, s = begin[d], end[d], steps[d]
            if (o.get("shrinkAxisMask", 0) >> d) & 1:
                b = b + size if b < 0 else b
                if not 0 <= b < size:
                    raise _g._Unsupported("shrink index out of range")
                dims.append((b, 1, 1))
                continue
            if o.get("offset", False):
                e = b + e
            bb = None if (o.get("beginMask", 0) >> d) & 1 else b
            ee = None if (o.get("endMask", 0) >> d) & 1 else e
            idx = range(size)[slice(bb, ee, s)]
            dims.append((idx[0] if len(idx) else 0, s, len(idx)))
        return self._slice(op, ins, out_i, dims)

    def op_slice(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x = g.tensor(ins[0])
        begin, size = self._const_ints(ins[1], "begin"), self._const_ints(ins[2], "size")
        dims = []
        for d, full in enumerate(x.shape):
            full = max(int(full), 1)
            count = full - begin[d] if size[d] == -1 else size[d]
            dims.append((begin[d], 1, count))
        return self._slice(op, ins, out_i, dims)

    def _axis(self, axis: int, rank: int) -> int:
        return axis + rank if axis < 0 else axis

    def op_pack(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        out = g.tensor(out_i)
        axis = self._axis(int(op.options.get("axis", 0)), len(out.shape))
        outer = _prod(out.shape[:axis])
        chunk = _prod(out.shape[axis + 1:]) * out.itemsize
        for k, i in enumerate(ins):
            g.calls.append(f"  tk_copy_strided((uint8_t *){g.ref(out_i)} + {k * chunk}, {len(ins) * chunk}, "
                           f"{g.ref(i)}, {chunk}, {chunk}, {outer});")
        return "tk_copy_strided", 0, False

    def _split_along(self, op: OpInfo, x_i: int, axis: int) -> tuple[str, int, bool]:
        g: Any = self
        x = g.tensor(x_i)
        axis = self._axis(axis, len(x.shape))
        outer = _prod(x.shape[:axis])
        row = _prod(x.shape[axis:]) * x.itemsize
        offset = 0
        for o in op.outputs:
            t = g.tensor(o)
            chunk = _prod(t.shape[axis:]) * t.itemsize  # UNPACK's outputs lack the axis: what follows it
            g.calls.append(f"  tk_copy_strided({g.ref(o)}, {chunk}, (const uint8_t *){g.ref(x_i)} + {offset}, "
                           f"{row}, {chunk}, {outer});")
            offset += chunk
        if offset != row:
            raise _g._Unsupported("outputs do not cover the input")
        return "tk_copy_strided", 0, False

    def op_unpack(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self._split_along(op, ins[0], int(op.options.get("axis", 0)))

    def op_split(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self._split_along(op, ins[1], self._const_ints(ins[0], "axis")[0])

    def op_split_v(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self._split_along(op, ins[0], self._const_ints(ins[2], "axis")[0])

    def op_padv2(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out, pads = g.tensor(ins[0]), g.tensor(out_i), g.tensor(ins[1])
        g.require_dtype(x, "int8")
        if pads.data is None:
            raise _g._Unsupported("non-constant paddings")
        value = self._const_ints(ins[2], "pad value")[0] if len(ins) > 2 and ins[2] >= 0 else g.q(out)[1]
        rank = len(x.shape)
        before = [0] * 6
        for d, (lo_pad, _) in enumerate(pads.data.reshape(rank, 2).tolist()):
            before[6 - rank + d] = int(lo_pad)
        g.decls.append(_g._struct("tk_pad_params", f"tk_p_{op.index}", {
            "in_shape": _g._pad6(x.shape), "out_shape": _g._pad6(out.shape), "before": before, "elem_bytes": 1,
            "pad_value": value}))
        g.calls.append(f"  tk_pad(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return "tk_pad", 0, False

    # ---- reductions and matrix products ---------------------------------------------------------------
    def _reduce_minmax(self, op: OpInfo, ins: list[int], out_i: int, kernel: str) -> tuple[str, int, bool]:
        g: Any = self
        x, out = self._unary_s8(ins, out_i)
        if g.q(x) != g.q(out):
            raise _g._Unsupported("input and output quantized differently")
        rank = len(x.shape)
        axes = {a + rank if a < 0 else a for a in self._const_ints(ins[1], "axis")}
        shape6 = _g._pad6(x.shape)
        out_stride, acc = [0] * 6, 1
        for d in range(5, -1, -1):
            if d - (6 - rank) not in axes:
                out_stride[d] = acc
                acc *= shape6[d]
        g.decls.append(_g._struct("tk_mean_params", f"tk_p_{op.index}", {
            "in_shape": shape6, "out_stride": out_stride, "out_n": out.num_elements, "count": 0, "in_zp": 0,
            "out_zp": 0, "mult": 0, "shift": 0}))
        g.calls.append(f"  {kernel}(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
        return kernel, 0, False

    def op_reduce_max(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self._reduce_minmax(op, ins, out_i, "tk_reduce_max_s8")

    def op_reduce_min(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self._reduce_minmax(op, ins, out_i, "tk_reduce_min_s8")

    def op_batch_matmul(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        lhs, rhs, out = g.tensor(ins[0]), g.tensor(ins[1]), g.tensor(out_i)
        for t in (lhs, rhs, out):
            g.require_dtype(t, "int8")
        if max(len(lhs.shape), len(rhs.shape)) > 5:
            raise _g._Unsupported("more than 5 dimensions")
        (sl, zl), (sr, zr), (so, zo) = g.q(lhs), g.q(rhs), g.q(out)
        adj_x, adj_y = bool(op.options.get("adjX", False)), bool(op.options.get("adjY", False))
        l5 = [1] * (5 - len(lhs.shape)) + [max(int(d), 1) for d in lhs.shape]
        r5 = [1] * (5 - len(rhs.shape)) + [max(int(d), 1) for d in rhs.shape]
        rows, depth = (l5[4], l5[3]) if adj_x else (l5[3], l5[4])
        cols = r5[3] if adj_y else r5[4]
        if (r5[4] if adj_y else r5[3]) != depth:
            raise _g._Unsupported("inner dimensions differ")
        batch, lb, rb = [], [], []
        l_ext, r_ext = l5[3] * l5[4], r5[3] * r5[4]
        for d in range(2, -1, -1):
            if l5[d] != r5[d] and 1 not in (l5[d], r5[d]):
                raise _g._Unsupported("batch dimensions do not broadcast")
            batch.insert(0, max(l5[d], r5[d]))
            lb.insert(0, l_ext if l5[d] > 1 else 0)
            rb.insert(0, r_ext if r5[d] > 1 else 0)
            l_ext, r_ext = l_ext * l5[d], r_ext * r5[d]
        if int(np.prod(batch)) * rows * cols != out.num_elements:
            raise _g._Unsupported("output size does not match")
        mult, shift = fp.quantize_multiplier(float(_F32(sl) * _F32(sr)) / float(_F32(so)))
        g.decls.append(_g._struct("tk_bmm_params", f"tk_p_{op.index}", {
            "batch": batch, "lhs_batch": lb, "rhs_batch": rb, "rows": rows, "cols": cols, "depth": depth,
            "lhs_si": 1 if adj_x else depth, "lhs_sk": rows if adj_x else 1,
            "rhs_sk": 1 if adj_y else cols, "rhs_sj": depth if adj_y else 1,
            "lhs_offset": -zl, "rhs_offset": -zr, "out_zp": zo, "mult": mult, "shift": shift}))
        g.calls.append(f"  tk_batch_matmul_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(ins[1])}, {g.ref(out_i)});")
        return "tk_batch_matmul_s8", 0, False

    # ---- TRANSPOSE_CONV --------------------------------------------------------------------------------
    def op_transpose_conv(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        g: Any = self
        x, out = g.tensor(ins[2]), g.tensor(out_i)
        g.require_dtype(x, "int8")
        g.require_dtype(out, "int8")
        w, wd = g.weights_of(ins[1])
        n, h, wi, c = _g._shape_nhwc(x)
        _, oh, ow, oc = _g._shape_nhwc(out)
        oc_w, kh, kw, ic = wd.shape
        if ic != c or oc_w != oc:
            raise _g._Unsupported("filter shape does not match the input and output")
        o = op.options
        sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
        same = o.get("padding", "SAME") in ("SAME", 0)

        def pad(out_size: int, k: int, s: int) -> int:
            # TFLM: the output's size plays the input's part in ComputePaddingHeightWidth.
            n_in = (out_size + s - 1) // s if same else (out_size + s - k) // s
            return max((n_in - 1) * s + k - out_size, 0) // 2

        lo, hi = g.act(op, out)
        wname = g.add_array("int8_t", f"tk_w_{op.index}", wd)
        has_bias = len(ins) > 3 and ins[3] >= 0
        bias = g.add_array("int32_t", f"tk_b_{op.index}", g.bias_values([0, 0, ins[3]], oc)) if has_bias else "0"
        m, s = g.per_channel(op, x, w, out, oc)
        g.decls.append(_g._struct("tk_tconv_params", f"tk_p_{op.index}", {
            "batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": oh, "out_w": ow, "out_c": oc,
            "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "pad_h": pad(oh, kh, sh), "pad_w": pad(ow, kw, sw),
            "in_offset": -g.q(x)[1], "out_zp": g.q(out)[1], "act_min": lo, "act_max": hi,
            "weights": wname, "bias": bias, "mult": m, "shift": s}))
        scratch = 4 * oh * ow * oc
        g.calls.append(f"  tk_transpose_conv_s8(&tk_p_{op.index}, {g.ref(ins[2])}, {g.ref(out_i)}, "
                       f"(int32_t *)(tk_arena + TK_SCRATCH_{op.index}));")
        return "tk_transpose_conv_s8", scratch, False


import tinykeras.aot.generator as _g  # noqa: E402  (after the definitions: the generator imports this module)
