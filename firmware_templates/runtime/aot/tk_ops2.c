/* tinykeras aot runtime: SUB, MAXIMUM/MINIMUM, LEAKY_RELU, HARD_SWISH, RELU/RELU6, ELU, RESIZE_NEAREST_NEIGHBOR,
 * GATHER, STRIDED_SLICE, strided copies and TRANSPOSE_CONV. Same integers as TFLite-Micro's reference kernels;
 * parameters come from the generator (tinykeras/aot/ops2.py). Shifts of negative values go through unsigned
 * arithmetic (tk_fixedpoint.h), so the file is clean under UBSan.
 */
#include <math.h>
#include <string.h>

#include "tk_fixedpoint.h"
#include "tk_ops2.h"

static inline int32_t tk2_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* Advance a 6-D counter over out_shape, keeping the two input offsets in step. */
static void tk2_next_index(const tk_binary_params *p, int *idx, int *o1, int *o2) {
  int d;
  for (d = TK_MAX_DIMS - 1; d >= 0; --d) {
    ++idx[d];
    *o1 += p->stride1[d];
    *o2 += p->stride2[d];
    if (idx[d] < p->out_shape[d]) return;
    *o1 -= p->stride1[d] * p->out_shape[d];
    *o2 -= p->stride2[d] * p->out_shape[d];
    idx[d] = 0;
  }
}

enum { TK2_SUB, TK2_MAX, TK2_MIN, TK2_SQDIFF };

static inline int8_t tk2_binary_one(const tk_binary_params *p, int kind, int32_t a, int32_t b) {
  if (kind == TK2_MAX) return (int8_t)(a > b ? a : b);
  if (kind == TK2_MIN) return (int8_t)(a < b ? a : b);
  {
    const int32_t x = tk_wrap_shl(p->in1_offset + a, p->left_shift);
    const int32_t y = tk_wrap_shl(p->in2_offset + b, p->left_shift);
    const int32_t sx = tk_mbqm(x, p->in1_mult, p->in1_shift);
    const int32_t sy = tk_mbqm(y, p->in2_mult, p->in2_shift);
    const int32_t d = sx - sy;
    const int32_t raw = tk_mbqm(kind == TK2_SQDIFF ? d * d : d, p->out_mult, p->out_shift) + p->out_offset;
    return (int8_t)tk2_clamp(raw, p->act_min, p->act_max);
  }
}

static void tk2_binary(const tk_binary_params *p, int kind, const int8_t *in1, const int8_t *in2, int8_t *out) {
  int i;
  if (!p->broadcast) {
    for (i = 0; i < p->n; ++i) out[i] = tk2_binary_one(p, kind, in1[i], in2[i]);
  } else {
    int idx[TK_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int o1 = 0, o2 = 0;
    for (i = 0; i < p->n; ++i) {
      out[i] = tk2_binary_one(p, kind, in1[o1], in2[o2]);
      tk2_next_index(p, idx, &o1, &o2);
    }
  }
}

void tk_sub_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  tk2_binary(p, TK2_SUB, in1, in2, out);
}
void tk_squared_difference_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  tk2_binary(p, TK2_SQDIFF, in1, in2, out);
}
void tk_maximum_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  tk2_binary(p, TK2_MAX, in1, in2, out);
}
void tk_minimum_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  tk2_binary(p, TK2_MIN, in1, in2, out);
}

void tk_leaky_relu_s8(const tk_leaky_params *p, const int8_t *in, int8_t *out) {
  const int negative = p->mult_alpha < 0;
  const int32_t alpha = negative ? -p->mult_alpha : p->mult_alpha;
  int i;
  for (i = 0; i < p->n; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    int32_t v = p->out_zp;
    if (x >= 0) {
      v += tk_mbqm(x, p->mult_identity, p->shift_identity);
    } else {
      const int32_t s = tk_mbqm(x, alpha, p->shift_alpha);
      v += negative ? -s : s;
    }
    out[i] = (int8_t)tk2_clamp(v, -128, 127);
  }
}

/* gemmlowp's int16 SaturatingRoundingDoublingHighMul. */
static inline int16_t tk2_srdhm16(int16_t a, int16_t b) {
  const int32_t ab = (int32_t)a * (int32_t)b;
  const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
  if (a == b && a == INT16_MIN) return INT16_MAX;
  return (int16_t)((ab + nudge) / (1 << 15));
}

