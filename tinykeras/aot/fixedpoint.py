"""The aot runtime's fixed-point math, in one place: TFLite-Micro's Prepare() (multipliers, shifts, ranges,
lookup tables) and the gemmlowp int32 arithmetic those need. No TensorFlow.

Scales in a .tflite file are float32; TFLM promotes them to double where its sources use double and
keeps float32 where they use float, and so does this module, so the integers match bit for bit (the C
side of the same arithmetic is ``firmware_templates/runtime/aot/tk_fixedpoint.h``). The doctests run in
tests/test_c_literals.py.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def tflite_round(x: float) -> float:
    """``std::round``: half away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: real = m * 2^(shift - 31), m a Q31 int32.

    >>> quantize_multiplier(0.5)
    (1073741824, 0)
    >>> quantize_multiplier(0.0)
    (0, 0)
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(tflite_round(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def f32(x: float) -> float:
    return float(np.float32(x))


def conv_multipliers(input_scale: float, filter_scales: tuple[float, ...], output_scale: float,
                     channels: int) -> tuple[list[int], list[int]]:
    """Per-channel (or broadcast per-tensor) multipliers of CONV/DEPTHWISE/FULLY_CONNECTED."""
    mults, shifts = [], []
    for c in range(channels):
        fs = filter_scales[c] if len(filter_scales) > 1 else filter_scales[0]
        m, s = quantize_multiplier(f32(input_scale) * f32(fs) / f32(output_scale))
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def quantize_value(value: float, scale: float, zero_point: int) -> int:
    """TFLite's ``Quantize`` used for activation ranges: float32 division, then round."""
    tmp = tflite_round(f32(np.float32(value) / np.float32(scale)))
    return int(zero_point + tmp)


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` for int8 outputs."""
    lo, hi = INT8_MIN, INT8_MAX
    if activation == "RELU":
        lo = max(lo, quantize_value(0.0, scale, zero_point))
    elif activation == "RELU6":
        lo = max(lo, quantize_value(0.0, scale, zero_point))
        hi = min(hi, quantize_value(6.0, scale, zero_point))
    elif activation == "RELU_N1_TO_1":
        lo = max(lo, quantize_value(-1.0, scale, zero_point))
        hi = min(hi, quantize_value(1.0, scale, zero_point))
    elif activation not in ("NONE", None, 0):
        raise ValueError(f"fused activation {activation} is not supported for int8")
    return lo, hi


def input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """``CalculateInputRadius``."""
    max_input_rescaled = (1.0 * ((1 << integer_bits) - 1) * (1 << (total_signed_bits - integer_bits))
                          / (1 << left_shift))
    return int(math.floor(max_input_rescaled))


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) of the int8 softmax (``PreprocessSoftmaxScaling``)."""
    scaled_diff_integer_bits = 5
    real = min(f32(beta) * f32(input_scale) * (1 << (31 - scaled_diff_integer_bits)), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError("softmax input scale too small for the int8 kernel")
    diff_min = -1 * input_radius(scaled_diff_integer_bits, shift)
    return mult, shift, diff_min


def sigmoid_params(input_scale: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, input_range_radius) of int8 LOGISTIC and TANH in TFLM."""
    input_integer_bits = 4
    real = f32(input_scale) * float(1 << (31 - input_integer_bits))
    q, left_shift = math.frexp(real)
    mult = int(tflite_round(q * (1 << 31)))
    return mult, left_shift, input_radius(input_integer_bits, left_shift, 31)


def add_params(s1: float, s2: float, so: float) -> dict[str, int]:
    """ADD int8 rescaling: inputs to a common scale with 20 bits of headroom, then to the output."""
    left_shift = 20
    twice_max = 2 * max(f32(s1), f32(s2))
    m1, sh1 = quantize_multiplier(f32(s1) / twice_max)
    m2, sh2 = quantize_multiplier(f32(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * f32(so)))
    return {"left_shift": left_shift, "in1_mult": m1, "in1_shift": sh1, "in2_mult": m2, "in2_shift": sh2,
            "out_mult": mo, "out_shift": sho}


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum: input/output rescale with 1/count folded into the multiplier."""
    mult, shift = quantize_multiplier(f32(input_scale) / f32(output_scale))
    if count <= 0:
        return mult, shift
    s = 63 - _clz64(count)
    s = min(s, 32)
    s = min(s, 31 + shift)
    mult = int((mult << s) // count) if mult >= 0 else -int(((-mult) << s) // count)
    return wrap_int32(mult), shift - s


def _clz64(x: int) -> int:
    return 64 - x.bit_length()


# ---- gemmlowp / TFLite int32 arithmetic (C semantics: two's complement wrap, division toward zero) -------
def wrap_int32(x: int) -> int:
    """``x`` as a C int32 after overflow (two's complement).

    >>> wrap_int32(2**31), wrap_int32(-1)
    (-2147483648, -1)
    """
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= (1 << 31) else x


def srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values.

    >>> srdhm(1 << 30, 1 << 30), srdhm(-(2**31), -(2**31))
    (536870912, 2147483647)
    """
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    q = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return q >> 31 if q >= 0 else -((-q) >> 31)


def rdivpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, rounded half away from zero.

    >>> rdivpot(5, 1), rdivpot(-5, 1)
    (3, -3)
    """
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier (x an int32; a left shift wraps as in C on two's complement).

    >>> mbqm(1000, 1 << 30, -1)
    250
    """
    left, right = max(shift, 0), max(-shift, 0)
    return rdivpot(srdhm(wrap_int32(x << left), multiplier), right)


def sat_shl(x: int, exponent: int) -> int:
    """gemmlowp SaturatingShiftLeft (``ShiftLeft`` of a saturating fixed-point value).

    >>> sat_shl(3, 2), sat_shl(2**30, 2)
    (12, 2147483647)
    """
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return (1 << 31) - 1
    if x < -threshold:
        return -(1 << 31)
    return x << exponent


def fast_rq_params(mults: list[int], shifts: list[int], out_zp: int,
                   acc_bound: int) -> list[tuple[int, int, int]] | None:
    """tk_rq parameters {M, 2^(e-1) + (out_zp << e), e} per channel (runtime/aot/tk_fast.h), or None.

    >>> fast_rq_params([1 << 30 | 5, 0], [-3, 0], -128, 1000)
    [(1073741829, -1020, 3), (0, -255, 1)]
    >>> fast_rq_params([1 << 30], [2], 0, 1000) is None  # a left shift: the general kernels
    True
    """
    rows = []
    for m, s in zip(mults, shifts, strict=True):
        if m == 0:
            rows.append((0, 1 + 2 * out_zp, 1))
            continue
        e = -s
        if not (1 << 30) <= m < (1 << 31) or not 1 <= e <= 31:
            return None
        rnd = (1 << (e - 1)) + out_zp * (1 << e)
        if acc_bound + abs(rnd) >= 2**30:
            return None
        rows.append((m, rnd, e))
    return rows


# ---- parameters of the second set of ops (tk_ops2.c) --------------------------------------------------
def downscale_q15(mult: int) -> int:
    """TFLite's ``DownScaleInt32ToInt16Multiplier``.

    >>> downscale_q15(1 << 30)
    16384
    """
    if mult >= 2**31 - 1 - (1 << 15):
        return 32767
    return (mult + (1 << 15)) >> 16


def sub_params(s1: float, s2: float, so: float) -> dict[str, int]:
    """SUB int8 rescaling: as ADD, but TFLM's sub computes the multipliers in float32."""
    twice = np.float32(2) * max(np.float32(s1), np.float32(s2))
    m1, sh1 = quantize_multiplier(float(np.float32(s1) / twice))
    m2, sh2 = quantize_multiplier(float(np.float32(s2) / twice))
    mo, sho = quantize_multiplier(float(twice / (np.float32(1 << 20) * np.float32(so))))
    return {"left_shift": 20, "in1_mult": m1, "in1_shift": sh1, "in2_mult": m2, "in2_shift": sh2,
            "out_mult": mo, "out_shift": sho}


def squared_difference_params(s1: float, s2: float, so: float) -> dict[str, int]:
    """SQUARED_DIFFERENCE int8: inputs to a common scale (left shift 7), the squared difference to the output."""
    twice = 2.0 * float(max(np.float32(s1), np.float32(s2)))
    m1, sh1 = quantize_multiplier(float(np.float32(s1)) / twice)
    m2, sh2 = quantize_multiplier(float(np.float32(s2)) / twice)
    mo, sho = quantize_multiplier(twice * twice / float(np.float32(1 << 14) * np.float32(so)))
    return {"left_shift": 7, "in1_mult": m1, "in1_shift": sh1, "in2_mult": m2, "in2_shift": sh2,
            "out_mult": mo, "out_shift": sho}


def inv_sqrt_multiplier(value: int) -> tuple[int, int]:
    """TFLite's ``GetInvSqrtQuantizedMultiplierExp`` (reverse shift -1): Newton-Raphson in gemmlowp fixed point.

    >>> inv_sqrt_multiplier(4)
    (1073741828, 0)
    """
    if value <= 1:
        return (1 << 31) - 1, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    pairs = (32 - value.bit_length() - 1) // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    half_input = rdivpot(value >> 1, 1)
    x = 1 << 28  # F3 one
    for _ in range(5):
        x3 = sat_shl(srdhm(srdhm(x, x), x), 6)
        x = sat_shl(wrap_int32(srdhm((1 << 28) + (1 << 27), x) - srdhm(half_input, x3)), 3)
    x = srdhm(x, 1518500250)
    if shift < 0:
        x, shift = wrap_int32(x << -shift), 0
    return x, -shift


def rsqrt_table(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> list[int]:
    """Output of TFLM's int8 RSQRT for every input byte (index = input + 128); negative inputs (which TFLM
    rejects) give the same as zero.

    >>> rsqrt_table(1.0, 0, 1.0, 0)[128 + 4]
    1
    """
    mult, shift = quantize_multiplier(1.0 / float(np.sqrt(np.float32(in_scale)) * np.float32(out_scale)))
    table = []
    for q in range(-128, 128):
        value = q - in_zp
        if value <= 0:
            table.append(127)
            continue
        m, s = inv_sqrt_multiplier(value)
        data = mbqm(1, m, s + 20)
        table.append(min(127, max(-128, mbqm(data, mult, shift - 20) + out_zp)))
    return table
