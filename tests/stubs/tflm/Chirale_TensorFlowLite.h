// Stub of the Arduino TFLM library umbrella header Chirale_TensorFlowLite.h.
#pragma once
