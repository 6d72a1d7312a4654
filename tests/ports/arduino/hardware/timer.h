/* Stand-in (tests only): the Pico SDK's 64-bit microsecond timer. */
#ifndef TK_STANDIN_PICO_TIMER_H_
#define TK_STANDIN_PICO_TIMER_H_
#include "../../qhw.h"
static inline uint64_t time_us_64(void) { return qhw_time_us(); }
#endif
