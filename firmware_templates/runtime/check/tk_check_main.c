/* tinykeras bit-exactness firmware: runs the aot model on TK_CHECK_SAMPLES generated inputs and prints every
 * output as hex, one `@tkcheck K HEX` line per sample, then `@tkcheck end`.
 *
 * Input byte i of sample k is a hash of (k, i) that tinykeras/aot/device_check.py recomputes with numpy,
 * so the host feeds the same inputs to the TFLM host interpreter and compares bit for bit; or, with
 * TK_CHECK_FIXED_INPUTS, the inputs given in tk_check_inputs.h (a fuzzing corpus).
 */
#include <stdint.h>

#include "tk_model.h"
#include "tk_port.h"

#ifdef TK_CHECK_FIXED_INPUTS
/* Given inputs instead of the hash (a fuzzing corpus): tk_check_inputs.h defines TK_CHECK_SAMPLES,
 * TK_CHECK_INPUT_BYTES and tk_check_inputs[sample][byte], every input tensor's bytes concatenated. */
#include "tk_check_inputs.h"
#endif

#ifndef TK_CHECK_SAMPLES
#define TK_CHECK_SAMPLES 200u
#endif

static uint8_t tk_check_byte(uint32_t k, uint32_t i) {
  uint32_t x = i * 2654435761u + k * 2246822519u + 0x9E3779B9u;
  x ^= x >> 15;
  x *= 0x2C1B3C6Du;
  x ^= x >> 12;
  x *= 0x297A2D39u;
  x ^= x >> 15;
  return (uint8_t)(x >> 24);
}

static void put(const char *s) {
  unsigned n = 0;
  while (s[n]) ++n;
  tk_port_write(s, n);
}

int main(void) {
  static const char hex[] = "0123456789abcdef";
  char buf[64];
  uint32_t k, i, j;
  tk_port_init();
  if (tk_model_init() != 0) return 1;
  for (k = 0; k < TK_CHECK_SAMPLES; ++k) {
    unsigned n;
#ifdef TK_CHECK_FIXED_INPUTS
    {
      uint32_t pos = 0;
      for (j = 0; j < TK_NUM_INPUTS; ++j) {
        uint8_t *in = (uint8_t *)tk_input_at(j);
        n = tk_input_bytes_at(j);
        for (i = 0; i < n && pos < TK_CHECK_INPUT_BYTES; ++i) in[i] = tk_check_inputs[k][pos++];
      }
    }
#else
    for (j = 0; j < TK_NUM_INPUTS; ++j) {
      uint8_t *in = (uint8_t *)tk_input_at(j);
      n = tk_input_bytes_at(j);
      for (i = 0; i < n; ++i) in[i] = tk_check_byte(k * TK_NUM_INPUTS + j, i);
    }
#endif
    if (tk_invoke() != 0) {
      put("@tkcheck error\n");
      return 1;
    }
    put("@tkcheck ");
    {
      uint32_t v = k, m = 0;
      char d[12];
      do {
        d[m++] = (char)('0' + v % 10u);
        v /= 10u;
      } while (v);
      while (m) tk_port_write(&d[--m], 1);
    }
    put(" ");
    for (j = 0; j < TK_NUM_OUTPUTS; ++j) {
      const uint8_t *o = (const uint8_t *)tk_output_at(j);
      unsigned pos = 0;
      n = tk_output_bytes_at(j);
      for (i = 0; i < n; ++i) {
        buf[pos++] = hex[o[i] >> 4];
        buf[pos++] = hex[o[i] & 15u];
        if (pos == sizeof(buf)) {
          tk_port_write(buf, pos);
          pos = 0;
        }
      }
      tk_port_write(buf, pos);
    }
    put("\n");
  }
  put("@tkcheck end\n");
  return 0;
}
