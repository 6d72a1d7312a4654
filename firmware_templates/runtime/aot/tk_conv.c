/* tinykeras aot runtime: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED for int8 (per-channel weights).
 *
 * The input zero point is folded into the bias at generation time (bias_adj = bias - in_zp * sum(w)), so
 * the inner loops are plain int8 x int8 dot products; padded taps read the input zero point (im2col) or
 * take the border path, which is equivalent to TFLM skipping them.
 */
#include <string.h>

#include "tk_fixedpoint.h"
#include "tk_kernels.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TK_USE_DSP 1
#else
#define TK_USE_DSP 0
#endif

#if defined(__GNUC__)
#define TK_NOINLINE __attribute__((noinline))
#else
#define TK_NOINLINE
#endif

#if TK_USE_DSP
static inline uint32_t tk_read32(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
/* Bytes 1 and 3 sign-extended to two int16 lanes: SXTB16 with its free ROR #8 operand. */
static inline int32_t tk_sxtb16_ror8(uint32_t v) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
#endif

/* Weight rows are stored in pairs (see tinykeras/aot/generator.py, pair_interleave): for rows 2p and
 * 2p+1, blocks of 4 depth values alternate (r0[0:4] r1[0:4] r0[4:8] r1[4:8] ...), then the depth % 4
 * leftovers of r0, then those of r1; an odd last row is stored as is. A pair starts at offset 2p*depth,
 * as in the natural layout, and one pointer walks it sequentially. */

/* Two rows (one interleaved pair) against one or two columns. */
static TK_NOINLINE void tk_pair_dot(const int8_t *wp, int depth, const int8_t *c0, const int8_t *c1, int32_t *acc) {
  const int k4 = depth & ~3;
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  int k;
  if (c1 != NULL) {
    for (k = 0; k < k4; k += 4, wp += 8) {
#if TK_USE_DSP
      const uint32_t x0 = tk_read32(c0 + k), x1 = tk_read32(c1 + k);
      const uint32_t v0 = tk_read32(wp), v1 = tk_read32(wp + 4);
      const int32_t x0a = __sxtb16(x0), x0b = tk_sxtb16_ror8(x0);
      const int32_t x1a = __sxtb16(x1), x1b = tk_sxtb16_ror8(x1);
      const int32_t v0a = __sxtb16(v0), v0b = tk_sxtb16_ror8(v0);
      const int32_t v1a = __sxtb16(v1), v1b = tk_sxtb16_ror8(v1);
      a00 = __smlad(x0a, v0a, a00);
      a00 = __smlad(x0b, v0b, a00);
      a01 = __smlad(x0a, v1a, a01);
      a01 = __smlad(x0b, v1b, a01);
      a10 = __smlad(x1a, v0a, a10);
      a10 = __smlad(x1b, v0b, a10);
      a11 = __smlad(x1a, v1a, a11);
      a11 = __smlad(x1b, v1b, a11);
#else
      int j;
      for (j = 0; j < 4; ++j) {
        const int32_t x0 = c0[k + j], x1 = c1[k + j], v0 = wp[j], v1 = wp[4 + j];
        a00 += x0 * v0;
        a01 += x0 * v1;
        a10 += x1 * v0;
        a11 += x1 * v1;
      }
#endif
    }
    for (k = k4; k < depth; ++k) {
      const int32_t v0 = wp[k - k4], v1 = wp[depth - k4 + k - k4];
      a00 += c0[k] * v0;
      a01 += c0[k] * v1;
      a10 += c1[k] * v0;
      a11 += c1[k] * v1;
    }
  } else {
    for (k = 0; k < k4; k += 4, wp += 8) {
#if TK_USE_DSP
      const uint32_t x0 = tk_read32(c0 + k), v0 = tk_read32(wp), v1 = tk_read32(wp + 4);
      const int32_t x0a = __sxtb16(x0), x0b = tk_sxtb16_ror8(x0);
      a00 = __smlad(x0a, __sxtb16(v0), a00);
      a00 = __smlad(x0b, tk_sxtb16_ror8(v0), a00);
      a01 = __smlad(x0a, __sxtb16(v1), a01);
      a01 = __smlad(x0b, tk_sxtb16_ror8(v1), a01);
#else
      int j;
      for (j = 0; j < 4; ++j) {
        a00 += c0[k + j] * wp[j];
        a01 += c0[k + j] * wp[4 + j];
      }
#endif
    }
    for (k = k4; k < depth; ++k) {
      a00 += c0[k] * wp[k - k4];
      a01 += c0[k] * wp[depth - k4 + k - k4];
    }
  }
  acc[0] = a00;
  acc[1] = a01;
  acc[2] = a10;
  acc[3] = a11;
}

/* Four rows (two interleaved pairs) against one column: the fully connected inner loop. */
static TK_NOINLINE void tk_quad_dot(const int8_t *wa, const int8_t *wb, int depth, const int8_t *c0, int32_t *acc) {
  const int k4 = depth & ~3;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  int k;
  for (k = 0; k < k4; k += 4, wa += 8, wb += 8) {
#if TK_USE_DSP
    const uint32_t x = tk_read32(c0 + k);
    const int32_t xa = __sxtb16(x), xb = tk_sxtb16_ror8(x);
    uint32_t v = tk_read32(wa);
    a0 = __smlad(xa, __sxtb16(v), a0);
    a0 = __smlad(xb, tk_sxtb16_ror8(v), a0);
    v = tk_read32(wa + 4);
    a1 = __smlad(xa, __sxtb16(v), a1);
    a1 = __smlad(xb, tk_sxtb16_ror8(v), a1);
    v = tk_read32(wb);
    a2 = __smlad(xa, __sxtb16(v), a2);
    a2 = __smlad(xb, tk_sxtb16_ror8(v), a2);
    v = tk_read32(wb + 4);
    a3 = __smlad(xa, __sxtb16(v), a3);
    a3 = __smlad(xb, tk_sxtb16_ror8(v), a3);
#else
    int j;
    for (j = 0; j < 4; ++j) {
      const int32_t x = c0[k + j];
      a0 += x * wa[j];
      a1 += x * wa[4 + j];
      a2 += x * wb[j];
      a3 += x * wb[4 + j];
    }
#endif
  }
  for (k = k4; k < depth; ++k) {
    const int32_t x = c0[k];
    a0 += x * wa[k - k4];
    a1 += x * wa[depth - k4 + k - k4];
    a2 += x * wb[k - k4];
    a3 += x * wb[depth - k4 + k - k4];
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

/* Dot products of `rows` weight rows (pair-interleaved) with one or two int8 columns. */
void tk_matmul_s8(const int8_t *w, int rows, int depth, const int8_t *col0, const int8_t *col1,
                  const int32_t *bias_adj, const int32_t *mult, const int8_t *shift,
                  int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out0, int8_t *out1) {
  int r = 0;
  int32_t acc[4];
  if (col1 == NULL) {
    for (; r + 4 <= rows; r += 4) {
      const int8_t *wa = w + (long)r * depth;
      int j;
      for (j = 0; j < 4; ++j) acc[j] = bias_adj[r + j];
      tk_quad_dot(wa, wa + 2L * depth, depth, col0, acc);
      for (j = 0; j < 4; ++j) out0[r + j] = tk_requant(acc[j], mult[r + j], shift[r + j], out_zp, act_min, act_max);
    }
  }
  for (; r + 2 <= rows; r += 2) {
    acc[0] = bias_adj[r];
    acc[1] = bias_adj[r + 1];
    acc[2] = acc[0];
    acc[3] = acc[1];
    tk_pair_dot(w + (long)r * depth, depth, col0, col1, acc);
    out0[r] = tk_requant(acc[0], mult[r], shift[r], out_zp, act_min, act_max);
    out0[r + 1] = tk_requant(acc[1], mult[r + 1], shift[r + 1], out_zp, act_min, act_max);
    if (col1 != NULL) {
      out1[r] = tk_requant(acc[2], mult[r], shift[r], out_zp, act_min, act_max);
      out1[r + 1] = tk_requant(acc[3], mult[r + 1], shift[r + 1], out_zp, act_min, act_max);
    }
  }
  if (r < rows) { /* odd last row, natural layout */
    const int8_t *w0 = w + (long)r * depth;
    int32_t a0 = bias_adj[r], a1 = bias_adj[r];
    int k;
    for (k = 0; k < depth; ++k) {
      a0 += col0[k] * w0[k];
      if (col1 != NULL) a1 += col1[k] * w0[k];
    }
    out0[r] = tk_requant(a0, mult[r], shift[r], out_zp, act_min, act_max);
    if (col1 != NULL) out1[r] = tk_requant(a1, mult[r], shift[r], out_zp, act_min, act_max);
  }
}

/* Copy / fill n bytes a word at a time (unaligned word access is fine on Cortex-M3/M4/M7 and hosts);
 * newlib-nano's memcpy/memset go byte by byte. */
static inline void tk_copy_bytes(int8_t *dst, const int8_t *src, int n) {
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    uint32_t v;
    memcpy(&v, src + j, 4);
    memcpy(dst + j, &v, 4);
  }
  for (; j < n; ++j) dst[j] = src[j];
}

static inline void tk_fill_bytes(int8_t *dst, int8_t value, int n) {
  const uint32_t v = (uint32_t)(uint8_t)value * 0x01010101u;
  int j = 0;
  for (; j + 4 <= n; j += 4) memcpy(dst + j, &v, 4);
  for (; j < n; ++j) dst[j] = value;
}

/* One im2col column: the receptive field of output pixel (oy, ox), padded taps filled with in_zp. */
static void tk_im2col(const tk_conv_params *p, const int8_t *in, int oy, int ox, int8_t *col) {
  const int in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, k_h = p->k_h, k_w = p->k_w;
  const int dil_h = p->dil_h, dil_w = p->dil_w;
  const int8_t zp = (int8_t)p->in_zp;
  const int iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
  int ky, kx;
  for (ky = 0; ky < k_h; ++ky) {
    const int iy = iy0 + ky * dil_h;
    if (iy < 0 || iy >= in_h) {
      tk_fill_bytes(col, zp, k_w * in_c);
      col += k_w * in_c;
      continue;
    }
    for (kx = 0; kx < k_w; ++kx) {
      const int ix = ix0 + kx * dil_w;
      if (ix >= 0 && ix < in_w) {
        const int8_t *src = in + ((long)iy * in_w + ix) * in_c;
        if (in_c == 1) {
          *col = *src;
        } else {
          tk_copy_bytes(col, src, in_c);
        }
      } else if (in_c == 1) {
        *col = zp;
      } else {
        tk_fill_bytes(col, zp, in_c);
      }
      col += in_c;
    }
  }
}

/* scratch: 2 * k_h * k_w * in_c bytes, unless the kernel is 1x1 without padding (then unused). */
void tk_conv_s8(const tk_conv_params *p, const int8_t *in, int8_t *out, int8_t *scratch) {
  const int depth = p->k_h * p->k_w * p->in_c;
  const int direct = p->k_h == 1 && p->k_w == 1 && p->pad_h == 0 && p->pad_w == 0;
  const int npix = p->out_h * p->out_w;
  int b, pix, j;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *inb = in + (long)b * p->in_h * p->in_w * p->in_c;
    int8_t *outb = out + (long)b * npix * p->out_c;
    for (pix = 0; pix < npix; pix += 2) {
      const int n = pix + 1 < npix ? 2 : 1;
      const int8_t *cols[2] = {NULL, NULL};
      for (j = 0; j < n; ++j) {
        const int oy = (pix + j) / p->out_w, ox = (pix + j) % p->out_w;
        if (direct) {
          cols[j] = inb + ((long)oy * p->stride_h * p->in_w + (long)ox * p->stride_w) * p->in_c;
        } else {
          tk_im2col(p, inb, oy, ox, scratch + (long)j * depth);
          cols[j] = scratch + (long)j * depth;
        }
      }
      tk_matmul_s8(p->weights, p->out_c, depth, cols[0], cols[1], p->bias_adj, p->mult, p->shift,
                   p->out_zp, p->act_min, p->act_max, outb + (long)pix * p->out_c,
                   n == 2 ? outb + (long)(pix + 1) * p->out_c : NULL);
    }
  }
}

void tk_fc_s8(const tk_fc_params *p, const int8_t *in, int8_t *out) {
  int b;
  for (b = 0; b < p->batches; b += 2) {
    const int8_t *c0 = in + (long)b * p->depth;
    const int8_t *c1 = b + 1 < p->batches ? c0 + p->depth : NULL;
    tk_matmul_s8(p->weights, p->units, p->depth, c0, c1, p->bias_adj, p->mult, p->shift, p->out_zp,
                 p->act_min, p->act_max, out + (long)b * p->units, c1 ? out + (long)(b + 1) * p->units : NULL);
  }
}

/* Depthwise: like TFLM, padded taps are skipped and the input offset is added to every input value,
 * so one loop serves interior and border pixels. Depth multiplier 1 runs 4 channels at a time over a
 * per-pixel list of valid taps. Struct fields are copied to locals: int8_t stores may alias anything. */
void tk_dwconv_s8(const tk_dwconv_params *p, const int8_t *in, int8_t *out) {
  const int C = p->in_c, OC = p->out_c, dm = p->depth_mult;
  const int in_h = p->in_h, in_w = p->in_w, out_h = p->out_h, out_w = p->out_w, k_h = p->k_h, k_w = p->k_w;
  const int stride_h = p->stride_h, stride_w = p->stride_w, dil_h = p->dil_h, dil_w = p->dil_w;
  const int pad_h = p->pad_h, pad_w = p->pad_w;
  const int32_t zp = p->in_zp, out_zp = p->out_zp, act_min = p->act_min, act_max = p->act_max;
  const int8_t *const weights = p->weights;
  const int32_t *const bias = p->bias, *const mult = p->mult;
  const int8_t *const shift = p->shift;
  int xo[64], wo[64];
  int b, oy, ox, ky, kx, c, m, t;
#if TK_USE_DSP
  const int32_t zp2 = (int32_t)(((uint32_t)(uint16_t)(int16_t)zp) * 0x00010001u);
#endif
  for (b = 0; b < p->batches; ++b) {
    const int8_t *inb = in + (long)b * in_h * in_w * C;
    for (oy = 0; oy < out_h; ++oy) {
      const int iy0 = oy * stride_h - pad_h;
      int ky0 = 0, ky1 = k_h;
      while (ky0 < k_h && iy0 + ky0 * dil_h < 0) ++ky0;
      while (ky1 > ky0 && iy0 + (ky1 - 1) * dil_h >= in_h) --ky1;
      for (ox = 0; ox < out_w; ++ox) {
        const int ix0 = ox * stride_w - pad_w;
        int kx0 = 0, kx1 = k_w, taps = 0;
        int8_t *o = out + (((long)b * out_h + oy) * out_w + ox) * OC;
        while (kx0 < k_w && ix0 + kx0 * dil_w < 0) ++kx0;
        while (kx1 > kx0 && ix0 + (kx1 - 1) * dil_w >= in_w) --kx1;
        if (dm == 1 && (ky1 - ky0) * (kx1 - kx0) <= 64) {
          const int8_t *base = inb + ((long)iy0 * in_w + ix0) * C;
          for (ky = ky0; ky < ky1; ++ky) {
            for (kx = kx0; kx < kx1; ++kx, ++taps) {
              xo[taps] = (ky * dil_h * in_w + kx * dil_w) * C;
              wo[taps] = (ky * k_w + kx) * C;
            }
          }
          c = 0;
#if TK_USE_DSP
          for (; c + 4 <= C; c += 4) {
            const int8_t *xb = base + c, *wb = weights + c;
            int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
            for (t = 0; t < taps; ++t) {
              const uint32_t xv = tk_read32(xb + xo[t]), wv = tk_read32(wb + wo[t]);
              const int32_t x02 = __ssub16(__sxtb16(xv), zp2), x13 = __ssub16(tk_sxtb16_ror8(xv), zp2);
              const int32_t w02 = __sxtb16(wv), w13 = tk_sxtb16_ror8(wv);
              a0 = __smlabb(x02, w02, a0);
              a2 = __smlatt(x02, w02, a2);
              a1 = __smlabb(x13, w13, a1);
              a3 = __smlatt(x13, w13, a3);
            }
            o[c] = tk_requant(a0, mult[c], shift[c], out_zp, act_min, act_max);
            o[c + 1] = tk_requant(a1, mult[c + 1], shift[c + 1], out_zp, act_min, act_max);
            o[c + 2] = tk_requant(a2, mult[c + 2], shift[c + 2], out_zp, act_min, act_max);
            o[c + 3] = tk_requant(a3, mult[c + 3], shift[c + 3], out_zp, act_min, act_max);
          }
#endif
          for (; c < C; ++c) {
            int32_t acc = bias[c];
            for (t = 0; t < taps; ++t) acc += weights[wo[t] + c] * (base[xo[t] + c] - zp);
            o[c] = tk_requant(acc, mult[c], shift[c], out_zp, act_min, act_max);
          }
          continue;
        }
        for (c = 0; c < C; ++c) {
          for (m = 0; m < dm; ++m) {
            const int oc = c * dm + m;
            int32_t acc = bias[oc];
            for (ky = ky0; ky < ky1; ++ky) {
              const int iy = iy0 + ky * dil_h;
              for (kx = kx0; kx < kx1; ++kx) {
                const int ix = ix0 + kx * dil_w;
                const int32_t x = inb[((long)iy * in_w + ix) * C + c];
                acc += weights[(long)(ky * k_w + kx) * OC + oc] * (x - zp);
              }
            }
            o[oc] = tk_requant(acc, mult[oc], shift[oc], out_zp, act_min, act_max);
          }
        }
      }
    }
  }
}
