"""The aot op registry: every op the runtime runs, declared once in its family module with ``@aot_op``.

``OPS`` maps each builtin op name to its ``AotOp`` (handler, kernels, C files, constraints); the generator
dispatches through it, and ``SUPPORTED_OPS``, the refusal notes and docs/supported_ops.md read it.
"""

from __future__ import annotations

from tinykeras.aot.declare import AotOp, declared
from tinykeras.aot.ops import activation, conv, elementwise, matmul, pool, reduce, shape  # noqa: F401  (declare)

OPS: dict[str, AotOp]
REFUSED: dict[str, str]  # builtin ops the runtime refuses on purpose -> the one line that says what to do
OPS, REFUSED = declared()
SUPPORTED_OPS: tuple[str, ...] = tuple(OPS)
# Every aot program ships these, in this order (firmware_templates/runtime/aot/); each op's C files are
# among them.
KERNEL_FILES = ("tk_fixedpoint.h", "tk_kernels.h", "tk_fast.h", "tk_conv.c", "tk_ops.c", "tk_ops2.h", "tk_ops2.c")

__all__ = ["KERNEL_FILES", "OPS", "REFUSED", "SUPPORTED_OPS", "AotOp"]
