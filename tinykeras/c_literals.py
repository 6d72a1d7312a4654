"""C literals for generated sources: strings and floats, each spelling written once.

Three float spellings exist because their files need different things: ``c_float`` (the shortest decimal
that reads back as the same double, for human-read settings headers), ``c_float_9g`` (nine significant
digits, enough to read back any float32, for the audio front end's tables) and ``c_hex_float`` (exact
hexadecimal, for the aot kernels' quantization scales). The doctests run in tests/test_c_literals.py.
"""

from __future__ import annotations

import math

import numpy as np


def c_string(value: str) -> str:
    r"""A C string literal: printable ASCII as is, quotes and backslashes escaped, the rest as octal UTF-8 bytes.

    >>> print(c_string('a"b\\c'))
    "a\"b\\c"
    >>> print(c_string("µs"))
    "\302\265s"
    """
    out = []
    for ch in str(value):
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _finite(value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{value} has no C float literal (scales and parameters must be finite)")
    return value


def c_float(value: float) -> str:
    """A ``float`` literal: the shortest decimal that reads back as the same double (Python's ``repr``).

    >>> c_float(0.5), c_float(3), c_float(1e-05), c_float(0.003921568859368563)
    ('0.5f', '3.0f', '1e-05f', '0.003921568859368563f')
    >>> c_float(float("inf"))
    Traceback (most recent call last):
    ValueError: inf has no C float literal (scales and parameters must be finite)
    """
    text = repr(_finite(value))
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def c_float_9g(value: float) -> str:
    """A ``float`` literal with nine significant digits: enough for any float32 to read back exactly.

    >>> c_float_9g(0.1), c_float_9g(np.float32(0.1)), c_float_9g(20), c_float_9g(np.float32(1e-6))
    ('0.1f', '0.100000001f', '20.0f', '9.99999997e-07f')
    """
    text = f"{_finite(value):.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def c_hex_float(value: float, double: bool = False) -> str:
    """An exact hexadecimal literal of ``value`` rounded to float32 (``float``), or of the double itself.

    >>> c_hex_float(0.1), c_hex_float(0.1, double=True)
    ('0x1.99999a0000000p-4f', '0x1.999999999999ap-4')
    >>> c_hex_float(1e39)  # beyond float32
    Traceback (most recent call last):
    ValueError: inf has no C float literal (scales and parameters must be finite)
    """
    with np.errstate(over="ignore"):  # a double beyond float32 becomes inf, refused below
        number = _finite(value if double else np.float32(_finite(value)))
    return number.hex() + ("" if double else "f")
