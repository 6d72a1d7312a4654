/* tinykeras aot runtime: int8 kernels (C99, no heap, no libc beyond memcpy/memset and math.h).
 *
 * All quantization parameters (multipliers, shifts, activation ranges, folded biases) are computed at
 * generation time by tinykeras (tinykeras/aot/quant.py) exactly as TFLite-Micro's Prepare() does, so
 * the kernels only do integer arithmetic and their outputs equal TFLM's reference kernels bit for bit.
 * Shapes are NHWC. On Cortex-M cores with the DSP extension (__ARM_FEATURE_DSP) the convolution,
 * depthwise and fully connected inner loops use SMLAD/SXTB16; elsewhere the portable C loops run.
 * Both compute the same integer sums.
 */
#ifndef TK_KERNELS_H_
#define TK_KERNELS_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TK_MAX_DIMS 6

typedef struct {
  int batches, in_h, in_w, in_c, out_h, out_w, out_c;
  int k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t in_zp, out_zp, act_min, act_max;
  const int8_t *weights;    /* [out_c][k_h*k_w*in_c], rows pair-interleaved (tk_conv.c) */
  const int32_t *bias_adj;  /* bias - in_zp * sum(weights of the channel) */
  const int32_t *mult;      /* per output channel */
  const int8_t *shift;      /* per output channel */
} tk_conv_params;

typedef struct {
  int batches, in_h, in_w, in_c, out_h, out_w, out_c, depth_mult;
  int k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
  int32_t in_zp, out_zp, act_min, act_max;
  const int8_t *weights;    /* [k_h][k_w][out_c] */
  const int32_t *bias;      /* the model's bias (zeros if none) */
  const int32_t *mult;
  const int8_t *shift;
} tk_dwconv_params;

typedef struct {
  int batches, depth, units;
  int32_t out_zp, act_min, act_max;
  const int8_t *weights;    /* [units][depth], rows pair-interleaved (tk_conv.c) */
  const int32_t *bias_adj;  /* bias - in_zp * sum(weights of the unit) */
  const int32_t *mult;
  const int8_t *shift;
} tk_fc_params;

typedef struct {
  int batches, in_h, in_w, c, out_h, out_w;
  int f_h, f_w, stride_h, stride_w, pad_h, pad_w;
  int32_t act_min, act_max;
} tk_pool_params;

typedef struct {
  int n;                    /* elements of the output */
  int broadcast;            /* 0: both inputs have n elements */
  int out_shape[TK_MAX_DIMS], stride1[TK_MAX_DIMS], stride2[TK_MAX_DIMS];
  int32_t in1_offset, in2_offset, out_offset;
  int left_shift;
  int32_t in1_mult, in2_mult, out_mult;
  int in1_shift, in2_shift, out_shift;
  int32_t act_min, act_max;
} tk_binary_params;

typedef struct {
  int rows, depth;
  int32_t in_mult;
  int in_left_shift;
  int32_t diff_min;
} tk_softmax_params;

typedef struct {
  int n;
  int32_t in_zp, range_radius, in_mult;
  int in_left_shift;
} tk_sigmoid_params;

typedef struct {
  int n;
  int32_t in_zp, out_zp, mult;
  int shift;
} tk_requant_params;

typedef struct {
  int in_shape[TK_MAX_DIMS];
  int out_stride[TK_MAX_DIMS];  /* 0 along reduced axes */
  int out_n, count;
  int32_t in_zp, out_zp, mult;
  int shift;
} tk_mean_params;

typedef struct {
  int in_shape[TK_MAX_DIMS], out_shape[TK_MAX_DIMS], before[TK_MAX_DIMS];
  int elem_bytes;
  int32_t pad_value;
} tk_pad_params;

void tk_conv_s8(const tk_conv_params *p, const int8_t *in, int8_t *out, int8_t *scratch);
void tk_dwconv_s8(const tk_dwconv_params *p, const int8_t *in, int8_t *out);
void tk_fc_s8(const tk_fc_params *p, const int8_t *in, int8_t *out);
void tk_matmul_s8(const int8_t *w, int rows, int depth, const int8_t *col0, const int8_t *col1,
                  const int32_t *bias_adj, const int32_t *mult, const int8_t *shift,
                  int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out0, int8_t *out1);
void tk_avgpool_s8(const tk_pool_params *p, const int8_t *in, int8_t *out);
void tk_maxpool_s8(const tk_pool_params *p, const int8_t *in, int8_t *out);
void tk_add_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tk_mul_s8(const tk_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void tk_softmax_s8(const tk_softmax_params *p, const int8_t *in, int8_t *out);
void tk_logistic_s8(const tk_sigmoid_params *p, const int8_t *in, int8_t *out);
void tk_tanh_s8(const tk_sigmoid_params *p, const int8_t *in, int8_t *out);
void tk_requantize_s8(const tk_requant_params *p, const int8_t *in, int8_t *out);
void tk_quantize_f32_s8(int n, float scale, int32_t zp, const float *in, int8_t *out);
void tk_dequantize_s8_f32(int n, double scale, int32_t zp, const int8_t *in, float *out);
void tk_mean_s8(const tk_mean_params *p, const int8_t *in, int8_t *out, int32_t *scratch);
void tk_pad(const tk_pad_params *p, const void *in, void *out);
void tk_copy_rows(void *out, int out_stride, const void *in, int chunk, int outer);

#ifdef __cplusplus
}
#endif

#endif /* TK_KERNELS_H_ */
