/* Stand-in for FreeRTOS (tests only). */
#ifndef TK_STANDIN_FREERTOS_H_
#define TK_STANDIN_FREERTOS_H_
#define pdMS_TO_TICKS(ms) (ms)
#define portMAX_DELAY 0xFFFFFFFFu
#endif
