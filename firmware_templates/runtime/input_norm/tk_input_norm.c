/* tinykeras input normalisation (see tk_input_norm.h). C99, no heap, no libm. */
#include "tk_input_norm.h"

#include <string.h>

#include "tk_model_api.h"

/* round half to even, clamped to int8 (numpy's np.round, then np.clip, as tinykeras.tflm_host.quantize) */
static int8_t quantize(double v) {
  double r;
  long whole;
  if (v < -200.0) v = -200.0;
  if (v > 200.0) v = 200.0;
  whole = (long)(v + 1000.0) - 1000L; /* floor */
  r = v - (double)whole;
  if (r > 0.5 || (r == 0.5 && (whole & 1L) != 0L)) {
    whole += 1L;
  }
  whole += (long)TK_INPUT_NORM_ZERO_POINT;
  if (whole < -128L) whole = -128L;
  if (whole > 127L) whole = 127L;
  return (int8_t)whole;
}

int tk_input_norm_set(const float *x, unsigned n) {
  int8_t *in = tk_input();
  unsigned k;
  if (n != TK_INPUT_NORM_ELEMENTS) {
    return -1;
  }
  for (k = 0u; k < n; ++k) {
    /* float32 multiply, then add: two roundings, never fused (the host does the same in numpy) */
    volatile float product = x[k] * tk_input_norm_scale[k];
    float z = product + tk_input_norm_offset[k];
    in[k] = quantize((double)z / TK_INPUT_NORM_QSCALE);
  }
  return 0;
}

int tk_input_norm_set_bytes(const uint8_t *bytes, unsigned nbytes) {
  float x[TK_INPUT_NORM_ELEMENTS];
  if (nbytes != 4u * TK_INPUT_NORM_ELEMENTS) {
    return -1;
  }
  memcpy(x, bytes, sizeof(x)); /* little-endian targets */
  return tk_input_norm_set(x, TK_INPUT_NORM_ELEMENTS);
}
