"""tinykeras.testing, the public helpers for users' own tests, and the example test file that uses them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinykeras import testing

REPO = Path(__file__).resolve().parents[1]
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (apt) for the aot runtime")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A seeded Dense classifier (tf_keras), its int8 .tflite and float inputs."""
    from tinykeras.convert import convert
    from tinykeras.keras_io import load_model, tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(5, activation="softmax")])
    path = tmp_path_factory.mktemp("t") / "m.keras"
    model.save(path)
    rng = np.random.default_rng(1)
    tflite = convert(load_model(path), "int8", rng.normal(size=(200, 12)).astype(np.float32)).data
    return {"keras": model, "path": path, "tflite": tflite, "x": rng.normal(size=(100, 12)).astype(np.float32)}


def test_agreement_matches_an_independent_count(small: dict) -> None:
    raw = testing.run_tflm(small["tflite"], small["x"])
    expected = float(np.mean(raw.argmax(1) == np.asarray(small["keras"](small["x"])).argmax(1)))
    result = testing.assert_agreement(small["keras"], small["tflite"], small["x"], min_agreement=0.9)
    assert result["agreement"] == pytest.approx(expected)
    # the same through a saved model path and through a plain callable
    assert testing.agreement(small["path"], small["tflite"], small["x"])["agreement"] == pytest.approx(expected)
    assert testing.agreement(lambda b: small["keras"].predict(b, verbose=0), small["tflite"],
                             small["x"])["agreement"] == pytest.approx(expected)


def test_assert_agreement_fails_on_a_different_model(small: dict) -> None:
    def shuffled(batch: np.ndarray) -> np.ndarray:
        return np.roll(np.asarray(small["keras"](batch)), 1, axis=1)  # every top-1 class moves

    with pytest.raises(AssertionError, match=r"agrees with Keras on 0\.00% of 100 samples"):
        testing.assert_agreement(shuffled, small["tflite"], small["x"], min_agreement=0.5)


def test_assert_max_deviation(small: dict) -> None:
    deviation = testing.agreement(small["keras"], small["tflite"], small["x"])["max_abs_deviation"]
    assert 0 < deviation < 0.2
    testing.assert_max_deviation(small["keras"], small["tflite"], small["x"], atol=deviation)
    with pytest.raises(AssertionError, match="deviates from Keras"):
        testing.assert_max_deviation(small["keras"], small["tflite"], small["x"], atol=deviation / 2)


def test_int8_inputs_are_used_as_they_are(small: dict) -> None:
    xq = testing.random_inputs(small["tflite"], samples=10, seed=3)
    assert xq.dtype == np.int8 and xq.shape == (10, 12)
    from_int8 = testing.run_tflm(small["tflite"], xq)
    from_float = testing.run_tflm(small["tflite"], testing.dequantized_inputs(small["tflite"], xq))
    assert np.array_equal(from_int8, from_float)


@needs_gcc
def test_assert_bit_exact_aot(small: dict) -> None:
    result = testing.assert_bit_exact(small["tflite"], small["x"], runtime="aot")
    assert result["bit_exact"] and result["mismatches"] == 0
    assert np.array_equal(testing.run_aot(small["tflite"], small["x"]), testing.run_tflm(small["tflite"], small["x"]))


def test_assert_bit_exact_reports_mismatches(small: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from tinykeras import emulate

    real = emulate.run_runtime

    def off_by_one(runtime: str, model: emulate.Model, xq: np.ndarray, progress: object = None):
        out = real("tflm", model, xq)
        if runtime == "aot":  # a pretend runtime that rounds one value of every sample the other way
            out.raw = out.raw.copy()
            out.raw[:, 0] = np.clip(out.raw[:, 0].astype(int) + 1, -128, 127).astype(np.int8)
        return out

    monkeypatch.setattr(emulate, "run_runtime", off_by_one)
    x = small["x"][:7]
    changed = int(np.sum(testing.run_tflm(small["tflite"], x)[:, 0] < 127))
    with pytest.raises(AssertionError, match=f"differs from tflm in {changed} output values .up to 1 LSB"):
        testing.assert_bit_exact(small["tflite"], x, runtime="aot")
    assert testing.assert_bit_exact(small["tflite"], x, runtime="aot", max_lsb=1)["mismatches"] == changed


def test_assert_accuracy(small: dict) -> None:
    raw = testing.run_tflm(small["tflite"], small["x"])
    y = raw.argmax(1)
    assert testing.assert_accuracy(small["tflite"], small["x"], y, min_accuracy=1.0) == 1.0
    with pytest.raises(AssertionError, match="accuracy"):
        testing.assert_accuracy(small["tflite"], small["x"], (y + 1) % 5, min_accuracy=0.5)


@pytest.mark.slow
def test_example_file_passes_on_the_reference_models(reference_models: dict[str, Path]) -> None:
    """Run examples/test_my_model.py as a user would (a separate pytest) on both reference models."""
    env = dict(os.environ, MY_MODELS=str(next(iter(reference_models.values())).parent))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(REPO / "examples" / "test_my_model.py")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    expected = 2 * len(reference_models) + 1 if shutil.which("gcc") else len(reference_models) + 1
    assert f"{expected} passed" in proc.stdout
