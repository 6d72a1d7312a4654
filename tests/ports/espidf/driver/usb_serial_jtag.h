/* Stand-in for ESP-IDF's driver/usb_serial_jtag.h (tests only): the console is the stand-in machine's UART. */
#ifndef TK_STANDIN_USB_SERIAL_JTAG_H_
#define TK_STANDIN_USB_SERIAL_JTAG_H_
#include <stddef.h>
#include <stdint.h>
#include "../../qhw.h"
typedef struct { uint32_t tx_buffer_size, rx_buffer_size; } usb_serial_jtag_driver_config_t;
#define USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT() {256, 256}
static inline int usb_serial_jtag_driver_install(usb_serial_jtag_driver_config_t *config) {
  (void)config;
  qhw_init();
  return 0;
}
static inline int usb_serial_jtag_write_bytes(const void *src, size_t n, uint32_t ticks) {
  (void)ticks;
  qhw_write((const char *)src, (unsigned)n);
  return (int)n;
}
static inline int usb_serial_jtag_read_bytes(void *buf, uint32_t n, uint32_t ticks) {
  (void)ticks;
  if (n == 0) return 0;
  int c = qhw_read_char();
  if (c < 0) return 0;
  *(uint8_t *)buf = (uint8_t)c;
  return 1;
}
#endif
