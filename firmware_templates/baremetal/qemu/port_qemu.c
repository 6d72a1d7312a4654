/* tinykeras board port (tk_port.h) for QEMU's MPS2/MPS3 machines: CMSDK UART0 and an instruction counter.
 * What differs between machines (addresses, interrupt lines, the counter and its clock) is in the
 * machine's tk_machine.h (firmware_templates/baremetal/<machine>/).
 *
 * Facts (QEMU hw/char/cmsdk-apb-uart.c, hw/timer/cmsdk-apb-timer.c, hw/timer/sse-counter.c):
 * - BAUDDIV must be set (>= 16) before CTRL enables TX, or QEMU drops characters.
 * - UART0's RX interrupt (TK_UART0_IRQ_RX; startup.c puts tk_uart_rx_isr at that vector) moves every received
 *   byte into a ring buffer, so no command byte waits on (or is lost to) an inference in progress.
 * - Under `-icount shift=0` one guest instruction takes 1 ns, so a counter at TK_COUNTER_HZ advances once per
 *   1e9 / TK_COUNTER_HZ instructions (40 at 25 MHz): the resolution of the instruction counter.
 */
#include <stdint.h>

#include "tk_machine.h"
#include "tk_port.h"
#include "tk_qemu.h"

#define UART_DATA (*(volatile uint32_t *)(TK_UART0_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(TK_UART0_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(TK_UART0_BASE + 0x08u))
#define UART_INTCLEAR (*(volatile uint32_t *)(TK_UART0_BASE + 0x0Cu))
#define UART_BAUDDIV (*(volatile uint32_t *)(TK_UART0_BASE + 0x10u))
#define UART_STATE_TXFULL 1u
#define UART_STATE_RXFULL 2u
#define UART_CTRL_TX_EN 1u
#define UART_CTRL_RX_EN 2u
#define UART_CTRL_RX_INT_EN 8u
#define UART_INT_RX 2u

#define NVIC_ISER ((volatile uint32_t *)0xE000E100u)
#define NVIC_ISPR ((volatile uint32_t *)0xE000E200u)
#define NVIC_ICPR ((volatile uint32_t *)0xE000E280u)
#define NVIC_SET(reg, irq) ((reg)[(irq) >> 5] = 1u << ((irq) & 31u))

#if defined(TK_COUNTER_CMSDK_TIMER)
#define TIMER_CTRL (*(volatile uint32_t *)(TK_TIMER0_BASE + 0x00u))
#define TIMER_VALUE (*(volatile uint32_t *)(TK_TIMER0_BASE + 0x04u))
#define TIMER_RELOAD (*(volatile uint32_t *)(TK_TIMER0_BASE + 0x08u))
#elif defined(TK_COUNTER_SSE_COUNTER)
#define CNTCR (*(volatile uint32_t *)(TK_SSE_COUNTER_BASE + 0x00u))
#define CNTCV_LO (*(volatile uint32_t *)(TK_SSE_COUNTER_BASE + 0x08u))
#define CNTCV_HI (*(volatile uint32_t *)(TK_SSE_COUNTER_BASE + 0x0Cu))
#else
#error "tk_machine.h names no counter (TK_COUNTER_CMSDK_TIMER or TK_COUNTER_SSE_COUNTER)"
#endif

/* Received bytes: written by tk_uart_rx_isr, read by tk_port_read_char (one producer, one consumer). */
#define RX_RING_BYTES 256u /* a power of two */
static volatile uint8_t s_rx[RX_RING_BYTES];
static volatile uint32_t s_rx_head; /* next write (ISR) */
static volatile uint32_t s_rx_tail; /* next read (main loop) */

static uint32_t s_last;   /* last raw counter value (low 32 bits) */
static uint64_t s_ticks;  /* ticks elapsed since tk_port_init() */

/* The counter's raw value, as a count that goes up (modulo 2^32). */
static uint32_t counter_now(void) {
#if defined(TK_COUNTER_CMSDK_TIMER)
  return 0u - TIMER_VALUE; /* TIMER0 counts down */
#else
  return CNTCV_LO;
#endif
}

void tk_port_init(void) {
  UART_BAUDDIV = 16u;
  s_rx_head = 0u;
  s_rx_tail = 0u;
  UART_INTCLEAR = UART_INT_RX;
  NVIC_SET(NVIC_ICPR, TK_UART0_IRQ_RX);
  NVIC_SET(NVIC_ICPR, TK_UART0_IRQ_TX);
  UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
  NVIC_SET(NVIC_ISER, TK_UART0_IRQ_RX);
  NVIC_SET(NVIC_ISER, TK_UART0_IRQ_TX); /* TX interrupts stay off; the handler serves both lines */
#if defined(TK_COUNTER_CMSDK_TIMER)
  TIMER_CTRL = 0u;
  TIMER_RELOAD = 0xFFFFFFFFu;
  TIMER_VALUE = 0xFFFFFFFFu;
  TIMER_CTRL = 1u; /* enable, no interrupt */
#else
  CNTCR = 1u; /* EN */
#endif
  s_last = counter_now();
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
    NVIC_SET(NVIC_ISPR, TK_UART0_IRQ_RX);
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

/* Ticks since init, extended to 64 bits (the low 32 bits wrap every 2^32 ticks, over 130 s of guest time). */
static uint64_t ticks(void) {
  uint32_t now = counter_now();
  s_ticks += (uint32_t)(now - s_last); /* modular difference survives the wrap */
  s_last = now;
  return s_ticks;
}

uint64_t tk_port_time_us(void) {
  return ticks() * 1000000u / TK_COUNTER_HZ;
}

/* Instructions, read at a tick edge: wait for the counter to change so that start and end readings sit at
 * the same phase of the tick and repeated runs read the same count. */
uint64_t tk_port_counter(void) {
  uint32_t start = counter_now();
  while (counter_now() == start) {
  }
  return ticks() * TK_INSTRUCTIONS_PER_TICK_NUM / TK_INSTRUCTIONS_PER_TICK_DEN; /* no division in the timed span */
}

tk_counter_kind tk_port_counter_kind(void) {
  return TK_COUNTER_INSTRUCTIONS;
}
