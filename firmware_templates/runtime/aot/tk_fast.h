/* tinykeras aot runtime: specialised int8 kernels, inlined into per-layer functions of tk_model.c.
 *
 * The generator (tinykeras/aot/generator.py, "fast paths") emits one small function per CONV_2D,
 * DEPTHWISE_CONV_2D and FULLY_CONNECTED layer that calls these always-inline kernels with the layer's
 * shapes as literal constants, so the compiler unrolls and folds them per layer. Every fast path gives
 * the integers of TFLM's reference kernels; the generator checks the conditions that make that true:
 *
 * - Requantization (tk_rq): TFLM's SaturatingRoundingDoublingHighMul(acc, M) for M > 0 equals
 *   h = floor((acc * M + 2^30) / 2^31) = floor((2 acc * M + 2^31) / 2^32), SMMULR(2 acc, M) on the
 *   Cortex-M4, when |acc| < 2^30. RoundingDivideByPOT(h, e) for e >= 1 is (h + 2^(e-1) - (h < 0)) >> e,
 *   and adding the output zero point after the shift equals adding zp << e before it. For M in
 *   [2^30, 2^31), h < 0 exactly when acc < 0, except acc = -1 with M = 2^30, where h = 0 and both forms give
 *   zp. So out = (SMMLAR(2 acc, M, rnd) - (acc < 0)) >> e with rnd = 2^(e-1) + (zp << e): four instructions. The generator stores {M, rnd, e} per channel (tk_rq_param; a zero
 *   multiplier is {0, 1 + 2 zp, 1}) and checks |acc| + |rnd| < 2^30 from the weights and biases.
 * - Convolution and fully connected: bias_adj = bias - in_zp * sum(w), so padded im2col taps hold in_zp
 *   (as TFLM skipping them). Weight rows are pair-interleaved (generator.pair_interleave); blocks of
 *   2 output channels x 2 pixels (conv) or 4 output channels x 1 input (fully connected).
 * - Depthwise 3x3 (depth multiplier 1, channels % 4 == 0): weights sign-extended at generation into
 *   the SXTB16 lane order, 4 channels x 9 taps per block; interior pixels add bias_adj = bias - in_zp *
 *   sum(w) to plain products, border pixels subtract in_zp from the valid taps only (TFLM's skipping).
 *
 * On DSP cores without Helium (Cortex-M4/M7/M33) convolutions given `wide` scratch extend each pair of columns
 * to int16 once (tk_widen2) and run 15 instructions per 2 rows x 2 columns x 4 depth values (tk_gemm_wide).
 * On cores with Helium (MVE: Cortex-M55) the dot products of conv and fully connected layers run 16 depth
 * values per VMLADAVA, the weight rows gathered out of the pair-interleaved layout (VLDRB gather); the DSP
 * paths finish what is left. On cores without the DSP extension (Cortex-M0+/M3, hosts) the same functions run
 * portable C that computes the same integers.
 */
#ifndef TK_FAST_H_
#define TK_FAST_H_

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TK_FAST_DSP 1
#else
#define TK_FAST_DSP 0
#endif

/* Helium (M-profile Vector Extension, integer: Cortex-M55/M85): the dot products of conv and fully connected
 * layers take 16 depth values per vector instruction, the last < 16 in one tail-predicated step. */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
#define TK_FAST_MVE 1
#else
#define TK_FAST_MVE 0
#endif

/* tk_model.c states the GEMM weight layout it was generated in: Helium row blocks for MVE cores, pair-interleaved
 * rows elsewhere; it must be the one this compile's kernels read. */
#if defined(TK_WEIGHTS_HELIUM) && TK_WEIGHTS_HELIUM != TK_FAST_MVE
#error "tk_model.c was generated for another core (Helium or not): regenerate it for this board"
#endif

/* The hand-scheduled DSP loops take up to 14 registers (r0-r12, lr): r7 must not be held as a frame pointer, so
 * the functions of this translation unit (the kernels and the generated tk_model.c that includes them, the same
 * options on both sides of every inlining) omit it even in a build with -fno-omit-frame-pointer. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__) && defined(__ARM_ARCH)
#pragma GCC optimize("omit-frame-pointer")
#endif

#if defined(__GNUC__)
#define TK_FAST_INLINE static inline __attribute__((always_inline))
#else
#define TK_FAST_INLINE static inline
#endif

#if TK_FAST_MVE
/* Byte offsets that gather one row of 16 weights out of 32 pair-interleaved bytes (4 of row 0, 4 of row 1,
 * ...): i + (i & ~3) = {0..3, 8..11, 16..19, 24..27} for row 0; row 1 at these + 4. */
TK_FAST_INLINE uint8x16_t tk_mve_row_offsets(void) {
  const uint8x16_t i = vidupq_n_u8(0, 1);
  return vaddq_u8(i, vandq_u8(i, vdupq_n_u8(0xFC)));
}
#endif

typedef struct {
  int32_t mult; /* Q31 multiplier: 0, or in [2^30, 2^31) */
  int32_t rnd;  /* 2^(e-1) + (output zero point << e) */
  int32_t e;    /* right shift, 1..31 */
} tk_rq_param;

TK_FAST_INLINE uint32_t tk_ld32(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

#if TK_FAST_DSP
TK_FAST_INLINE int32_t tk_sxtb16r8(uint32_t v) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
TK_FAST_INLINE int32_t tk_smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#endif

/* acc -> int8 with the layer's activation range; q->rnd = 2^(e-1) + (out_zp << e) folds the output zero
 * point into the rounding (see the header comment). */
TK_FAST_INLINE int8_t tk_rq(int32_t acc, const tk_rq_param *q, int32_t lo, int32_t hi) {
#if TK_FAST_DSP
  const int32_t t = (int32_t)((uint32_t)acc << 1);
  int32_t h;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(h) : "r"(t), "r"(q->mult), "r"(q->rnd));
  int32_t v = (h - (int32_t)((uint32_t)t >> 31)) >> q->e;
  v = __ssat(v, 8);
  if (lo > -128) v = v < lo ? lo : v;
  if (hi < 127) v = v > hi ? hi : v;
#else
  const int32_t h = (int32_t)(((int64_t)acc * q->mult + ((int64_t)1 << 30)) >> 31);
  int32_t v = (h + q->rnd - (int32_t)((uint32_t)acc >> 31)) >> q->e;
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
#endif
  return (int8_t)v;
}

#if TK_FAST_MVE
/* tk_rq on four accumulators with Helium: VQRDMULH(acc, M) is SMMULR(2 acc, M) (no saturation: |acc| < 2^30),
 * then + rnd, - (acc < 0), an arithmetic shift right by e (shift by neg_e = -e), the activation range where it
 * is narrower than int8 (VMAX/VMIN), then int8 by two in-place saturating narrows: each lane's low byte is the
 * result. Few Q registers live at once. */
TK_FAST_INLINE int32x4_t tk_rq_vec(const int32x4_t acc, const int32x4_t m, const int32x4_t rnd,
                                   const int32x4_t neg_e, const int32_t lo, const int32_t hi) {
  int32x4_t h = vaddq_s32(vqrdmulhq_s32(acc, m), rnd);
  h = vsubq_s32(h, vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(acc), 31)));
  h = vshlq_s32(h, neg_e);
  if (lo > -128) h = vmaxq_s32(h, vdupq_n_s32(lo));
  if (hi < 127) h = vminq_s32(h, vdupq_n_s32(hi));
  __asm__("vqmovnb.s32 %q0, %q0\n\tvqmovnb.s16 %q0, %q0" : "+w"(h));
  return h;
}

/* tk_rq_vec with each lane's parameters gathered at byte offsets qoff (12 per channel) from q; the int8 results
 * scattered to o + ooff. */
TK_FAST_INLINE void tk_rq_mve(const int32x4_t acc, const tk_rq_param *q, const uint32x4_t qoff, const int32_t lo,
                              const int32_t hi, int8_t *o, const uint32x4_t ooff) {
  const int32x4_t m = vldrwq_gather_offset_s32(&q->mult, qoff), rnd = vldrwq_gather_offset_s32(&q->rnd, qoff);
  vstrbq_scatter_offset_s32(o, ooff, tk_rq_vec(acc, m, rnd, vnegq_s32(vldrwq_gather_offset_s32(&q->e, qoff)), lo, hi));
}
#endif

#if TK_FAST_DSP
/* The 2 rows x 2 columns x 4 depth values step of the SMLAD loops (asm text): weight words w0 (row 0) and w1
 * (row 1) extended with SXTB16 into t, against the columns' halves XA (depth 0 and 2) and XB (1 and 3) of
 * column 0 and column 1; accumulators a00, a10 (column 0) and a01, a11 (column 1). */
#define TK_SMLAD22(XA0, XB0, XA1, XB1)            \
  "sxtb16 %[t], %[w0]\n\t"                        \
  "smlad  %[a00], %[" #XA0 "], %[t], %[a00]\n\t" \
  "smlad  %[a01], %[" #XA1 "], %[t], %[a01]\n\t" \
  "sxtb16 %[t], %[w0], ror #8\n\t"                \
  "smlad  %[a00], %[" #XB0 "], %[t], %[a00]\n\t" \
  "smlad  %[a01], %[" #XB1 "], %[t], %[a01]\n\t" \
  "sxtb16 %[t], %[w1]\n\t"                        \
  "smlad  %[a10], %[" #XA0 "], %[t], %[a10]\n\t" \
  "smlad  %[a11], %[" #XA1 "], %[t], %[a11]\n\t" \
  "sxtb16 %[t], %[w1], ror #8\n\t"                \
  "smlad  %[a10], %[" #XB0 "], %[t], %[a10]\n\t" \
  "smlad  %[a11], %[" #XB1 "], %[t], %[a11]\n\t"
#endif

#if TK_FAST_DSP
/* Two weight rows' words w0, w1 (4 depth values each, extended with SXTB16 into t) against one column's halves
 * xa (depth 0 and 2) and xb (1 and 3), into sums A and B. */
#define TK_SMLAD_ROWS2(A, B)                              \
  "sxtb16 %[t], %[w0]\n\t"                               \
  "smlad  %[" #A "], %[xa], %[t], %[" #A "]\n\t"         \
  "sxtb16 %[t], %[w0], ror #8\n\t"                       \
  "smlad  %[" #A "], %[xb], %[t], %[" #A "]\n\t"         \
  "sxtb16 %[t], %[w1]\n\t"                               \
  "smlad  %[" #B "], %[xa], %[t], %[" #B "]\n\t"         \
  "sxtb16 %[t], %[w1], ror #8\n\t"                       \
  "smlad  %[" #B "], %[xb], %[t], %[" #B "]\n\t"
