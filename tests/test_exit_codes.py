"""One exit code per error class, and the README's table says which."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from tinykeras import errors

README = Path(__file__).resolve().parents[1] / "README.md"


def error_classes() -> list[type[errors.TinyKerasError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.TinyKerasError)]


def test_every_error_class_has_its_own_exit_code() -> None:
    codes: dict[int, list[str]] = {}
    for cls in error_classes():
        if "exit_code" in vars(cls):  # UnsupportedOpError is a ModelError and shares its code on purpose
            codes.setdefault(cls.exit_code, []).append(cls.__name__)
    assert {c: n for c, n in codes.items() if len(n) > 1} == {}
    assert not set(codes) & {0, 70, 130}  # success, internal error, interrupted


def test_readme_table_lists_every_exit_code() -> None:
    rows = dict(re.findall(r"^\| (\d+) \| ([^|]*) \|", README.read_text(), flags=re.M))
    for cls in error_classes():
        if "exit_code" in vars(cls):
            assert f"`{cls.__name__}`" in rows.get(str(cls.exit_code), ""), cls.__name__
