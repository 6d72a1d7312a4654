"""Activations: SOFTMAX, LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, HARD_SWISH, ELU (kernels in tk_ops.c,
tk_ops2.c)."""

from __future__ import annotations

from typing import Any

import numpy as np

import tinykeras.aot.fixedpoint as fp
from tinykeras.aot.declare import OpResult, Unsupported, aot_op
from tinykeras.aot.emit import c_struct
from tinykeras.types import OpInfo

_F32 = np.float32


@aot_op("SOFTMAX", kernels=("tk_softmax_s8",), c_files=("tk_ops.c",))
def softmax(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, output scale 1/256 and zero point -128, any beta"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "int8")
    g.require_dtype(out, "int8")
    if g.q(out) != (1.0 / 256, -128):
        raise Unsupported("int8 output must have scale 1/256 and zero point -128")
    mult, shift, diff_min = fp.softmax_params(op.options.get("beta", 1.0), g.q(x)[0])
    depth = max(x.shape[-1], 1) if x.shape else 1
    g.decls.append(c_struct("tk_softmax_params", f"tk_p_{op.index}", {
        "rows": x.num_elements // depth, "depth": depth, "in_mult": mult, "in_left_shift": shift,
        "diff_min": diff_min,
    }))
    g.calls.append(f"  tk_softmax_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_softmax_s8", 0, False


def _sigmoid(g: Any, op: OpInfo, ins: list[int], out_i: int, kernel: str, out_zp: int) -> OpResult:
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "int8")
    g.require_dtype(out, "int8")
    if g.q(out)[1] != out_zp:
        raise Unsupported(f"int8 output must have zero point {out_zp}")
    mult, shift, radius = fp.sigmoid_params(g.q(x)[0])
    g.decls.append(c_struct("tk_sigmoid_params", f"tk_p_{op.index}", {
        "n": x.num_elements, "in_zp": g.q(x)[1], "range_radius": radius, "in_mult": mult,
        "in_left_shift": shift,
    }))
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  {kernel}(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return kernel, 0, in_place


@aot_op("LOGISTIC", kernels=("tk_logistic_s8",), c_files=("tk_ops.c",))
def logistic(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8 with output zero point -128"""
    return _sigmoid(g, op, ins, out_i, "tk_logistic_s8", -128)


@aot_op("TANH", kernels=("tk_tanh_s8",), c_files=("tk_ops.c",))
def tanh(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8 with output zero point 0"""
    return _sigmoid(g, op, ins, out_i, "tk_tanh_s8", 0)


@aot_op("RELU", kernels=("tk_relu_s8",), c_files=("tk_ops2.c",))
def relu(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, rescaled when the output is quantized differently from the input"""
    x, out = g.unary_s8(ins, out_i)
    (si, zi), (so, zo) = g.q(x), g.q(out)
    mult, shift = fp.quantize_multiplier(float(_F32(si) / _F32(so)))
    g.decls.append(c_struct("tk_relu_params", f"tk_p_{op.index}", {
        "n": x.num_elements, "in_zp": zi, "out_zp": zo, "mult": mult, "shift": shift,
        "act_min": max(-128, zo), "act_max": 127}))
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  tk_relu_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_relu_s8", 0, in_place


@aot_op("RELU6", kernels=("tk_clamp_s8",), c_files=("tk_ops2.c",))
def relu6(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, a clamp in the input's quantization"""
    x, _ = g.unary_s8(ins, out_i)
    si, zi = g.q(x)
    six = min(127, max(-128, zi + int(fp.tflite_round(float(_F32(6.0) / _F32(si))))))  # FloatToQuantizedType
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  tk_clamp_s8({x.num_elements}, {zi}, {six}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_clamp_s8", 0, in_place


@aot_op("LEAKY_RELU", kernels=("tk_leaky_relu_s8",), c_files=("tk_ops2.c",))
def leaky_relu(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8, any alpha"""
    x, out = g.unary_s8(ins, out_i)
    (si, zi), (so, zo) = g.q(x), g.q(out)
    alpha = _F32(op.options.get("alpha", 0.2))
    m_alpha, s_alpha = fp.quantize_multiplier(float(_F32(si) * alpha / _F32(so)))
    m_id, s_id = fp.quantize_multiplier(float(_F32(si) / _F32(so)))
    g.decls.append(c_struct("tk_leaky_params", f"tk_p_{op.index}", {
        "n": x.num_elements, "in_zp": zi, "out_zp": zo, "mult_identity": m_id, "mult_alpha": m_alpha,
        "shift_identity": s_id, "shift_alpha": s_alpha}))
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  tk_leaky_relu_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_leaky_relu_s8", 0, in_place


@aot_op("HARD_SWISH", kernels=("tk_hard_swish_s8",), c_files=("tk_ops2.c",))
def hard_swish(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """int8"""
    x, out = g.unary_s8(ins, out_i)
    (si, zi), (so, zo) = g.q(x), g.q(out)
    hires = _F32(1.0 / 128.0) * _F32(si)
    out_m, out_e = fp.quantize_multiplier(float(hires / _F32(so)))
    if out_e > 0:
        raise Unsupported("output scale too small for the int8 hard-swish")
    rel_m, rel_e = fp.quantize_multiplier(float(hires / (_F32(3.0) / _F32(32768.0))))
    g.decls.append(c_struct("tk_hswish_params", f"tk_p_{op.index}", {
        "n": x.num_elements, "in_zp": zi, "out_zp": zo, "out_mult": fp.downscale_q15(out_m),
        "reluish_mult": fp.downscale_q15(rel_m), "out_exp": out_e, "reluish_exp": rel_e}))
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  tk_hard_swish_s8(&tk_p_{op.index}, {g.ref(ins[0])}, {g.ref(out_i)});")
    return "tk_hard_swish_s8", 0, in_place


@aot_op("ELU", kernels=("tk_elu_f32",), c_files=("tk_ops2.c",))
def elu(g: Any, op: OpInfo, ins: list[int], out_i: int) -> OpResult:
    """float32, between the DEQUANTIZE and QUANTIZE the converter puts around it"""
    x, out = g.tensor(ins[0]), g.tensor(out_i)
    g.require_dtype(x, "float32")  # the converter keeps ELU in float between DEQUANTIZE and QUANTIZE
    g.require_dtype(out, "float32")
    in_place = g.try_in_place(op, [ins[0]], out_i)
    g.calls.append(f"  tk_elu_f32({x.num_elements}, {g.ref(ins[0], 'float')}, {g.ref(out_i, 'float')});")
    return "tk_elu_f32", 0, in_place
