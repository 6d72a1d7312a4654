/* tinykeras machine port: QEMU mps3-an547 (Cortex-M55 with MVE (Helium) in the SSE-300 subsystem,
 * TrustZone). Included by port_qemu.c and startup.c. The core boots in Secure state and tinykeras stays
 * there: every address below is the Secure alias (bit 28 set).
 * Facts (QEMU 7.2 hw/arm/mps2-tz.c, hw/arm/armsse.c, hw/timer/sse-counter.c):
 * - UART0 (CMSDK APB UART) at 0x49303000, Secure alias 0x59303000; TX and RX interrupts are NVIC lines 33
 *   and 34. APB peripheral clock 25 MHz.
 * - The SSE-300 has no CMSDK timer at full speed (its TIMER0..3 are SSE system timers). The instruction
 *   counter reads the System Counter instead: control frame at 0x58100000 (Secure only; CNTCR at +0,
 *   CNTCV at +8/+12), counting up at the 32 MHz MAINCLK: one tick = 31.25 instructions under -icount shift=0.
 */
#ifndef TK_MACHINE_H_
#define TK_MACHINE_H_

#define TK_MACHINE "mps3-an547"
#define TK_UART0_BASE 0x59303000u
#define TK_UART0_IRQ_RX 34u
#define TK_UART0_IRQ_TX 33u
#define TK_COUNTER_SSE_COUNTER 1   /* the SSE-300 System Counter: 64 bits, counting up at TK_COUNTER_HZ */
#define TK_SSE_COUNTER_BASE 0x58100000u
#define TK_COUNTER_HZ 32000000u
#define TK_INSTRUCTIONS_PER_TICK_NUM 125u /* instructions per tick = NUM / DEN = 31.25 (a power-of-two DEN: a shift) */
#define TK_INSTRUCTIONS_PER_TICK_DEN 4u

#endif /* TK_MACHINE_H_ */
