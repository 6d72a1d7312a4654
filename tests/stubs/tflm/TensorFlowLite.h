// Stub of the Arduino TFLM library umbrella header TensorFlowLite.h.
#pragma once
