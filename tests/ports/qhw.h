/* The QEMU stand-in hardware: tinykeras' QEMU port (port_qemu.c) with its tk_port_* names renamed qhw_*. */
#ifndef TK_STANDIN_QHW_H_
#define TK_STANDIN_QHW_H_
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
void qhw_init(void);
void qhw_write(const char *s, unsigned n);
int qhw_read_char(void);
uint64_t qhw_time_us(void);
uint64_t qhw_counter(void);
void qhw_idle(void);
#ifdef __cplusplus
}
#endif
#endif
