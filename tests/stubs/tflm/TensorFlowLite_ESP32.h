// Stub of the Arduino TFLM library umbrella header TensorFlowLite_ESP32.h.
#pragma once
