/* tinykeras model API: what every runtime implements (the aot generated C, the TFLM C++ adapter).
 *
 * The board-independent benchmark (tk_bench.c) calls only these functions. C linkage, C99, no heap.
 * Call order: tk_model_init() once; then, for each inference, write tk_input_bytes() bytes to
 * tk_input(), call tk_invoke(), read tk_output_bytes() bytes from tk_output().
 * The input buffer may be clobbered by tk_invoke() (TFLM reuses it as scratch): refill it every time.
 */
#ifndef TK_MODEL_API_H_
#define TK_MODEL_API_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Prepare the model (TFLM: AllocateTensors). 0 on success; otherwise tk_model_error() says why. */
int tk_model_init(void);

/* The int8 input tensor 0 (tk_input_bytes() bytes). Valid after a successful tk_model_init(). */
int8_t *tk_input(void);

/* The int8 output tensor 0 (tk_output_bytes() bytes), valid after a successful tk_invoke(). */
const int8_t *tk_output(void);

unsigned tk_input_bytes(void);
unsigned tk_output_bytes(void);

/* Run one inference. 0 on success; otherwise tk_model_error() says why. */
int tk_invoke(void);

/* Arena bytes in use after tk_model_init() (TFLM: arena_used_bytes(); aot: the static plan). */
unsigned tk_arena_used(void);

/* A short static message describing the last failure ("" when none). Never NULL. */
const char *tk_model_error(void);

#ifdef __cplusplus
}
#endif

#endif /* TK_MODEL_API_H_ */
