"""Shared fixtures: the reference int8 models, tiny seeded Keras models and a CLI runner."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
# The MLPerf Tiny models ship with the tests (tests/data/reference_models, Apache-2.0); the variable overrides.
REFERENCE_DIR = Path(os.environ.get("TINYKERAS_REFERENCE_MODELS", REPO / "tests" / "data" / "reference_models"))
# Real TFLite-Micro library trees (../shared/third_party in CI, set by .ci/run); tests that compile against them
# skip, naming the variable, when it is unset.
THIRD_PARTY_ENV = "TINYKERAS_THIRD_PARTY"
REFERENCE_NAMES = ("ad01_int8", "pretrainedResnet_quant")


def requires_tool(*tools: str) -> pytest.MarkDecorator:
    """Skip unless every tool is on PATH; the reason names the missing ones."""
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (install with scripts/setup.sh)")


@pytest.fixture(scope="session")
def reference_models() -> dict[str, Path]:
    """name -> path of the MLPerf Tiny int8 reference models in ../shared/reference_models."""
    paths = {name: REFERENCE_DIR / f"{name}.tflite" for name in REFERENCE_NAMES}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        pytest.fail(f"reference models missing: {missing} (set TINYKERAS_REFERENCE_MODELS)")
    return paths


@pytest.fixture(scope="session")
def third_party_dir() -> Path:
    """The folder of real TFLM library trees named by $TINYKERAS_THIRD_PARTY; skips when unset."""
    value = os.environ.get(THIRD_PARTY_ENV)
    if not value:
        pytest.skip(f"{THIRD_PARTY_ENV} is unset: set it to a folder of TFLM library trees "
                    "(CI: ../shared/third_party) to compile projects against the real libraries")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"{THIRD_PARTY_ENV}={value} is not a directory")
    return path


@pytest.fixture(scope="session")
def tiny_cnn_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded Functional CNN classifier (8x8x1 -> 4 classes) saved as .keras."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    tf.keras.utils.set_random_seed(7)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path_factory.mktemp("models") / "tiny_cnn.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_rep_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Representative data for tiny_cnn_path: 64 samples of 8x8x1 in [0, 1)."""
    x = np.random.default_rng(3).random((64, 8, 8, 1), dtype=np.float32)
    path = tmp_path_factory.mktemp("data") / "rep.npz"
    np.savez(path, x=x)
    return path
