/* tinykeras board-independent benchmark: @tk records and the MLPerf Tiny UART commands.
 *
 * Records follow docs/protocol.md (version 1). The command loop follows the MLPerf Tiny
 * device-under-test API (mlcommons/tiny benchmark/api): commands end in '%', the buffer holds 80
 * bytes, every reply ends with "m-ready". C99, no heap, no printf: a small line formatter below.
 */
#include "tk_bench.h"

#include <string.h>

#include "tk_model_api.h"
#include "tk_port.h"

/* A model whose input normalisation runs outside the int8 graph: `db` may load its raw float features. */
#if defined(__has_include)
#if __has_include("tk_input_norm.h")
#include "tk_input_norm.h"
#endif
#endif

/* ------------------------------------------------------------------ output line formatter */

static char s_out[96];
static unsigned s_out_len;

static void out_flush(void) {
  if (s_out_len > 0u) {
    tk_port_write(s_out, s_out_len);
    s_out_len = 0u;
  }
}

static void out_char(char c) {
  if (s_out_len == sizeof(s_out)) {
    out_flush();
  }
  s_out[s_out_len++] = c;
}

static void out_str(const char *s) {
  while (*s != '\0') {
    out_char(*s++);
  }
}

static void out_u64(uint64_t v) {
  char digits[20];
  unsigned n = 0u;
  do {
    digits[n++] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v != 0u);
  while (n > 0u) {
    out_char(digits[--n]);
  }
}

static void out_i32(int32_t v) {
  if (v < 0) {
    out_char('-');
    out_u64((uint64_t)(-(int64_t)v));
  } else {
    out_u64((uint64_t)v);
  }
}

/* The characters of a JSON string, escaped (quotes, backslashes, control characters). */
static void out_json_chars(const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (; s != NULL && *s != '\0'; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out_char('\\');
      out_char((char)c);
    } else if (c < 0x20u) {
      out_str("\\u00");
      out_char(hex[c >> 4]);
      out_char(hex[c & 15u]);
    } else {
      out_char((char)c);
    }
  }
}

static void out_json_str(const char *s) {
  out_char('"');
  out_json_chars(s);
  out_char('"');
}

static void out_field_str(const char *key, const char *value) {
  out_str(",\"");
  out_str(key);
  out_str("\":");
  out_json_str(value);
}

static void out_field_u64(const char *key, uint64_t value) {
  out_str(",\"");
  out_str(key);
  out_str("\":");
  out_u64(value);
}

static void out_field_i32(const char *key, int32_t value) {
  out_str(",\"");
  out_str(key);
  out_str("\":");
  out_i32(value);
}

static void record_begin(const char *event) {
  out_str("@tk {\"v\":1,\"event\":\"");
  out_str(event);
  out_char('"');
}

static void record_end(void) {
  out_str("}\n");
  out_flush();
}

static void mlperf_line(const char *text) {
  out_str(text);
  out_str("\r\n");
  out_flush();
}

static void error_record(const char *what, const char *detail) {
  record_begin("error");
  out_str(",\"msg\":\"");
  out_json_chars(what);
  if (detail != NULL && *detail != '\0') {
    out_str(": ");
    out_json_chars(detail);
  }
  out_char('"');
  record_end();
}

/* ------------------------------------------------------------------ inputs */

/* The `db` buffer is the config's (cfg->db, cfg->db_bytes). */
static unsigned s_db_size;   /* bytes announced by the last `db load N` */
static unsigned s_db_pos;    /* bytes received since */
static int s_db_used;        /* a `db load` was sent since boot: from then on `infer` needs a complete input */

void tk_bench_fill_pattern(int8_t *dst, unsigned n) {
  uint32_t x = TK_BENCH_PATTERN_SEED;
  unsigned k;
  for (k = 0u; k < n; ++k) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    dst[k] = (int8_t)(uint8_t)(x >> 24);
  }
#if !defined(TK_BENCH_ID_LIMIT) && defined(TK_INPUT0_ID_LIMIT)
#define TK_BENCH_ID_LIMIT TK_INPUT0_ID_LIMIT
#endif
#if defined(TK_BENCH_ID_LIMIT)
  /* int32 token ids (an Embedding's input): each little-endian word folded into 0..TK_BENCH_ID_LIMIT-1 */
  for (k = 0u; k + 4u <= n; k += 4u) {
    uint32_t w = (uint32_t)(uint8_t)dst[k] | ((uint32_t)(uint8_t)dst[k + 1u] << 8) |
                 ((uint32_t)(uint8_t)dst[k + 2u] << 16) | ((uint32_t)(uint8_t)dst[k + 3u] << 24);
    w %= (uint32_t)(TK_BENCH_ID_LIMIT);
    dst[k] = (int8_t)(uint8_t)w;
    dst[k + 1u] = (int8_t)(uint8_t)(w >> 8);
    dst[k + 2u] = (int8_t)(uint8_t)(w >> 16);
    dst[k + 3u] = (int8_t)(uint8_t)(w >> 24);
  }