/* Four rows (pairs at wa, wb; the first pair's words already in w0, w1) x one column: sums a0..a3. */
#define TK_SMLAD_ROWS4 TK_SMLAD_ROWS2(a0, a1) "ldrd   %[w0], %[w1], [%[wb]], #8\n\t" TK_SMLAD_ROWS2(a2, a3)
#endif

/* Two pair-interleaved weight rows (w) against two columns: a[0..3] += r0.c0, r1.c0, r0.c1, r1.c1. */
TK_FAST_INLINE void tk_dot2x2(const int8_t *w, const int8_t *c0, const int8_t *c1, const int depth, int32_t *a) {
  const int k4 = depth & ~3;
  int32_t a00 = a[0], a10 = a[1], a01 = a[2], a11 = a[3];
  int k;
#if TK_FAST_DSP
  const int8_t *const end = c0 + k4;
#if TK_FAST_MVE
  {
    /* 16 depth values per step: rows 0 and 1 gathered out of 32 interleaved weight bytes, columns loaded
     * whole; VMLADAVA sums the 16 products into the 32-bit accumulator (the same integers, any order). */
    const uint8x16_t off0 = tk_mve_row_offsets(), off1 = vaddq_n_u8(off0, 4);
    const int8_t *const end16 = c0 + (depth & ~15);
    while (c0 != end16) {
      const int8x16_t r0 = vldrbq_gather_offset_s8(w, off0), r1 = vldrbq_gather_offset_s8(w, off1);
      const int8x16_t x0 = vld1q_s8(c0), x1 = vld1q_s8(c1);
      a00 = vmladavaq_s8(a00, r0, x0);
      a10 = vmladavaq_s8(a10, r1, x0);
      a01 = vmladavaq_s8(a01, r0, x1);
      a11 = vmladavaq_s8(a11, r1, x1);
      c0 += 16;
      c1 += 16;
      w += 32;
    }
    if (c0 != end) { /* the whole 4-groups left: one predicated step (lanes past them neither load nor add) */
      const int left = (int)(end - c0);
      const mve_pred16_t p = vctp8q((uint32_t)left);
      const int8x16_t r0 = vldrbq_gather_offset_z_s8(w, off0, p), r1 = vldrbq_gather_offset_z_s8(w, off1, p);
      const int8x16_t x0 = vld1q_z_s8(c0, p), x1 = vld1q_z_s8(c1, p);
      a00 = vmladavaq_s8(a00, r0, x0);
      a10 = vmladavaq_s8(a10, r1, x0);
      a01 = vmladavaq_s8(a01, r0, x1);
      a11 = vmladavaq_s8(a11, r1, x1);
      c0 += left;
      c1 += left;
      w += 2 * left;
    }
  }
#elif defined(__OPTIMIZE__) /* the asm takes `depth` as an immediate: a constant once inlined */
  if ((depth & 7) == 0 && k4 > 0 && depth <= 4095 && c1 == c0 + depth) {
    /* hand-scheduled, two blocks of 4 per iteration; column 1 read at the constant offset `depth` */
    int32_t x0a, x0b, x1a, x1b, w0, w1, t;
#define TK_B22                                                  \
  "ldr    %[x1a], [%[c0], #%c[d]]\n\t"                          \
  "ldr    %[x0a], [%[c0]], #4\n\t"                              \
  "ldrd   %[w0], %[w1], [%[w]], #8\n\t"                         \
  "sxtb16 %[x0b], %[x0a], ror #8\n\t"                           \
  "sxtb16 %[x0a], %[x0a]\n\t"                                   \
  "sxtb16 %[x1b], %[x1a], ror #8\n\t"                           \
  "sxtb16 %[x1a], %[x1a]\n\t"                                   \
  TK_SMLAD22(x0a, x0b, x1a, x1b)
    __asm__ volatile(
        "1:\n\t" TK_B22 TK_B22
        "cmp    %[c0], %[end]\n\t"
        "bne    1b\n\t"
        : [a00] "+r"(a00), [a10] "+r"(a10), [a01] "+r"(a01), [a11] "+r"(a11), [c0] "+r"(c0), [w] "+r"(w),
          [x0a] "=&r"(x0a), [x0b] "=&r"(x0b), [x1a] "=&r"(x1a), [x1b] "=&r"(x1b), [w0] "=&r"(w0), [w1] "=&r"(w1),
          [t] "=&r"(t)
        : [end] "r"(end), [d] "i"(depth)
        : "cc", "memory");
#undef TK_B22
    c1 += k4;
  }
#endif
  while (c0 != end) {
    const uint32_t x0 = tk_ld32(c0), x1 = tk_ld32(c1), v0 = tk_ld32(w), v1 = tk_ld32(w + 4);
    const int32_t x0a = __sxtb16(x0), x0b = tk_sxtb16r8(x0), x1a = __sxtb16(x1), x1b = tk_sxtb16r8(x1);
    int32_t wa = __sxtb16(v0), wb = tk_sxtb16r8(v0);
    a00 = __smlad(x0a, wa, a00);
    a00 = __smlad(x0b, wb, a00);
    a01 = __smlad(x1a, wa, a01);
    a01 = __smlad(x1b, wb, a01);
    wa = __sxtb16(v1);
    wb = tk_sxtb16r8(v1);
    a10 = __smlad(x0a, wa, a10);
    a10 = __smlad(x0b, wb, a10);
    a11 = __smlad(x1a, wa, a11);
    a11 = __smlad(x1b, wb, a11);
    c0 += 4;
    c1 += 4;
    w += 8;
  }
  c0 -= k4;
  c1 -= k4;
#else
  for (k = 0; k < k4; k += 4, w += 8) {
    int j;
    for (j = 0; j < 4; ++j) {
      const int32_t x0 = c0[k + j], x1 = c1[k + j], v0 = w[j], v1 = w[4 + j];
      a00 += x0 * v0;
      a10 += x0 * v1;
      a01 += x1 * v0;
      a11 += x1 * v1;
    }
  }
#endif
  for (k = k4; k < depth; ++k) {
    const int32_t v0 = w[k - k4], v1 = w[depth - k4 + k - k4];
    a00 += c0[k] * v0;
    a10 += c0[k] * v1;
    a01 += c1[k] * v0;
    a11 += c1[k] * v1;
  }
  a[0] = a00;
  a[1] = a10;
  a[2] = a01;
  a[3] = a11;
}

/* Four rows (two interleaved pairs wa, wb) against one column: a[0..3] += rows . c0. */
TK_FAST_INLINE void tk_dot4x1(const int8_t *wa, const int8_t *wb, const int8_t *c0, const int depth, int32_t *a) {
  const int k4 = depth & ~3;
  int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
  int k;
#if TK_FAST_DSP
  const int8_t *const end = c0 + k4;
#if defined(__OPTIMIZE__) /* 13 register operands (the frame pointer is omitted: top of this file) */
  if ((depth & 7) == 0 && k4 > 0) { /* hand-scheduled: two blocks of 4 per iteration, no spills */
    int32_t xa, xb, w0, w1, t;
#define TK_Q4                                   \
  "ldr    %[xa], [%[c0]], #4\n\t"               \
  "ldrd   %[w0], %[w1], [%[wa]], #8\n\t"        \
  "sxtb16 %[xb], %[xa], ror #8\n\t"             \
  "sxtb16 %[xa], %[xa]\n\t" TK_SMLAD_ROWS4
#define TK_Q4_OPERANDS                                                                                       \
  : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [c0] "+r"(c0), [wa] "+r"(wa), [wb] "+r"(wb), \
    [xa] "=&r"(xa), [xb] "=&r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t)                              \
  : [end] "r"(end)                                                                                           \
  : "cc", "memory"
    if ((depth & 15) == 0) { /* four blocks per iteration */
      __asm__ volatile("1:\n\t" TK_Q4 TK_Q4 TK_Q4 TK_Q4
                       "cmp    %[c0], %[end]\n\t"
                       "bne    1b\n\t" TK_Q4_OPERANDS);
    } else {
      __asm__ volatile("1:\n\t" TK_Q4 TK_Q4
                       "cmp    %[c0], %[end]\n\t"
                       "bne    1b\n\t" TK_Q4_OPERANDS);
    }
#undef TK_Q4_OPERANDS
#undef TK_Q4
  }
#endif
  while (c0 != end) {
    const uint32_t x = tk_ld32(c0);
    const int32_t xa = __sxtb16(x), xb = tk_sxtb16r8(x);
    uint32_t v = tk_ld32(wa);
    a0 = __smlad(xa, __sxtb16(v), a0);
    a0 = __smlad(xb, tk_sxtb16r8(v), a0);
    v = tk_ld32(wa + 4);
    a1 = __smlad(xa, __sxtb16(v), a1);
    a1 = __smlad(xb, tk_sxtb16r8(v), a1);
    v = tk_ld32(wb);
    a2 = __smlad(xa, __sxtb16(v), a2);
    a2 = __smlad(xb, tk_sxtb16r8(v), a2);
    v = tk_ld32(wb + 4);
    a3 = __smlad(xa, __sxtb16(v), a3);
    a3 = __smlad(xb, tk_sxtb16r8(v), a3);
    c0 += 4;
    wa += 8;
    wb += 8;
  }
  c0 -= k4;
#else
  for (k = 0; k < k4; k += 4, wa += 8, wb += 8) {
    int j;
    for (j = 0; j < 4; ++j) {
      const int32_t x = c0[k + j];
      a0 += x * wa[j];
      a1 += x * wa[4 + j];
      a2 += x * wb[j];
      a3 += x * wb[4 + j];
    }
  }
#endif
  for (k = k4; k < depth; ++k) {
    const int32_t x = c0[k];
    a0 += x * wa[k - k4];
    a1 += x * wa[depth - k4 + k - k4];
    a2 += x * wb[k - k4];
    a3 += x * wb[depth - k4 + k - k4];
  }
  a[0] = a0;
  a[1] = a1;
  a[2] = a2;
  a[3] = a3;
}

#if TK_FAST_MVE
/* Helium GEMM: rows in groups of 4 whose weights (the generator's helium_row_blocks) hold 16-value chunks row by
 * row ([r0 k..k+16][r1 ..][r2 ..][r3 ..], then each row's depth % 16 leftovers): every load is contiguous.
 * tk_dot4_mve: the four rows of group w against column c0 and, unless c1 == 0, column c1: VMLADAVA sums 16
 * products into a 32-bit accumulator; the leftovers in one predicated step. v0, v1 = bias[0..3] + the sums. */
