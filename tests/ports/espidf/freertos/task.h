/* Stand-in for FreeRTOS tasks (tests only): the benchmark only yields. */
#ifndef TK_STANDIN_TASK_H_
#define TK_STANDIN_TASK_H_
#include <stdint.h>
#include "../../qhw.h"
static inline void vTaskDelay(uint32_t ticks) {
  if (ticks != 0) qhw_idle(); /* the command loop's idle: WFI until the UART has a byte */
}
#endif
