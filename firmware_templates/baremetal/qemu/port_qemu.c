/* tinykeras board port (tk_port.h) for QEMU mps2-an386: CMSDK UART0 and CMSDK TIMER0.
 *
 * Facts (QEMU hw/arm/mps2.c, hw/char/cmsdk-apb-uart.c, hw/timer/cmsdk-apb-timer.c):
 * - UART0 at 0x40004000. BAUDDIV must be set (>= 16) before CTRL enables TX, or QEMU drops characters.
 *   Its RX interrupt is IRQ 0 (TK_QEMU_UART_RX_IRQ in tk_qemu.h, which places tk_uart_rx_isr in the vector
 *   table): the handler moves every received byte into a ring buffer, so no command byte waits on (or is lost
 *   to) an inference in progress. Another machine's port changes TK_UART_BASE and TK_QEMU_UART_RX_IRQ only.
 * - TIMER0 at 0x40000000 counts down at the 25 MHz system clock. Under `-icount shift=0` one guest
 *   instruction takes 1 ns, so one tick is exactly 40 instructions: the instruction counter has a
 *   resolution of 40 instructions.
 */
#include <stdint.h>

#include "tk_port.h"
#include "tk_qemu.h"

#define TK_UART_BASE 0x40004000u /* CMSDK UART0 */
#define UART_DATA (*(volatile uint32_t *)(TK_UART_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(TK_UART_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(TK_UART_BASE + 0x08u))
#define UART_INTCLEAR (*(volatile uint32_t *)(TK_UART_BASE + 0x0Cu))
#define UART_BAUDDIV (*(volatile uint32_t *)(TK_UART_BASE + 0x10u))
#define UART_STATE_TXFULL 1u
#define UART_STATE_RXFULL 2u
#define UART_CTRL_TX_EN 1u
#define UART_CTRL_RX_EN 2u
#define UART_CTRL_RX_INT_EN 8u
#define UART_INT_RX 2u

#define TIMER0_BASE 0x40000000u
#define TIMER_CTRL (*(volatile uint32_t *)(TIMER0_BASE + 0x00u))
#define TIMER_VALUE (*(volatile uint32_t *)(TIMER0_BASE + 0x04u))
#define TIMER_RELOAD (*(volatile uint32_t *)(TIMER0_BASE + 0x08u))

#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define NVIC_ISPR0 (*(volatile uint32_t *)0xE000E200u)
#define NVIC_ICPR0 (*(volatile uint32_t *)0xE000E280u)

/* Received bytes: written by tk_uart_rx_isr, read by tk_port_read_char (one producer, one consumer). */
#define RX_RING_BYTES 256u /* a power of two */
static volatile uint8_t s_rx[RX_RING_BYTES];
static volatile uint32_t s_rx_head; /* next write (ISR) */
static volatile uint32_t s_rx_tail; /* next read (main loop) */

#define TIMER_HZ 25000000u
#define INSTRUCTIONS_PER_TICK 40u /* 1 ns per instruction (-icount shift=0) / 40 ns per tick */

static uint32_t s_last;   /* last raw TIMER0 value */
static uint64_t s_ticks;  /* ticks elapsed since tk_port_init() */

void tk_port_init(void) {
  UART_BAUDDIV = 16u;
  s_rx_head = 0u;
  s_rx_tail = 0u;
  UART_INTCLEAR = UART_INT_RX;
  NVIC_ICPR0 = 1u << TK_QEMU_UART_RX_IRQ;
  UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
  NVIC_ISER0 = 1u << TK_QEMU_UART_RX_IRQ;
  TIMER_CTRL = 0u;
  TIMER_RELOAD = 0xFFFFFFFFu;
  TIMER_VALUE = 0xFFFFFFFFu;
  TIMER_CTRL = 1u; /* enable, no interrupt */
  s_last = TIMER_VALUE;
  s_ticks = 0u;
  __asm volatile("cpsie i" ::: "memory"); /* from here the RX interrupt runs its handler */
}

/* UART0 RX interrupt: move the received bytes into the ring. The interrupt flag is cleared before each check,
 * so a byte arriving meanwhile raises it again. When the ring is full the byte stays in the UART (QEMU then holds
 * the host's next bytes back) and the interrupt is switched off until tk_port_read_char makes room. */
void tk_uart_rx_isr(void) {
  for (;;) {
    uint32_t head = s_rx_head;
    UART_INTCLEAR = UART_INT_RX;
    if ((UART_STATE & UART_STATE_RXFULL) == 0u) {
      return;
    }
    if (head - s_rx_tail >= RX_RING_BYTES) {
      UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;
      return;
    }
    s_rx[head % RX_RING_BYTES] = (uint8_t)(UART_DATA & 0xFFu);
    s_rx_head = head + 1u;
  }
}

void tk_port_write(const char *s, unsigned n) {
  unsigned k;
  for (k = 0u; k < n; ++k) {
    while ((UART_STATE & UART_STATE_TXFULL) != 0u) {
    }
    UART_DATA = (uint32_t)(unsigned char)s[k];
  }
}

int tk_port_read_char(void) {
  uint32_t tail = s_rx_tail;
  int c;
  if (tail == s_rx_head) {
    return -1;
  }
  c = (int)s_rx[tail % RX_RING_BYTES];
  s_rx_tail = tail + 1u;
  if ((UART_CTRL & UART_CTRL_RX_INT_EN) == 0u) { /* the ring was full: room again, fetch what waits */
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISPR0 = 1u << TK_QEMU_UART_RX_IRQ;
  }
  return c;
}

void tk_port_idle(void) {
  /* Sleep until a byte arrives. With PRIMASK set a pending interrupt still ends WFI, so a byte that arrives
   * between the check and the WFI cannot be slept through; the handler runs at cpsie. */
  __asm volatile("cpsid i" ::: "memory");
  if (s_rx_tail == s_rx_head) {
    __asm volatile("wfi" ::: "memory");
  }
  __asm volatile("cpsie i" ::: "memory");
}

/* Ticks since init, extended to 64 bits (TIMER0 wraps every 2^32 ticks, about 172 s of guest time). */
static uint64_t ticks(void) {
  uint32_t now = TIMER_VALUE;
  s_ticks += (uint32_t)(s_last - now); /* counts down; modular difference survives the reload */
  s_last = now;
  return s_ticks;
}

uint64_t tk_port_time_us(void) {
  return ticks() / (TIMER_HZ / 1000000u);
}

/* Instructions, read at a tick edge: wait for TIMER0 to change so that start and end readings sit at
 * the same phase of the 40-instruction tick and repeated runs read the same count. */
uint64_t tk_port_counter(void) {
  uint32_t start = TIMER_VALUE;
  while (TIMER_VALUE == start) {
  }
  return ticks() * INSTRUCTIONS_PER_TICK;
}

tk_counter_kind tk_port_counter_kind(void) {
  return TK_COUNTER_INSTRUCTIONS;
}
