"""The shipped default models (models/<recipe>/): complete, small, int8, TFLM-runnable and honest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinykeras.resources import models_dir

RECIPES = ("kws", "gesture", "sensor")
FILES = ("model.tflite", "model.keras", "metrics.json", "settings.json", "rep.npz", "test.npz")


@pytest.mark.parametrize("recipe", RECIPES)
def test_shipped_model_is_complete_and_small(recipe: str) -> None:
    from tinykeras.inspect import inspect_bytes, unsupported_tflm_ops

    root = models_dir() / recipe
    for name in FILES:
        assert (root / name).is_file(), f"models/{recipe}/{name} missing: run scripts/train_models.py"
        assert (root / name).stat().st_size < 1_000_000, f"models/{recipe}/{name} is too large"
    info = inspect_bytes((root / "model.tflite").read_bytes(), path=str(root / "model.tflite"))
    assert info.input_tensors()[0].dtype == "int8" and info.output_tensors()[0].dtype == "int8"
    assert not unsupported_tflm_ops(info)
    metrics = json.loads((root / "metrics.json").read_text())
    settings = json.loads((root / "settings.json").read_text())
    assert {"task", "metric", "value", "classes", "int8", "frontend"} <= set(metrics)
    assert settings["labels"] == metrics["classes"] and settings["model_sha256"] == info.sha256
    assert metrics["frontend"]["max_abs_error"] < 1e-3
    if metrics["task"] == "classification":
        assert info.output_tensors()[0].num_elements == len(settings["labels"])


@pytest.mark.parametrize("recipe", RECIPES)
def test_shipped_int8_model_matches_its_recorded_metric(recipe: str) -> None:
    """The int8 model on the shipped test subset (TFLM host) lands near the metric recorded for the full split."""
    from tinykeras.inspect import inspect_bytes
    from tinykeras.keras_io import load_arrays
    from tinykeras.metrics import roc_auc
    from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs

    root = models_dir() / recipe
    data = (root / "model.tflite").read_bytes()
    info = inspect_bytes(data)
    test = load_arrays(root / "test.npz")
    x, y = test["x"].astype(np.float32), test["y"]
    out = dequantize(TflmRunner(data, info).run_all(prepare_inputs(x, info.input_tensors()[0])),
                     info.output_tensors()[0]).reshape(len(x), -1)
    recorded = json.loads((root / "metrics.json").read_text())["int8"]["value"]
    if recipe == "sensor":  # reconstruction error, averaged over the windows of each segment present
        err = np.mean((out - x.reshape(len(x), -1)) ** 2, axis=1)
        segments = np.unique(test["segment"])
        scores = np.array([err[test["segment"] == s].mean() for s in segments])
        labels = np.array([y[test["segment"] == s][0] for s in segments])
        value = roc_auc(scores, labels)
        assert abs(value - recorded) < 0.1, (value, recorded)
    else:
        value = float(np.mean(np.argmax(out, axis=1) == y))
        assert abs(value - recorded) < 0.08, (value, recorded)
