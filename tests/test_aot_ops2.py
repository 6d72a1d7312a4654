"""The second set of aot ops (tk_ops2.c) and odd sizes: tiny tf_keras models at batch 1, int8-converted,
compared bit for bit with the TFLM host interpreter on random inputs, the generated C built under ASan + UBSan.

Each model gathers several parameter variants of one op family as separate outputs (one conversion per
family keeps the file fast); every case first checks that the ops under test really are in the model.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from aot_support import tflm_outputs

from tinykeras.inspect import inspect_bytes

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (apt install gcc)")

SAMPLES = 20
VOCAB = 20


def _hard_swish(tf: Any) -> Callable[[Any], Any]:
    return lambda t: t * tf.nn.relu6(t + 3.0) / 6.0


def _model(k: Any, tf: Any, name: str) -> Any:
    """The tf_keras model of family ``name``."""
    L = k.layers

    def inp(shape: tuple[int, ...], nm: str = "x", dtype: str = "float32") -> Any:
        return k.Input(shape, batch_size=1, name=nm, dtype=dtype)

    lam = L.Lambda
    if name == "odd_sizes":
        c = inp((5, 5, 3))
        flat = L.Flatten()(c)
        one = lam(lambda t: t[:, 0, 0, :1])(c)
        outs = [L.Dense(1)(flat), L.Dense(1, activation="sigmoid")(flat), L.Dense(3)(one), L.Conv2D(1, 3)(c),
                L.Conv2D(3, 1)(c), L.Flatten()(L.Conv2D(1, 1)(c))]
        return k.Model(c, outs)
    if name in ("sub", "maxmin"):  # one input (the converter may reorder several), the others derived from it
        a = inp((4, 5, 6))
        b = L.Conv2D(6, 1)(a)
        c = L.Conv2D(1, 1)(L.AveragePooling2D((4, 1))(a))
        if name == "sub":
            return k.Model(a, [L.Subtract()([a, b]), lam(lambda t: t[0] - t[1])([a, c]),
                               lam(lambda t: t[1] - t[0])([a, c])])
        return k.Model(a, [L.Maximum()([a, b]), L.Minimum()([a, b]), lam(lambda t: tf.maximum(t[0], t[1]))([a, c]),
                           lam(lambda t: tf.minimum(t[0], t[1]))([a, c])])
    x = inp((6, 5, 4))
    if name == "leaky":
        y = L.Dense(8)(x)
        return k.Model(x, [L.LeakyReLU(0.2)(y), L.LeakyReLU(0.01)(y), L.LeakyReLU(1.7)(y)])
    if name == "hard_swish":
        return k.Model(x, [lam(_hard_swish(tf))(L.Dense(8)(x)), lam(_hard_swish(tf))(L.Conv2D(5, 3)(x))])
    if name == "prelu_transpose":
        return k.Model(x, [L.PReLU(alpha_initializer="random_normal")(x),
                           L.PReLU(alpha_initializer="random_normal", shared_axes=[1, 2])(x),
                           L.Permute((2, 1, 3))(x), L.Permute((3, 1, 2))(x)])
    if name == "reduce_max":
        return k.Model(x, [L.GlobalMaxPooling2D()(x), lam(lambda t: tf.reduce_max(t, axis=1))(x),
                           lam(lambda t: tf.reduce_min(t, axis=[1, 3], keepdims=True))(x)])
    if name == "batch_matmul":
        q = inp((5, 6))
        v = L.Dense(6)(q)
        return k.Model(q, [L.Attention()([q, v]), L.MultiHeadAttention(2, 3)(q, v),
                           lam(lambda t: tf.matmul(t[0], t[1], transpose_a=True))([q, v])])
    if name == "layer_norm":
        return k.Model(x, [L.LayerNormalization()(x), L.LayerNormalization(axis=[1, 2])(L.Dense(6)(x)),
                           lam(lambda t: tf.math.squared_difference(t[0], t[1]))([x, L.Dense(4)(x)])])
    if name == "relu":
        return k.Model(x, [L.ReLU()(x), L.ReLU(6.0)(x)])
    if name == "elu":
        return k.Model(x, [L.Dense(7, activation="elu")(x)])
    if name == "resize":
        return k.Model(x, [
            L.UpSampling2D(2)(x), L.UpSampling2D((2, 3))(x),
            lam(lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (9, 7), align_corners=True))(x),
            lam(lambda t: tf.image.resize(t, (11, 4), method="nearest"))(x)])
    if name == "transpose_conv":
        return k.Model(x, [
            L.Conv2DTranspose(4, 3, strides=2, padding="same", bias_initializer="random_normal")(x),
            L.Conv2DTranspose(2, 3, strides=1, padding="valid", use_bias=False)(x),
            L.Conv2DTranspose(3, (2, 3), strides=(2, 1), padding="valid", activation="relu",
                              bias_initializer="random_normal")(x),
            L.Conv2DTranspose(2, 4, strides=3, padding="same", use_bias=False)(x)])
    if name == "slice":
        return k.Model(x, [
            L.Cropping2D(((1, 2), (0, 3)))(x), lam(lambda t: t[:, ::2, 1:-1:3, :])(x),
            lam(lambda t: t[:, 2, :, 1:3])(x),
            lam(lambda t: t[:, ::-1, -2:, :])(x), lam(lambda t: tf.slice(t, [0, 1, 2, 0], [1, 3, -1, 2]))(x)])
    if name == "pack_split":
        y = L.Reshape((6, 20))(x)
        return k.Model(x, [
            lam(lambda t: tf.stack(tf.unstack(t, axis=1)[::-1], axis=2))(y),
            *lam(lambda t: tf.split(t, 2, axis=-1))(y),
            *lam(lambda t: tf.split(t, [1, 5], axis=1))(y)])
    if name == "padv2":
        return k.Model(x, [lam(lambda t: tf.pad(t, [[0, 0], [1, 0], [2, 1], [0, 0]], constant_values=0.5))(x),
                           lam(lambda t: tf.pad(t, [[0, 0], [0, 2], [0, 0], [1, 1]], constant_values=-2.0))(x)])
    if name == "rnn_unrolled":  # unroll=True: FC/ADD/LOGISTIC/TANH/MUL/SUB/SPLIT/UNPACK instead of a fused op
        r = inp((6, 4))
        return k.Model(r, [L.SimpleRNN(5, unroll=True)(r), L.GRU(4, unroll=True)(r), L.LSTM(3, unroll=True)(r)])
    raise KeyError(name)


FAMILIES: dict[str, set[str]] = {
    "odd_sizes": {"FULLY_CONNECTED", "CONV_2D"},
    "sub": {"SUB"},
    "maxmin": {"MAXIMUM", "MINIMUM"},
    "leaky": {"LEAKY_RELU"},
    "hard_swish": {"HARD_SWISH"},
    "relu": {"RELU", "RELU6"},
    "layer_norm": {"SQUARED_DIFFERENCE", "RSQRT", "MEAN", "SUB"},
    "reduce_max": {"REDUCE_MAX", "REDUCE_MIN"},
    "batch_matmul": {"BATCH_MATMUL"},
    "prelu_transpose": {"NEG", "TRANSPOSE"},
    "elu": {"ELU", "DEQUANTIZE", "QUANTIZE"},
    "resize": {"RESIZE_NEAREST_NEIGHBOR"},
    "transpose_conv": {"TRANSPOSE_CONV"},
    "slice": {"STRIDED_SLICE", "SLICE"},
    "pack_split": {"PACK", "UNPACK", "SPLIT", "SPLIT_V"},
    "padv2": {"PADV2"},
    "expand_dims": {"EXPAND_DIMS"},
    "rnn_unrolled": {"UNPACK", "SPLIT", "SPLIT_V", "SUB", "LOGISTIC", "TANH", "MUL"},
}


def _convert(model: Any, tf: Any, int_inputs: bool = False) -> bytes:
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    rng = np.random.default_rng(5)
    if int_inputs:
        rep = [rng.integers(0, VOCAB, (32,) + tuple(s[1:])).astype(np.int32) for s in shapes]
    else:
        rep = [rng.normal(0, 1, (48,) + tuple(s[1:])).astype(np.float32) for s in shapes]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([r[i:i + 1] for r in rep] for i in range(len(rep[0])))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not int_inputs:
        converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def _bit_exact(data: bytes, sanitize: bool = True) -> tuple[Any, int, int]:
    from tinykeras.aot.host import AotHostRunner

    info = inspect_bytes(data)
    rng = np.random.default_rng(9)
    inputs = []
    for t in info.input_tensors():
        shape = (SAMPLES,) + tuple(t.shape[1:])
        if t.dtype == "int8":
            inputs.append(rng.integers(-128, 128, size=shape, dtype=np.int8))
        else:
            inputs.append(rng.integers(0, VOCAB, size=shape).astype(np.dtype(t.dtype)))
    ours = AotHostRunner(data, info, sanitize=sanitize).invoke_many(inputs)
    ref = tflm_outputs(data, inputs, len(info.outputs))
    mismatches = total = 0
    for a_outs, b_outs in zip(ours, ref, strict=True):
        for a, b in zip(a_outs, b_outs, strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype
            mismatches += int(np.sum(a != b))
            total += a.size
    return info, mismatches, total


@pytest.fixture(scope="session")
def converted_ops2() -> dict[str, bytes]:
    return {}


def _family(cache: dict[str, bytes], name: str) -> bytes:
    if name not in cache:
        from tinykeras.keras_io import import_tf, tf_keras

        tf = import_tf()
        tf.keras.utils.set_random_seed(3)
        if name == "expand_dims":  # a dynamic batch keeps EXPAND_DIMS (a fixed one folds it into RESHAPE)
            @tf.function(input_signature=[tf.TensorSpec([None, 4, 5], tf.float32)])
            def fn(x: Any) -> Any:
                return tf.squeeze(tf.nn.max_pool2d(tf.expand_dims(x, 2), (2, 1), 1, "VALID"), 2)

            converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            rng = np.random.default_rng(5)
            converter.representative_dataset = lambda: ([rng.normal(size=(1, 4, 5)).astype(np.float32)]
                                                         for _ in range(32))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
            cache[name] = converter.convert()
        elif name == "embedding":
            k = tf_keras()
            ids = k.Input((7,), batch_size=1, dtype="int32", name="ids")
            x = k.layers.Embedding(VOCAB, 6)(ids)
            model = k.Model(ids, [k.layers.Dense(2)(k.layers.GlobalAveragePooling1D()(x)), k.layers.Flatten()(x)])
            cache[name] = _convert(model, tf, int_inputs=True)
        else:
            cache[name] = _convert(_model(tf_keras(), tf, name), tf)
    return cache[name]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_op_family_bit_exact(name: str, converted_ops2: dict[str, bytes]) -> None:
    data = _family(converted_ops2, name)
    info = inspect_bytes(data)
    assert FAMILIES[name] <= set(info.op_names), f"{name}: converted ops {info.op_names}"
    info, mismatches, total = _bit_exact(data)
    assert total > 0 and mismatches == 0, f"{name}: {mismatches} of {total} output values differ from TFLM"


def test_embedding_gather_int32_indices(converted_ops2: dict[str, bytes]) -> None:
    """Embedding: an int32 index input, GATHER on an int8 table, then MEAN and FC, bit-exact."""
    data = _family(converted_ops2, "embedding")
    info = inspect_bytes(data)
    assert "GATHER" in info.op_names and info.input_tensors()[0].dtype == "int32", info.op_names
    info, mismatches, total = _bit_exact(data)
    assert total > 0 and mismatches == 0, f"embedding: {mismatches} of {total} output values differ from TFLM"


def test_dense1_generates_and_interleaves() -> None:
    """A Dense(1) head (one weight row) used to crash pair_interleave."""
    from tinykeras.aot.ops.layout import pair_interleave

    w = np.arange(7).reshape(1, 7)
    assert pair_interleave(w).tolist() == list(range(7))
    assert pair_interleave(np.arange(15).reshape(3, 5))[10:].tolist() == list(range(10, 15))


def test_tflm_names_an_op_it_has_no_kernel_for() -> None:
    """A TILE op (no TFLM kernel) is named, instead of TFLM's "failed to allocate tensors"."""
    from aot_support import convert_int8

    from tinykeras.errors import UnsupportedOpError
    from tinykeras.keras_io import import_tf, tf_keras
    from tinykeras.tflm_host import TflmRunner

    tf, k = import_tf(), tf_keras()
    x = k.Input((8,), batch_size=1)
    model = k.Model(x, k.layers.Lambda(lambda t: tf.tile(t, [1, 2]))(k.layers.Dense(8)(x)))
    data = convert_int8(model, [np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)])
    info = inspect_bytes(data)
    tile = [op for op in info.ops if op.op == "TILE"]
    assert tile, info.op_names
    with pytest.raises(UnsupportedOpError, match=f"TILE \\(operator #{tile[0].index}\\)"):
        TflmRunner(data, info)


