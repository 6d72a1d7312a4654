/* tinykeras aot runtime: pooling, elementwise, softmax, logistic, tanh, (de)quantize, mean, pad, copy.
 * Integer arithmetic as in TFLite-Micro's int8 reference kernels; parameters come from the generator.
 */
#include <math.h>
#include <string.h>

#include "tk_fixedpoint.h"
#include "tk_kernels.h"

static inline int32_t tk_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

static void tk_pool(const tk_pool_params *p, const int8_t *in, int8_t *out, int is_max) {
  int b, oy, ox, c, fy, fx;
  for (b = 0; b < p->batches; ++b) {
    const int8_t *inb = in + (long)b * p->in_h * p->in_w * p->c;
    for (oy = 0; oy < p->out_h; ++oy) {
      const int iy0 = oy * p->stride_h - p->pad_h;
      const int fy0 = iy0 < 0 ? -iy0 : 0;
      const int fy1 = p->in_h - iy0 < p->f_h ? p->in_h - iy0 : p->f_h;
      for (ox = 0; ox < p->out_w; ++ox) {
        const int ix0 = ox * p->stride_w - p->pad_w;
        const int fx0 = ix0 < 0 ? -ix0 : 0;
        const int fx1 = p->in_w - ix0 < p->f_w ? p->in_w - ix0 : p->f_w;
        int8_t *o = out + (((long)b * p->out_h + oy) * p->out_w + ox) * p->c;
        for (c = 0; c < p->c; ++c) {
          int32_t acc = is_max ? -128 : 0;
          int count = 0;
          for (fy = fy0; fy < fy1; ++fy) {
            const int8_t *row = inb + ((long)(iy0 + fy) * p->in_w + ix0) * p->c + c;
            for (fx = fx0; fx < fx1; ++fx) {
              const int32_t v = row[(long)fx * p->c];
              if (is_max) {
                acc = v > acc ? v : acc;
              } else {
                acc += v;
              }
              ++count;
            }
          }
          if (!is_max && count > 0) {
            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          }
          o[c] = (int8_t)tk_clamp(acc, p->act_min, p->act_max);
        }
      }
    }
  }
}

void tk_avgpool_s8(const tk_pool_params *p, const int8_t *in, int8_t *out) { tk_pool(p, in, out, 0); }
void tk_maxpool_s8(const tk_pool_params *p, const int8_t *in, int8_t *out) { tk_pool(p, in, out, 1); }