TK_FAST_INLINE void tk_dot4_mve(const int8_t *w, const int8_t *c0, const int8_t *c1, const int depth,
                                const int32_t *bias, int32x4_t *v0, int32x4_t *v1) {
  const int8_t *const end16 = c0 + (depth & ~15);
  const int left = depth & 15;
  int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3], b0 = a0, b1 = a1, b2 = a2, b3 = a3;
  if (c1 == 0) {
    while (c0 != end16) {
      const int8x16_t x = vld1q_s8(c0);
      a0 = vmladavaq_s8(a0, vld1q_s8(w), x);
      a1 = vmladavaq_s8(a1, vld1q_s8(w + 16), x);
      a2 = vmladavaq_s8(a2, vld1q_s8(w + 32), x);
      a3 = vmladavaq_s8(a3, vld1q_s8(w + 48), x);
      c0 += 16;
      w += 64;
    }
    if (left) {
      const mve_pred16_t p = vctp8q((uint32_t)left);
      const int8x16_t x = vld1q_z_s8(c0, p);
      a0 = vmladavaq_s8(a0, vld1q_z_s8(w, p), x);
      a1 = vmladavaq_s8(a1, vld1q_z_s8(w + left, p), x);
      a2 = vmladavaq_s8(a2, vld1q_z_s8(w + 2 * left, p), x);
      a3 = vmladavaq_s8(a3, vld1q_z_s8(w + 3 * left, p), x);
    }
    *v0 = vsetq_lane_s32(a3, vsetq_lane_s32(a2, vsetq_lane_s32(a1, vdupq_n_s32(a0), 1), 2), 3);
    *v1 = *v0;
    return;
  }
#if defined(__OPTIMIZE__) /* the eight sums in even core registers ("Te"); GCC's own loop spills */
  if (c0 != end16) {
    const int8_t *end = end16; /* in-out: a plain input may share c1's register when both hold c0 + depth */
    /* q0: column 0, q1: column 1, q2: a weight row */
#define TK_ROW4X2(A, B)                              \
  "vldrb.8     q2, [%[w]], #16\n\t"               \
  "vmladava.s8 %[" #A "], q2, q0\n\t"              \
  "vmladava.s8 %[" #B "], q2, q1\n\t"
    __asm__ volatile(
        "1:\n\t"
        "vldrb.8     q0, [%[c0]], #16\n\t"
        "vldrb.8     q1, [%[c1]], #16\n\t"
        TK_ROW4X2(a0, b0) TK_ROW4X2(a1, b1) TK_ROW4X2(a2, b2) TK_ROW4X2(a3, b3)
        "cmp         %[c0], %[end]\n\t"
        "bne         1b\n\t"
        : [a0] "+Te"(a0), [a1] "+Te"(a1), [a2] "+Te"(a2), [a3] "+Te"(a3), [b0] "+Te"(b0), [b1] "+Te"(b1),
          [b2] "+Te"(b2), [b3] "+Te"(b3), [c0] "+r"(c0), [c1] "+r"(c1), [w] "+r"(w), [end] "+r"(end)
        :
        : "cc", "memory", "q0", "q1", "q2");
#undef TK_ROW4X2
  }
#endif
  while (c0 != end16) {
    const int8x16_t x0 = vld1q_s8(c0), x1 = vld1q_s8(c1);
    int8x16_t r = vld1q_s8(w);
    a0 = vmladavaq_s8(a0, r, x0);
    b0 = vmladavaq_s8(b0, r, x1);
    r = vld1q_s8(w + 16);
    a1 = vmladavaq_s8(a1, r, x0);
    b1 = vmladavaq_s8(b1, r, x1);
    r = vld1q_s8(w + 32);
    a2 = vmladavaq_s8(a2, r, x0);
    b2 = vmladavaq_s8(b2, r, x1);
    r = vld1q_s8(w + 48);
    a3 = vmladavaq_s8(a3, r, x0);
    b3 = vmladavaq_s8(b3, r, x1);
    c0 += 16;
    c1 += 16;
    w += 64;
  }
  if (left) {
    const mve_pred16_t p = vctp8q((uint32_t)left);
    const int8x16_t x0 = vld1q_z_s8(c0, p), x1 = vld1q_z_s8(c1, p);
    int8x16_t r = vld1q_z_s8(w, p);
    a0 = vmladavaq_s8(a0, r, x0);
    b0 = vmladavaq_s8(b0, r, x1);
    r = vld1q_z_s8(w + left, p);
    a1 = vmladavaq_s8(a1, r, x0);
    b1 = vmladavaq_s8(b1, r, x1);
    r = vld1q_z_s8(w + 2 * left, p);
    a2 = vmladavaq_s8(a2, r, x0);
    b2 = vmladavaq_s8(b2, r, x1);
    r = vld1q_z_s8(w + 3 * left, p);
    a3 = vmladavaq_s8(a3, r, x0);
    b3 = vmladavaq_s8(b3, r, x1);
  }
  *v0 = vsetq_lane_s32(a3, vsetq_lane_s32(a2, vsetq_lane_s32(a1, vdupq_n_s32(a0), 1), 2), 3);
  *v1 = vsetq_lane_s32(b3, vsetq_lane_s32(b2, vsetq_lane_s32(b1, vdupq_n_s32(b0), 1), 2), 3);
}

#if defined(__OPTIMIZE__)
/* All groups of 4 rows against columns c0 and c0 + depth in one asm block (depth % 16 == 0, 16..1024, a
 * compile-time constant): per group the depth blocks unrolled (.rept: no loop counter, so the eight sums, the
 * two column pointers, the weight pointer and a state pointer are all the core registers it takes), the
 * first block with VMLADAV (no sums to clear), then the sums moved into two vectors, bias and requantization
 * (helium_rq_blocks vectors), clamp where the activation is narrower than int8, two saturating narrows and
 * contiguous stores (VSTRB.32 takes a low base register: the column pointers, "l", free by then). Bias,
 * parameter and output pointers, the groups left, the first column and the clamp bounds live in st[]. */
#define TK_G4_FIRST(OP)                                         \
  "vldrb.8     q0, [%[c0]], #16\n\t"                            \
  "vldrb.8     q1, [%[c1]], #16\n\t"                            \
  "vldrb.8     q2, [%[w]], #16\n\t" OP " %[a0], q2, q0\n\t" OP " %[b0], q2, q1\n\t" \
  "vldrb.8     q2, [%[w]], #16\n\t" OP " %[a1], q2, q0\n\t" OP " %[b1], q2, q1\n\t" \
  "vldrb.8     q2, [%[w]], #16\n\t" OP " %[a2], q2, q0\n\t" OP " %[b2], q2, q1\n\t" \
  "vldrb.8     q2, [%[w]], #16\n\t" OP " %[a3], q2, q0\n\t" OP " %[b3], q2, q1\n\t"
#define TK_G4_HEAD                                              \
  "1:\n\t"                                                      \
  "ldr         %[c0], [%[st], #20]\n\t"                         \
  "add         %[c1], %[c0], %[d]\n\t"                          \
  TK_G4_FIRST("vmladav.s8")                                     \
  ".rept %c[n]\n\t" TK_G4_FIRST("vmladava.s8") ".endr\n\t"       \
  "vmov.32     q3[0], %[a0]\n\tvmov.32     q3[1], %[a1]\n\t"     \
  "vmov.32     q3[2], %[a2]\n\tvmov.32     q3[3], %[a3]\n\t"     \
  "vmov.32     q4[0], %[b0]\n\tvmov.32     q4[1], %[b1]\n\t"     \
  "vmov.32     q4[2], %[b2]\n\tvmov.32     q4[3], %[b3]\n\t"     \
  "ldr         %[a0], [%[st]]\n\t"                              \
  "vldrw.32    q5, [%[a0]], #16\n\t"                            \
  "str         %[a0], [%[st]]\n\t"                              \
  "vadd.i32    q3, q3, q5\n\tvadd.i32    q4, q4, q5\n\t"         \
  "ldr         %[a0], [%[st], #4]\n\t"                          \
  "vldrw.32    q5, [%[a0]], #16\n\t"                            \
  "vshr.u32    q6, q3, #31\n\tvshr.u32    q7, q4, #31\n\t"       \
  "vqrdmulh.s32 q3, q3, q5\n\tvqrdmulh.s32 q4, q4, q5\n\t"      \
  "vldrw.32    q5, [%[a0]], #16\n\t"                            \
  "vadd.i32    q3, q3, q5\n\tvadd.i32    q4, q4, q5\n\t"         \
  "vsub.i32    q3, q3, q6\n\tvsub.i32    q4, q4, q7\n\t"         \
  "vldrw.32    q5, [%[a0]], #16\n\t"                            \
  "str         %[a0], [%[st], #4]\n\t"                          \
  "vshl.s32    q3, q3, q5\n\tvshl.s32    q4, q4, q5\n\t"
#define TK_G4_CLAMP                                             \
  "ldrd        %[a0], %[a1], [%[st], #24]\n\t"                  \
  "vdup.32     q5, %[a0]\n\t"                                   \
  "vmax.s32    q3, q3, q5\n\tvmax.s32    q4, q4, q5\n\t"         \
  "vdup.32     q5, %[a1]\n\t"                                   \
  "vmin.s32    q3, q3, q5\n\tvmin.s32    q4, q4, q5\n\t"
#define TK_G4_TAIL                                              \
  "vqmovnb.s32 q3, q3\n\tvqmovnb.s16 q3, q3\n\t"                \
  "vqmovnb.s32 q4, q4\n\tvqmovnb.s16 q4, q4\n\t"                \
  "ldrd        %[c0], %[c1], [%[st], #8]\n\t"                   \
  "vstrb.32    q3, [%[c0]], #4\n\t"                             \
  "vstrb.32    q4, [%[c1]], #4\n\t"                             \
  "strd        %[c0], %[c1], [%[st], #8]\n\t"                   \
  "ldr         %[a0], [%[st], #16]\n\t"                         \
  "subs        %[a0], %[a0], #1\n\t"                            \
  "str         %[a0], [%[st], #16]\n\t"                         \
  "bne         1b\n\t"
#define TK_G4_OPERANDS                                                                                     \
  : [a0] "=&Te"(a0), [a1] "=&Te"(a1), [a2] "=&Te"(a2), [a3] "=&Te"(a3), [b0] "=&Te"(b0), [b1] "=&Te"(b1), \
    [b2] "=&Te"(b2), [b3] "=&Te"(b3), [c0] "=&l"(x0), [c1] "=&l"(x1), [w] "+r"(w)                        \
  : [st] "r"(st), [d] "i"(depth), [n] "i"(depth / 16 - 1)                                                   \
  : "cc", "memory", "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7"