def test_fused_lstm_gets_a_reason_and_tflm_is_stateless_per_sample() -> None:
    """A fused UNIDIRECTIONAL_SEQUENCE_LSTM: aot names it with the fix (unroll=True); TflmRunner resets the LSTM
    state before every sample (Keras semantics), so the same input gives the same output twice."""
    from aot_support import convert_int8

    from tinykeras.aot import generate
    from tinykeras.errors import UnsupportedOpError
    from tinykeras.keras_io import import_tf, tf_keras
    from tinykeras.tflm_host import TflmRunner

    import_tf().keras.utils.set_random_seed(2)
    k = tf_keras()
    x = k.Input((6, 4), batch_size=1)
    data = convert_int8(k.Model(x, k.layers.LSTM(5)(x)),
                        [np.random.default_rng(0).normal(size=(16, 6, 4)).astype(np.float32)])
    info = inspect_bytes(data)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info.op_names, info.op_names
    with pytest.raises(UnsupportedOpError, match="UNIDIRECTIONAL_SEQUENCE_LSTM .*unroll=True"):
        generate(data, info)
    runner = TflmRunner(data, info)
    sample = np.random.default_rng(1).integers(-128, 128, (1, 6, 4)).astype(np.int8)
    first, second = runner.invoke(sample)[0], runner.invoke(sample)[0]
    assert np.array_equal(first, second)