/* Round-to-zero doubling high multiply (SQDMULH), as TFLM's hard-swish uses for its last product. */
static inline int16_t tk2_sdhm16(int16_t a, int16_t b) {
  if (a == b && a == INT16_MIN) return INT16_MAX;
  return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static inline int16_t tk2_sat_shl16(int16_t v, int amount) {
  const int64_t r = (int64_t)v * ((int64_t)1 << amount);
  return (int16_t)(r > INT16_MAX ? INT16_MAX : (r < INT16_MIN ? INT16_MIN : r));
}

void tk_hard_swish_s8(const tk_hswish_params *p, const int8_t *in, int8_t *out) {
  int i;
  for (i = 0; i < p->n; ++i) {
    const int16_t x = (int16_t)((int32_t)in[i] - p->in_zp);
    const int16_t hires = (int16_t)(x * (1 << 7));
    const int16_t preshift_out = tk2_srdhm16(hires, p->out_mult);
    int16_t reluish = hires;
    int32_t v;
    if (p->reluish_exp > 0) reluish = tk2_sat_shl16(reluish, p->reluish_exp - 1);
    reluish = tk2_srdhm16(reluish, p->reluish_mult);
    if (p->reluish_exp > 0) reluish = tk2_sat_shl16(reluish, 1);
    if (p->reluish_exp < 0) reluish = (int16_t)tk_rdivpot(reluish, -p->reluish_exp);
    reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1);
    v = tk_rdivpot(tk2_sdhm16(reluish, preshift_out), -p->out_exp) + p->out_zp;
    out[i] = (int8_t)tk2_clamp(v, -128, 127);
  }
}

void tk_relu_s8(const tk_relu_params *p, const int8_t *in, int8_t *out) {
  int i;
  for (i = 0; i < p->n; ++i) {
    const int32_t v = p->out_zp + tk_mbqm((int32_t)in[i] - p->in_zp, p->mult, p->shift);
    out[i] = (int8_t)tk2_clamp(v, p->act_min, p->act_max);
  }
}

void tk_clamp_s8(int n, int32_t lo, int32_t hi, const int8_t *in, int8_t *out) {
  int i;
  for (i = 0; i < n; ++i) out[i] = (int8_t)tk2_clamp(in[i], lo, hi);
}

/* out[i] = table[in[i] + 128]: int8 functions of one input computed at generation time (RSQRT). */
void tk_lut_s8(int n, const int8_t *table, const int8_t *in, int8_t *out) {
  int i;
  for (i = 0; i < n; ++i) out[i] = table[(int32_t)in[i] + 128];
}

void tk_neg_f32(int n, const float *in, float *out) {
  int i;
  for (i = 0; i < n; ++i) out[i] = -in[i];
}

void tk_elu_f32(int n, const float *in, float *out) {
  int i;
  for (i = 0; i < n; ++i) out[i] = in[i] < 0.0f ? expm1f(in[i]) : in[i];
}

void tk_resize_nearest(const tk_resize_params *p, const void *in, void *out) {
  const int8_t *src = (const int8_t *)in;
  int8_t *dst = (int8_t *)out;
  const long row = (long)p->in_w * p->depth_bytes;
  int b, y, x;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *base = src + (long)b * p->in_h * row;
    for (y = 0; y < p->out_h; ++y) {
      const int8_t *src_row = base + p->src_y[y] * row;
      for (x = 0; x < p->out_w; ++x) {
        memcpy(dst, src_row + (long)p->src_x[x] * p->depth_bytes, (size_t)p->depth_bytes);
        dst += p->depth_bytes;
      }
    }
  }
}

/* Out-of-range indices (TFLM reports an error for them) are clamped so that memory stays safe. */
void tk_gather(const tk_gather_params *p, const void *params, const int32_t *idx, void *out) {
  const int8_t *src = (const int8_t *)params;
  int8_t *dst = (int8_t *)out;
  int o, k;
  for (o = 0; o < p->outer; ++o) {
    for (k = 0; k < p->n_idx; ++k) {
      int32_t i = idx[k];
      i = i < 0 ? 0 : (i >= p->axis_size ? p->axis_size - 1 : i);
      memcpy(dst, src + ((long)o * p->axis_size + i) * p->inner_bytes, (size_t)p->inner_bytes);
      dst += p->inner_bytes;
    }
  }
}