TK_FAST_INLINE int tk_gemm4x2_asm(const int8_t *w, const int rows, const int depth, const int8_t *c0,
                                  const int32_t *bias, const tk_rq_param *rq, const int32_t lo, const int32_t hi,
                                  int8_t *o0, int8_t *o1) {
  int32_t st[8];
  int32_t a0, a1, a2, a3, b0, b1, b2, b3;
  const int8_t *x0, *x1;
  st[0] = (int32_t)(intptr_t)bias;
  st[1] = (int32_t)(intptr_t)rq;
  st[2] = (int32_t)(intptr_t)o0;
  st[3] = (int32_t)(intptr_t)o1;
  st[4] = rows / 4;
  st[5] = (int32_t)(intptr_t)c0;
  st[6] = lo;
  st[7] = hi;
  if (lo > -128 || hi < 127) {
    __asm__ volatile(TK_G4_HEAD TK_G4_CLAMP TK_G4_TAIL TK_G4_OPERANDS);
  } else {
    __asm__ volatile(TK_G4_HEAD TK_G4_TAIL TK_G4_OPERANDS);
  }
  (void)a0; (void)a1; (void)a2; (void)a3; (void)b0; (void)b1; (void)b2; (void)b3; (void)x0; (void)x1;
  return rows / 4 * 4;
}
#undef TK_G4_FIRST
#undef TK_G4_HEAD
#undef TK_G4_CLAMP
#undef TK_G4_TAIL
#undef TK_G4_OPERANDS
#define TK_G4_ASM(depth, c0, c1) \
  (__builtin_constant_p(depth) && (depth) % 16 == 0 && (depth) >= 16 && (depth) <= 1024 && (c1) == (c0) + (depth))
#else
#define TK_G4_ASM(depth, c0, c1) 0
#endif

/* The rows of tk_gemm_cols in groups of 4 with Helium (tk_dot4_mve), the four outputs of a column requantized
 * as one vector and stored whole: each group's 4 tk_rq_param hold its multipliers, rounding constants and
 * negated shifts as three vectors (the generator's helium_rq_blocks). Returns the rows done (a multiple of 4). */
TK_FAST_INLINE int tk_gemm4_mve(const int8_t *w, const int rows, const int depth, const int8_t *c0,
                                const int8_t *c1, const int32_t *bias, const tk_rq_param *rq, const int32_t lo,
                                const int32_t hi, int8_t *o0, int8_t *o1) {
  int r = 0;
#if defined(__OPTIMIZE__)
  if (rows >= 4 && c1 && TK_G4_ASM(depth, c0, c1)) r = tk_gemm4x2_asm(w, rows, depth, c0, bias, rq, lo, hi, o0, o1);
#endif
  for (; r + 4 <= rows; r += 4) {
    const int32_t *q = (const int32_t *)(rq + r);
    int32x4_t v0, v1;
    tk_dot4_mve(w + r * depth, c0, c1, depth, bias + r, &v0, &v1);
    vstrbq_s32(o0 + r, tk_rq_vec(v0, vld1q_s32(q), vld1q_s32(q + 4), vld1q_s32(q + 8), lo, hi));
    if (c1) vstrbq_s32(o1 + r, tk_rq_vec(v1, vld1q_s32(q), vld1q_s32(q + 4), vld1q_s32(q + 8), lo, hi));
  }
  return r;
}
#endif

/* The odd last weight row (natural layout, pair_interleave leaves it so) against columns c0 and c1: one output
 * each (o1 == 0: c0's only). */
TK_FAST_INLINE void tk_odd_row(const int8_t *wr, const int depth, const int8_t *c0, const int8_t *c1,
                               const int32_t bias, const tk_rq_param *rq, const int32_t lo, const int32_t hi,
                               int8_t *o0, int8_t *o1) {
  int32_t s0 = bias, s1 = bias;
  int k;
  for (k = 0; k < depth; ++k) {
    s0 += c0[k] * wr[k];
    s1 += c1[k] * wr[k];
  }
  *o0 = tk_rq(s0, rq, lo, hi);
  if (o1) *o1 = tk_rq(s1, rq, lo, hi);
}

/* rows x depth weights (pair-interleaved) times one or two columns -> rows int8 outputs per column. */
TK_FAST_INLINE void tk_gemm_cols(const int8_t *w, const int rows, const int depth, const int8_t *c0,
                                 const int8_t *c1, const int32_t *bias, const tk_rq_param *rq, const int32_t lo,
                                 const int32_t hi, int8_t *o0, int8_t *o1) {
  int r = 0;
  int32_t a[4];
#if TK_FAST_MVE
  r = tk_gemm4_mve(w, rows, depth, c0, c1, bias, rq, lo, hi, o0, o1);
#endif
  if (c1 == 0) {
    for (; r + 4 <= rows; r += 4) {
      const int8_t *wr = w + r * depth;
      a[0] = bias[r];
      a[1] = bias[r + 1];
      a[2] = bias[r + 2];
      a[3] = bias[r + 3];
      tk_dot4x1(wr, wr + 2 * depth, c0, depth, a);
      o0[r] = tk_rq(a[0], rq + r, lo, hi);
      o0[r + 1] = tk_rq(a[1], rq + r + 1, lo, hi);
      o0[r + 2] = tk_rq(a[2], rq + r + 2, lo, hi);
      o0[r + 3] = tk_rq(a[3], rq + r + 3, lo, hi);
    }
    c1 = c0; /* the leftover pair computes the same column twice */
    o1 = 0;
  }
  for (; r + 2 <= rows; r += 2) {
    a[0] = bias[r];
    a[1] = bias[r + 1];
    a[2] = a[0];
    a[3] = a[1];
    tk_dot2x2(w + r * depth, c0, c1, depth, a);
    o0[r] = tk_rq(a[0], rq + r, lo, hi);
    o0[r + 1] = tk_rq(a[1], rq + r + 1, lo, hi);
    if (o1) {
      o1[r] = tk_rq(a[2], rq + r, lo, hi);
      o1[r + 1] = tk_rq(a[3], rq + r + 1, lo, hi);
    }
  }
  if (r < rows) tk_odd_row(w + r * depth, depth, c0, c1, bias[r], rq + r, lo, hi, o0 + r, o1 ? o1 + r : 0);
}

#if TK_FAST_DSP && !TK_FAST_MVE && defined(__OPTIMIZE__)
#define TK_FAST_WIDE 1
/* Wide columns (DSP cores without Helium): two int8 columns of `depth` values (depth % 8 == 0) sign-extended
 * once into int16 lanes, per 4 depth values the words SXTB16(c0), SXTB16(c0 ROR 8), SXTB16(c1), SXTB16(c1 ROR
 * 8): the inner loop then loads them whole instead of extending them again for every pair of weight rows. */
TK_FAST_INLINE void tk_widen2(const int8_t *c0, const int8_t *c1, const int depth, int32_t *q) {
  const int8_t *const end = c0 + depth;
  while (c0 != end) {
    const uint32_t v0 = tk_ld32(c0), v1 = tk_ld32(c1);
    q[0] = __sxtb16(v0);
    q[1] = tk_sxtb16r8(v0);
    q[2] = __sxtb16(v1);
    q[3] = tk_sxtb16r8(v1);
    c0 += 4;
    c1 += 4;
    q += 4;
  }
}

/* rows x depth weights (pair-interleaved) times two wide columns q (tk_widen2 of c0, c1) -> int8 outputs:
 * 15 instructions per 2 rows x 2 columns x 4 depth values (the int8 columns take 19). c0, c1: the int8 columns,
 * for an odd last row. The same integers as tk_gemm_cols. */
TK_FAST_INLINE void tk_gemm_wide(const int8_t *w, const int rows, const int depth, const int32_t *q,
                                 const int8_t *c0, const int8_t *c1, const int32_t *bias, const tk_rq_param *rq,
                                 const int32_t lo, const int32_t hi, int8_t *o0, int8_t *o1) {
  const int32_t *const qend = q + depth;
  int r;
  for (r = 0; r + 2 <= rows; r += 2) {
    int32_t a00 = bias[r], a10 = bias[r + 1], a01 = a00, a11 = a10;
    int32_t xa0, xb0, xa1, xb1, w0, w1, t;
    const int32_t *x = q;
    const int8_t *wr = w + r * depth;
#define TK_W22                                          \
  "ldrd   %[xa0], %[xb0], [%[x]], #16\n\t"              \
  "ldrd   %[xa1], %[xb1], [%[x], #-8]\n\t"              \
  "ldrd   %[w0], %[w1], [%[w]], #8\n\t"                 \
  TK_SMLAD22(xa0, xb0, xa1, xb1)
    __asm__ volatile(
        "1:\n\t" TK_W22 TK_W22
        "cmp    %[x], %[end]\n\t"
        "bne    1b\n\t"
        : [a00] "+r"(a00), [a10] "+r"(a10), [a01] "+r"(a01), [a11] "+r"(a11), [x] "+r"(x), [w] "+r"(wr),
          [xa0] "=&r"(xa0), [xb0] "=&r"(xb0), [xa1] "=&r"(xa1), [xb1] "=&r"(xb1), [w0] "=&r"(w0), [w1] "=&r"(w1),
          [t] "=&r"(t)
        : [end] "r"(qend)
        : "cc", "memory");
#undef TK_W22
    o0[r] = tk_rq(a00, rq + r, lo, hi);
    o0[r + 1] = tk_rq(a10, rq + r + 1, lo, hi);
    o1[r] = tk_rq(a01, rq + r, lo, hi);
    o1[r + 1] = tk_rq(a11, rq + r + 1, lo, hi);
  }
  if (r < rows) tk_odd_row(w + r * depth, depth, c0, c1, bias[r], rq + r, lo, hi, o0 + r, o1 + r);
}

/* The int8 input of a batch-1 fully connected layer (depth % 4 == 0) sign-extended into q in tk_widen2's lane
 * order: per 4 values the words SXTB16(x), SXTB16(x ROR 8). */
TK_FAST_INLINE void tk_widen1(const int8_t *c0, const int depth, int32_t *q) {
  const int32_t *const qend = q + depth / 2;
  while (q != qend) {
    const uint32_t v = tk_ld32(c0);
    q[0] = __sxtb16(v);
    q[1] = tk_sxtb16r8(v);
    c0 += 4;
    q += 2;
  }
}

