// Stub of the Arduino core API used by tinykeras' board glue (declarations only).
#pragma once
#include <stddef.h>
#include <stdint.h>

class HardwareSerial {
 public:
  void begin(unsigned long baud);
  size_t write(const uint8_t *buffer, size_t size);
  int available();
  int read();
  explicit operator bool() const;
};
extern HardwareSerial Serial;

unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);
void yield();

#if defined(ARDUINO_ARCH_ESP32)
class EspClass {
 public:
  uint32_t getCycleCount();
};
extern EspClass ESP;
#endif

#if defined(STUB_CMSIS)  // STM32duino / Arduino Mbed pull in the CMSIS core header through Arduino.h
#include "cmsis_stub.h"
#endif