#endif
}

/* The boot benchmark's input: the pattern, before every run. */
static void fill_input(void) {
  tk_bench_fill_pattern(tk_input(), tk_input_bytes());
}

/* One float32 of the `db` buffer (little-endian, any alignment). */
static float db_float(const tk_bench_config *cfg, unsigned k) {
  float v;
  memcpy(&v, cfg->db + 4u * k, sizeof v);
  return v;
}

/* QuantizeFloatToInt8 of the reference: round(v / scale) half away from zero, plus the zero point, clamped. */
static int8_t quantize_input(const tk_bench_config *cfg, float v) {
  volatile float x = v / cfg->input_scale;
  int32_t r;
  float frac;
  if (!(x > -1000.0f)) { /* also NaN */
    x = -1000.0f;
  } else if (x > 1000.0f) {
    x = 1000.0f;
  }
  r = (int32_t)x;
  frac = x - (float)r;
  if (frac >= 0.5f) {
    ++r;
  } else if (frac <= -0.5f) {
    --r;
  }
  r += cfg->input_zero_point;
  return (int8_t)(r < -128 ? -128 : (r > 127 ? 127 : r));
}

/* th_load_tensor: the model input from the `db` buffer in the benchmark's format. 0, or -1 after an `e-[...]`
 * line when the input is incomplete or of the wrong size. Before any `db load`: the pattern. */
static int load_tensor(const tk_bench_config *cfg) {
  int8_t *in = tk_input();
  unsigned n = tk_input_bytes();
  unsigned want = cfg->input_format == TK_MLPERF_INPUT_FLOAT32 ? 4u * n : n;
  unsigned k;
  if (!s_db_used) {
    fill_input();
    return 0;
  }
#ifdef TK_INPUT_NORM_ELEMENTS
  /* raw float32 features of an input normalised on the device: normalised and quantized by tk_input_norm.c */
  if (cfg->input_format == TK_MLPERF_INPUT_INT8 && s_db_pos == s_db_size &&
      tk_input_norm_set_bytes(cfg->db, s_db_size) == 0) {
    return 0;
  }
#endif
  if (s_db_size != want || s_db_pos != s_db_size) {
    out_str("e-[Input db has ");
    out_u64(s_db_pos);
    out_str(" bytes, expected ");
    out_u64(want);
    out_str("; send `db load ");
    out_u64(want);
    out_str("` and all its bytes]\r\n");
    out_flush();
    return -1;
  }
  if (cfg->input_format == TK_MLPERF_INPUT_UINT8) {
    for (k = 0u; k < n; ++k) {
      in[k] = (int8_t)((int32_t)cfg->db[k] - 128);
    }
  } else if (cfg->input_format == TK_MLPERF_INPUT_FLOAT32) {
    for (k = 0u; k < n; ++k) {
      in[k] = quantize_input(cfg, db_float(cfg, k));
    }
  } else {
    memcpy(in, cfg->db, n);
  }
  return 0;
}

static void argmax(unsigned *top, int32_t *score) {
  const int8_t *out = tk_output();
  unsigned n = tk_output_bytes();
  unsigned best = 0u;
  unsigned k;
  for (k = 1u; k < n; ++k) {
    if (out[k] > out[best]) {
      best = k;
    }
  }
  *top = best;
  *score = n > 0u ? (int32_t)out[best] : 0;
}

/* ------------------------------------------------------------------ the benchmark */

static void hello(const tk_bench_config *cfg) {
  record_begin("hello");
  out_field_str("board", cfg->board);
  out_field_str("runtime", cfg->runtime);
  out_field_str("model", cfg->model);
  out_field_str("model_sha256", cfg->model_sha256);
  out_field_u64("model_bytes", cfg->model_bytes);
  out_field_u64("arena_bytes", cfg->arena_bytes);
  out_field_u64("arena_used", tk_arena_used());
  out_field_u64("cpu_hz", cfg->cpu_hz);
  out_field_str("timer", cfg->timer);
  out_field_u64("runs", cfg->runs);
  out_field_u64("warmup", cfg->warmup);
  out_field_u64("macs", cfg->macs);
  record_end();
}

