"""Matrix products: FULLY_CONNECTED, BATCH_MATMUL (kernels in tk_conv.c, tk_fast.h, tk_ops2.c); the fused LSTM
is refused with the way round it."""

from __future__ import annotations

from typing import Any

import numpy as np

import tinykeras.aot.fixedpoint as fp
from tinykeras.aot.declare import OpResult, Unsupported, aot_op, refused
from tinykeras.aot.emit import c_struct
from tinykeras.aot.ops.layout import pair_interleave, row_quads
from tinykeras.types import OpInfo

refused("UNIDIRECTIONAL_SEQUENCE_LSTM", "the fused int8/int16 LSTM is not in the aot runtime: build the Keras "
                                        "LSTM/GRU layer with unroll=True and it converts to ops aot runs bit-exact")


@aot_op("FULLY_CONNECTED", kernels=("tk_fc_fast", "tk_fc_s8"), c_files=("tk_fast.h", "tk_conv.c"))
def fully_connected(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8; constant 2-D per-channel or per-tensor weights with zero point 0, optional constant
    bias; any batch, fused RELU/RELU6/RELU_N1_TO_1"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "int8")
    g.require_dtype(out, "int8")
    w, wd = g.weights_of(ins[1])
    if wd.ndim != 2:
        raise Unsupported("weights are not 2-D")
    units, depth = wd.shape
    if x.num_elements % depth:
        raise Unsupported("input size is not a multiple of the weights' depth")
    in_zp = g.q(x)[1]
    bias = g.fold(g.bias_values(ins, units), in_zp, wd.sum(axis=1))
    lo, hi = g.act(op, out)
    wname = g.add_array("int8_t", f"tk_w_{op.index}", pair_interleave(wd))
    bname = g.add_array("int32_t", f"tk_b_{op.index}", bias)
    m, s = g.per_channel(op, x, w, out, units)
    g.decls.append(c_struct("tk_fc_params", f"tk_p_{op.index}", {
        "batches": x.num_elements // depth, "depth": depth, "units": units, "out_zp": g.q(out)[1],
        "act_min": lo, "act_max": hi, "weights": wname, "bias_adj": bname, "mult": m, "shift": s,
    }))
    rq = g.fast_rq(op, x, w, out, units, np.abs(bias).max(initial=0) + depth * 128 * 128)
    if rq is not None:
        g.drop_decls(f"tk_p_{op.index}", m, s)
        batches = x.num_elements // depth
        quad = g.wide_columns and batches == 1 and depth % 16 == 0  # tk_fast.h tk_fc_quad: one LDM per 4 rows
        if quad:
            g.drop_decls(wname)
            g.add_array("int8_t", wname, row_quads(wd, 4))
        wname = g.gemm_weights(wname, wd)
        g.add_struct_array("tk_rq_param", f"tk_rq_{op.index}", g.gemm_rq(rq))
        scratch, wide = 0, "(int32_t *)0"
        if op.index in g.wide_fc:  # int16 input (tk_fast.h tk_fc_wide, tk_fc_quad), generator.free_fc_scratch
            scratch, wide = 2 * depth, f"(int32_t *)(tk_arena + TK_SCRATCH_{op.index})"
        g.calls.append(
            f"  tk_fc_fast({g.ref(ins[0])}, {g.ref(out_i)}, {batches}, {depth}, {units}, "
            f"{wname}, {bname}, tk_rq_{op.index}, {lo}, {hi}, {wide}, {int(quad)});")
        return "tk_fc_fast", scratch, False
    g.general.add(op.index)
    g.calls.append(f"  tk_fc_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_fc_s8", 0, False


@aot_op("BATCH_MATMUL", kernels=("tk_batch_matmul_s8",), c_files=("tk_ops2.c",))
def batch_matmul(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, adj_x/adj_y, broadcast batch dims, up to 5-D"""
    lhs, rhs, out = g.tensor(ins[0]), g.tensor(ins[1]), g.tensor(out_i)
    for t in (lhs, rhs, out):
        g.require_dtype(t, "int8")
    if max(len(lhs.shape), len(rhs.shape)) > 5:
        raise Unsupported("more than 5 dimensions")
    (sl, zl), (sr, zr), (so, zo) = g.q(lhs), g.q(rhs), g.q(out)
    adj_x, adj_y = bool(op.options.get("adjX", False)), bool(op.options.get("adjY", False))
    l5 = [1] * (5 - len(lhs.shape)) + [max(int(d), 1) for d in lhs.shape]
    r5 = [1] * (5 - len(rhs.shape)) + [max(int(d), 1) for d in rhs.shape]
    rows, depth = (l5[4], l5[3]) if adj_x else (l5[3], l5[4])
    cols = r5[3] if adj_y else r5[4]
    if (r5[4] if adj_y else r5[3]) != depth:
        raise Unsupported("inner dimensions differ")
    batch, lb, rb = [], [], []
    l_ext, r_ext = l5[3] * l5[4], r5[3] * r5[4]
    for d in range(2, -1, -1):
        if l5[d] != r5[d] and 1 not in (l5[d], r5[d]):
            raise Unsupported("batch dimensions do not broadcast")
        batch.insert(0, max(l5[d], r5[d]))
        lb.insert(0, l_ext if l5[d] > 1 else 0)
        rb.insert(0, r_ext if r5[d] > 1 else 0)
        l_ext, r_ext = l_ext * l5[d], r_ext * r5[d]
    if int(np.prod(batch)) * rows * cols != out.num_elements:
        raise Unsupported("output size does not match")
    f32 = np.float32
    mult, shift = fp.quantize_multiplier(float(f32(sl) * f32(sr)) / float(f32(so)))
    g.decls.append(c_struct("tk_bmm_params", f"tk_p_{op.index}", {
        "batch": batch, "lhs_batch": lb, "rhs_batch": rb, "rows": rows, "cols": cols, "depth": depth,
        "lhs_si": 1 if adj_x else depth, "lhs_sk": rows if adj_x else 1,
        "rhs_sk": 1 if adj_y else cols, "rhs_sj": depth if adj_y else 1,
        "lhs_offset": -zl, "rhs_offset": -zr, "out_zp": zo, "mult": mult, "shift": shift}))
    g.calls.append(f"  tk_batch_matmul_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(ins[1])}, {g.ref(out_i)});")
    return "tk_batch_matmul_s8", 0, False
