"""Helpers for the aot tests and scripts/bench_runtime.py: int8 conversion, the DS-CNN model, TFLM outputs."""

from __future__ import annotations

import numpy as np

from tinykeras.bench_models import build_dscnn, convert_int8, dscnn_tflite

__all__ = ["build_dscnn", "convert_int8", "dscnn_tflite", "tflm_outputs"]


def tflm_outputs(model: bytes, inputs: list[np.ndarray], num_outputs: int) -> list[list[np.ndarray]]:
    """Every output of the TFLM host interpreter for each sample; ``inputs`` holds one batch per model input."""
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=4 * 1024 * 1024)
    results = []
    for k in range(len(inputs[0])):
        for j, arr in enumerate(inputs):
            interp.set_input(np.ascontiguousarray(arr[k:k + 1]), j)
        interp.invoke()
        results.append([np.array(interp.get_output(j)) for j in range(num_outputs)])
    return results
