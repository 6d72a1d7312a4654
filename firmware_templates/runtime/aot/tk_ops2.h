/* tinykeras aot runtime: the second set of kernels (C99, no heap): SUB, SQUARED_DIFFERENCE, MAXIMUM/MINIMUM,
 * LEAKY_RELU, HARD_SWISH, RELU/RELU6, RSQRT (table), ELU and NEG (float), RESIZE_NEAREST_NEIGHBOR, GATHER,
 * STRIDED_SLICE/SLICE/TRANSPOSE, strided copies (PACK/UNPACK/SPLIT), REDUCE_MAX/MIN, BATCH_MATMUL and
 * TRANSPOSE_CONV. Integer arithmetic as in TFLite-Micro's reference kernels; every parameter (multipliers,
 * shifts, index tables) is computed by tinykeras/aot/ops2.py at generation time.
 */
#ifndef TK_OPS2_H_
#define TK_OPS2_H_

#include <stdint.h>

#include "tk_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int n;
  int32_t in_zp, out_zp;
  int32_t mult_identity, mult_alpha;  /* mult_alpha may be negative (negative alpha) */
  int shift_identity, shift_alpha;
} tk_leaky_params;

typedef struct {
  int n;
  int32_t in_zp, out_zp;
  int16_t out_mult, reluish_mult;     /* Q15 */
  int out_exp, reluish_exp;
} tk_hswish_params;

typedef struct {
  int n;
  int32_t in_zp, out_zp, mult;
  int shift;
  int32_t act_min, act_max;
} tk_relu_params;

typedef struct {
  int batches, in_h, in_w, depth_bytes, out_h, out_w;
  const int32_t *src_y;               /* out_h input rows */
  const int32_t *src_x;               /* out_w input columns */
} tk_resize_params;

typedef struct {
  int outer, axis_size, n_idx, inner_bytes;
} tk_gather_params;

typedef struct {
  int out_shape[TK_MAX_DIMS];
  long in_stride[TK_MAX_DIMS];        /* bytes per step along each axis (step and sign folded in) */
  long start;                         /* byte offset of the first element */
  int elem_bytes;
} tk_slice_params;

typedef struct {
  int batches, in_h, in_w, in_c, out_h, out_w, out_c;
  int k_h, k_w, stride_h, stride_w, pad_h, pad_w;
  int32_t in_offset, out_zp, act_min, act_max;
  const int8_t *weights;              /* [out_c][k_h][k_w][in_c] */
  const int32_t *bias;                /* NULL without bias */
  const int32_t *mult;
  const int8_t *shift;
} tk_tconv_params;

typedef struct {
  int batch[3];                       /* output batch dims (5-D extended, the leading three) */
  long lhs_batch[3], rhs_batch[3];    /* element strides per batch dim, 0 where broadcast */
  int rows, cols, depth;
  int lhs_si, lhs_sk, rhs_sk, rhs_sj; /* element strides inside one matrix (adj_x / adj_y folded in) */
  int32_t lhs_offset, rhs_offset, out_zp, mult;
  int shift;
} tk_bmm_params;

void tk_sub_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tk_squared_difference_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tk_maximum_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tk_minimum_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tk_leaky_relu_s8(const tk_leaky_params *p, const int8_t *in, int8_t *out);
void tk_hard_swish_s8(const tk_hswish_params *p, const int8_t *in, int8_t *out);
void tk_relu_s8(const tk_relu_params *p, const int8_t *in, int8_t *out);
void tk_clamp_s8(int n, int32_t lo, int32_t hi, const int8_t *in, int8_t *out);
void tk_lut_s8(int n, const int8_t *table, const int8_t *in, int8_t *out);
void tk_neg_f32(int n, const float *in, float *out);
void tk_elu_f32(int n, const float *in, float *out);
void tk_resize_nearest(const tk_resize_params *p, const void *in, void *out);
void tk_gather(const tk_gather_params *p, const void *params, const int32_t *idx, void *out);
void tk_strided_slice(const tk_slice_params *p, const void *in, void *out);
void tk_copy_strided(void *out, long out_stride, const void *in, long in_stride, long chunk, int outer);
void tk_reduce_max_s8(const tk_mean_params *p, const int8_t *in, int8_t *out);
void tk_reduce_min_s8(const tk_mean_params *p, const int8_t *in, int8_t *out);
void tk_batch_matmul_s8(const tk_bmm_params *p, const int8_t *lhs, const int8_t *rhs, int8_t *out);
void tk_transpose_conv_s8(const tk_tconv_params *p, const int8_t *in, int8_t *out, int32_t *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TK_OPS2_H_ */
