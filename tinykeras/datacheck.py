"""Checks of user data before it reaches a converter or a C file: finite samples, C identifiers, text files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tinykeras.errors import DataError

# C11 and C++20 keywords (and alternative operator spellings): none may name a generated symbol.
C_KEYWORDS = frozenset("""
alignas alignof and and_eq asm atomic_cancel atomic_commit atomic_noexcept auto bitand bitor bool break case
catch char char8_t char16_t char32_t class compl concept const consteval constexpr constinit const_cast continue
co_await co_return co_yield decltype default delete do double dynamic_cast else enum explicit export extern false
float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr operator or or_eq
private protected public reflexpr register reinterpret_cast requires restrict return short signed sizeof static
static_assert static_cast struct switch synchronized template this thread_local throw true try typedef typeid
typename union unsigned using virtual void volatile wchar_t while xor xor_eq _Alignas _Alignof _Atomic _Bool
_Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local NULL main
""".split())
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def require_c_identifier(name: str, what: str = "--name") -> str:
    """Return ``name`` if it can name a C/C++ symbol, else raise DataError saying why.

    >>> require_c_identifier("g_model")
    'g_model'
    """
    if not _IDENT.match(name) or len(name) > 200:
        raise DataError(f"{what} '{name}' is not a C identifier (letters, digits, '_', not starting with a digit)")
    return require_not_keyword(name, what)


def require_not_keyword(name: str, what: str = "--name") -> str:
    """Raise DataError if ``name`` is a C/C++ keyword or a compiler-reserved name (other names are turned
    into identifiers by ``cgen.c_identifier``).

    >>> require_not_keyword("ad model")
    'ad model'
    """
    if name in C_KEYWORDS:
        raise DataError(f"{what} '{name}' is a C or C++ keyword; choose another name, e.g. g_{name}")
    if name.startswith("__") or (name.startswith("_") and name[1:2].isupper()):
        raise DataError(f"{what} '{name}' is reserved for the compiler (leading '__' or '_' + capital)")
    return name


def require_finite_samples(x: np.ndarray, what: str = "data") -> None:
    """Raise DataError for empty data or any NaN/inf value, naming the first bad sample."""
    x = np.asarray(x)
    if x.size == 0 or len(x) == 0:
        raise DataError(f"{what} is empty: it needs at least one sample")
    if x.dtype.kind in "fc":
        flat = x.reshape(len(x), -1)
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(f"{what}: sample {first} contains NaN or infinite values "
                            f"({int(bad.sum())} of {len(x)} samples do); clean or drop them")


def read_text_lines(path: Path, what: str = "labels file") -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file; one DataError line for anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: the {what} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]
