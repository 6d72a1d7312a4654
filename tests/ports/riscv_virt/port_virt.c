/* The stand-in hardware for RISC-V boards (tests only): QEMU `virt` (qemu-system-riscv32), bare metal in M-mode.
 *
 * Facts (QEMU hw/riscv/virt.c, hw/char/serial.c, target/riscv/csr.c):
 * - DRAM at 0x80000000; with `-bios none` the reset vector jumps there (virt.ld puts _start first).
 * - UART0 is an NS16550A at 0x10000000 (register shift 0): THR/RBR at +0, LSR at +5 (bit 0 data ready,
 *   bit 5 transmit holding register empty). QEMU needs no baud-rate set-up.
 * - Under `-icount shift=0` the minstret CSR counts guest instructions exactly (one per RVC instruction too),
 *   and one instruction takes 1 ns of guest time.
 */
#include <stdint.h>
#include <stdio.h>

#include "../qhw.h"

#define UART0 ((volatile uint8_t *)0x10000000u)
#define UART_LSR_DR 0x01u
#define UART_LSR_THRE 0x20u

void qhw_init(void) {}

void qhw_write(const char *s, unsigned n) {
  for (unsigned k = 0; k < n; ++k) {
    while ((UART0[5] & UART_LSR_THRE) == 0u) {
    }
    UART0[0] = (uint8_t)s[k];
  }
}

int qhw_read_char(void) { return (UART0[5] & UART_LSR_DR) ? (int)UART0[0] : -1; }

uint64_t qhw_counter(void) {
  uint32_t hi, lo, hi2;
  do {
    __asm volatile("csrr %0, minstreth" : "=r"(hi));
    __asm volatile("csrr %0, minstret" : "=r"(lo));
    __asm volatile("csrr %0, minstreth" : "=r"(hi2));
  } while (hi != hi2);
  return ((uint64_t)hi << 32) | lo;
}

uint64_t qhw_time_us(void) { return qhw_counter() / 1000u; } /* 1 ns per instruction */

void qhw_idle(void) {}

/* picolibc's stdio: the libraries' printf-based DebugLog writes to the UART. */
static int virt_putc(char c, FILE *file) {
  (void)file;
  qhw_write(&c, 1);
  return (unsigned char)c;
}
static FILE virt_stdout = FDEV_SETUP_STREAM(virt_putc, NULL, NULL, _FDEV_SETUP_WRITE);
FILE *const stdout = &virt_stdout;
FILE *const stderr = &virt_stdout;

/* C++ objects with static storage register their destructors against this handle; nothing is destroyed. */
void *__dso_handle = 0;
int __cxa_atexit(void (*fn)(void *), void *arg, void *dso) {
  (void)fn; (void)arg; (void)dso;
  return 0;
}
void __cxa_pure_virtual(void) {
  for (;;) {
  }
}
/* The sized and unsized operator delete (mangled names): referenced by virtual destructors, never called. */
void _ZdlPvj(void *p, unsigned n) { (void)p; (void)n; }
void _ZdlPv(void *p) { (void)p; }
/* What picolibc's abort() and raise() call: stop here. */
void _exit(int code) {
  (void)code;
  for (;;) {
  }
}
int getpid(void) { return 1; }
int kill(int pid, int sig) {
  (void)pid; (void)sig;
  _exit(128 + sig);
  return -1;
}

extern uint32_t __etext_data, __data_start, __data_end, __bss_start, __bss_end;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
int main(void);

void virt_reset(void) {
  uint32_t *src = &__etext_data;
  for (uint32_t *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
  for (uint32_t *dst = &__bss_start; dst < &__bss_end;) *dst++ = 0u;
  for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();
  main();
  for (;;) {
  }
}

__attribute__((naked, section(".text.start"))) void _start(void) {
  __asm volatile(
      ".option push\n.option norelax\nla gp, __global_pointer$\n.option pop\n"
      "la sp, __stack_top\n"
      "j virt_reset\n");
}
