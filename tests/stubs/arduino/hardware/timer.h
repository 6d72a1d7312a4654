// Stub of the Pico SDK's hardware/timer.h.
#pragma once
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
uint64_t time_us_64(void);
#ifdef __cplusplus
}
#endif
