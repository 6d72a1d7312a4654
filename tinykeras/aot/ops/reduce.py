"""Reductions: MEAN, REDUCE_MAX, REDUCE_MIN (kernels in tk_ops.c, tk_ops2.c)."""

from __future__ import annotations

from typing import Any

import numpy as np

import tinykeras.aot.fixedpoint as fp
from tinykeras.aot.declare import OpResult, Unsupported, aot_op
from tinykeras.aot.emit import c_struct
from tinykeras.aot.ops.layout import pad6
from tinykeras.types import OpInfo


@aot_op("MEAN", kernels=("tk_mean_s8",), c_files=("tk_ops.c",))
def mean(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, constant axes, up to 6-D"""
    x, out, axis = g.tensor(ins[0]), g.tensor(out_i), g.tensor(ins[1])
    g.require_dtype(x, "int8")
    g.require_dtype(out, "int8")
    if axis.data is None:
        raise Unsupported("non-constant axis")
    rank = len(x.shape)
    axes = sorted({int(a) + rank if int(a) < 0 else int(a) for a in axis.data.reshape(-1)})
    shape6 = pad6(x.shape)
    offset = 6 - rank
    reduced = {a + offset for a in axes}
    count = int(np.prod([shape6[d] for d in reduced])) if reduced else 1
    out_stride, acc = [0] * 6, 1
    for d in range(5, -1, -1):
        if d not in reduced:
            out_stride[d] = acc
            acc *= shape6[d]
    (si, zi), (so, zo) = g.q(x), g.q(out)
    mult, shift = fp.mean_multiplier(si, so, count)
    g.decls.append(c_struct("tk_mean_params", f"tk_p_{op.index}", {
        "in_shape": shape6, "out_stride": out_stride, "out_n": out.num_elements, "count": count,
        "in_zp": zi, "out_zp": zo, "mult": mult, "shift": shift}))
    scratch = 4 * out.num_elements
    g.calls.append(f"  tk_mean_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)}, "
                   f"(int32_t *)(tk_arena + TK_SCRATCH_{op.index}));")
    return "tk_mean_s8", scratch, False


def _reduce_minmax(g: Any, op: OpInfo, ins: list[int], out_i: int, kernel: str) -> OpResult:
    x, out = g.unary_s8(ins, out_i)
    if g.q(x) != g.q(out):
        raise Unsupported("input and output quantized differently")
    rank = len(x.shape)
    axes = {a + rank if a < 0 else a for a in g.const_ints(ins[1], "axis")}
    shape6 = pad6(x.shape)
    out_stride, acc = [0] * 6, 1
    for d in range(5, -1, -1):
        if d - (6 - rank) not in axes:
            out_stride[d] = acc
            acc *= shape6[d]
    g.decls.append(c_struct("tk_mean_params", f"tk_p_{op.index}", {
        "in_shape": shape6, "out_stride": out_stride, "out_n": out.num_elements, "count": 0, "in_zp": 0,
        "out_zp": 0, "mult": 0, "shift": 0}))
    g.calls.append(f"  {kernel}(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return kernel, 0, False


@aot_op("REDUCE_MAX", kernels=("tk_reduce_max_s8",), c_files=("tk_ops2.c",))
def reduce_max(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, any axes, as GlobalMaxPooling gives"""
    return _reduce_minmax(g, op, ins, out_i, "tk_reduce_max_s8")


@aot_op("REDUCE_MIN", kernels=("tk_reduce_min_s8",), c_files=("tk_ops2.c",))
def reduce_min(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, any axes"""
    return _reduce_minmax(g, op, ins, out_i, "tk_reduce_min_s8")
