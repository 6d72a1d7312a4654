"""Elementwise ops: ADD, MUL, SUB, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE (one broadcasting kernel family),
RSQRT, NEG and the type conversions QUANTIZE, DEQUANTIZE (kernels in tk_ops.c, tk_ops2.c, tk_fast.h)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tinykeras.aot.fixedpoint as fp
from tinykeras.aot.declare import OpResult, Unsupported, aot_op
from tinykeras.aot.emit import c_struct, scale_literal
from tinykeras.aot.ops.layout import pad6
from tinykeras.types import OpInfo


def _mul_params(s1: float, s2: float, so: float) -> dict[str, int]:
    mult, shift = fp.quantize_multiplier(fp.f32(s1) * fp.f32(s2) / fp.f32(so))
    return {"left_shift": 0, "in1_mult": 0, "in2_mult": 0, "out_mult": mult, "in1_shift": 0, "in2_shift": 0,
            "out_shift": shift}


def _no_params(s1: float, s2: float, so: float) -> dict[str, int]:
    return {"left_shift": 0, "in1_mult": 0, "in1_shift": 0, "in2_mult": 0, "in2_shift": 0, "out_mult": 0,
            "out_shift": 0}


_BINARY_PARAMS: dict[str, Callable[[float, float, float], dict[str, int]]] = {
    "add": fp.add_params, "mul": _mul_params, "sub": fp.sub_params,
    "squared_difference": fp.squared_difference_params, "maximum": _no_params, "minimum": _no_params,
}


def _binary(g: Any, op: OpInfo, ins: list[int], out_i: int, kind: str) -> OpResult:
    a, b, out = g.tensor(ins[0]), g.tensor(ins[1]), g.tensor(out_i)
    for t in (a, b, out):
        g.require_dtype(t, "int8")
    (sa, za), (sb, zb), (so, zo) = g.q(a), g.q(b), g.q(out)
    lo, hi = g.act(op, out)
    oshape = pad6(out.shape)
    fields: dict[str, Any] = {"n": out.num_elements}
    broadcast = not (a.num_elements == b.num_elements == out.num_elements)
    strides = []
    for t in (a, b):
        s = pad6(t.shape) if len(t.shape) <= 6 else []
        if len(t.shape) > len(out.shape):
            raise Unsupported("input of higher rank than the output")
        dense, acc = [0] * 6, 1
        for d in range(5, -1, -1):
            dense[d] = acc if s[d] != 1 or oshape[d] == 1 else 0
            if s[d] not in (1, oshape[d]):
                raise Unsupported("shapes do not broadcast")
            acc *= s[d]
        strides.append(dense)
    fields.update({"broadcast": int(broadcast), "out_shape": oshape, "stride1": strides[0],
                   "stride2": strides[1], "in1_offset": -za, "in2_offset": -zb, "out_offset": zo})
    fields.update(_BINARY_PARAMS[kind](sa, sb, so))
    fields.update({"act_min": lo, "act_max": hi})
    g.decls.append(c_struct("tk_binary_params", f"tk_p_{op.index}", fields))
    banded = g.in_bands(op.index)  # the residual ADD ending a banded chain (aot/bands.py skip_add): its rows
    in_place = not banded and g.try_in_place(op, [i for i in ins if g.tensor(i).num_elements == out.num_elements],
                                             out_i)
    if kind == "add" and not broadcast:
        fast = _fast_add(g, op, fields)
        if fast:
            g.drop_decls(f"tk_p_{op.index}")
            a, b, o, n = g.ref(ins[0]), g.ref(ins[1]), g.ref(out_i), str(out.num_elements)
            if banded:
                a, b, o, n = _band_add_args(g, op, ins, out_i)
            g.calls.append(f"  tk_add_fast({a}, {b}, {o}, {n}, {fast[0]} + 128, {fast[1]} + 128, {fast[2]}, "
                           f"{lo}, {hi});")
            return "tk_add_fast", 0, in_place
    if banded:
        raise Unsupported("a banded residual ADD off the fast path")  # candidates only take fast ones
    if kind == "add":
        g.general.add(op.index)
    kernel = f"tk_{kind}_s8"
    g.calls.append(f"  {kernel}(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(ins[1])}, {g.ref(out_i)});")
    return kernel, 0, in_place


def _band_add_args(g: Any, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, str, str, str]:
    """(a, b, out, n) of tk_add_fast in a band: the previous op's rows from its band region, the chain input's
    (the skip) and the output's at the same rows, this band's row count."""
    prev = g.info.ops[op.index - 1].outputs[0]
    src, dst, _rows, out_rows, _top = g.band_args(op.index, prev, out_i, 0, 0, 0)
    row = g.bands.ops[-1].out_row_bytes
    skip = f"({g.ref(ins[1] if ins[0] == prev else ins[0])} + tk_r[1] * {row})"
    a, b = (src, skip) if ins[0] == prev else (skip, src)
    return a, b, dst, f"{out_rows} * {row}"


def _fast_add(g: Any, op: OpInfo, f: dict[str, Any]) -> tuple[str, str, str] | None:
    """Lookup tables of the two rescaled inputs and the output tk_rq parameters of an ADD, or None."""
    luts = []
    for k in (1, 2):
        luts.append([fp.mbqm((v + f[f"in{k}_offset"]) << f["left_shift"], f[f"in{k}_mult"], f[f"in{k}_shift"])
                     for v in range(-128, 128)])
    bound = max(abs(a) for a in luts[0]) + max(abs(b) for b in luts[1])
    rq = fp.fast_rq_params([f["out_mult"]], [f["out_shift"]], f["out_offset"], bound)
    if rq is None:
        return None
    names = (g.add_array("int32_t", f"tk_lut1_{op.index}", luts[0]),
             g.add_array("int32_t", f"tk_lut2_{op.index}", luts[1]))
    g.add_struct_array("tk_rq_param", f"tk_rq_{op.index}", rq)
    return names[0], names[1], f"tk_rq_{op.index}"


@aot_op("ADD", kernels=("tk_add_fast", "tk_add_s8"), c_files=("tk_fast.h", "tk_ops.c"))
def add(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, broadcasting up to 6-D, fused RELU/RELU6/RELU_N1_TO_1"""
    return _binary(g, op, ins, out_i, "add")


