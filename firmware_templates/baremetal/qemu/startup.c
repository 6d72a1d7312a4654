/* tinykeras startup for QEMU's MPS2/MPS3 machines (Cortex-M3/M4/M7/M33/M55): vector table, reset, FPU (and
 * MVE), fault report, exit. The memory map is the machine's memory.ld (firmware_templates/baremetal/<machine>/);
 * on the TrustZone machines (AN505, AN547) the core boots and stays in Secure state.
 */
#include <stdint.h>

#include "tk_machine.h"
#include "tk_port.h"
#include "tk_qemu.h"

extern uint32_t __etext_data;  /* load address of .data in flash */
extern uint32_t __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
/* C++ objects with static storage register their destructors against this handle (crtbegin.o defines it in
   hosted builds; -nostartfiles leaves it out). Nothing is ever destroyed here: main never returns normally. */
void *__dso_handle = 0;

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_SHCSR (*(volatile uint32_t *)0xE000ED24u)
#define NUM_IRQS 64 /* covers every machine's UART0 RX line (AN547: 34) */

typedef void (*vector_t)(void);
/* UART0's RX line, and its TX line (whose interrupt stays off) for machines whose lines QEMU numbers the other way */
#define IRQ(n) ((n) == TK_UART0_IRQ_RX || (n) == TK_UART0_IRQ_TX ? tk_uart_rx_isr : Default_Handler)

__attribute__((section(".isr_vector"), used)) const vector_t tk_vectors[16 + NUM_IRQS] = {
    (vector_t)(uintptr_t)&__stack_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
    /* external interrupts: only the UART's RX (the port's ring buffer) */
    IRQ(0), IRQ(1), IRQ(2), IRQ(3), IRQ(4), IRQ(5), IRQ(6), IRQ(7), IRQ(8), IRQ(9), IRQ(10), IRQ(11), IRQ(12),
    IRQ(13), IRQ(14), IRQ(15), IRQ(16), IRQ(17), IRQ(18), IRQ(19), IRQ(20), IRQ(21), IRQ(22), IRQ(23), IRQ(24),
    IRQ(25), IRQ(26), IRQ(27), IRQ(28), IRQ(29), IRQ(30), IRQ(31), IRQ(32), IRQ(33), IRQ(34), IRQ(35), IRQ(36),
    IRQ(37), IRQ(38), IRQ(39), IRQ(40), IRQ(41), IRQ(42), IRQ(43), IRQ(44), IRQ(45), IRQ(46), IRQ(47), IRQ(48),
    IRQ(49), IRQ(50), IRQ(51), IRQ(52), IRQ(53), IRQ(54), IRQ(55), IRQ(56), IRQ(57), IRQ(58), IRQ(59), IRQ(60),
    IRQ(61), IRQ(62), IRQ(63),
};

void Reset_Handler(void) {
  uint32_t *src = &__etext_data;
  uint32_t *dst;
  for (dst = &__data_start; dst < &__data_end;) {
    *dst++ = *src++;
  }
  for (dst = &__bss_start; dst < &__bss_end;) {
    *dst++ = 0u;
  }
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
  SCB_CPACR |= (0xFu << 20); /* CP10 and CP11 full access: the FPU (and MVE on the M55) */
  __asm volatile("dsb\n\tisb" ::: "memory");
#endif
  __asm volatile("cpsid i" ::: "memory"); /* no interrupt handlers run until tk_port_init() enables them */
  SCB_SHCSR |= (7u << 16);                /* MemManage, BusFault, UsageFault as their own exceptions */
  for (void (**ctor)(void) = __init_array_start; ctor < __init_array_end; ++ctor) {
    (*ctor)(); /* C++ static constructors (none in the aot runtime) */
  }
  tk_qemu_exit(main());
}

/* A fault: report it as a protocol error record and end QEMU with status 3. */
void Fault_Handler(void) {
  static const char msg[] = "@tk {\"v\":1,\"event\":\"error\",\"msg\":\"CPU fault (HardFault/BusFault/UsageFault)\"}\n";
  tk_port_write(msg, (unsigned)(sizeof(msg) - 1u));
  tk_qemu_exit(3);
}

void Default_Handler(void) {
  static const char msg[] = "@tk {\"v\":1,\"event\":\"error\",\"msg\":\"unexpected interrupt\"}\n";
  tk_port_write(msg, (unsigned)(sizeof(msg) - 1u));
  tk_qemu_exit(4);
}

void tk_qemu_exit(int code) {
  /* SYS_EXIT_EXTENDED (0x20): r1 points to {ADP_Stopped_ApplicationExit, exit code}. */
  static volatile uint32_t block[2];
  block[0] = 0x20026u;
  block[1] = (uint32_t)code;
  {
    register uint32_t r0 __asm("r0") = 0x20u;
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  }
  for (;;) {
    __asm volatile("wfi");
  }
}
