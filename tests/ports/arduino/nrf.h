/* Stand-in (tests only): the Nano 33 BLE core header; DWT comes from Arduino.h here. */