def test_unrolled_lstm_declares_its_shared_weights_once() -> None:
    """An unrolled LSTM reuses one set of weights at every step: aot declares each constant array once (later
    identical ones become #defines) and stays bit-exact."""
    from aot_support import convert_int8

    from tinykeras.aot import generate
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.keras_io import import_tf, tf_keras

    import_tf().keras.utils.set_random_seed(3)
    k = tf_keras()
    x = k.Input((20, 2), batch_size=1)
    data = convert_int8(k.Model(x, k.layers.LSTM(16, unroll=True)(x)),
                        [np.random.default_rng(0).normal(size=(16, 20, 2)).astype(np.float32)])
    info = inspect_bytes(data)
    fcs = [op for op in info.ops if op.op == "FULLY_CONNECTED"]
    assert len(fcs) >= 20, info.op_names
    program = generate(data, info)
    source = program.files["tk_model.c"]
    weight_decls = source.count("static const int8_t tk_w_")
    assert weight_decls < len(fcs) // 4, weight_decls
    assert source.count("#define tk_w_") == len(fcs) - weight_decls
    xs = np.random.default_rng(1).integers(-128, 128, (SAMPLES, 20, 2)).astype(np.int8)
    got = AotHostRunner(data, info).invoke_many(xs)
    for mine, theirs in zip(got, tflm_outputs(data, [xs], 1), strict=True):
        np.testing.assert_array_equal(mine[0], theirs[0])