static int s_ready; /* the model initialised */

int tk_bench_run(const tk_bench_config *cfg) {
  uint32_t i;
  tk_counter_kind kind = tk_port_counter_kind();
  if (tk_model_init() != 0) {
    error_record("tk_model_init failed", tk_model_error());
    s_ready = 0;
    return -1;
  }
  s_ready = 1;
  if (cfg->runs > 0u) {
    hello(cfg);
    for (i = 0u; i < cfg->warmup; ++i) {
      fill_input();
      if (tk_invoke() != 0) {
        error_record("tk_invoke failed", tk_model_error());
        return -1;
      }
    }
    for (i = 0u; i < cfg->runs; ++i) {
      uint64_t t0, t1, c0 = 0u, c1 = 0u;
      unsigned top;
      int32_t score;
      int status;
      fill_input();
      t0 = tk_port_time_us();
      if (kind != TK_COUNTER_NONE) {
        c0 = tk_port_counter();
      }
      status = tk_invoke();
      if (kind != TK_COUNTER_NONE) {
        c1 = tk_port_counter();
      }
      t1 = tk_port_time_us();
      if (status != 0) {
        error_record("tk_invoke failed", tk_model_error());
        return -1;
      }
      argmax(&top, &score);
      record_begin("run");
      out_field_u64("i", i);
      out_field_u64("us", t1 - t0);
      if (kind == TK_COUNTER_CYCLES) {
        out_field_u64("cycles", c1 - c0);
      } else if (kind == TK_COUNTER_INSTRUCTIONS) {
        out_field_u64("instructions", c1 - c0);
      }
      out_field_u64("top", top);
      out_field_i32("score", score);
      record_end();
    }
    record_begin("done");
    out_field_u64("runs", cfg->runs);
    record_end();
  }
  mlperf_line("m-timestamp-mode-performance"); /* energy mode needs a timestamp GPIO and a power monitor */
  mlperf_line("m-init-done");
  mlperf_line("m-ready");
  return 0;
}

/* ------------------------------------------------------------------ MLPerf Tiny commands */

static char s_cmd[TK_BENCH_CMD_BYTES + 1u];
static unsigned s_cmd_len;

/* Small local string helpers: newlib's optimised strcmp/strlen cost about 1 KB of flash. */
static int streq(const char *a, const char *b) {
  while (*a != '\0' && *a == *b) {
    ++a;
    ++b;
  }
  return *a == *b;
}

static unsigned str_len(const char *s) {
  unsigned n = 0u;
  while (s[n] != '\0') {
    ++n;
  }
  return n;
}

static int is_space(char c) {
  return c == ' ' || c == '\r' || c == '\n' || c == '\t';
}

/* Split s_cmd in place into at most `max` space-separated tokens. */
static unsigned tokenize(char **tok, unsigned max) {
  unsigned n = 0u;
  char *p = s_cmd;
  while (n < max) {
    while (is_space(*p)) {
      ++p;
    }
    if (*p == '\0') {
      break;
    }
    tok[n++] = p;
    while (*p != '\0' && !is_space(*p)) {
      ++p;
    }
    if (*p != '\0') {
      *p++ = '\0';
    }
  }
  return n;
}

/* A non-negative decimal number, or -1. */
static long parse_uint(const char *s) {
  long v = 0;
  if (*s == '\0') {
    return -1;
  }
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9' || v > 100000000L) {
      return -1;
    }
    v = v * 10 + (*s - '0');
  }
  return v;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void timestamp(void) {
  out_str("m-lap-us-");
  out_u64(tk_port_time_us());
  out_str("\r\n");
  out_flush();
}

/* printf("%0.3f", (double)v) without printf: v * 1000 is exact in double; round to nearest, ties to even.
 * tinykeras.mlperf_models.fixed3() mirrors it. */
static void out_fixed3(float v) {
  double m = (double)v * 1000.0;
  uint64_t r;
  double frac;
  if (!(m == m)) {
    out_str("nan");
    return;
  }
  if (v < 0.0f) {
    out_char('-');
    m = -m;
  }
  if (m >= 1e15) {
    out_str("inf");
    return;
  }
  r = (uint64_t)m;
  frac = m - (double)r;
  if (frac > 0.5 || (frac == 0.5 && (r & 1u) != 0u)) {
    ++r;
  }
  out_u64(r / 1000u);
  out_char('.');
  out_char((char)('0' + (int)(r / 100u % 10u)));
  out_char((char)('0' + (int)(r / 10u % 10u)));
  out_char((char)('0' + (int)(r % 10u)));
}