/* Four sums of consecutive rows requantized into o[0..3]. */
TK_FAST_INLINE void tk_rq4(const int32_t a0, const int32_t a1, const int32_t a2, const int32_t a3,
                           const tk_rq_param *rq, const int32_t lo, const int32_t hi, int8_t *o) {
  o[0] = tk_rq(a0, rq, lo, hi);
  o[1] = tk_rq(a1, rq + 1, lo, hi);
  o[2] = tk_rq(a2, rq + 2, lo, hi);
  o[3] = tk_rq(a3, rq + 3, lo, hi);
}

/* Batch-1 fully connected with a wide input (DSP cores without Helium): the int8 input of depth values
 * (depth % 8 == 0) sign-extended once into q (tk_widen2's lane order, 2 words per 4 values, 2 * depth bytes of
 * arena the plan had free), then 4 rows per pass: 19 instructions per 4 rows x 4 depth values instead of 21.
 * The rows past the last group of 4 run tk_gemm_cols on the int8 input. */
TK_FAST_INLINE void tk_fc_wide(const int8_t *w, const int rows, const int depth, int32_t *q, const int8_t *c0,
                               const int32_t *bias, const tk_rq_param *rq, const int32_t lo, const int32_t hi,
                               int8_t *o0) {
  const int32_t *const qend = q + depth / 2;
  int r;
  tk_widen1(c0, depth, q);
  for (r = 0; r + 4 <= rows; r += 4) {
    int32_t a0 = bias[r], a1 = bias[r + 1], a2 = bias[r + 2], a3 = bias[r + 3];
    int32_t xa, xb, w0, w1, t;
    const int32_t *x = q;
    const int8_t *wa = w + r * depth, *wb = wa + 2 * depth;
#define TK_X4                                   \
  "ldrd   %[xa], %[xb], [%[x]], #8\n\t"         \
  "ldrd   %[w0], %[w1], [%[wa]], #8\n\t" TK_SMLAD_ROWS4
#define TK_X4_OPERANDS                                                                                      \
  : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [wa] "+r"(wa), [wb] "+r"(wb), \
    [xa] "=&r"(xa), [xb] "=&r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1), [t] "=&r"(t)                             \
  : [end] "r"(qend)                                                                                         \
  : "cc", "memory"
    if ((depth & 15) == 0) { /* four blocks per iteration */
      __asm__ volatile("1:\n\t" TK_X4 TK_X4 TK_X4 TK_X4 "cmp    %[x], %[end]\n\tbne    1b\n\t" TK_X4_OPERANDS);
    } else {
      __asm__ volatile("1:\n\t" TK_X4 TK_X4 "cmp    %[x], %[end]\n\tbne    1b\n\t" TK_X4_OPERANDS);
    }
#undef TK_X4_OPERANDS
#undef TK_X4
    tk_rq4(a0, a1, a2, a3, rq + r, lo, hi, o0 + r);
  }
  if (r < rows) tk_gemm_cols(w + r * depth, rows - r, depth, c0, 0, bias + r, rq + r, lo, hi, o0 + r, 0);
}
#else
#define TK_FAST_WIDE 0
#endif

/* Batch-1 fully connected with the weights in row quads (the generator's layout.row_quads(w, 4): per group of 4
 * rows, each 4-depth chunk of row 0, 1, 2 and 3 in turn; depth % 16 == 0; the rows past the last group of 4
 * pair-interleaved after them, for tk_gemm_cols). On the DSP cores one LDM loads a chunk of all 4 rows: 18
 * instructions per 4 rows x 4 inputs on an int16 copy of the input (q: tk_fc_wide's lane order, where the plan
 * gave 2 * depth bytes for it; else 0), 20 on the int8 input. Portable C elsewhere, the same integers. */
TK_FAST_INLINE void tk_fc_quad(const int8_t *w, const int rows, const int depth, const int8_t *c0, int32_t *q,
                               const int32_t *bias, const tk_rq_param *rq, const int32_t lo, const int32_t hi,
                               int8_t *o0) {
  int r;
#if TK_FAST_WIDE
  if (q) tk_widen1(c0, depth, q);
  for (r = 0; r + 4 <= rows; r += 4) {
    int32_t a0 = bias[r], a1 = bias[r + 1], a2 = bias[r + 2], a3 = bias[r + 3];
    register int32_t w0 __asm__("r8"), w1 __asm__("r9"), w2 __asm__("r10"), w3 __asm__("r11");
    int32_t xa, xb, t;
    /* one row's word W of the chunk into sum A: SXTB16 splits it into the lanes of xa (depth 0, 2), xb (1, 3) */
#define TK_QROW(W, A)                                  \
  "sxtb16 %[t], " W "\n\t"                            \
  "smlad  %[" #A "], %[xa], %[t], %[" #A "]\n\t"       \
  "sxtb16 %[t], " W ", ror #8\n\t"                    \
  "smlad  %[" #A "], %[xb], %[t], %[" #A "]\n\t"
#define TK_QROWS                                             \
  "ldmia  %[w]!, {r8, r9, r10, r11}\n\t"                    \
  TK_QROW("r8", a0) TK_QROW("r9", a1) TK_QROW("r10", a2) TK_QROW("r11", a3)
    /* 14 registers: r0-r12 and lr (the frame pointer is omitted here, see the top of this file) */
#define TK_QUAD_OPERANDS(X)                                                                                \
  : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(X), [w] "+r"(w), [xa] "=&r"(xa), \
    [xb] "=&r"(xb), [t] "=&r"(t), "=&r"(w0), "=&r"(w1), "=&r"(w2), "=&r"(w3)                              \
  : [end] "r"(end)                                                                                         \
  : "cc", "memory"
#define TK_QEND "cmp    %[x], %[end]\n\tbne    1b\n\t"
    if (q) {
      const int32_t *x = q, *const end = q + depth / 2;
#define TK_QW "ldrd   %[xa], %[xb], [%[x]], #8\n\t" TK_QROWS
      __asm__ volatile("1:\n\t" TK_QW TK_QW TK_QW TK_QW TK_QEND TK_QUAD_OPERANDS(x));
#undef TK_QW
    } else {
      const int8_t *x = c0, *const end = c0 + depth;
#define TK_QN                                   \
  "ldr    %[xb], [%[x]], #4\n\t"               \
  "sxtb16 %[xa], %[xb]\n\t"                    \
  "sxtb16 %[xb], %[xb], ror #8\n\t" TK_QROWS
      __asm__ volatile("1:\n\t" TK_QN TK_QN TK_QN TK_QN TK_QEND TK_QUAD_OPERANDS(x));
#undef TK_QN
    }
#undef TK_QEND
#undef TK_QUAD_OPERANDS
#undef TK_QROWS
#undef TK_QROW
    tk_rq4(a0, a1, a2, a3, rq + r, lo, hi, o0 + r);
  }
#else
  (void)q;
  for (r = 0; r + 4 <= rows; r += 4, w += 4 * depth) {
    int32_t a[4] = {bias[r], bias[r + 1], bias[r + 2], bias[r + 3]};
    int k, j, i;
    for (k = 0; k < depth; k += 4) {
      for (j = 0; j < 4; ++j) {
        for (i = 0; i < 4; ++i) a[j] += c0[k + i] * w[4 * k + 4 * j + i];
      }
    }
    for (j = 0; j < 4; ++j) o0[r + j] = tk_rq(a[j], rq + r + j, lo, hi);
  }
#endif
  if (r < rows) tk_gemm_cols(w, rows - r, depth, c0, 0, bias + r, rq + r, lo, hi, o0 + r, 0);
}

/* Word-at-a-time copy and fill (newlib-nano's memcpy/memset go byte by byte). */
TK_FAST_INLINE void tk_fast_copy(int8_t *dst, const int8_t *src, const int n) {
  int j = 0;
#if TK_FAST_MVE /* from 16 bytes: 16 per load/store pair, the rest in one predicated pair */
  if (n >= 16) {
    for (; j + 16 <= n; j += 16) vst1q_s8(dst + j, vld1q_s8(src + j));
    if (j < n) {
      const mve_pred16_t p = vctp8q((uint32_t)(n - j));
      vst1q_p_s8(dst + j, vld1q_z_s8(src + j, p), p);
    }
    return;
  }
#endif
  for (; j + 4 <= n; j += 4) {
    const uint32_t v = tk_ld32(src + j);
    memcpy(dst + j, &v, 4);
  }
  for (; j < n; ++j) dst[j] = src[j];
}

TK_FAST_INLINE void tk_fast_fill(int8_t *dst, const int8_t value, const int n) {
  const uint32_t v = (uint32_t)(uint8_t)value * 0x01010101u;
  int j = 0;
#if TK_FAST_MVE
  if (n >= 16) {
    const int8x16_t q = vdupq_n_s8(value);
    for (; j + 16 <= n; j += 16) vst1q_s8(dst + j, q);
    if (j < n) vst1q_p_s8(dst + j, q, vctp8q((uint32_t)(n - j)));
    (void)v;
    return;
  }
#endif
  for (; j + 4 <= n; j += 4) memcpy(dst + j, &v, 4);
  for (; j < n; ++j) dst[j] = value;
}

/* One im2col column (no dilation): the receptive field of output pixel (oy, ox), padded taps = zp. */
TK_FAST_INLINE void tk_fast_im2col(const int8_t *in, const int in_h, const int in_w, const int in_c, const int k_h,
                                   const int k_w, const int s_h, const int s_w, const int pad_h, const int pad_w,
                                   const int8_t zp, const int oy, const int ox, int8_t *col) {
  const int iy0 = oy * s_h - pad_h, ix0 = ox * s_w - pad_w;
  int ky;
  if (iy0 >= 0 && iy0 + k_h <= in_h && ix0 >= 0 && ix0 + k_w <= in_w) { /* interior: k_h row copies */
    const int8_t *src = in + (iy0 * in_w + ix0) * in_c;
    for (ky = 0; ky < k_h; ++ky, src += in_w * in_c, col += k_w * in_c) tk_fast_copy(col, src, k_w * in_c);
    return;
  }
  for (ky = 0; ky < k_h; ++ky) {
    const int iy = iy0 + ky;
    int kx;
    if (iy < 0 || iy >= in_h) {
      tk_fast_fill(col, zp, k_w * in_c);
      col += k_w * in_c;
      continue;
    }
    for (kx = 0; kx < k_w; ++kx, col += in_c) {
      const int ix = ix0 + kx;
      if (ix >= 0 && ix < in_w) {
        tk_fast_copy(col, in + (iy * in_w + ix) * in_c, in_c);
      } else {
        tk_fast_fill(col, zp, in_c);
      }
    }
  }
}

