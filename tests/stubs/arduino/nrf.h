// Stub of the nRF MDK device header: it includes the CMSIS core (DWT, CoreDebug).
#pragma once
#include "cmsis_stub.h"
