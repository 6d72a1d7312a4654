"""C emission of the aot runtime: constant arrays, parameter structs, scale literals and the two generated
files, rendered from ``firmware_templates/runtime/aot/model/*.in`` (``string.Template``: ``${name}``)."""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from tinykeras.aot.declare import Unsupported
from tinykeras.c_literals import c_hex_float
from tinykeras.resources import templates_dir

INT32_RANGE = (-(2**31), 2**31 - 1)
C_TYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "int16": "int16_t", "uint8": "uint8_t"}
KERNEL_DIR = ("runtime", "aot")  # under firmware_templates/: the kernels every aot program ships
_MODEL_DIR = ("runtime", "aot", "model")  # the templates of tk_model.h / tk_model.c


def c_array(ctype: str, name: str, values: Any, per_line: int = 24) -> str:
    """A ``static const`` array, 8-byte aligned (``TK_WALIGN``), ``per_line`` integers to a line.

    >>> print(c_array("int8_t", "w", [1, -2, 3], per_line=2), end="")
    static const int8_t w[3] TK_WALIGN = {
      1, -2,
      3
    };
    """
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    if not flat:
        flat = [0]
    lines = []
    for start in range(0, len(flat), per_line):
        lines.append("  " + ", ".join(str(v) for v in flat[start:start + per_line]))
    body = ",\n".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] TK_WALIGN = {{\n{body}\n}};\n"


def c_struct_array(ctype: str, name: str, rows: list[tuple[int, ...]]) -> str:
    """A ``static const`` array of structs given as rows of integers.

    >>> print(c_struct_array("tk_rq_param", "rq", [(1, 2, 3)]), end="")
    static const tk_rq_param rq[1] = {
      {1, 2, 3}
    };
    """
    body = ",\n".join("  {" + ", ".join(str(int(v)) for v in row) + "}" for row in rows)
    return f"static const {ctype} {name}[{len(rows)}] = {{\n{body}\n}};\n"


def check_int(key: str, value: Any) -> None:
    """Every integer a parameter struct receives must fit the C ``int``/``int32_t`` field it is written to."""
    if isinstance(value, (int, np.integer)) and not INT32_RANGE[0] <= int(value) <= INT32_RANGE[1]:
        raise Unsupported(f"parameter {key} = {int(value)} does not fit a 32-bit int")


def c_struct(ctype: str, name: str, fields: dict[str, Any]) -> str:
    """A ``static const`` parameter struct with designated initializers; lists become ``{...}``.

    >>> print(c_struct("tk_pad_params", "p", {"n": 3, "before": [0, 1]}), end="")
    static const tk_pad_params p = {
      .n = 3,
      .before = {0, 1},
    };
    """
    parts = []
    for key, value in fields.items():
        if isinstance(value, (list, tuple)):
            for v in value:
                check_int(key, v)
            value = "{" + ", ".join(str(int(v)) for v in value) + "}"
        else:
            check_int(key, value)
        parts.append(f"  .{key} = {value},")
    return f"static const {ctype} {name} = {{\n" + "\n".join(parts) + "\n};\n"


def scale_literal(x: float, double: bool = False) -> str:
    """An exact C literal for a float32 (or double) quantization scale."""
    try:
        return c_hex_float(x, double=double)
    except ValueError:
        raise Unsupported("non-finite quantization scale") from None


def render(template: str, **fields: Any) -> str:
    """``firmware_templates/runtime/aot/model/<template>`` with every ``${field}`` filled in."""
    text = templates_dir().joinpath(*_MODEL_DIR, template).read_text()
    return string.Template(text).substitute({k: str(v) for k, v in fields.items()})


def kernel_sources(names: tuple[str, ...]) -> dict[str, str]:
    """The kernel files ``names`` from ``firmware_templates/runtime/aot/``, as they are."""
    kernel_dir = templates_dir().joinpath(*KERNEL_DIR)
    return {name: (kernel_dir / name).read_text() for name in names}
