/* Stand-in (tests only) for the names Teensyduino's Arduino.h brings from its imxrt.h: the DWT cycle counter as
   ARM_DWT_CYCCNT etc. Kept in RAM like the stand-in's DWT (tests/ports/arduino/Arduino.h): QEMU models no DWT.
   Force-included (-include) into the project's sources for boards on PlatformIO's teensy platform. */
#ifndef TK_STANDIN_TEENSY_H_
#define TK_STANDIN_TEENSY_H_
#include "Arduino.h"
#define ARM_DEMCR (tk_standin_coredebug.DEMCR)
#define ARM_DEMCR_TRCENA (1UL << 24)
#define ARM_DWT_CTRL (tk_standin_dwt.CTRL)
#define ARM_DWT_CTRL_CYCCNTENA 1UL
#define ARM_DWT_CYCCNT (tk_standin_dwt.CYCCNT)
#endif
