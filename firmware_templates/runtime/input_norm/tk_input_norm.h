/* tinykeras input normalisation: the model's input standardisation (e.g. an adapted Keras Normalization),
 * moved out of the int8 graph so features of very different scales keep their resolution. Give the raw
 * float features of input 0 to tk_input_norm_set(); it writes x * scale + offset per element, quantized
 * with the input's scale and zero point (exactly as tinykeras does on the host), into tk_input().
 * Then call tk_invoke(). The per-element tables are in tk_input_norm_tables.h (generated). */
#ifndef TK_INPUT_NORM_H_
#define TK_INPUT_NORM_H_

#include <stdint.h>

#include "tk_input_norm_tables.h"

#ifdef __cplusplus
extern "C" {
#endif

/* x: TK_INPUT_NORM_ELEMENTS raw features. Returns 0, or -1 when n is not TK_INPUT_NORM_ELEMENTS. */
int tk_input_norm_set(const float *x, unsigned n);

/* The same from little-endian float32 bytes (e.g. a serial buffer); nbytes == 4 * TK_INPUT_NORM_ELEMENTS. */
int tk_input_norm_set_bytes(const uint8_t *bytes, unsigned nbytes);

#ifdef __cplusplus
}
#endif

#endif /* TK_INPUT_NORM_H_ */
