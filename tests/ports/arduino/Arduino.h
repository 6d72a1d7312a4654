/* Stand-in for the Arduino core (tests only, see tests/ports/README.md). */
#ifndef TK_STANDIN_ARDUINO_H_
#define TK_STANDIN_ARDUINO_H_
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../qhw.h"

#ifdef __cplusplus
extern "C" {
#endif
unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void yield(void);
#ifdef __cplusplus
}

class HardwareSerial {
 public:
  void begin(unsigned long) { qhw_init(); }
  explicit operator bool() const { return true; }
  size_t write(const uint8_t *b, size_t n) { qhw_write(reinterpret_cast<const char *>(b), (unsigned)n); return n; }
  size_t write(uint8_t c) { char ch = (char)c; qhw_write(&ch, 1); return 1; }
  size_t print(const char *s) { size_t n = strlen(s); qhw_write(s, (unsigned)n); return n; }
  size_t println(const char *s) { size_t n = print(s); qhw_write("\r\n", 2); return n + 2; }
  int available() { if (pending_ < 0) pending_ = qhw_read_char(); return pending_ >= 0 ? 1 : 0; }
  int read() { int c = pending_ >= 0 ? pending_ : qhw_read_char(); pending_ = -1; return c; }

 private:
  int pending_ = -1;
};
extern HardwareSerial Serial;
#endif

/* DWT and CoreDebug as a Cortex-M core's CMSIS headers name them. QEMU's mps2 boards model no DWT, so the
   stand-in keeps the registers in RAM: the cycle counter reads 0 here (instructions are counted by QEMU). */
typedef struct { volatile uint32_t CTRL; volatile uint32_t CYCCNT; volatile uint32_t LAR; } tk_standin_dwt_t;
typedef struct { volatile uint32_t DEMCR; } tk_standin_coredebug_t;
#ifdef __cplusplus
extern "C" {
#endif
extern tk_standin_dwt_t tk_standin_dwt;
extern tk_standin_coredebug_t tk_standin_coredebug;
#ifdef __cplusplus
}
#endif
#define DWT (&tk_standin_dwt)
#define CoreDebug (&tk_standin_coredebug)
#define CoreDebug_DEMCR_TRCENA_Msk (1UL << 24)
#define DWT_CTRL_CYCCNTENA_Msk 1UL

#endif
