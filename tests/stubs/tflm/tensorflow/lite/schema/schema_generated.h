// Stub of tensorflow/lite/schema/schema_generated.h: Model, GetModel and the schema version.
#pragma once
#include <stdint.h>

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {
struct Model {
  uint32_t version() const;
};
const Model *GetModel(const void *buf);
}  // namespace tflite
