"""The aot op declarations: each op's kernels exist in the C files it names, and the shared helpers'
docstrings hold (cheap: no compiler, no TensorFlow)."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import re

import pytest

from tinykeras.aot import SUPPORTED_OPS
from tinykeras.aot.declare import aot_op
from tinykeras.aot.ops import KERNEL_FILES, OPS, REFUSED
from tinykeras.resources import templates_dir

FAMILIES = ("activation", "conv", "elementwise", "matmul", "pool", "reduce", "shape")


@pytest.mark.parametrize("module", ["tinykeras.aot.emit", "tinykeras.aot.ops.layout", "tinykeras.aot.ops.shape"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_every_op_is_declared_with_kernels_that_exist() -> None:
    kernel_dir = templates_dir() / "runtime" / "aot"
    sources = {name: (kernel_dir / name).read_text() for name in KERNEL_FILES}
    assert SUPPORTED_OPS == tuple(OPS) and len(OPS) >= 42
    for name, op in OPS.items():
        assert op.name == name and op.family in FAMILIES and op.constraints, name
        assert set(op.c_files) <= set(KERNEL_FILES), f"{name}: {op.c_files} not shipped ({KERNEL_FILES})"
        for kernel in op.kernels:
            if kernel == "memcpy":
                continue
            defined = re.compile(rf"\b{kernel}\(")
            assert any(defined.search(sources[f]) for f in op.c_files), f"{name}: {kernel} not in {op.c_files}"
    assert not set(REFUSED) & set(OPS)


def test_an_op_is_declared_once() -> None:
    with pytest.raises(ValueError, match="CONV_2D declared twice"):
        aot_op("CONV_2D", kernels=(), c_files=())(lambda g, op, ins, out: ("", 0, False))


def test_a_refusal_names_the_reason_and_the_declared_constraints() -> None:
    """Vela-style: the constraints a user reads when aot refuses an op are its declaration's docstring."""
    from tinykeras.aot import generate
    from tinykeras.errors import UnsupportedOpError
    from tinykeras.inspect import inspect_bytes
    from tinykeras.resources import models_dir

    path = models_dir() / "kws" / "model.tflite"
    data = path.read_bytes()
    info = inspect_bytes(data, str(path))
    op = info.ops[0]
    hostile = dataclasses.replace(info, ops=(dataclasses.replace(op, options={**op.options, "padding": "CAUSAL"}),)
                                  + info.ops[1:])
    with pytest.raises(UnsupportedOpError) as err:
        generate(data, hostile)
    assert f"{op.op} (padding CAUSAL; aot's {op.op}: {OPS[op.op].constraints}) (operator #0)" in str(err.value)
