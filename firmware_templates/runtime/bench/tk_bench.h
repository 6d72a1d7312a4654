/* tinykeras board-independent benchmark: @tk records (docs/protocol.md) and the MLPerf Tiny
 * device-under-test UART commands. C99, no heap, no printf.
 *
 * Needs a model (tk_model_api.h) and a board port (tk_port.h). Typical board main:
 *     static const tk_bench_config cfg = { ... };   // rendered by tinykeras
 *     int main(void) { tk_port_init(); tk_bench_main(&cfg); }
 */
#ifndef TK_BENCH_H_
#define TK_BENCH_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TK_BENCH_PROTOCOL_VERSION 1
#define TK_BENCH_CMD_BYTES 80u      /* MLPerf Tiny EE_CMD_SIZE */

typedef struct {
  const char *board;          /* board file stem, e.g. "qemu_m4" */
  const char *runtime;        /* "aot" or "tflm" */
  const char *model;          /* model name */
  const char *model_sha256;   /* first 16 hex digits of the .tflite SHA-256 */
  uint32_t model_bytes;       /* .tflite size */
  uint32_t arena_bytes;       /* planned arena size */
  uint32_t cpu_hz;            /* nominal CPU clock */
  const char *timer;          /* "dwt", "esp_timer", "micros", "time_us_64", "cmsdk_timer0", "sse_counter" */
  uint32_t runs;              /* timed runs (0: no benchmark, only the MLPerf command loop) */
  uint32_t warmup;            /* untimed warm-up runs before them */
  uint64_t macs;              /* multiply-accumulates per inference */
  float output_scale;         /* output 0 quantization, for MLPerf `results%` */
  int32_t output_zero_point;
  const char *mlperf_model;   /* MLPerf model id for `profile%` ("kws01", "ad01", ...) or the model name */
  const char *dut_name;       /* `m-name-dut-[...]`: the board, and on an emulator that it is one */
  uint8_t *db;                /* the `db load` buffer (input bytes in the benchmark's dataset format) */
  uint32_t db_bytes;          /* its size: exactly the bytes one complete input takes */
  uint8_t input_format;       /* TK_MLPERF_INPUT_*: how `db` bytes become the int8 input (th_load_tensor) */
  uint8_t results_format;     /* TK_MLPERF_RESULTS_*: what `m-results-[...]` prints (th_results) */
  float input_scale;          /* input 0 quantization, for TK_MLPERF_INPUT_FLOAT32 */
  int32_t input_zero_point;
} tk_bench_config;

/* The MLPerf Tiny reference API's input conventions (th_load_tensor of each benchmark). */
#define TK_MLPERF_INPUT_INT8 0u    /* the bytes are the int8 tensor (kws01, sww01, models of no benchmark) */
#define TK_MLPERF_INPUT_UINT8 1u   /* uint8 pixels; 128 is subtracted (ic01, vww01) */
#define TK_MLPERF_INPUT_FLOAT32 2u /* little-endian float32 features, quantized on the device (ad01) */
/* ... and its output conventions (th_results). */
#define TK_MLPERF_RESULTS_SCORES 0u /* every output value dequantized, "%0.3f" each */
#define TK_MLPERF_RESULTS_MSE 1u    /* one anomaly score: mean squared error output vs float input (ad01) */

/* Everything: tk_bench_run(), then the MLPerf command loop forever. Never returns. */
void tk_bench_main(const tk_bench_config *cfg);

/* Initialise the model and print hello, `runs` run records and done (or one error record); runs = 0 (the
 * MLPerf mode) prints nothing of the boot benchmark. Returns 0 on success, -1 after an error record. Prints
 * "m-timestamp-mode-performance", "m-init-done" and "m-ready" at the end. */
int tk_bench_run(const tk_bench_config *cfg);

/* Feed one received byte to the MLPerf command parser; a '%' executes the buffered command. */
void tk_bench_feed(const tk_bench_config *cfg, char c);

/* The deterministic input pattern of the timed runs: byte k of a run is the top byte of the k+1-th
 * state of xorshift32 (13, 17, 5) started from TK_BENCH_PATTERN_SEED. tinykeras.qemu.bench_input()
 * reproduces it on the host. Used by the boot benchmark, and by `infer` until the first `db load`. */
#define TK_BENCH_PATTERN_SEED 0x2545F491u
void tk_bench_fill_pattern(int8_t *dst, unsigned n);

#ifdef __cplusplus
}
#endif

#endif /* TK_BENCH_H_ */