/* CONV_2D, batch 1, no dilation. 1x1 without padding reads the input in place (no im2col); otherwise two
 * im2col columns (2 * k_h * k_w * in_c bytes of scratch). Two output pixels at a time, raster order. */
TK_FAST_INLINE void tk_conv_fast(const int8_t *in, int8_t *out, int8_t *scratch, const int in_h, const int in_w,
                                 const int in_c, const int out_h, const int out_w, const int out_c, const int k_h,
                                 const int k_w, const int s_h, const int s_w, const int pad_h, const int pad_w,
                                 const int8_t in_zp, const int col_depth, const int8_t *w, const int32_t *bias,
                                 const tk_rq_param *rq, const int32_t lo, const int32_t hi, int32_t *wide) {
  /* col_depth: im2col column length, k_h * k_w * in_c rounded up to a multiple of 8 (the weights of the
   * padding are 0, so whatever the column holds there adds nothing); in_c for 1x1 without padding.
   * wide: 4 * col_depth bytes for the wide columns (col_depth % 8 == 0), or 0; used on DSP cores without
   * Helium (TK_FAST_WIDE), ignored elsewhere. */
  (void)wide;
  const int depth = col_depth;
  const int direct = k_h == 1 && k_w == 1 && pad_h == 0 && pad_w == 0;
  const int npix = out_h * out_w;
  int pix = 0, oy = 0, ox = 0;
  for (; pix < npix; pix += 2) {
    const int8_t *c0, *c1 = 0;
    int oy1 = oy, ox1 = ox + 1;
    if (ox1 == out_w) {
      ox1 = 0;
      ++oy1;
    }
    if (direct) {
      c0 = in + (oy * s_h * in_w + ox * s_w) * in_c;
      if (pix + 1 < npix) c1 = in + (oy1 * s_h * in_w + ox1 * s_w) * in_c;
    } else {
      tk_fast_im2col(in, in_h, in_w, in_c, k_h, k_w, s_h, s_w, pad_h, pad_w, in_zp, oy, ox, scratch);
      c0 = scratch;
      if (pix + 1 < npix) {
        tk_fast_im2col(in, in_h, in_w, in_c, k_h, k_w, s_h, s_w, pad_h, pad_w, in_zp, oy1, ox1, scratch + depth);
        c1 = scratch + depth;
      }
    }
#if TK_FAST_WIDE
    if (wide && c1) {
      tk_widen2(c0, c1, depth, wide);
      tk_gemm_wide(w, out_c, depth, wide, c0, c1, bias, rq, lo, hi, out + pix * out_c, out + (pix + 1) * out_c);
    } else
#endif
    tk_gemm_cols(w, out_c, depth, c0, c1, bias, rq, lo, hi, out + pix * out_c, c1 ? out + (pix + 1) * out_c : 0);
    ox = ox1 + 1;
    oy = oy1;
    if (ox >= out_w) {
      ox -= out_w;
      ++oy;
    }
  }
}

/* FULLY_CONNECTED: `batches` input rows of `depth` values. */
TK_FAST_INLINE void tk_fc_fast(const int8_t *in, int8_t *out, const int batches, const int depth, const int units,
                               const int8_t *w, const int32_t *bias, const tk_rq_param *rq, const int32_t lo,
                               const int32_t hi, int32_t *wide, const int quad) {
  /* wide: 2 * depth bytes for the int16 input (batch 1, depth % 8 == 0, DSP cores without Helium), or 0.
   * quad: the weights are in row quads (batch 1, depth % 16 == 0: tk_fc_quad), else pair-interleaved. */
  int b;
  if (quad) {
    tk_fc_quad(w, units, depth, in, wide, bias, rq, lo, hi, out);
    return;
  }
#if TK_FAST_WIDE
  if (wide && batches == 1 && (depth & 7) == 0) {
    tk_fc_wide(w, units, depth, wide, in, bias, rq, lo, hi, out);
    return;
  }
#endif
  (void)wide;
  for (b = 0; b < batches; b += 2) {
    const int8_t *c0 = in + b * depth;
    const int8_t *c1 = b + 1 < batches ? c0 + depth : 0;
    tk_gemm_cols(w, units, depth, c0, c1, bias, rq, lo, hi, out + b * units, c1 ? out + (b + 1) * units : 0);
  }
}

/* DEPTHWISE_CONV_2D 3x3, depth multiplier 1, C % 4 == 0, no dilation, batch 1.
 * wx: per 4-channel group and tap, two int32 words holding (w[c], w[c+2]) and (w[c+1], w[c+3]) as int16
 * lanes (the SXTB16 lane order of the input word). bias_adj = bias - in_zp * sum over the 9 taps.
 * Interior pixels: 9 unrolled taps at constant offsets. Border pixels: the same 9 taps through a table of
 * pointers where padded taps point at zprow (C bytes of in_zp), which adds nothing to bias_adj's sum,
 * exactly as TFLM skipping them. One output pixel at a time, raster order. */
#if TK_FAST_DSP
#define TK_DW_TAP(t, ptr)                                              \
  do {                                                                 \
    const uint32_t xv = tk_ld32(ptr);                                    \
    const int32_t x02 = __sxtb16(xv), x13 = tk_sxtb16r8(xv);           \
    a0 = __smlabb(x02, wg[2 * (t)], a0);                               \
    a2 = __smlatt(x02, wg[2 * (t)], a2);                               \
    a1 = __smlabb(x13, wg[2 * (t) + 1], a1);                           \
    a3 = __smlatt(x13, wg[2 * (t) + 1], a3);                           \
  } while (0)
#else
#define TK_DW_TAP(t, ptr)                                              \
  do {                                                                 \
    const int8_t *xt = (ptr);                                          \
    a0 += xt[0] * (int32_t)(int16_t)(wg[2 * (t)] & 0xFFFF);            \
    a2 += xt[2] * (wg[2 * (t)] >> 16);                                 \
    a1 += xt[1] * (int32_t)(int16_t)(wg[2 * (t) + 1] & 0xFFFF);        \
    a3 += xt[3] * (wg[2 * (t) + 1] >> 16);                             \
  } while (0)
#endif

#if TK_FAST_MVE
/* Eight channels c..c+7 (two 4-channel groups of wx) over the 9 taps p[t] + c, with Helium: the input bytes
 * gathered into the int16 lane order of wx's words (c, c+2, c+1, c+3, c+4, c+6, c+5, c+7), the weights of
 * both groups gathered alongside, VMULLB/VMULLT widening the even/odd lanes to 32-bit products. */
TK_FAST_INLINE void tk_dw8_mve(const int8_t *const *p, const int c, const int32_t *wg, const int32_t *bias_adj,
                               const tk_rq_param *rq, const int32_t lo, const int32_t hi, int8_t *o) {
  const uint16x8_t xoff = {0, 2, 1, 3, 4, 6, 5, 7};
  const uint16x8_t woff = {0, 2, 4, 6, 72, 74, 76, 78}; /* bytes: group c at wg, group c+4 at wg + 18 */
  const uint32x4_t even = {0, 4, 16, 20}, odd = {8, 12, 24, 28};
  int32x4_t ae = vldrwq_gather_offset_s32(bias_adj + c, even), ao = vldrwq_gather_offset_s32(bias_adj + c, odd);
  int t;
  for (t = 0; t < 9; ++t) {
    const int16x8_t x = vldrbq_gather_offset_s16(p[t] + c, xoff);
    const int16x8_t w = vldrhq_gather_offset_s16((const int16_t *)(wg + 2 * t), woff);
    ae = vaddq_s32(ae, vmullbq_int_s16(x, w));
    ao = vaddq_s32(ao, vmulltq_int_s16(x, w));
  }
  {
    const uint32x4_t ce = {0, 1, 4, 5}, co = {2, 3, 6, 7};
    tk_rq_mve(ae, rq + c, vmulq_n_u32(ce, 12), lo, hi, o + c, ce);
    tk_rq_mve(ao, rq + c, vmulq_n_u32(co, 12), lo, hi, o + c, co);
  }
}
#endif

#if TK_FAST_MVE
/* Eight depthwise accumulators (ae: channels c, c+2, c+4, c+6; ao: c+1, c+3, c+5, c+7) requantized with the
 * parameter vectors v (tk_dwv layout: multiplier, rounding, -shift, even then odd channels), narrowed into one
 * vector in channel order (VQMOVNB/VQMOVNT), clamped, and stored as 8 contiguous bytes. */
TK_FAST_INLINE void tk_rq_dw8(const int32x4_t ae, const int32x4_t ao, const int32_t *v, const int32_t lo,
                              const int32_t hi, int8_t *o) {
  int32x4_t he = vaddq_s32(vqrdmulhq_s32(ae, vld1q_s32(v)), vld1q_s32(v + 8));
  int32x4_t ho = vaddq_s32(vqrdmulhq_s32(ao, vld1q_s32(v + 4)), vld1q_s32(v + 12));
  int16x8_t r;
  he = vshlq_s32(vsubq_s32(he, vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(ae), 31))), vld1q_s32(v + 16));
  ho = vshlq_s32(vsubq_s32(ho, vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(ao), 31))), vld1q_s32(v + 20));
  __asm__("vqmovnb.s32 %q0, %q1\n\tvqmovnt.s32 %q0, %q2" : "=&w"(r) : "w"(he), "w"(ho));
  if (lo > -128) r = vmaxq_s16(r, vdupq_n_s16((int16_t)lo));
  if (hi < 127) r = vminq_s16(r, vdupq_n_s16((int16_t)hi));
  __asm__("vqmovnb.s16 %q0, %q0" : "+w"(r));
  vstrbq_s16(o, r);
}

/* Depthwise with Helium over `taps` taps (9: 3x3; tk_dw_fast: any size), 8 channels per step, weights tap by tap
 * (w9: int8 [tap][C]): per tap the 8 inputs and 8 weights sign-extended to int16 lanes, VMULLB/VMULLT their
 * even/odd products into two int32 vectors
 * (channels c, c+2, c+4, c+6 and c+1, c+3, c+5, c+7). Output pixel o from taps p[t] and, unless q == 0, the
 * next one (o + C) from taps q[t], the weights loaded once for both; padded taps point at zprow.
 * v: per 8 channels 8 vectors of 4 int32 (the generator's helium_dw_params): bias_adj, multiplier, rounding and
 * -shift, each for the even then the odd channels. */