void tk_strided_slice(const tk_slice_params *p, const void *in, void *out) {
  const int8_t *src = (const int8_t *)in;
  int8_t *dst = (int8_t *)out;
  int idx[TK_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  long total = 1, i, off = p->start;
  int d;
  for (d = 0; d < TK_MAX_DIMS; ++d) total *= p->out_shape[d];
  for (i = 0; i < total; ++i) {
    memcpy(dst, src + off, (size_t)p->elem_bytes);
    dst += p->elem_bytes;
    for (d = TK_MAX_DIMS - 1; d >= 0; --d) {
      off += p->in_stride[d];
      if (++idx[d] < p->out_shape[d]) break;
      off -= p->in_stride[d] * p->out_shape[d];
      idx[d] = 0;
    }
  }
}

void tk_copy_strided(void *out, long out_stride, const void *in, long in_stride, long chunk, int outer) {
  int i;
  for (i = 0; i < outer; ++i) {
    memmove((int8_t *)out + i * out_stride, (const int8_t *)in + i * in_stride, (size_t)chunk);
  }
}

/* Raw int8 max/min over the reduced axes (TFLM requires equal input and output quantization). */
static void tk2_reduce(const tk_mean_params *p, const int8_t *in, int8_t *out, int is_max) {
  int idx[TK_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  long total = 1, i;
  int d, o = 0;
  for (d = 0; d < TK_MAX_DIMS; ++d) total *= p->in_shape[d];
  for (i = 0; i < p->out_n; ++i) out[i] = (int8_t)(is_max ? -128 : 127);
  for (i = 0; i < total; ++i) {
    if (is_max ? in[i] > out[o] : in[i] < out[o]) out[o] = in[i];
    for (d = TK_MAX_DIMS - 1; d >= 0; --d) {
      ++idx[d];
      o += p->out_stride[d];
      if (idx[d] < p->in_shape[d]) break;
      o -= p->out_stride[d] * p->in_shape[d];
      idx[d] = 0;
    }
  }
}

void tk_reduce_max_s8(const tk_mean_params *p, const int8_t *in, int8_t *out) { tk2_reduce(p, in, out, 1); }
void tk_reduce_min_s8(const tk_mean_params *p, const int8_t *in, int8_t *out) { tk2_reduce(p, in, out, 0); }

void tk_batch_matmul_s8(const tk_bmm_params *p, const int8_t *lhs, const int8_t *rhs, int8_t *out) {
  int b0, b1, b2, i, j, k;
  for (b0 = 0; b0 < p->batch[0]; ++b0) {
    for (b1 = 0; b1 < p->batch[1]; ++b1) {
      for (b2 = 0; b2 < p->batch[2]; ++b2) {
        const int8_t *l = lhs + b0 * p->lhs_batch[0] + b1 * p->lhs_batch[1] + b2 * p->lhs_batch[2];
        const int8_t *r = rhs + b0 * p->rhs_batch[0] + b1 * p->rhs_batch[1] + b2 * p->rhs_batch[2];
        for (i = 0; i < p->rows; ++i) {
          for (j = 0; j < p->cols; ++j) {
            int32_t acc = 0, v;
            for (k = 0; k < p->depth; ++k) {
              acc += ((int32_t)l[(long)i * p->lhs_si + (long)k * p->lhs_sk] + p->lhs_offset) *
                     ((int32_t)r[(long)k * p->rhs_sk + (long)j * p->rhs_sj] + p->rhs_offset);
            }
            v = tk_mbqm(acc, p->mult, p->shift) + p->out_zp;
            *out++ = (int8_t)tk2_clamp(v, -128, 127);
          }
        }
      }
    }
  }
}

/* Scatter every input pixel into the int32 scratch (out_h*out_w*out_c), then requantize per channel. */
void tk_transpose_conv_s8(const tk_tconv_params *p, const int8_t *in, int8_t *out, int32_t *scratch) {
  const long out_plane = (long)p->out_h * p->out_w * p->out_c;
  const long k_stride = (long)p->k_h * p->k_w * p->in_c;
  int b, iy, ix, ky, kx, oc, ic;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *inb = in + (long)b * p->in_h * p->in_w * p->in_c;
    int8_t *outb = out + (long)b * out_plane;
    long i;
    memset(scratch, 0, (size_t)out_plane * sizeof(int32_t));
    for (iy = 0; iy < p->in_h; ++iy) {
      for (ix = 0; ix < p->in_w; ++ix) {
        const int8_t *x = inb + ((long)iy * p->in_w + ix) * p->in_c;
        const int oy0 = iy * p->stride_h - p->pad_h, ox0 = ix * p->stride_w - p->pad_w;
        for (ky = 0; ky < p->k_h; ++ky) {
          const int oy = oy0 + ky;
          if (oy < 0 || oy >= p->out_h) continue;
          for (kx = 0; kx < p->k_w; ++kx) {
            const int ox = ox0 + kx;
            int32_t *acc;
            const int8_t *w;
            if (ox < 0 || ox >= p->out_w) continue;
            acc = scratch + ((long)oy * p->out_w + ox) * p->out_c;
            w = p->weights + ((long)ky * p->k_w + kx) * p->in_c;
            for (oc = 0; oc < p->out_c; ++oc, w += k_stride) {
              int32_t sum = 0;
              for (ic = 0; ic < p->in_c; ++ic) sum += ((int32_t)x[ic] + p->in_offset) * w[ic];
              acc[oc] += sum;
            }
          }
        }
      }
    }
    for (i = 0; i < out_plane; ++i) {
      const int c = (int)(i % p->out_c);
      int32_t acc = scratch[i] + (p->bias ? p->bias[c] : 0);
      acc = tk_mbqm(acc, p->mult[c], p->shift[c]) + p->out_zp;
      outb[i] = (int8_t)tk2_clamp(acc, p->act_min, p->act_max);
    }
  }
}
