"""Helpers for your own pytest tests: does the converted model still behave?

Every function takes the .tflite as bytes or a path, and inputs as float data (quantized with the model's
input scale and zero point) or as data already in the input's dtype (int8). ::

    from tinykeras.testing import assert_agreement, assert_bit_exact, run_tflm

    def test_int8_model_agrees_with_keras():
        assert_agreement(keras_model, "out/model.tflite", x_test, min_agreement=0.98)

    def test_aot_runtime_is_bit_exact():
        assert_bit_exact("out/model.tflite", x_test, runtime="aot")   # vs the TFLM host interpreter

Runtimes: ``"tflm"`` (TFLite-Micro's reference kernels on the host; the correctness reference),
``"aot"`` (tinykeras' generated C, compiled with the host gcc) and ``"tflite"`` (``tf.lite`` without
default delegates; imports TensorFlow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinykeras import emulate as _emu

__all__ = ["run_tflm", "run_aot", "run_tflite", "run", "dequantized", "dequantized_inputs", "random_inputs",
           "agreement", "assert_agreement", "assert_bit_exact", "assert_max_deviation", "assert_accuracy"]

Tflite = bytes | str | Path


def run(tflite: Tflite, x: np.ndarray, runtime: str = "tflm") -> np.ndarray:
    """Raw first output (int8 for an int8 model) of every sample of ``x`` with ``runtime``."""
    model = _emu.load(tflite)
    return _emu.run_runtime(runtime, model, _emu.quantized_inputs(model, x)).raw


def run_tflm(tflite: Tflite, x: np.ndarray) -> np.ndarray:
    """Raw first output of every sample with the TFLite-Micro host interpreter."""
    return run(tflite, x, "tflm")


def run_aot(tflite: Tflite, x: np.ndarray) -> np.ndarray:
    """Raw first output of every sample with tinykeras' aot runtime (needs gcc)."""
    return run(tflite, x, "aot")


def run_tflite(tflite: Tflite, x: np.ndarray) -> np.ndarray:
    """Raw first output of every sample with tf.lite (BUILTIN_WITHOUT_DEFAULT_DELEGATES)."""
    return run(tflite, x, "tflite")


def dequantized(tflite: Tflite, raw: np.ndarray) -> np.ndarray:
    """Float values of raw outputs, with the output tensor's scale and zero point."""
    from tinykeras.tflm_host import dequantize

    return dequantize(np.asarray(raw), _emu.load(tflite).output)


def dequantized_inputs(tflite: Tflite, xq: np.ndarray) -> np.ndarray:
    """Float values of integer inputs, with the input tensor's scale and zero point."""
    return _emu.float_inputs(_emu.load(tflite), xq)


def random_inputs(tflite: Tflite, samples: int = 32, seed: int = 0) -> np.ndarray:
    """Seeded random inputs in the model's input dtype and shape."""
    return _emu.random_inputs(_emu.load(tflite), samples, seed)


def agreement(keras_model: Any, tflite: Tflite, x: np.ndarray, runtime: str = "tflm") -> dict[str, Any]:
    """Top-1 agreement and max |dequantized deviation| of ``runtime`` against the float ``keras_model``.

    ``keras_model``: a tf_keras Model, a ``.keras``/``.h5``/SavedModel path, or a callable batch -> outputs.
    """
    model = _emu.load(tflite)
    raw = _emu.run_runtime(runtime, model, _emu.quantized_inputs(model, x)).raw
    expected = _emu.keras_predict(keras_model, _emu.float_inputs(model, x))
    return _emu.compare(raw, expected, a_tensor=model.output, b_tensor=None)


def assert_agreement(keras_model: Any, tflite: Tflite, x: np.ndarray, min_agreement: float = 0.98,
                     runtime: str = "tflm") -> dict[str, Any]:
    """Fail unless the top-1 class of ``runtime`` matches the float Keras model on >= ``min_agreement``."""
    result = agreement(keras_model, tflite, x, runtime)
    if result["agreement"] is None:
        raise AssertionError("top-1 agreement is undefined for a single-value output; "
                             "use assert_max_deviation instead")
    if result["agreement"] < min_agreement:
        raise AssertionError(
            f"{runtime} agrees with Keras on {result['agreement']:.2%} of {len(x)} samples "
            f"(< {min_agreement:.2%}); first disagreeing samples {result['disagreeing_samples']}, "
            f"max |deviation| {result['max_abs_deviation']:.4g}")
    return result


def assert_max_deviation(keras_model: Any, tflite: Tflite, x: np.ndarray, atol: float,
                         runtime: str = "tflm") -> dict[str, Any]:
    """Fail if any dequantized output differs from the float Keras model by more than ``atol``."""
    result = agreement(keras_model, tflite, x, runtime)
    if result["max_abs_deviation"] > atol:
        raise AssertionError(f"{runtime} deviates from Keras by up to {result['max_abs_deviation']:.4g} "
                             f"(> {atol:.4g}) on {len(x)} samples")
    return result


def assert_bit_exact(tflite: Tflite, x: np.ndarray, runtime: str = "aot", reference: str = "tflm",
                     max_lsb: int = 0) -> dict[str, Any]:
    """Fail unless ``runtime`` and ``reference`` give the same raw outputs (within ``max_lsb`` when > 0).

    The default checks tinykeras' aot runtime against the TFLM host interpreter, bit for bit.
    """
    result = _emu.bit_exact_check(tflite, x, runtime, reference)
    if "bit_exact" not in result:
        raise AssertionError(f"{runtime} vs {reference}: the outputs are not integer, bit-exactness is undefined")
    if result["max_abs_lsb"] > max_lsb:
        raise AssertionError(
            f"{runtime} differs from {reference} in {result['mismatches']} output values "
            f"(up to {result['max_abs_lsb']} LSB, allowed {max_lsb}) on {len(x)} samples")
    return result


def assert_accuracy(tflite: Tflite, x: np.ndarray, y: np.ndarray, min_accuracy: float,
                    runtime: str = "tflm") -> float:
    """Fail unless top-1 accuracy of ``runtime`` against labels ``y`` (classes or one-hot) reaches the bar."""
    model = _emu.load(tflite)
    raw = _emu.run_runtime(runtime, model, _emu.quantized_inputs(model, x)).raw
    pred = _emu.top1(raw.astype(np.float32))
    if pred is None:
        raise AssertionError("accuracy is undefined for a single-value output")
    acc = float(np.mean(pred == _emu.labels_to_classes(np.asarray(y), len(pred))))
    if acc < min_accuracy:
        raise AssertionError(f"{runtime} accuracy {acc:.2%} < {min_accuracy:.2%} on {len(pred)} samples")
    return acc
