/* tinykeras machine port: QEMU mps2-an386 (Cortex-M4F). Included by port_qemu.c and startup.c.
 * Facts (QEMU 7.2 hw/arm/mps2.c): the AN385/AN386 map: CMSDK UART0 at 0x40004000 (RX IRQ 0,
 * TX IRQ 1), CMSDK TIMER0 at 0x40000000, both clocked by the 25 MHz SYSCLK.
 */
#ifndef TK_MACHINE_H_
#define TK_MACHINE_H_

#define TK_MACHINE "mps2-an386"
#define TK_UART0_BASE 0x40004000u
#define TK_UART0_IRQ_RX 0u
#define TK_UART0_IRQ_TX 1u         /* enabled in the NVIC too; never raised (TX interrupts stay off) */
#define TK_COUNTER_CMSDK_TIMER 1   /* a CMSDK APB timer counting down at TK_COUNTER_HZ */
#define TK_TIMER0_BASE 0x40000000u
#define TK_COUNTER_HZ 25000000u
#define TK_INSTRUCTIONS_PER_TICK_NUM 40u /* instructions per tick = NUM / DEN (1 ns per instruction) */
#define TK_INSTRUCTIONS_PER_TICK_DEN 1u

#endif /* TK_MACHINE_H_ */
