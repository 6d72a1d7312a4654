"""Bounded options and checked user data: one clear line, never a traceback or broken C."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinykeras.cli import cli
from tinykeras.datacheck import require_c_identifier, require_finite_samples
from tinykeras.errors import DataError

REPO = Path(__file__).resolve().parents[1]
KWS = str(REPO / "models" / "kws" / "model.tflite")


@pytest.mark.parametrize("args", [
    ["build", "--board", "qemu_m4", "--runs", str(10**30)],
    ["build", "--board", "qemu_m4", "--warmup", "-1"],
    ["bench", "--timeout", "nan"],
    ["bench", "--timeout", "inf"],
    ["bench", "--runs", "0"],
    ["bench", "--baud", "0"],
    ["emulate", KWS, "--samples", str(10**12)],
    ["optimize", KWS, "--data", "x.npz", "--lr", "nan"],
    ["train", "kws", "--epochs", "0"],
])
def test_numeric_options_are_bounded(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["int", "class", "_Bool", "__x", "NULL"])
def test_carray_name_must_not_be_a_keyword(name: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["carray", KWS, "-o", str(tmp_path), "--name", name])
    assert result.exit_code == 4 and name in result.stderr
    assert not list(tmp_path.iterdir())


def test_c_identifier_rules() -> None:
    assert require_c_identifier("g_model") == "g_model"
    for bad in ("2x", "a b", "int", "while"):
        with pytest.raises(DataError):
            require_c_identifier(bad)


def test_non_utf8_labels_are_one_line(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"yes\n\xff\xfe no\n")
    result = CliRunner().invoke(cli, ["carray", KWS, "-o", str(tmp_path / "c"), "--labels", str(labels)])
    assert result.exit_code == 4 and "not UTF-8" in result.stderr


@pytest.mark.parametrize(("x", "words"), [
    (np.zeros((0, 4), np.float32), "empty"),
    (np.array([[1.0, 2.0], [np.nan, 0.0]], np.float32), "sample 1"),
    (np.array([[np.inf, 2.0]], np.float32), "sample 0"),
])
def test_representative_data_must_be_finite(x: np.ndarray, words: str) -> None:
    with pytest.raises(DataError, match=words):
        require_finite_samples(x, "representative data")
