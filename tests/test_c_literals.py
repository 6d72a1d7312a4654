"""The small helpers whose docstrings are their specification: C literals and the aot fixed-point math."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from tinykeras.c_literals import c_float, c_float_9g, c_hex_float, c_string

DOCTESTED = ["tinykeras.c_literals", "tinykeras.aot.fixedpoint"]


@pytest.mark.parametrize("module", DOCTESTED)
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_float_literals_read_back() -> None:
    """Each spelling reads back as the value it promises: the double, or the float32."""
    rng = np.random.default_rng(0)
    for v in np.concatenate([rng.standard_normal(200) * 10.0 ** rng.integers(-12, 12, 200), [0.0, 1.0, -2.0]]):
        assert float(c_float(v)[:-1]) == float(v)
        assert np.float32(float(c_float_9g(np.float32(v))[:-1])) == np.float32(v)
        assert float.fromhex(c_hex_float(v)[:-1]) == float(np.float32(v))
        assert float.fromhex(c_hex_float(v, double=True)) == float(v)


def test_string_literal_is_ascii_and_escaped() -> None:
    text = c_string('tab\there "q" \\ é\n')
    assert text.isascii() and "\t" not in text and "\n" not in text
    assert text == '"tab\\011here \\"q\\" \\\\ \\303\\251\\012"'
