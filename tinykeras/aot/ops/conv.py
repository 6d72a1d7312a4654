"""Convolutions: CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV (kernels in tk_conv.c, tk_fast.h, tk_ops2.c)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinykeras.aot.declare import OpResult, Unsupported, aot_op
from tinykeras.aot.emit import c_struct
from tinykeras.aot.ops.layout import helium_dw_params, pair_interleave, same_padding, shape_nhwc, streaming_gap
from tinykeras.aot.planner import align_up
from tinykeras.types import OpInfo

_DW_MAX_TAPS = 64  # tk_fast.h TK_DW_MAX_TAPS: the tap table of tk_dw_fast


@aot_op("CONV_2D", kernels=("tk_conv_fast", "tk_conv_s8"), c_files=("tk_fast.h", "tk_conv.c"))
def conv_2d(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8; constant per-channel or per-tensor weights with zero point 0, optional constant bias; any stride and
    dilation, SAME/VALID, fused RELU/RELU6/RELU_N1_TO_1; no grouped convolution"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "int8")
    g.require_dtype(out, "int8")
    w, wd = g.weights_of(ins[1])
    n, h, wi, c = shape_nhwc(x)
    _, oh, ow, oc = shape_nhwc(out)
    oc_w, kh, kw, ic = wd.shape
    if ic != c or oc_w != oc:
        raise Unsupported("grouped convolution")
    o = op.options
    sh, sw = o.get("strideH", 1), o.get("strideW", 1)
    dh, dw = o.get("dilationHFactor", 1), o.get("dilationWFactor", 1)
    in_zp = g.q(x)[1]
    bias = g.fold(g.bias_values(ins, oc), in_zp, wd.reshape(oc, -1).sum(axis=1))
    lo, hi = g.act(op, out)
    wname = g.add_array("int8_t", f"tk_w_{op.index}", pair_interleave(wd.reshape(oc, -1)))
    bname = g.add_array("int32_t", f"tk_b_{op.index}", bias)
    m, s = g.per_channel(op, x, w, out, oc)
    pad_h, pad_w = same_padding(sh, dh, h, kh, oh), same_padding(sw, dw, wi, kw, ow)
    g.decls.append(c_struct("tk_conv_params", f"tk_p_{op.index}", {
        "batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": oh, "out_w": ow, "out_c": oc,
        "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh, "dil_w": dw,
        "pad_h": pad_h, "pad_w": pad_w, "in_zp": in_zp, "out_zp": g.q(out)[1], "act_min": lo, "act_max": hi,
        "weights": wname, "bias_adj": bname, "mult": m, "shift": s,
    }))
    direct = kh == 1 and kw == 1 and pad_h == 0 and pad_w == 0
    scratch = 0 if direct else 2 * kh * kw * c
    if n == 1:
        g.try_overlap(op, ins[0], out_i, streaming_gap((h, wi, c), (oh, ow, oc), (sh, sw), (pad_h, pad_w), 2))
    scratch_ref = f"(int8_t *)(tk_arena + TK_SCRATCH_{op.index})" if scratch else "(int8_t *)0"
    rq = g.fast_rq(op, x, w, out, oc, np.abs(bias).max(initial=0) + kh * kw * c * 128 * 128)
    if n == 1 and dh == 1 and dw == 1 and rq is not None:
        g.drop_decls(f"tk_p_{op.index}", m, s)
        col_depth, rows = kh * kw * c, wd.reshape(oc, -1)
        if not direct and col_depth % 8:  # im2col columns padded to the SMLAD loop's 8, weights 0 there
            col_depth = align_up(col_depth, 8)
            rows = np.zeros((oc, col_depth), dtype=np.int64)
            rows[:, :kh * kw * c] = wd.reshape(oc, -1)
            g.drop_decls(wname)
            wname = g.add_array("int8_t", f"tk_w_{op.index}", pair_interleave(rows))
            scratch = 2 * col_depth
        wname = g.gemm_weights(wname, rows)
        wide = "(int32_t *)0"
        if g.wide_columns and col_depth % 8 == 0:  # int16 columns for the DSP kernels (tk_fast.h tk_gemm_wide)
            wide = f"(int32_t *)(tk_arena + TK_SCRATCH_{op.index} + {scratch})"
            scratch += 4 * col_depth
            scratch_ref = f"(int8_t *)(tk_arena + TK_SCRATCH_{op.index})"
        g.add_struct_array("tk_rq_param", f"tk_rq_{op.index}", g.gemm_rq(rq))
        src, dst, in_h, out_h, top = g.band_args(op.index, ins[0], out_i, h, oh, pad_h)
        g.calls.append(
            f"  tk_conv_fast({src}, {dst}, {scratch_ref}, {in_h}, {wi}, {c}, {out_h}, {ow}, "
            f"{oc}, {kh}, {kw}, {sh}, {sw}, {top}, {pad_w}, {in_zp}, {col_depth}, {wname}, {bname}, "
            f"tk_rq_{op.index}, {lo}, {hi}, {wide});")
        return ("tk_conv_fast 1x1" if direct else "tk_conv_fast"), scratch, False
    assert not g.in_bands(op.index), "banded chains hold fast-path ops only"
    g.general.add(op.index)
    g.calls.append(f"  tk_conv_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)}, {scratch_ref});")
    return "tk_conv_s8", scratch, False


@aot_op("DEPTHWISE_CONV_2D", kernels=("tk_dw3x3_fast", "tk_dw_fast", "tk_dwconv_s8"),
        c_files=("tk_fast.h", "tk_conv.c"))
def depthwise_conv_2d(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8; constant per-channel or per-tensor weights with zero point 0, optional constant bias; any depth
    multiplier, stride and dilation, SAME/VALID, fused RELU/RELU6/RELU_N1_TO_1"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "int8")
    g.require_dtype(out, "int8")
    w, wd = g.weights_of(ins[1])
    n, h, wi, c = shape_nhwc(x)
    _, oh, ow, oc = shape_nhwc(out)
    _, kh, kw, oc_w = wd.shape
    if oc_w != oc or oc % c:
        raise Unsupported("filter channels do not match")
    o = op.options
    sh, sw = o.get("strideH", 1), o.get("strideW", 1)
    dh, dw = o.get("dilationHFactor", 1), o.get("dilationWFactor", 1)
    in_zp = g.q(x)[1]
    bias = g.bias_values(ins, oc)
    lo, hi = g.act(op, out)
    wname = g.add_array("int8_t", f"tk_w_{op.index}", wd)
    bname = g.add_array("int32_t", f"tk_b_{op.index}", bias)
    m, s = g.per_channel(op, x, w, out, oc)
    g.decls.append(c_struct("tk_dwconv_params", f"tk_p_{op.index}", {
        "batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": oh, "out_w": ow, "out_c": oc,
        "depth_mult": oc // c, "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh,
        "dil_w": dw, "pad_h": same_padding(sh, dh, h, kh, oh), "pad_w": same_padding(sw, dw, wi, kw, ow),
        "in_zp": in_zp, "out_zp": g.q(out)[1], "act_min": lo, "act_max": hi,
        "weights": wname, "bias": bname, "mult": m, "shift": s,
    }))
    pads = (same_padding(sh, dh, h, kh, oh), same_padding(sw, dw, wi, kw, ow))
    if n == 1:
        g.try_overlap(op, ins[0], out_i, streaming_gap((h, wi, c), (oh, ow, oc), (sh, sw), pads, 1))
    rq = g.fast_rq(op, x, w, out, oc, np.abs(bias).max(initial=0) + kh * kw * 255 * 128)
    three = (kh, kw) == (3, 3) and sh == sw
    if (n == 1 and (dh, dw) == (1, 1) and oc == c and c % 4 == 0 and rq is not None
            and (three or kh * kw <= _DW_MAX_TAPS)):
        taps_n = kh * kw
        g.drop_decls(f"tk_p_{op.index}", m, s, wname, bname)
        wsum = wd.reshape(taps_n, c).sum(axis=0)
        adj = g.fold(bias, in_zp, wsum)
        # per 4-channel group and tap: (w[c], w[c+2]) and (w[c+1], w[c+3]) as int16 lanes of an int32
        w9 = wd.reshape(taps_n, c // 4, 4).transpose(1, 0, 2)  # [group][tap][4]
        lanes = np.stack([w9[..., 0] & 0xFFFF | (w9[..., 2] << 16), w9[..., 1] & 0xFFFF | (w9[..., 3] << 16)],
                         axis=-1)
        lanes = lanes.astype(np.int64)
        lanes = np.where(lanes >= 2**31, lanes - 2**32, lanes)
        wx = g.add_array("int32_t", f"tk_wx_{op.index}", lanes)
        ba = g.add_array("int32_t", f"tk_ba_{op.index}", adj)
        zrow = g.add_array("int8_t", f"tk_zp_{op.index}", np.full(c, in_zp))
        g.add_struct_array("tk_rq_param", f"tk_rq_{op.index}", rq)
        src, dst, in_h, out_h, top = g.band_args(op.index, ins[0], out_i, h, oh, pads[0])
        taps, rq_ref = "(const int8_t *)0", f"tk_rq_{op.index}"
        if g.helium and c % 8 == 0:  # weights tap by tap, parameters as vectors (tk_fast.h tk_dw8_taps_mve)
            g.drop_decls(wx, ba, rq_ref)
            wx, rq_ref = "(const int32_t *)0", "(const tk_rq_param *)0"
            taps = g.add_array("int8_t", f"tk_wt_{op.index}", wd.reshape(taps_n, c))
            ba = g.add_array("int32_t", f"tk_dwv_{op.index}", helium_dw_params(adj, rq))
        if three:
            g.calls.append(
                f"  tk_dw3x3_fast({src}, {dst}, {in_h}, {wi}, {c}, {out_h}, {ow}, {sh}, {top}, "
                f"{pads[1]}, {zrow}, {wx}, {ba}, {rq_ref}, {lo}, {hi}, {taps});")
            return "tk_dw3x3_fast", 0, False
        g.calls.append(
            f"  tk_dw_fast({src}, {dst}, {in_h}, {wi}, {c}, {out_h}, {ow}, {kh}, {kw}, {sh}, {sw}, {top}, "
            f"{pads[1]}, {zrow}, {wx}, {ba}, {rq_ref}, {lo}, {hi}, {taps});")
        return "tk_dw_fast", 0, False
    assert not g.in_bands(op.index), "banded chains hold fast-path ops only"
    g.general.add(op.index)
    g.calls.append(f"  tk_dwconv_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_dwconv_s8", 0, False


@aot_op("TRANSPOSE_CONV", kernels=("tk_transpose_conv_s8",), c_files=("tk_ops2.c",))
def transpose_conv(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8; constant per-channel weights with zero point 0, optional constant bias; any stride,
    SAME/VALID, fused RELU/RELU6/RELU_N1_TO_1"""
    x, out = g.tensor(ins[2]), g.tensor(out_i)
    g.require_dtype(x, "int8")
    g.require_dtype(out, "int8")
    w, wd = g.weights_of(ins[1])
    n, h, wi, c = shape_nhwc(x)
    _, oh, ow, oc = shape_nhwc(out)
    oc_w, kh, kw, ic = wd.shape
    if ic != c or oc_w != oc:
        raise Unsupported("filter shape does not match the input and output")
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
    g.decls.append(c_struct("tk_tconv_params", f"tk_p_{op.index}", {
        "batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": oh, "out_w": ow, "out_c": oc,
        "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "pad_h": pad(oh, kh, sh), "pad_w": pad(ow, kw, sw),
        "in_offset": -g.q(x)[1], "out_zp": g.q(out)[1], "act_min": lo, "act_max": hi,
        "weights": wname, "bias": bias, "mult": m, "shift": s}))
    scratch = 4 * oh * ow * oc
    g.calls.append(f"  tk_transpose_conv_s8(&tk_p_{op.index}, {g.ref(ins[2])}, {g.ref(out_i)}, "
                   f"(int32_t *)(tk_arena + TK_SCRATCH_{op.index}));")
    return "tk_transpose_conv_s8", scratch, False