@aot_op("MUL", kernels=("tk_mul_s8",), c_files=("tk_ops.c",))
def mul(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, broadcasting up to 6-D, fused RELU/RELU6/RELU_N1_TO_1"""
    return _binary(g, op, ins, out_i, "mul")


@aot_op("SUB", kernels=("tk_sub_s8",), c_files=("tk_ops2.c",))
def sub(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, broadcasting, fused RELU/RELU6/RELU_N1_TO_1"""
    return _binary(g, op, ins, out_i, "sub")


@aot_op("MAXIMUM", kernels=("tk_maximum_s8",), c_files=("tk_ops2.c",))
def maximum(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, broadcasting"""
    return _binary(g, op, ins, out_i, "maximum")


@aot_op("MINIMUM", kernels=("tk_minimum_s8",), c_files=("tk_ops2.c",))
def minimum(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, broadcasting"""
    return _binary(g, op, ins, out_i, "minimum")


@aot_op("SQUARED_DIFFERENCE", kernels=("tk_squared_difference_s8",), c_files=("tk_ops2.c",))
def squared_difference(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, broadcasting"""
    return _binary(g, op, ins, out_i, "squared_difference")


@aot_op("RSQRT", kernels=("tk_lut_s8",), c_files=("tk_ops2.c",))
def rsqrt(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, a 256-entry table computed at generation time"""
    x, out = g.unary_s8(ins, out_i)
    (si, zi), (so, zo) = g.q(x), g.q(out)
    table = g.add_array("int8_t", f"tk_lut_{op.index}", fp.rsqrt_table(si, zi, so, zo))
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  tk_lut_s8({x.num_elements}, {table}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_lut_s8", 0, in_place


@aot_op("NEG", kernels=("tk_neg_f32",), c_files=("tk_ops2.c",))
def neg(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """float32, between DEQUANTIZE and QUANTIZE: Keras PReLU converts to RELU, NEG, MUL, ADD"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "float32")  # what the converter emits for Keras PReLU
    g.require_dtype(out, "float32")
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  tk_neg_f32({x.num_elements}, {g.ref(ins[0], 'float')}, {g.ref(out_i, 'float')});")
    return "tk_neg_f32", 0, in_place


@aot_op("QUANTIZE", kernels=("tk_quantize_f32_s8", "tk_requantize_s8"), c_files=("tk_ops.c",))
def quantize(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """float32 or int8 to int8"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(out, "int8")
    so, zo = g.q(out)
    if x.dtype == "float32":
        g.calls.append(f"  tk_quantize_f32_s8({x.num_elements}, {scale_literal(so)}, {zo}, "
                       f"{g.ref(ins[0], 'float')}, {g.ref(out_i)});")
        return "tk_quantize_f32_s8", 0, False
    g.require_dtype(x, "int8", "float32")
    si, zi = g.q(x)
    mult, shift = fp.quantize_multiplier(fp.f32(si) / fp.f32(so))
    g.decls.append(c_struct("tk_requant_params", f"tk_p_{op.index}", {
        "n": x.num_elements, "in_zp": zi, "out_zp": zo, "mult": mult, "shift": shift}))
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  tk_requantize_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_requantize_s8", 0, in_place


@aot_op("DEQUANTIZE", kernels=("tk_dequantize_s8_f32",), c_files=("tk_ops.c",))
def dequantize(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8 to float32"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "int8")
    g.require_dtype(out, "float32")
    s, z = g.q(x)
    g.calls.append(f"  tk_dequantize_s8_f32({x.num_elements}, {scale_literal(s, double=True)}, {z}, "
                   f"{g.ref(ins[0])}, {g.ref(out_i, 'float')});")
    return "tk_dequantize_s8_f32", 0, False
