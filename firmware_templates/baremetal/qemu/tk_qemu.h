/* tinykeras bare-metal port for QEMU's MPS2/MPS3 machines: semihosting exit and the fault hook. */
#ifndef TK_QEMU_H_
#define TK_QEMU_H_

#ifdef __cplusplus
extern "C" {
#endif

/* UART0's RX interrupt handler (port_qemu.c); startup.c puts it at the machine's TK_UART0_IRQ_RX vector. */
void tk_uart_rx_isr(void);

/* End QEMU with this exit status (semihosting SYS_EXIT_EXTENDED; needs -semihosting-config enable=on). */
void tk_qemu_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* TK_QEMU_H_ */
