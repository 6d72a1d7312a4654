"""tinykeras' own ahead-of-time runtime: a static memory plan and generated C99 calling int8 kernels.

``generate(model, info)`` returns the C sources (``tk_model.h``/``tk_model.c`` plus the kernels shipped in
``firmware_templates/runtime/aot/``); ``tinykeras.aot.host.AotHostRunner`` compiles and runs them on the
host. The ops it runs are declared in ``tinykeras.aot.ops`` (one module per op family). No TensorFlow is
imported here.
"""

from tinykeras.aot.generator import AotProgram, OpPlan, generate
from tinykeras.aot.ops import KERNEL_FILES, SUPPORTED_OPS

__all__ = ["KERNEL_FILES", "SUPPORTED_OPS", "AotProgram", "OpPlan", "generate"]