/* Advance a 6-D counter over out_shape, keeping the two input offsets in step. */
static inline void tk_next_index(const tk_binary_params *p, int *idx, int *o1, int *o2) {
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

static inline int8_t tk_add_one(const tk_binary_params *p, int32_t a, int32_t b) {
  const int32_t x = tk_wrap_shl(p->in1_offset + a, p->left_shift);
  const int32_t y = tk_wrap_shl(p->in2_offset + b, p->left_shift);
  const int32_t sx = tk_mbqm(x, p->in1_mult, p->in1_shift);
  const int32_t sy = tk_mbqm(y, p->in2_mult, p->in2_shift);
  const int32_t raw = tk_mbqm(sx + sy, p->out_mult, p->out_shift) + p->out_offset;
  return (int8_t)tk_clamp(raw, p->act_min, p->act_max);
}

static inline int8_t tk_mul_one(const tk_binary_params *p, int32_t a, int32_t b) {
  const int32_t prod = (p->in1_offset + a) * (p->in2_offset + b);
  const int32_t raw = p->out_offset + tk_mbqm(prod, p->out_mult, p->out_shift);
  return (int8_t)tk_clamp(raw, p->act_min, p->act_max);
}

void tk_add_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  int i;
  if (!p->broadcast) {
    for (i = 0; i < p->n; ++i) out[i] = tk_add_one(p, in1[i], in2[i]);
  } else {
    int idx[TK_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int o1 = 0, o2 = 0;
    for (i = 0; i < p->n; ++i) {
      out[i] = tk_add_one(p, in1[o1], in2[o2]);
      tk_next_index(p, idx, &o1, &o2);
    }
  }
}

void tk_mul_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
  int i;
  if (!p->broadcast) {
    for (i = 0; i < p->n; ++i) out[i] = tk_mul_one(p, in1[i], in2[i]);
  } else {
    int idx[TK_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
    int o1 = 0, o2 = 0;
    for (i = 0; i < p->n; ++i) {
      out[i] = tk_mul_one(p, in1[o1], in2[o2]);
      tk_next_index(p, idx, &o1, &o2);
    }
  }
}

/* Count leading zeros of a non-zero 32-bit value. */
static inline int tk_clz(uint32_t x) {
  int n = 0;
  if (x == 0) return 32;
  while (!(x & 0x80000000u)) {
    x <<= 1;
    ++n;
  }
  return n;
}

/* int8 softmax, output scale 1/256 and zero point -128 (TFLM's requirement). */
void tk_softmax_s8(const tk_softmax_params *p, const int8_t *in, int8_t *out) {
  const int kScaledDiffIntegerBits = 5, kAccumulationIntegerBits = 12;
  int r, c;
  for (r = 0; r < p->rows; ++r) {
    const int8_t *x = in + (long)r * p->depth;
    int8_t *y = out + (long)r * p->depth;
    int32_t max_in_row = -128, sum_of_exps = 0;
    int num_bits_over_unit, headroom_plus_one;
    int32_t shifted_scale, shifted_sum_minus_one;
    for (c = 0; c < p->depth; ++c) max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)x[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t rescaled = tk_srdhm(tk_wrap_shl(diff, p->in_left_shift), p->in_mult);
        const int32_t e = tk_exp_on_negative_values(rescaled, kScaledDiffIntegerBits);
        sum_of_exps = tk_wrap_add(sum_of_exps, tk_rdivpot(e, kAccumulationIntegerBits));
      }
    }
    headroom_plus_one = tk_clz((uint32_t)sum_of_exps);
    num_bits_over_unit = kAccumulationIntegerBits - headroom_plus_one;
    shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
    shifted_scale = tk_one_over_one_plus_x(shifted_sum_minus_one);
    for (c = 0; c < p->depth; ++c) {
      const int32_t diff = (int32_t)x[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t rescaled = tk_srdhm(tk_wrap_shl(diff, p->in_left_shift), p->in_mult);
        const int32_t e = tk_exp_on_negative_values(rescaled, kScaledDiffIntegerBits);
        const int32_t unsat = tk_rdivpot(tk_srdhm(shifted_scale, e), num_bits_over_unit + 31 - 8);
        y[c] = (int8_t)tk_clamp(unsat - 128, -128, 127);
      } else {
        y[c] = -128;
      }
    }
  }
}

/* int8 logistic: output scale 1/256, zero point -128. */
void tk_logistic_s8(const tk_sigmoid_params *p, const int8_t *in, int8_t *out) {
  int i;
  for (i = 0; i < p->n; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    if (x <= -p->range_radius) {
      out[i] = -128;
    } else if (x >= p->range_radius) {
      out[i] = 127;
    } else {
      const int32_t q4 = tk_mbqm(x, p->in_mult, p->in_left_shift);
      const int32_t q0 = tk_fp_logistic(q4, 4);
      out[i] = (int8_t)tk_clamp(tk_rdivpot(q0, 31 - 8) - 128, -128, 127);
    }
  }
}

/* int8 tanh: output scale 1/128, zero point 0. */
void tk_tanh_s8(const tk_sigmoid_params *p, const int8_t *in, int8_t *out) {
  int i;
  for (i = 0; i < p->n; ++i) {
    const int32_t x = (int32_t)in[i] - p->in_zp;
    if (x <= -p->range_radius) {
      out[i] = -128;
    } else if (x >= p->range_radius) {
      out[i] = 127;
    } else {
      const int32_t q4 = tk_mbqm(x, p->in_mult, p->in_left_shift);
      const int32_t q0 = tk_fp_tanh(q4, 4);
      out[i] = (int8_t)tk_clamp(tk_rdivpot(q0, 31 - 7), -128, 127);
    }
  }
}

