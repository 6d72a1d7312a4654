"""Keras builders of the MLPerf Tiny model shapes used by the runtime benchmarks, with random weights.

Used by scripts/bench_runtime.py and the tests: the DS-CNN keyword spotter (MLPerf KWS shape), MobileNet-v1
0.25 at 96x96 (MLPerf VWW shape) and MobileNetV2 alpha 0.35 at 96x96. Batch-norm statistics are random so
that the folded per-channel scales differ; the int8 conversion calibrates on Gaussian data. TensorFlow is
imported only when a builder is called.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _randomize_batchnorm(model: Any, seed: int) -> None:
    from tinykeras.keras_io import tf_keras

    layers = tf_keras().layers
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


def build_dscnn(seed: int = 0) -> Any:
    """The MLPerf Tiny keyword-spotting DS-CNN shape: 49x10x1 -> conv 10x4/2 -> 4 x (dw 3x3 + pw 1x1) -> 12."""
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
    _randomize_batchnorm(model, seed)
    return model


def build_mobilenet_v1(seed: int = 0, alpha: float = 0.25, size: int = 96, classes: int = 2) -> Any:
    """MobileNet-v1 (the MLPerf Tiny visual wake words shape at alpha 0.25, 96x96x3, 2 classes)."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers

    def filters(n: int) -> int:
        return int(n * alpha)

    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(filters(32), 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    for out, stride in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
            [(1024, 2), (1024, 1)]:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(filters(out), 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
    x = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    _randomize_batchnorm(model, seed)
    return model


def build_mobilenet_v2(seed: int = 0, alpha: float = 0.35, size: int = 96, classes: int = 2) -> Any:
    """MobileNetV2 (tf.keras.applications topology) at alpha 0.35, 96x96x3, random weights."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    tf.keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None,
                                           classes=classes)
    _randomize_batchnorm(model, seed)
    return model


def build_streaming_ww(seed: int = 0) -> Any:
    """The MLPerf Tiny streaming wake-word DS-TCN shape (its published default configuration): 30x1x40 log-mel
    frames -> 4 x (depthwise (k, 1) over time, valid + 1x1 conv + ReLU) with k = 3, 5, 10, 15 and 128, 64, 64, 32
    filters -> 3 scores."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((30, 1, 40))
    x = inputs
    for k, filters in ((3, 128), (5, 64), (10, 64), (15, 32)):
        x = layers.DepthwiseConv2D((k, 1), padding="valid", use_bias=False)(x)
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    outputs = layers.Dense(3)(layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    _randomize_batchnorm(model, seed)
    return model


BUILDERS: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
    "dscnn_kws": (build_dscnn, (49, 10, 1)),
    "mobilenet_v1_025_96": (build_mobilenet_v1, (96, 96, 3)),
    "mobilenet_v2_035_96": (build_mobilenet_v2, (96, 96, 3)),
    "streaming_ww": (build_streaming_ww, (30, 1, 40)),
}


def build_tflite(name: str, seed: int = 0, samples: int = 32) -> bytes:
    """One of ``BUILDERS`` as an int8 .tflite, calibrated on Gaussian data (deterministic for a seed)."""
    builder, shape = BUILDERS[name]
    model = builder(seed)
    rep = np.random.default_rng(seed + 1).normal(0, 1, (samples, *shape)).astype(np.float32)
    return convert_int8(model, [rep])


def dscnn_tflite(seed: int = 0, samples: int = 32) -> bytes:
    """The DS-CNN above, int8-converted with Gaussian calibration data."""
    return build_tflite("dscnn_kws", seed, samples)
