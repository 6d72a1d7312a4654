"""A trial's int8 model and its scores on the TFLite-Micro host interpreter."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def macro_auc(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes present in ``y``."""
    from tinykeras.metrics import roc_auc

    aucs = [roc_auc(probs[:, c], (y == c).astype(int)) for c in range(probs.shape[1])
            if 0 < np.sum(y == c) < len(y)]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def int8_scores(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of the int8 model on the TFLite-Micro host interpreter."""
    from tinykeras.inspect import inspect_bytes
    from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs

    info = inspect_bytes(tflite)
    runner = TflmRunner(tflite, info)
    raw = runner.run_all(prepare_inputs(x.astype(np.float32), info.input_tensors()[0]))
    return dequantize(raw, info.output_tensors()[0]).reshape(len(x), -1)


def quantize(model: Any, rep: np.ndarray, per_tensor_dense: bool = False) -> bytes:
    """The int8 model ``tinykeras quantize`` makes (``per_tensor_dense`` where the board's library needs it)."""
    from tinykeras.convert import convert
    from tinykeras.keras_io import _from_keras2

    loaded = _from_keras2(Path("model.keras"), model, "keras2")
    return convert(loaded, "int8", rep, per_tensor_dense=per_tensor_dense).data