TK_FAST_INLINE void tk_dw8_taps_mve(const int8_t *const *p, const int8_t *const *q, const int C, const int8_t *w9,
                                    const int32_t *v, const int32_t lo, const int32_t hi, int8_t *o,
                                    const int taps) {
  int c, t;
  for (c = 0; c < C; c += 8, v += 32) {
    int32x4_t ae = vld1q_s32(v), ao = vld1q_s32(v + 4);
    const int8_t *wt = w9 + c;
    if (q) {
      int32x4_t be = ae, bo = ao;
      for (t = 0; t < taps; ++t, wt += C) {
        const int16x8_t w = vldrbq_s16(wt), x0 = vldrbq_s16(p[t] + c), x1 = vldrbq_s16(q[t] + c);
        ae = vaddq_s32(ae, vmullbq_int_s16(x0, w));
        ao = vaddq_s32(ao, vmulltq_int_s16(x0, w));
        be = vaddq_s32(be, vmullbq_int_s16(x1, w));
        bo = vaddq_s32(bo, vmulltq_int_s16(x1, w));
      }
      tk_rq_dw8(be, bo, v + 8, lo, hi, o + C + c);
    } else {
      for (t = 0; t < taps; ++t, wt += C) {
        const int16x8_t w = vldrbq_s16(wt), x0 = vldrbq_s16(p[t] + c);
        ae = vaddq_s32(ae, vmullbq_int_s16(x0, w));
        ao = vaddq_s32(ao, vmulltq_int_s16(x0, w));
      }
    }
    tk_rq_dw8(ae, ao, v + 8, lo, hi, o + c);
  }
}

/* The 9 tap pointers of the 3x3 window at (iy0, ix0): padded taps point at zprow. */
TK_FAST_INLINE void tk_dw_taps(const int8_t *in, const int in_h, const int in_w, const int C, const int iy0,
                               const int ix0, const int8_t *zprow, const int8_t **p) {
  int ky, kx;
  if (iy0 >= 0 && iy0 + 3 <= in_h && ix0 >= 0 && ix0 + 3 <= in_w) {
    const int8_t *b = in + (iy0 * in_w + ix0) * C;
    for (ky = 0; ky < 3; ++ky, b += in_w * C) {
      p[3 * ky] = b;
      p[3 * ky + 1] = b + C;
      p[3 * ky + 2] = b + 2 * C;
    }
    return;
  }
  for (ky = 0; ky < 3; ++ky) {
    for (kx = 0; kx < 3; ++kx) {
      const int iy = iy0 + ky, ix = ix0 + kx;
      p[ky * 3 + kx] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) ? in + (iy * in_w + ix) * C : zprow;
    }
  }
}
#endif

TK_FAST_INLINE void tk_dw3x3_fast(const int8_t *in, int8_t *out, const int in_h, const int in_w, const int C,
                                  const int out_h, const int out_w, const int s, const int pad_h, const int pad_w,
                                  const int8_t *zprow, const int32_t *wx, const int32_t *bias_adj,
                                  const tk_rq_param *rq, const int32_t lo, const int32_t hi, const int8_t *w9) {
  /* w9: the weights tap by tap for the Helium path (tk_dw8_taps_mve, channels % 8 == 0; bias_adj is then its
   * parameter vectors and rq is unused), or 0 (then wx) */
  const int row = in_w * C;
  int oy, ox, c;
  (void)w9;
  for (oy = 0; oy < out_h; ++oy) {
    const int iy0 = oy * s - pad_h;
    for (ox = 0; ox < out_w; ++ox) {
      const int ix0 = ox * s - pad_w;
      int8_t *o = out + (oy * out_w + ox) * C;
#if TK_FAST_MVE
      if (w9) { /* Helium, tap-major weights: two pixels of the row at a time */
        const int8_t *p[9], *q[9];
        const int two = ox + 1 < out_w;
        tk_dw_taps(in, in_h, in_w, C, iy0, ix0, zprow, p);
        if (two) tk_dw_taps(in, in_h, in_w, C, iy0, ix0 + s, zprow, q);
        tk_dw8_taps_mve(p, two ? q : 0, C, w9, bias_adj, lo, hi, o, 9);
        ox += two;
        continue;
      }
      { /* Helium: 8 channels at a time through the 9 tap pointers (padded taps point at zprow) */
        const int8_t *p[9];
        int ky, kx;
        for (ky = 0; ky < 3; ++ky) {
          for (kx = 0; kx < 3; ++kx) {
            const int iy = iy0 + ky, ix = ix0 + kx;
            p[ky * 3 + kx] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) ? in + (iy * in_w + ix) * C : zprow;
          }
        }
        for (c = 0; c + 8 <= C; c += 8) tk_dw8_mve(p, c, wx + (c / 4) * 18, bias_adj, rq, lo, hi, o);
        if (c < C) { /* a last group of 4 channels */
          const int32_t *wg = wx + (c / 4) * 18;
          int32_t a0 = bias_adj[c], a1 = bias_adj[c + 1], a2 = bias_adj[c + 2], a3 = bias_adj[c + 3];
          TK_DW_TAP(0, p[0] + c);
          TK_DW_TAP(1, p[1] + c);
          TK_DW_TAP(2, p[2] + c);
          TK_DW_TAP(3, p[3] + c);
          TK_DW_TAP(4, p[4] + c);
          TK_DW_TAP(5, p[5] + c);
          TK_DW_TAP(6, p[6] + c);
          TK_DW_TAP(7, p[7] + c);
          TK_DW_TAP(8, p[8] + c);
          o[c] = tk_rq(a0, rq + c, lo, hi);
          o[c + 1] = tk_rq(a1, rq + c + 1, lo, hi);
          o[c + 2] = tk_rq(a2, rq + c + 2, lo, hi);
          o[c + 3] = tk_rq(a3, rq + c + 3, lo, hi);
        }
        (void)row;
        continue;
      }
#endif
      if (iy0 >= 0 && iy0 + 3 <= in_h && ix0 >= 0 && ix0 + 3 <= in_w) {
        const int8_t *x = in + (iy0 * in_w + ix0) * C;
        const int32_t *wg = wx;
        for (c = 0; c < C; c += 4, wg += 18, x += 4) {
          int32_t a0 = bias_adj[c], a1 = bias_adj[c + 1], a2 = bias_adj[c + 2], a3 = bias_adj[c + 3];
          TK_DW_TAP(0, x);
          TK_DW_TAP(1, x + C);
          TK_DW_TAP(2, x + 2 * C);
          TK_DW_TAP(3, x + row);
          TK_DW_TAP(4, x + row + C);
          TK_DW_TAP(5, x + row + 2 * C);
          TK_DW_TAP(6, x + 2 * row);
          TK_DW_TAP(7, x + 2 * row + C);
          TK_DW_TAP(8, x + 2 * row + 2 * C);
          o[c] = tk_rq(a0, rq + c, lo, hi);
          o[c + 1] = tk_rq(a1, rq + c + 1, lo, hi);
          o[c + 2] = tk_rq(a2, rq + c + 2, lo, hi);
          o[c + 3] = tk_rq(a3, rq + c + 3, lo, hi);
        }
      } else { /* padded taps read zprow (C bytes of in_zp): TFLM skips them, bias_adj compensates */
        const int8_t *p[9];
        int ky, kx;
        for (ky = 0; ky < 3; ++ky) {
          for (kx = 0; kx < 3; ++kx) {
            const int iy = iy0 + ky, ix = ix0 + kx;
            p[ky * 3 + kx] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) ? in + (iy * in_w + ix) * C : zprow;
          }
        }
        {
          const int32_t *wg = wx;
          for (c = 0; c < C; c += 4, wg += 18) {
            int32_t a0 = bias_adj[c], a1 = bias_adj[c + 1], a2 = bias_adj[c + 2], a3 = bias_adj[c + 3];
            TK_DW_TAP(0, p[0] + c);
            TK_DW_TAP(1, p[1] + c);
            TK_DW_TAP(2, p[2] + c);
            TK_DW_TAP(3, p[3] + c);
            TK_DW_TAP(4, p[4] + c);
            TK_DW_TAP(5, p[5] + c);
            TK_DW_TAP(6, p[6] + c);
            TK_DW_TAP(7, p[7] + c);
            TK_DW_TAP(8, p[8] + c);
            o[c] = tk_rq(a0, rq + c, lo, hi);
            o[c + 1] = tk_rq(a1, rq + c + 1, lo, hi);
            o[c + 2] = tk_rq(a2, rq + c + 2, lo, hi);
            o[c + 3] = tk_rq(a3, rq + c + 3, lo, hi);
          }
        }
      }
    }
  }
}

/* DEPTHWISE_CONV_2D k_h x k_w (any size up to TK_DW_MAX_TAPS taps; tk_dw3x3_fast has 3x3), depth multiplier 1,
 * C % 4 == 0, no dilation, batch 1: the arithmetic of tk_dw3x3_fast with the taps in a loop. Per output pixel
 * a table of the taps' input rows (tk_dw_window: padded taps point at zprow, C bytes of in_zp: bias_adj = bias -
 * in_zp * sum of the taps' weights, so they add nothing, as TFLM skipping them). wx: per 4-channel group and tap
 * the two SXTB16-ordered words (DSP cores); on Helium with C % 8 == 0, w9 (int8 [tap][C]) and bias_adj the
 * parameter vectors of tk_dw8_taps_mve (rq unused), two pixels (in raster order) per weight load; else w9 == 0. */
#define TK_DW_MAX_TAPS 64
TK_FAST_INLINE void tk_dw_window(const int8_t *in, const int in_h, const int in_w, const int C, const int k_h,
                                 const int k_w, const int iy0, const int ix0, const int8_t *zprow, const int8_t **p) {
  int ky, kx;
  for (ky = 0; ky < k_h; ++ky) {
    for (kx = 0; kx < k_w; ++kx) {
      const int iy = iy0 + ky, ix = ix0 + kx;
      p[ky * k_w + kx] = (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) ? in + (iy * in_w + ix) * C : zprow;
    }
  }
}

