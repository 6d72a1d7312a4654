/* Stand-in for ESP-IDF's esp_timer.h (tests only). */
#ifndef TK_STANDIN_ESP_TIMER_H_
#define TK_STANDIN_ESP_TIMER_H_
#include "../qhw.h"
static inline int64_t esp_timer_get_time(void) { return (int64_t)qhw_time_us(); }
#endif
