// Stub of the CMSIS-Core DWT/CoreDebug registers (core_cm4.h / core_cm7.h), declarations only.
#pragma once
#include <stdint.h>

typedef struct {
  volatile uint32_t CTRL;
  volatile uint32_t CYCCNT;
  volatile uint32_t LAR;
} DWT_Type;
typedef struct {
  volatile uint32_t DEMCR;
} CoreDebug_Type;
extern DWT_Type *const DWT;
extern CoreDebug_Type *const CoreDebug;
#define CoreDebug_DEMCR_TRCENA_Msk (1UL << 24)
#define DWT_CTRL_CYCCNTENA_Msk (1UL)