TK_FAST_INLINE void tk_dw_fast(const int8_t *in, int8_t *out, const int in_h, const int in_w, const int C,
                               const int out_h, const int out_w, const int k_h, const int k_w, const int s_h,
                               const int s_w, const int pad_h, const int pad_w, const int8_t *zprow,
                               const int32_t *wx, const int32_t *bias_adj, const tk_rq_param *rq, const int32_t lo,
                               const int32_t hi, const int8_t *w9) {
  const int taps = k_h * k_w;
  const int8_t *p[TK_DW_MAX_TAPS];
  int oy, ox, c, t;
  (void)w9;
#if TK_FAST_MVE
  if (w9) {
    const int8_t *q[TK_DW_MAX_TAPS];
    const int npix = out_h * out_w;
    int pix;
    oy = ox = 0;
    for (pix = 0; pix < npix; pix += 2) {
      tk_dw_window(in, in_h, in_w, C, k_h, k_w, oy * s_h - pad_h, ox * s_w - pad_w, zprow, p);
      if (++ox == out_w) {
        ox = 0;
        ++oy;
      }
      if (pix + 1 < npix) tk_dw_window(in, in_h, in_w, C, k_h, k_w, oy * s_h - pad_h, ox * s_w - pad_w, zprow, q);
      tk_dw8_taps_mve(p, pix + 1 < npix ? q : 0, C, w9, bias_adj, lo, hi, out + pix * C, taps);
      if (++ox == out_w) {
        ox = 0;
        ++oy;
      }
    }
    return;
  }
#endif
  for (oy = 0; oy < out_h; ++oy) {
    for (ox = 0; ox < out_w; ++ox) {
      int8_t *o = out + (oy * out_w + ox) * C;
      const int32_t *wg = wx;
      tk_dw_window(in, in_h, in_w, C, k_h, k_w, oy * s_h - pad_h, ox * s_w - pad_w, zprow, p);
      for (c = 0; c < C; c += 4) {
        int32_t a0 = bias_adj[c], a1 = bias_adj[c + 1], a2 = bias_adj[c + 2], a3 = bias_adj[c + 3];
        for (t = 0; t < taps; ++t, wg += 2) TK_DW_TAP(0, p[t] + c);
        o[c] = tk_rq(a0, rq + c, lo, hi);
        o[c + 1] = tk_rq(a1, rq + c + 1, lo, hi);
        o[c + 2] = tk_rq(a2, rq + c + 2, lo, hi);
        o[c + 3] = tk_rq(a3, rq + c + 3, lo, hi);
      }
    }
  }
}

/* ADD of two same-shaped int8 tensors: lut1[v] / lut2[v] hold TFLM's rescaled input
 * MultiplyByQuantizedMultiplier((v + offset) << left_shift, m, s) for v in -128..127 (pointers to entry
 * 128, so they are indexed by the int8 value), computed at generation; the output requantization is tk_rq. */
TK_FAST_INLINE void tk_add_fast(const int8_t *a, const int8_t *b, int8_t *o, const int n, const int32_t *lut1,
                                const int32_t *lut2, const tk_rq_param *rq, const int32_t lo, const int32_t hi) {
  int i = 0;
#if TK_FAST_MVE /* four elements per step: the table entries gathered by the sign-extended int8 values */
  {
    const int32x4_t m = vdupq_n_s32(rq->mult), rnd = vdupq_n_s32(rq->rnd), neg_e = vdupq_n_s32(-rq->e);
    for (; i + 4 <= n; i += 4) {
      const uint32x4_t x = vreinterpretq_u32_s32(vldrbq_s32(a + i)), y = vreinterpretq_u32_s32(vldrbq_s32(b + i));
      const int32x4_t acc = vaddq_s32(vldrwq_gather_shifted_offset_s32(lut1, x),
                                      vldrwq_gather_shifted_offset_s32(lut2, y));
      vstrbq_s32(o + i, tk_rq_vec(acc, m, rnd, neg_e, lo, hi));
    }
  }
#endif
  for (; i < n; ++i) o[i] = tk_rq(lut1[a[i]] + lut2[b[i]], rq, lo, hi);
}

/* MAX_POOL_2D, batch 1, C % 4 == 0: four channels per word (SSUB8 + SEL on the Cortex-M4), padded taps
 * skipped, the maximum starting at -128 and clamped to the activation range, as TFLM. Raster order. */
/* Lane-wise signed max / min of four int8 values. */
TK_FAST_INLINE uint32_t tk_max4(uint32_t a, uint32_t b) {
#if TK_FAST_DSP
  (void)__ssub8(a, b); /* GE[i] set where a[i] >= b[i] (signed) */
  return __sel(a, b);
#else
  uint32_t r = 0;
  int i;
  for (i = 0; i < 32; i += 8) {
    const int8_t x = (int8_t)(a >> i), y = (int8_t)(b >> i);
    r |= (uint32_t)(uint8_t)(x > y ? x : y) << i;
  }
  return r;
#endif
}

TK_FAST_INLINE uint32_t tk_min4(uint32_t a, uint32_t b) {
#if TK_FAST_DSP
  (void)__ssub8(a, b);
  return __sel(b, a);
#else
  uint32_t r = 0;
  int i;
  for (i = 0; i < 32; i += 8) {
    const int8_t x = (int8_t)(a >> i), y = (int8_t)(b >> i);
    r |= (uint32_t)(uint8_t)(x < y ? x : y) << i;
  }
  return r;
#endif
}

TK_FAST_INLINE void tk_maxpool_fast(const int8_t *in, int8_t *out, const int in_h, const int in_w, const int C,
                                    const int out_h, const int out_w, const int f_h, const int f_w, const int s_h,
                                    const int s_w, const int pad_h, const int pad_w, const int32_t lo,
                                    const int32_t hi) {
  const uint32_t lo4 = (uint32_t)(uint8_t)(int8_t)lo * 0x01010101u;
  const uint32_t hi4 = (uint32_t)(uint8_t)(int8_t)hi * 0x01010101u;
  int oy, ox, c, fy, fx;
  for (oy = 0; oy < out_h; ++oy) {
    const int iy0 = oy * s_h - pad_h;
    const int fy0 = iy0 < 0 ? -iy0 : 0, fy1 = in_h - iy0 < f_h ? in_h - iy0 : f_h;
    for (ox = 0; ox < out_w; ++ox) {
      const int ix0 = ox * s_w - pad_w;
      const int fx0 = ix0 < 0 ? -ix0 : 0, fx1 = in_w - ix0 < f_w ? in_w - ix0 : f_w;
      int8_t *o = out + (oy * out_w + ox) * C;
      for (c = 0; c < C; c += 4) {
        uint32_t m = 0x80808080u;
        for (fy = fy0; fy < fy1; ++fy) {
          const int8_t *row = in + ((iy0 + fy) * in_w + ix0) * C + c;
          for (fx = fx0; fx < fx1; ++fx) m = tk_max4(tk_ld32(row + fx * C), m);
        }
        if (lo > -128) m = tk_max4(m, lo4);
        if (hi < 127) m = tk_min4(m, hi4);
        memcpy(o + c, &m, 4);
      }
    }
  }
}

/* AVERAGE_POOL_2D, batch 1, C % 4 == 0, at most 255 taps per window (the generator checks both): the window
 * sums of each channel in int16 lanes (|sum| <= 255 * 128 fits), padded taps skipped; then TFLM's division,
 * rounding half away from zero, and the activation range. With the DSP extension 4 channels per SXTAB16
 * pair, with Helium 8 per VLDRB.S16 + VADD; plain C elsewhere. */
TK_FAST_INLINE int8_t tk_avg_one(const int32_t sum, const int count, const int32_t lo, const int32_t hi) {
  int32_t v = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
  v = v < lo ? lo : v;
  return (int8_t)(v > hi ? hi : v);
}

TK_FAST_INLINE void tk_avgpool_fast(const int8_t *in, int8_t *out, const int in_h, const int in_w, const int C,
                                    const int out_h, const int out_w, const int f_h, const int f_w, const int s_h,
                                    const int s_w, const int pad_h, const int pad_w, const int32_t lo,
                                    const int32_t hi) {
  int oy, ox, c, fy, fx;
  for (oy = 0; oy < out_h; ++oy) {
    const int iy0 = oy * s_h - pad_h;
    const int fy0 = iy0 < 0 ? -iy0 : 0, fy1 = in_h - iy0 < f_h ? in_h - iy0 : f_h;
    for (ox = 0; ox < out_w; ++ox) {
      const int ix0 = ox * s_w - pad_w;
      const int fx0 = ix0 < 0 ? -ix0 : 0, fx1 = in_w - ix0 < f_w ? in_w - ix0 : f_w;
      const int count = (fy1 - fy0) * (fx1 - fx0);
      int8_t *o = out + (oy * out_w + ox) * C;
      c = 0;
      if (count <= 0) { /* no valid tap (TFLM leaves the sum 0 and does not divide) */
        for (; c < C; ++c) o[c] = (int8_t)(0 < lo ? lo : (0 > hi ? hi : 0));
        continue;
      }
#if TK_FAST_MVE
      for (; c + 8 <= C; c += 8) {
        int16x8_t acc = vdupq_n_s16(0);
        for (fy = fy0; fy < fy1; ++fy) {
          const int8_t *row = in + ((iy0 + fy) * in_w + ix0) * C + c;
          for (fx = fx0; fx < fx1; ++fx) acc = vaddq_s16(acc, vldrbq_s16(row + fx * C));
        }
        {
          int16_t sums[8];
          int j;
          vst1q_s16(sums, acc);
          for (j = 0; j < 8; ++j) o[c + j] = tk_avg_one(sums[j], count, lo, hi);
        }
      }
#endif
#if TK_FAST_DSP
      for (; c < C; c += 4) {
        int32_t a02 = 0, a13 = 0;
        for (fy = fy0; fy < fy1; ++fy) {
          const int8_t *row = in + ((iy0 + fy) * in_w + ix0) * C + c;
          for (fx = fx0; fx < fx1; ++fx) {
            const uint32_t v = tk_ld32(row + fx * C);
            a02 = __sxtab16(a02, v);
            __asm__("sxtab16 %0, %0, %1, ror #8" : "+r"(a13) : "r"(v));
          }
        }
        o[c] = tk_avg_one((int16_t)a02, count, lo, hi);
        o[c + 1] = tk_avg_one((int16_t)a13, count, lo, hi);
        o[c + 2] = tk_avg_one(a02 >> 16, count, lo, hi);
        o[c + 3] = tk_avg_one(a13 >> 16, count, lo, hi);
      }
#else
      for (; c < C; ++c) {
        int32_t sum = 0;
        for (fy = fy0; fy < fy1; ++fy) {
          const int8_t *row = in + ((iy0 + fy) * in_w + ix0) * C + c;
          for (fx = fx0; fx < fx1; ++fx) sum += row[fx * C];
        }
        o[c] = tk_avg_one(sum, count, lo, hi);
      }
#endif
    }
  }
}

#endif /* TK_FAST_H_ */
