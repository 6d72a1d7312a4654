/* tinykeras machine port: QEMU mps2-an505 (Cortex-M33 in the IoT Kit subsystem, TrustZone). Included by
 * port_qemu.c and startup.c. The core boots in Secure state and tinykeras stays there: every address below is
 * the Secure alias (bit 28 set; the IDAU marks those regions Secure, the PPCs and MPCs reset to Secure-only).
 * Facts (QEMU 7.2 hw/arm/mps2-tz.c, hw/arm/armsse.c):
 * - UART0 (CMSDK APB UART) at 0x40200000, Secure alias 0x50200000; its TX and RX interrupts are NVIC lines
 *   32 and 33 (both enabled here: only RX is ever raised, TX interrupts stay off). UART clock 20 MHz.
 * - TIMER0 (CMSDK APB timer in the IoT Kit) at 0x40000000, Secure alias 0x50000000, counting down at the
 *   20 MHz MAINCLK: one tick = 50 instructions under -icount shift=0.
 */
#ifndef TK_MACHINE_H_
#define TK_MACHINE_H_

#define TK_MACHINE "mps2-an505"
#define TK_UART0_BASE 0x50200000u
#define TK_UART0_IRQ_RX 33u
#define TK_UART0_IRQ_TX 32u
#define TK_COUNTER_CMSDK_TIMER 1
#define TK_TIMER0_BASE 0x50000000u
#define TK_COUNTER_HZ 20000000u
#define TK_INSTRUCTIONS_PER_TICK_NUM 50u /* instructions per tick = NUM / DEN (1 ns per instruction) */
#define TK_INSTRUCTIONS_PER_TICK_DEN 1u

#endif /* TK_MACHINE_H_ */