void tk_requantize_s8(const tk_requant_params *p, const int8_t *in, int8_t *out) {
  int i;
  for (i = 0; i < p->n; ++i) {
    const int32_t v = tk_mbqm((int32_t)in[i] - p->in_zp, p->mult, p->shift) + p->out_zp;
    out[i] = (int8_t)tk_clamp(v, -128, 127);
  }
}

void tk_quantize_f32_s8(int n, float scale, int32_t zp, const float *in, int8_t *out) {
  int i;
  for (i = 0; i < n; ++i) {
    float r = roundf(in[i] / scale);
    r = r != r ? 0.0f : (r > 1e6f ? 1e6f : (r < -1e6f ? -1e6f : r)); /* NaN -> 0; saturates below */
    const int32_t v = (int32_t)r;
    out[i] = (int8_t)tk_clamp(v + zp, -128, 127);
  }
}

void tk_dequantize_s8_f32(int n, double scale, int32_t zp, const int8_t *in, float *out) {
  int i;
  for (i = 0; i < n; ++i) out[i] = (float)(scale * (double)((int32_t)in[i] - zp));
}

/* scratch: out_n int32 sums. */
void tk_mean_s8(const tk_mean_params *p, const int8_t *in, int8_t *out, int32_t *scratch) {
  int idx[TK_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  long total = 1, i;
  int d, o = 0;
  for (d = 0; d < TK_MAX_DIMS; ++d) total *= p->in_shape[d];
  for (i = 0; i < p->out_n; ++i) scratch[i] = 0;
  for (i = 0; i < total; ++i) {
    scratch[o] += in[i];
    for (d = TK_MAX_DIMS - 1; d >= 0; --d) {
      ++idx[d];
      o += p->out_stride[d];
      if (idx[d] < p->in_shape[d]) break;
      o -= p->out_stride[d] * p->in_shape[d];
      idx[d] = 0;
    }
  }
  for (i = 0; i < p->out_n; ++i) {
    const int32_t shifted = scratch[i] - p->in_zp * p->count;
    out[i] = (int8_t)tk_clamp(tk_mbqm(shifted, p->mult, p->shift) + p->out_zp, -128, 127);
  }
}

void tk_pad(const tk_pad_params *p, const void *in, void *out) {
  const int eb = p->elem_bytes;
  long out_total = eb, rows = 1, i;
  int idx[TK_MAX_DIMS] = {0, 0, 0, 0, 0, 0};
  int d;
  const int last = TK_MAX_DIMS - 1;
  const long chunk = (long)p->in_shape[last] * eb;
  for (d = 0; d < TK_MAX_DIMS; ++d) out_total *= p->out_shape[d];
  for (d = 0; d < last; ++d) rows *= p->in_shape[d];
  memset(out, (int8_t)p->pad_value, (size_t)out_total);
  for (i = 0; i < rows; ++i) {
    long off = 0;
    for (d = 0; d < TK_MAX_DIMS; ++d) {
      off = off * p->out_shape[d] + (d < last ? idx[d] : 0) + p->before[d];
    }
    memcpy((int8_t *)out + off * eb, (const int8_t *)in + i * chunk, (size_t)chunk);
    for (d = last - 1; d >= 0; --d) {
      if (++idx[d] < p->in_shape[d]) break;
      idx[d] = 0;
    }
  }
}

void tk_copy_rows(void *out, int out_stride, const void *in, int chunk, int outer) {
  int i;
  for (i = 0; i < outer; ++i) {
    memmove((int8_t *)out + (long)i * out_stride, (const int8_t *)in + (long)i * chunk, (size_t)chunk);
  }
}
