/* Stand-in for ESP-IDF's driver/uart.h (tests only): UART0 is QEMU's CMSDK UART. */
#ifndef TK_STANDIN_UART_H_
#define TK_STANDIN_UART_H_
#include <stddef.h>
#include <stdint.h>
#include "../../qhw.h"
#define UART_NUM_0 0
static inline int uart_driver_install(int port, int rx, int tx, int queue, void *handle, int flags) {
  (void)port; (void)rx; (void)tx; (void)queue; (void)handle; (void)flags;
  qhw_init();
  return 0;
}
static inline int uart_write_bytes(int port, const void *src, size_t n) {
  (void)port;
  qhw_write((const char *)src, (unsigned)n);
  return (int)n;
}
static inline int uart_read_bytes(int port, void *buf, uint32_t n, int ticks) {
  (void)port; (void)ticks;
  if (n == 0) return 0;
  int c = qhw_read_char();
  if (c < 0) return 0;
  *(uint8_t *)buf = (uint8_t)c;
  return 1;
}
#endif
