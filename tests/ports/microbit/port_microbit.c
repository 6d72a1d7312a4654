/* The stand-in hardware for ARMv6-M boards (tests only): QEMU `microbit` (nRF51822, Cortex-M0, 256 KB flash,
 * 16 KB RAM), bare metal.
 *
 * Facts (QEMU hw/arm/nrf51_soc.c, hw/char/nrf51_uart.c, hw/timer/nrf51_timer.c):
 * - Flash at 0x00000000 (the core boots from its vector table), SRAM at 0x20000000.
 * - UART at 0x40002000: ENABLE = 4, TASKS_STARTTX/STARTRX; a byte written to TXD is sent at once and raises
 *   EVENTS_TXDRDY; EVENTS_RXDRDY says RXD holds a byte (a 6-byte FIFO; QEMU holds the rest back).
 * - TIMER0 at 0x40008000 counts at 16 MHz (PRESCALER 0) on QEMU's virtual clock: under `-icount shift=0` one
 *   guest instruction takes 1 ns, so one tick is 62.5 instructions (the counter's resolution).
 */
#include <stdint.h>

#include "../qhw.h"

#define REG(base, off) (*(volatile uint32_t *)((base) + (off)))
#define UART 0x40002000u
#define UART_STARTRX REG(UART, 0x000u)
#define UART_STARTTX REG(UART, 0x008u)
#define UART_RXDRDY REG(UART, 0x108u)
#define UART_TXDRDY REG(UART, 0x11Cu)
#define UART_ENABLE REG(UART, 0x500u)
#define UART_RXD REG(UART, 0x518u)
#define UART_TXD REG(UART, 0x51Cu)
#define TIMER0 0x40008000u
#define TIMER_START REG(TIMER0, 0x000u)
#define TIMER_CLEAR REG(TIMER0, 0x00Cu)
#define TIMER_CAPTURE0 REG(TIMER0, 0x040u)
#define TIMER_MODE REG(TIMER0, 0x504u)
#define TIMER_BITMODE REG(TIMER0, 0x508u)
#define TIMER_PRESCALER REG(TIMER0, 0x510u)
#define TIMER_CC0 REG(TIMER0, 0x540u)

static uint32_t s_last;
static uint64_t s_ticks;

void qhw_init(void) {
  UART_ENABLE = 4u;
  UART_STARTTX = 1u;
  UART_STARTRX = 1u;
  TIMER_MODE = 0u;      /* timer */
  TIMER_BITMODE = 3u;   /* 32 bit */
  TIMER_PRESCALER = 0u; /* 16 MHz */
  TIMER_CLEAR = 1u;
  TIMER_START = 1u;
  s_last = 0u;
  s_ticks = 0u;
}

void qhw_write(const char *s, unsigned n) {
  for (unsigned k = 0; k < n; ++k) {
    UART_TXDRDY = 0u;
    UART_TXD = (uint8_t)s[k];
    while (UART_TXDRDY == 0u) {
    }
  }
}

int qhw_read_char(void) {
  if (UART_RXDRDY == 0u) return -1;
  UART_RXDRDY = 0u;
  return (int)(UART_RXD & 0xFFu);
}

static uint64_t ticks(void) {
  TIMER_CAPTURE0 = 1u;
  uint32_t now = TIMER_CC0;
  s_ticks += (uint32_t)(now - s_last);
  s_last = now;
  return s_ticks;
}

uint64_t qhw_time_us(void) { return ticks() / 16u; }

/* Instructions at 1 ns each: 62.5 per 16 MHz tick, read at a tick edge so repeated runs read the same count. */
uint64_t qhw_counter(void) {
  TIMER_CAPTURE0 = 1u;
  uint32_t start = TIMER_CC0;
  do {
    TIMER_CAPTURE0 = 1u;
  } while (TIMER_CC0 == start);
  return ticks() * 125u / 2u;
}

void qhw_idle(void) {}

/* Start-up: vector table, .data/.bss, C++ constructors, main. */
extern uint32_t __etext_data, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
void *__dso_handle = 0;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

void Fault_Handler(void) {
  qhw_write("@tk {\"v\":1,\"event\":\"error\",\"message\":\"hard fault\"}\r\n", 52);
  for (;;) {
  }
}

typedef void (*vector_t)(void);
__attribute__((section(".isr_vector"), used)) const vector_t microbit_vectors[16] = {
    (vector_t)(uintptr_t)&__stack_top, Reset_Handler, Fault_Handler, Fault_Handler,
};

void Reset_Handler(void) {
  uint32_t *src = &__etext_data;
  for (uint32_t *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
  for (uint32_t *dst = &__bss_start; dst < &__bss_end;) *dst++ = 0u;
  for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();
  main();
  for (;;) {
  }
}
