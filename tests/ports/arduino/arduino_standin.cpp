/* Stand-in for the Arduino core (tests only): Serial, time, and main() calling setup() and loop(). */
#include "Arduino.h"

HardwareSerial Serial;
extern "C" {
tk_standin_dwt_t tk_standin_dwt;
tk_standin_coredebug_t tk_standin_coredebug;
unsigned long millis(void) { return (unsigned long)(qhw_time_us() / 1000u); }
unsigned long micros(void) { return (unsigned long)qhw_time_us(); }
void delay(unsigned long ms) {
  const uint64_t end = qhw_time_us() + 1000ull * ms;
  while (qhw_time_us() < end) {
  }
}
void yield(void) { qhw_idle(); }
}

void setup();
void loop();

int main(void) {
  setup();
  for (;;) loop();
}