/* DequantizeInt8ToFloat of the reference. */
static float dequantize(const tk_bench_config *cfg, int8_t q) {
  return (float)((int32_t)q - cfg->output_zero_point) * cfg->output_scale;
}

/* The ad01 score: mean squared difference between the dequantized output and the float input, summed in order
 * in float32 (volatile: no fused multiply-add), as the reference's th_infer computes it. */
static float anomaly_score(const tk_bench_config *cfg) {
  const int8_t *out = tk_output();
  unsigned n = tk_output_bytes();
  volatile float sum = 0.0f;
  unsigned k;
  for (k = 0u; k < n; ++k) {
    volatile float diff = dequantize(cfg, out[k]) - db_float(cfg, k);
    volatile float sq = diff * diff;
    sum = sum + sq;
  }
  return n > 0u ? sum / (float)n : 0.0f;
}

/* th_results: "m-results-[...]" as the reference prints it. */
static void results(const tk_bench_config *cfg) {
  const int8_t *out = tk_output();
  unsigned n = tk_output_bytes();
  unsigned k;
  out_str("m-results-[");
  if (cfg->results_format == TK_MLPERF_RESULTS_MSE && s_db_used) {
    out_fixed3(anomaly_score(cfg));
  } else {
    for (k = 0u; k < n; ++k) {
      if (k > 0u) {
        out_char(',');
      }
      out_fixed3(dequantize(cfg, out[k]));
    }
  }
  out_str("]\r\n");
  out_flush();
}

/* ee_infer: the input loaded once, W untimed warm-ups, N timed inferences between two timestamps, results.
 * A runtime may reuse the input tensor as scratch (TFLM does): for N > 1 the input is loaded again and one more
 * untimed inference computes the results, so they are always those of the loaded input. */
static void infer(const tk_bench_config *cfg, unsigned long n, unsigned long warmup) {
  unsigned long i;
  if (load_tensor(cfg) != 0) {
    return;
  }
  out_str("m-warmup-start-");
  out_u64(warmup);
  out_str("\r\n");
  out_flush();
  for (i = 0u; i < warmup; ++i) {
    if (tk_invoke() != 0) {
      mlperf_line("e-[Inference failed]");
      return;
    }
  }
  mlperf_line("m-warmup-done");
  if (warmup > 0u && load_tensor(cfg) != 0) {
    return;
  }
  out_str("m-infer-start-");
  out_u64(n);
  out_str("\r\n");
  out_flush();
  timestamp();
  for (i = 0u; i < n; ++i) {
    if (tk_invoke() != 0) {
      mlperf_line("e-[Inference failed]");
      return;
    }
  }
  timestamp();
  mlperf_line("m-infer-done");
  if (n > 1u && (load_tensor(cfg) != 0 || tk_invoke() != 0)) {
    mlperf_line("e-[Inference failed]");
    return;
  }
  results(cfg);
}

/* `db print`: the buffer as hex, 8 bytes a line, as the reference prints it. */
static void db_print(const tk_bench_config *cfg) {
  static const char hex[] = "0123456789abcdef";
  unsigned k;
  for (k = 0u; k < s_db_size; ++k) {
    if (k % 8u == 0u) {
      out_str("m-buffer-");
    }
    out_char(hex[cfg->db[k] >> 4]);
    out_char(hex[cfg->db[k] & 15u]);
    out_str((k + 1u) % 8u == 0u || k + 1u == s_db_size ? "\r\n" : "-");
  }
  out_flush();
}

