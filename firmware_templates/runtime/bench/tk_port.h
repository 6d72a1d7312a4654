/* tinykeras board port: what each board's glue code provides to the benchmark (tk_bench.c).
 *
 * C linkage, C99. One implementation per board family (PlatformIO Arduino/ESP-IDF glue, the QEMU
 * bare-metal port, a host fake in tests).
 */
#ifndef TK_PORT_H_
#define TK_PORT_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What tk_port_counter() counts; reported in `run` records under this name (docs/protocol.md). */
typedef enum {
  TK_COUNTER_NONE = 0,         /* no counter: tk_port_counter() is not called and nothing is reported */
  TK_COUNTER_CYCLES = 1,       /* CPU clock cycles (DWT->CYCCNT, ccount, ...) -> "cycles" */
  TK_COUNTER_INSTRUCTIONS = 2  /* executed instructions (emulated board, QEMU -icount) -> "instructions" */
} tk_counter_kind;

/* Set up the UART (at the board's baud rate), the timer and the counter. Called once, first. */
void tk_port_init(void);

/* Write n bytes to the UART; blocks until they are queued. */
void tk_port_write(const char *s, unsigned n);

/* One received byte (0..255), or -1 when nothing is available. Never blocks. */
int tk_port_read_char(void);

/* Microseconds since an arbitrary origin, monotonic (wraps only after 2^64 us). */
uint64_t tk_port_time_us(void);

/* The free-running counter named by tk_port_counter_kind(), monotonic, 64 bits (the port extends
 * narrower hardware counters; a measured interval must not exceed one hardware wrap). */
uint64_t tk_port_counter(void);

/* Which counter tk_port_counter() reads: a TK_COUNTER_* value. */
tk_counter_kind tk_port_counter_kind(void);

/* Called when the command loop has nothing to do. May sleep until the next received byte (WFI on
 * the emulated board, so QEMU does not spin a host core), yield to an RTOS (ESP32: vTaskDelay(1),
 * which also feeds the task watchdog), or simply return. */
void tk_port_idle(void);

#ifdef __cplusplus
}
#endif

#endif /* TK_PORT_H_ */
