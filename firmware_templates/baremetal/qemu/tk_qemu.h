/* tinykeras bare-metal port for QEMU's mps2-an386 (Cortex-M4F): semihosting exit and the fault hook. */
#ifndef TK_QEMU_H_
#define TK_QEMU_H_

#ifdef __cplusplus
extern "C" {
#endif

/* The UART's RX interrupt line (mps2-an386: UART0 RX is IRQ 0) and its handler, which the port defines and
 * startup.c places in the vector table. */
#define TK_QEMU_UART_RX_IRQ 0
void tk_uart_rx_isr(void);

/* End QEMU with this exit status (semihosting SYS_EXIT_EXTENDED; needs -semihosting-config enable=on). */
void tk_qemu_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* TK_QEMU_H_ */
