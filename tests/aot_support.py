"""Helpers for the aot tests and scripts/bench_runtime.py: int8 conversion, the DS-CNN model, TFLM outputs."""

from __future__ import annotations

from typing import Any

import numpy as np


def convert_int8(model: Any, rep: list[np.ndarray], float_io: bool = False) -> bytes:
    """Full-integer conversion with ``rep`` (one array per model input, batch first) as calibration data."""
    from tinykeras.keras_io import import_tf

    tf = import_tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for k in range(len(rep[0])):
            yield [r[k:k + 1].astype(np.float32) for r in rep]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def build_dscnn(seed: int = 0) -> Any:
    """The MLPerf Tiny keyword-spotting DS-CNN shape: 49x10x1 -> conv 10x4/2 -> 4 x (dw 3x3 + pw 1x1) -> 12.

    Random weights and random batch-norm statistics (so the folded scales differ per channel).
    """
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((49, 10, 1))
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(64, (1, 1), padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.AveragePooling2D(pool_size=(25, 5))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(12, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                rng.normal(0, 0.1, beta.shape).astype(np.float32),
                rng.normal(0, 0.1, mean.shape).astype(np.float32),
                rng.uniform(0.5, 2.0, var.shape).astype(np.float32),
            ])
    return model


def dscnn_tflite(seed: int = 0, samples: int = 32) -> bytes:
    """The DS-CNN above, int8-converted with Gaussian calibration data."""
    model = build_dscnn(seed)
    rep = np.random.default_rng(seed + 1).normal(0, 1, (samples, 49, 10, 1)).astype(np.float32)
    return convert_int8(model, [rep])


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