static void db_command(const tk_bench_config *cfg, char **tok, unsigned ntok) {
  if (ntok < 2u) {
    mlperf_line("e-[Command 'db' requires a subcommand]");
  } else if (streq(tok[1], "load")) {
    long n = ntok > 2u ? parse_uint(tok[2]) : -1;
    s_db_used = 1;
    s_db_size = 0u;
    s_db_pos = 0u;
    if (ntok < 3u) {
      mlperf_line("e-[Command 'db load' requires the # of bytes]");
    } else if (n <= 0) {
      mlperf_line("e-[Command 'db load' must be >0 bytes]");
    } else if ((unsigned long)n > cfg->db_bytes) {
      out_str("e-[Supplied buffer size ");
      out_u64((uint64_t)n);
      out_str(" exceeds maximum of ");
      out_u64(cfg->db_bytes);
      out_str("]\r\n");
      out_flush();
    } else {
      s_db_size = (unsigned)n;
      out_str("m-[Expecting ");
      out_u64((uint64_t)n);
      out_str(" bytes]\r\n");
      out_flush();
    }
  } else if (streq(tok[1], "print")) {
    db_print(cfg);
  } else {
    const char *hex = tok[1];
    unsigned len = str_len(hex);
    unsigned k;
    if ((len & 1u) != 0u) {
      mlperf_line("e-[Insufficent number of hex digits]");
      return;
    }
    if (s_db_pos >= s_db_size) {
      mlperf_line("e-[No input expected: send `db load N` first]");
      return;
    }
    for (k = 0u; k < len; k += 2u) {
      int hi = hex_digit(hex[k]);
      int lo = hex_digit(hex[k + 1u]);
      if (hi < 0 || lo < 0) {
        mlperf_line("e-[Invalid hex digit]");
        return;
      }
      cfg->db[s_db_pos++] = (uint8_t)(hi * 16 + lo);
      if (s_db_pos == s_db_size) {
        mlperf_line("m-load-done");
        return; /* the rest of the digits is disregarded, as in the reference */
      }
    }
  }
}

static void help(void) {
  mlperf_line("ULPMark for tinyML Firmware V0.0.1");
  mlperf_line("");
  mlperf_line("help         : Print this information");
  mlperf_line("name         : Print the name of the device");
  mlperf_line("timestsamp   : Generate a timetsamp");
  mlperf_line("db SUBCMD    : Manipulate a generic byte buffer");
  mlperf_line("  load N     : Allocate N bytes and set load counter");
  mlperf_line("  db HH[HH]* : Load 8-bit hex byte(s) until N bytes");
  mlperf_line("  print [N=16] [offset=0]");
  mlperf_line("             : Print N bytes at offset as hex");
  mlperf_line("infer N [W=0]: Load input, execute N inferences after W warmup loops");
  mlperf_line("results      : Return the result fp32 vector");
}

static void execute(const tk_bench_config *cfg) {
  char *tok[4];
  unsigned ntok = tokenize(tok, 4u);
  if (ntok == 0u) {
    /* an empty command: just the prompt */
  } else if (streq(tok[0], "name")) {
    out_str("m-name-dut-[");
    out_str(cfg->dut_name);
    out_str("]\r\n");
    out_flush();
  } else if (streq(tok[0], "help")) {
    help();
  } else if (streq(tok[0], "timestamp")) {
    timestamp();
  } else if (streq(tok[0], "profile")) {
    mlperf_line("m-profile-[ULPMark for tinyML Firmware V0.0.1]");
    out_str("m-model-[");
    out_str(cfg->mlperf_model != NULL ? cfg->mlperf_model : cfg->model);
    out_str("]\r\n");
    out_flush();
  } else if (streq(tok[0], "db")) {
    db_command(cfg, tok, ntok);
  } else if (streq(tok[0], "infer")) {
    long n = ntok > 1u ? parse_uint(tok[1]) : 1;
    long w = ntok > 2u ? parse_uint(tok[2]) : 10;
    if (!s_ready) {
      mlperf_line("e-[Model not initialised]");
    } else if (n <= 0) {
      mlperf_line("e-[Inference iterations must be >0]");
    } else if (w < 0) {
      mlperf_line("e-[Inference warmup must be >=0]");
    } else {
      infer(cfg, (unsigned long)n, (unsigned long)w);
    }
  } else if (streq(tok[0], "results")) {
    results(cfg);
  } else if (streq(tok[0], "start") || streq(tok[0], "stop") || streq(tok[0], "print_detections")) {
    /* sww01's streaming commands: they need the runner's interface board (audio playback, GPIO) */
    mlperf_line("e-[Streaming wake word detection is not supported: no audio input or detection GPIO]");
  } else {
    out_str("e-[Unknown command: ");
    out_str(tok[0]);
    out_str("]\r\n");
    out_flush();
  }
  mlperf_line("m-ready");
}

void tk_bench_feed(const tk_bench_config *cfg, char c) {
  if (c == '%') {
    s_cmd[s_cmd_len] = '\0';
    execute(cfg);
    s_cmd_len = 0u;
  } else if (s_cmd_len < TK_BENCH_CMD_BYTES) {
    s_cmd[s_cmd_len++] = c;
  }
}

void tk_bench_main(const tk_bench_config *cfg) {
  (void)tk_bench_run(cfg);
  for (;;) {
    int c = tk_port_read_char();
    if (c >= 0) {
      tk_bench_feed(cfg, (char)c);
    } else {
      tk_port_idle();
    }
  }
}
