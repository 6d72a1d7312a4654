/* tinykeras aot runtime: fixed-point arithmetic of the TFLite int8 quantization specification.
 *
 * Written to give the same integers as TFLite-Micro's reference kernels: requantization with
 * SaturatingRoundingDoublingHighMul followed by a rounding right shift (the "double rounding" path
 * TFLM builds by default), and the gemmlowp-style fixed-point exp / logistic / tanh used by the int8
 * SOFTMAX, LOGISTIC and TANH kernels. Every shift of a possibly negative value goes through unsigned
 * arithmetic so that the code stays free of undefined behaviour (it is tested under UBSan).
 */
#ifndef TK_FIXEDPOINT_H_
#define TK_FIXEDPOINT_H_

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#endif

#define TK_INT32_MIN ((int32_t)(-2147483647 - 1))
#define TK_INT32_MAX ((int32_t)2147483647)

static inline int32_t tk_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t tk_wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
static inline int32_t tk_wrap_shl(int32_t a, int n) { return (int32_t)((uint32_t)a << n); }

/* round(a * b / 2^31), saturating the single overflow case. */
static inline int32_t tk_srdhm(int32_t a, int32_t b) {
  if (a == TK_INT32_MIN && b == TK_INT32_MIN) return TK_INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
static inline int32_t tk_rdivpot(int32_t x, int exponent) {
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier: x * multiplier * 2^shift with TFLite's rounding. */
static inline int32_t tk_mbqm(int32_t x, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return tk_rdivpot(tk_srdhm(tk_wrap_shl(x, left), multiplier), right);
}

/* Saturating a + b for b > 0 (QADD on cores with the DSP extension). */
static inline int32_t tk_qadd_pos(int32_t a, int32_t b) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
  return __qadd(a, b);
#else
  const int64_t s = (int64_t)a + (int64_t)b;
  return s > TK_INT32_MAX ? TK_INT32_MAX : (int32_t)s;
#endif
}

/* Requantize an int32 accumulator to int8 with an output zero point and an activation range.
 *
 * Fast path for the usual case (multiplier > 0, right shift e in 1..23); the same integers as tk_mbqm:
 * - SaturatingRoundingDoublingHighMul never saturates for a positive multiplier, and TFLite's
 *   (ab + nudge) / 2^31 with truncation equals floor((ab + 2^30) / 2^31) for both signs of ab;
 * - RoundingDivideByPOT(v, e) equals (v + 2^(e-1) - (v < 0)) >> e. The addition saturates only when
 *   v > 2^31 - 2^(e-1); then both results exceed 2^(31-e) - 1 >= 255 and clamp to the same int8. */
static inline int8_t tk_requant(int32_t acc, int32_t multiplier, int shift, int32_t zp, int32_t lo, int32_t hi) {
  int32_t v;
  const int e = -shift;
  if (multiplier > 0 && (unsigned)(e - 1) < 23u) {
    const int32_t h = (int32_t)(((int64_t)acc * multiplier + ((int64_t)1 << 30)) >> 31);
    v = (tk_qadd_pos(h, (int32_t)1 << (e - 1)) - (int32_t)((uint32_t)h >> 31)) >> e;
  } else {
    v = tk_mbqm(acc, multiplier, shift);
  }
  v += zp;
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return (int8_t)v;
}

/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent (saturating left shift). */
static inline int32_t tk_sat_shl(int32_t x, int exponent) {
  const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
  if (x > threshold) return TK_INT32_MAX;
  if (x < -threshold) return TK_INT32_MIN;
  return tk_wrap_shl(x, exponent);
}

/* gemmlowp RoundingHalfSum. */
static inline int32_t tk_rhalfsum(int32_t a, int32_t b) {
  int64_t sum = (int64_t)a + (int64_t)b;
  int64_t sign = sum >= 0 ? 1 : -1;
  return (int32_t)((sum + sign) / 2);
}

/* exp(x) for x in [-1/4, 0), x and result with 0 integer bits. */
static inline int32_t tk_exp_quarter(int32_t a) {
  const int32_t constant_term = 1895147668;  /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883;
  int32_t x = tk_wrap_add(a, (int32_t)1 << 28);
  int32_t x2 = tk_srdhm(x, x);
  int32_t x3 = tk_srdhm(x2, x);
  int32_t x4 = tk_srdhm(x2, x2);
  int32_t x4_over_4 = tk_rdivpot(x4, 2);
  int32_t poly = tk_rdivpot(tk_wrap_add(tk_srdhm(tk_wrap_add(x4_over_4, x3), constant_1_over_3), x2), 1);
  return tk_wrap_add(constant_term, tk_srdhm(constant_term, tk_wrap_add(x, poly)));
}

/* exp(a) for a <= 0, a with `integer_bits` integer bits, result with 0 integer bits. */
static inline int32_t tk_exp_on_negative_values(int32_t a, int integer_bits) {
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  const int fractional_bits = 31 - integer_bits;
  const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_one_quarter = tk_wrap_sub(a & mask, one_quarter);
  /* Rescale to 0 integer bits: a saturating left shift by integer_bits. */
  int32_t result = tk_exp_quarter(integer_bits > 0 ? tk_sat_shl(a_mod_quarter_minus_one_quarter, integer_bits)
                                                   : a_mod_quarter_minus_one_quarter);
  const int32_t remainder = tk_wrap_sub(a_mod_quarter_minus_one_quarter, a);
  int e;
  for (e = -2; e <= 4; ++e) {
    if (integer_bits > e) {
      const int shift = fractional_bits + e;
      if (remainder & (int32_t)((uint32_t)1 << shift)) result = tk_srdhm(result, multipliers[e + 2]);
    }
  }
  if (integer_bits > 5) {
    const int32_t clamp = -((int32_t)1 << (36 - integer_bits));
    if (a < clamp) result = 0;
  }
  if (a == 0) result = TK_INT32_MAX;
  return result;
}

/* Newton-Raphson 1/(1+x) and (1-x)/(1+x) for x in [0, 1), 0 integer bits in and out. */
static inline int32_t tk_nr_reciprocal_f2(int32_t half_denominator) {
  const int32_t c48_17 = 1515870810, cneg32_17 = -1010580540; /* F2: 48/17 and -32/17 */
  const int32_t f2_one = (int32_t)1 << 29;
  int32_t x = tk_wrap_add(c48_17, tk_srdhm(half_denominator, cneg32_17));
  int i;
  for (i = 0; i < 3; i++) {
    int32_t half_denominator_times_x = tk_srdhm(half_denominator, x);        /* F0 * F2 = F2 */
    int32_t one_minus = tk_wrap_sub(f2_one, half_denominator_times_x);
    x = tk_wrap_add(x, tk_sat_shl(tk_srdhm(x, one_minus), 2));            /* F4 -> F2 */
  }
  return x;
}

static inline int32_t tk_one_over_one_plus_x(int32_t a) {
  int32_t x = tk_nr_reciprocal_f2(tk_rhalfsum(a, TK_INT32_MAX));
  return tk_sat_shl(x, 1); /* ExactMulByPot<-1> relabels F2 as F1 (same raw); then F1 -> F0 */
}

static inline int32_t tk_one_minus_x_over_one_plus_x(int32_t a) {
  int32_t x = tk_nr_reciprocal_f2(tk_rhalfsum(a, TK_INT32_MAX));
  return tk_sat_shl(tk_wrap_sub(x, (int32_t)1 << 29), 2);
}

/* gemmlowp logistic / tanh for inputs with `integer_bits` integer bits; results with 0 integer bits. */
static inline int32_t tk_fp_logistic(int32_t a, int integer_bits) {
  if (a == 0) return (int32_t)1 << 30;
  int32_t abs_a = a > 0 ? a : tk_wrap_sub(0, a);
  int32_t positive = tk_one_over_one_plus_x(tk_exp_on_negative_values(tk_wrap_sub(0, abs_a), integer_bits));
  return a > 0 ? positive : tk_wrap_sub(TK_INT32_MAX, positive);
}

static inline int32_t tk_fp_tanh(int32_t a, int integer_bits) {
  if (a == 0) return 0;
  int32_t n = a < 0 ? a : tk_wrap_sub(0, a);
  /* ExactMulByPot<1> keeps the raw value and adds one integer bit. */
  int32_t t = tk_one_minus_x_over_one_plus_x(tk_exp_on_negative_values(n, integer_bits + 1));
  return a < 0 ? tk_wrap_sub(0, t) : t;
}

#endif /* TK_FIXEDPOINT_H_ */
