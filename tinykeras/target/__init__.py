"""Targets: where a firmware is rendered, compiled and run (``platformio`` boards, the ``qemu`` emulated board).

No TensorFlow.
"""
