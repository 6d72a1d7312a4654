"""Pooling: AVERAGE_POOL_2D, MAX_POOL_2D (kernels in tk_ops.c, their fast paths in tk_fast.h)."""

from __future__ import annotations

from typing import Any

from tinykeras.aot.declare import OpResult, aot_op
from tinykeras.aot.emit import c_struct
from tinykeras.aot.ops.layout import same_padding, shape_nhwc, streaming_gap
from tinykeras.types import OpInfo


def _pool(g: Any, op: OpInfo, ins: list[int], out_i: int, kernel: str) -> OpResult:
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "int8")
    g.require_dtype(out, "int8")
    n, h, wi, c = shape_nhwc(x)
    _, oh, ow, _ = shape_nhwc(out)
    o = op.options
    fh, fw = o.get("filterHeight", 1), o.get("filterWidth", 1)
    sh, sw = o.get("strideH", 1), o.get("strideW", 1)
    lo, hi = g.act(op, out)
    g.decls.append(c_struct("tk_pool_params", f"tk_p_{op.index}", {
        "batches": n, "in_h": h, "in_w": wi, "c": c, "out_h": oh, "out_w": ow, "f_h": fh, "f_w": fw,
        "stride_h": sh, "stride_w": sw, "pad_h": same_padding(sh, 1, h, fh, oh),
        "pad_w": same_padding(sw, 1, wi, fw, ow), "act_min": lo, "act_max": hi,
    }))
    if n == 1:
        pads = (same_padding(sh, 1, h, fh, oh), same_padding(sw, 1, wi, fw, ow))
        g.try_overlap(op, ins[0], out_i, streaming_gap((h, wi, c), (oh, ow, c), (sh, sw), pads, 1))
    fast = {"tk_maxpool_s8": "tk_maxpool_fast", "tk_avgpool_s8": "tk_avgpool_fast"}[kernel]
    if n == 1 and c % 4 == 0 and (kernel == "tk_maxpool_s8" or fh * fw <= 255):  # avg: int16 window sums
        pads = (same_padding(sh, 1, h, fh, oh), same_padding(sw, 1, wi, fw, ow))
        g.drop_decls(f"tk_p_{op.index}")
        src, dst, in_h, out_h, top = g.band_args(op.index, ins[0], out_i, h, oh, pads[0])  # rows in a banded chain
        g.calls.append(f"  {fast}({src}, {dst}, {in_h}, {wi}, {c}, {out_h}, {ow}, "
                       f"{fh}, {fw}, {sh}, {sw}, {top}, {pads[1]}, {lo}, {hi});")
        return fast, 0, False
    assert not g.in_bands(op.index), "banded chains hold fast-path ops only"
    g.general.add(op.index)
    g.calls.append(f"  {kernel}(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return kernel, 0, False


@aot_op("AVERAGE_POOL_2D", kernels=("tk_avgpool_fast", "tk_avgpool_s8"), c_files=("tk_fast.h", "tk_ops.c"))
def average_pool_2d(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, any window and stride, SAME/VALID, fused RELU/RELU6/RELU_N1_TO_1"""
    return _pool(g, op, ins, out_i, "tk_avgpool_s8")


@aot_op("MAX_POOL_2D", kernels=("tk_maxpool_fast", "tk_maxpool_s8"), c_files=("tk_fast.h", "tk_ops.c"))
def max_pool_2d(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, any window and stride, SAME/VALID, fused RELU/RELU6/RELU_N1_TO_1"""
    return _pool(g, op, ins, out_i, "tk_maxpool_s8")
