/* tinykeras profile firmware: one inference of the aot model built with per-op counter reads
 * (tinykeras.aot.generate(..., profile=True)), or of TFLM with the adapter's MicroProfiler, printed as one
 * `@tkprofile {json}` line.
 *
 * The counter is the board port's (tk_port.h): instructions on the emulated board, cycles where the core
 * has a cycle counter, else microseconds. The input is the benchmark's deterministic pattern. The cost of
 * one counter read is measured (`mark_cost`) so the host can subtract it from every op.
 */
#include <stdint.h>

#include "tk_model_api.h"
#include "tk_port.h"

extern uint64_t tk_profile_counts[];
extern const unsigned tk_profile_num_ops;

static tk_counter_kind s_kind;

uint64_t tk_profile_now(void) {
  return s_kind == TK_COUNTER_NONE ? tk_port_time_us() : tk_port_counter();
}

static void put(const char *s) {
  unsigned n = 0;
  while (s[n]) ++n;
  tk_port_write(s, n);
}

static void put_u64(uint64_t v) {
  char buf[24];
  int k = 23;
  buf[k] = 0;
  do {
    buf[--k] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v && k > 0);
  put(buf + k);
}

static void fill_input(void) { /* xorshift32 pattern */
  int8_t *in = tk_input();
  unsigned i, n = tk_input_bytes();
  uint32_t x = 0x2545F491u;
  for (i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    in[i] = (int8_t)(x >> 24);
  }
}

int main(void) {
  unsigned i;
  uint64_t t0, t1, c0, c1;
  tk_port_init();
  s_kind = tk_port_counter_kind();
  if (tk_model_init() != 0) {
    put("@tkprofile {\"error\":\"tk_model_init failed\"}\n");
    return 1;
  }
  fill_input();
  (void)tk_invoke(); /* warm-up */
  fill_input();      /* the plan reuses the input's memory */
  for (i = 0; i < tk_profile_num_ops; ++i) tk_profile_counts[i] = 0;
  t0 = tk_profile_now();
  (void)tk_invoke();
  t1 = tk_profile_now();
  c0 = tk_profile_now();
  for (i = 0; i < 64u; ++i) (void)tk_profile_now();
  c1 = tk_profile_now();
  put("@tkprofile {\"v\":1,\"unit\":\"");
  put(s_kind == TK_COUNTER_INSTRUCTIONS ? "instructions" : s_kind == TK_COUNTER_CYCLES ? "cycles" : "us");
  put("\",\"total\":");
  put_u64(t1 - t0);
  put(",\"mark_cost_x65\":");
  put_u64(c1 - c0);
  put(",\"ops\":[");
  for (i = 0; i < tk_profile_num_ops; ++i) {
    if (i) put(",");
    put_u64(tk_profile_counts[i]);
  }
  put("]}\n");
  return 0;
}
