// Stub of tensorflow/lite/c/common.h: the parts tinykeras' adapter touches.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef union TfLitePtrUnion {
  int32_t *i32;
  float *f;
  int8_t *int8;
  uint8_t *uint8;
  int16_t *i16;
  void *data;
} TfLitePtrUnion;

typedef struct TfLiteTensor {
  int type;
  TfLitePtrUnion data;
  void *dims;
  size_t bytes;
} TfLiteTensor;
