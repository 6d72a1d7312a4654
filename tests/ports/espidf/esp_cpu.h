/* Stand-in for ESP-IDF's esp_cpu.h (tests only): the "cycle" counter counts QEMU instructions. */
#ifndef TK_STANDIN_ESP_CPU_H_
#define TK_STANDIN_ESP_CPU_H_
#include "../qhw.h"
static inline uint32_t esp_cpu_get_cycle_count(void) { return (uint32_t)qhw_counter(); }
#endif
