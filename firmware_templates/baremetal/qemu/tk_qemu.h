/* tinykeras bare-metal port for QEMU's MPS2/MPS3 machines: semihosting exit and the fault hook. */
#ifndef TK_QEMU_H_
#define TK_QEMU_H_

#ifdef __cplusplus
extern "C" {
#endif

/* End QEMU with this exit status (semihosting SYS_EXIT_EXTENDED; needs -semihosting-config enable=on). */
void tk_qemu_exit(int code) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* TK_QEMU_H_ */
