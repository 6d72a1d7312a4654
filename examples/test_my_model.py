"""An example of your own tests for a converted model, written with ``tinykeras.testing``.

Run it like any pytest file:  pytest examples/test_my_model.py
Point MY_MODELS at a directory of your .tflite files (default: the MLPerf Tiny reference models next to this
checkout). The project's own test suite runs this file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tinykeras.testing import (
    assert_agreement,
    assert_bit_exact,
    random_inputs,
    run_tflite,
    run_tflm,
)

HERE = Path(__file__).resolve().parent
MODELS_DIR = Path(os.environ.get("MY_MODELS", HERE.parent.parent / "shared" / "reference_models"))
MODELS = sorted(MODELS_DIR.glob("*.tflite"))


def float_model_reason(model: Path) -> str | None:
    """Why the aot runtime cannot run ``model`` (it is not full-integer int8), or None when it is int8."""
    from tinykeras.inspect import load_model_info

    info = load_model_info(model)
    if info.is_int8:
        return None
    kinds = sorted({t.dtype for t in info.input_tensors() + info.output_tensors()})
    return (f"{model.name} has {'/'.join(kinds)} inputs/outputs: the aot runtime runs int8 models only "
            "(e.g. the float32 copy `quantize --also float32` writes)")


@pytest.mark.parametrize("model", MODELS, ids=[p.stem for p in MODELS])
def test_aot_runtime_is_bit_exact_with_tflm(model: Path) -> None:
    """tinykeras' generated C must give TFLite-Micro's int8 outputs, bit for bit."""
    reason = float_model_reason(model)
    if reason:
        pytest.skip(reason)
    x = random_inputs(model, samples=8)  # seeded random int8 inputs of the model's shape
    assert_bit_exact(model, x, runtime="aot", reference="tflm")


@pytest.mark.parametrize("model", MODELS, ids=[p.stem for p in MODELS])
def test_tflm_matches_tflite(model: Path) -> None:
    """TFLM's reference kernels vs tf.lite's optimized kernels (no delegates). They are not bit-exact:
    tf.lite rounds some values differently (measured on random inputs: up to 1 LSB on ad01's FULLY_CONNECTED
    layers, up to 33 LSB in ResNet-8's SOFTMAX output), but the top-1 class must never change."""
    x = random_inputs(model, samples=16)
    tflm, ref = run_tflm(model, x), run_tflite(model, x)
    assert np.array_equal(tflm.reshape(len(x), -1).argmax(1), ref.reshape(len(x), -1).argmax(1))


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, bytes, np.ndarray]:
    """A small seeded tf_keras classifier, its int8 .tflite (tinykeras.convert) and test inputs."""
    from tinykeras.convert import convert
    from tinykeras.keras_io import load_model, tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((16,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(4, activation="softmax"),
    ])
    path = tmp_path_factory.mktemp("small") / "small.keras"
    model.save(path)
    rng = np.random.default_rng(0)
    rep = rng.normal(size=(200, 16)).astype(np.float32)
    x_test = rng.normal(size=(200, 16)).astype(np.float32)
    tflite = convert(load_model(path), "int8", rep).data
    return model, tflite, x_test


def test_int8_model_agrees_with_keras(small_model: tuple[object, bytes, np.ndarray]) -> None:
    """The int8 model picks the same class as the float Keras model on at least 95 % of the inputs."""
    keras_model, tflite, x_test = small_model
    assert_agreement(keras_model, tflite, x_test, min_agreement=0.95)
