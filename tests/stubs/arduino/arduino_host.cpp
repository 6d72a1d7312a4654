// A host implementation of the stub Arduino API (tests only): Serial writes to stdout and reads stdin,
// the clocks read CLOCK_MONOTONIC, and yield() ends the program once stdin is exhausted. It lets a rendered
// PlatformIO project (board glue + benchmark + model) run on the host; it says nothing about real boards.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "Arduino.h"
#include "hardware/timer.h"

HardwareSerial Serial;

static int s_pending = -2;  // -2: nothing read yet; -1: end of input; else the next byte

void HardwareSerial::begin(unsigned long) {}

size_t HardwareSerial::write(const uint8_t *buffer, size_t size) {
  size_t n = fwrite(buffer, 1, size, stdout);
  fflush(stdout);
  return n;
}

int HardwareSerial::available() {
  if (s_pending == -2) {
    int c = getchar();
    s_pending = c == EOF ? -1 : c;
  }
  return s_pending >= 0 ? 1 : 0;
}

int HardwareSerial::read() {
  if (!available()) return -1;
  int c = s_pending;
  s_pending = -2;
  return c;
}

HardwareSerial::operator bool() const { return true; }

static uint64_t now_us() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

unsigned long millis() { return (unsigned long)(now_us() / 1000u); }
unsigned long micros() { return (unsigned long)now_us(); }
void delay(unsigned long) {}
void yield() {
  if (s_pending == -1) exit(0);  // the command loop is idle and the host has nothing more to say
}
extern "C" uint64_t time_us_64(void) { return now_us(); }

void setup();
void loop();

int main() {
  setup();
  for (;;) loop();
}
