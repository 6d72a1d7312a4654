"""Channel pruning (tinykeras.prune_channels) and the Keras 3 -> tf_keras rebuild used by optimize."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinykeras.errors import ModelError


@pytest.fixture(scope="module")
def keras():
    from tinykeras.keras_io import tf_keras

    return tf_keras()


def residual_cnn(keras, filters: int = 8):
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(filters, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(filters, 1, name="pw")(y)
    x = keras.layers.Add(name="res")([x, y])
    x = keras.layers.Conv2D(12, 1, activation="relu", name="expand")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(x))


def _randomize(model, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics, so slicing mistakes would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])


def _kill_channels(model, drop_res: list[int], drop_expand: list[int], drop_hidden: list[int]) -> None:
    """Make channels exactly dead, so removing them must leave the outputs unchanged."""
    for name in ("stem", "pw"):  # the residual group: stem and pw write into the same channels
        kernel, bias = model.get_layer(name).get_weights()
        kernel[..., drop_res] = 0.0
        bias[drop_res] = 0.0
        model.get_layer(name).set_weights([kernel, bias])
    kernel, bias = model.get_layer("dw").get_weights()
    kernel[..., drop_res, :] = 0.0
    bias[drop_res] = 0.0
    model.get_layer("dw").set_weights([kernel, bias])
    for name in ("stem_bn", "dw_bn"):  # BN(0) stays 0 when beta = mean = 0
        gamma, beta, mean, var = model.get_layer(name).get_weights()
        beta[drop_res] = 0.0
        mean[drop_res] = 0.0
        model.get_layer(name).set_weights([gamma, beta, mean, var])
    for name, drop in (("expand", drop_expand), ("hidden", drop_hidden)):
        kernel, bias = model.get_layer(name).get_weights()
        kernel[..., drop] = 0.0
        bias[drop] = -1.0  # ReLU makes them exactly 0
        model.get_layer(name).set_weights([kernel, bias])


def test_removing_dead_channels_keeps_outputs_and_shrinks_layers(keras):
    from tinykeras.prune_channels import channel_prune

    keras.utils.set_random_seed(0)
    model = residual_cnn(keras)
    _randomize(model)
    _kill_channels(model, drop_res=[1, 4, 6, 7], drop_expand=[0, 3, 5, 8, 9, 11], drop_hidden=[2, 3, 5, 6, 9])
    x = np.random.default_rng(1).normal(size=(16, 8, 8, 2)).astype(np.float32)
    small, plan = channel_prune(model, fraction=0.5)
    assert small.get_layer("stem").filters == 4 and small.get_layer("pw").filters == 4  # pruned together
    assert small.get_layer("dw").depthwise_kernel.shape[-2] == 4  # depthwise follows its input channels
    assert small.get_layer("expand").filters == 6 and small.get_layer("hidden").units == 5
    assert small.get_layer("out").units == 3  # the model output stays whole
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert any("stem, pw" in note for note in plan.notes())
    assert plan.macs_after < plan.macs_before / 2


def test_sequential_model_with_flatten(keras):
    from tinykeras.prune_channels import channel_prune

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(6, 3, activation="relu", name="c"),
        keras.layers.Flatten(),
        keras.layers.Dense(2, name="d"),
    ])
    kernel, bias = model.get_layer("c").get_weights()
    kernel[..., [0, 2, 3]] = 0.0
    bias[[0, 2, 3]] = -1.0
    model.get_layer("c").set_weights([kernel, bias])
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 1)).astype(np.float32)
    small, _ = channel_prune(model, fraction=0.5)
    assert small.get_layer("c").filters == 3
    assert small.get_layer("d").kernel.shape == (4 * 4 * 3, 2)  # flattened (h, w, c) rows follow the channels
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_target_macs_halves_the_converted_model(keras):
    from tinykeras.convert import convert
    from tinykeras.optimize import _as_loaded
    from tinykeras.prune_channels import channel_prune

    keras.utils.set_random_seed(0)
    model = residual_cnn(keras, filters=16)
    small, plan = channel_prune(model, target_macs=0.5)
    before = convert(_as_loaded(model, "float"), "float32").info.macs
    after = convert(_as_loaded(small, "channels"), "float32").info.macs
    assert after <= 0.5 * before, (before, after)
    assert after >= 0.4 * before, (before, after)  # the search stops near the target, not far below it
    assert plan.macs_before == before  # the Keras MAC estimate counts what inspect counts for this graph


def test_concatenate_keeps_its_inputs_whole(keras):
    from tinykeras.prune_channels import channel_prune

    inputs = keras.Input((4, 4, 1))
    a = keras.layers.Conv2D(4, 1, name="a")(inputs)
    b = keras.layers.Conv2D(4, 1, name="b")(inputs)
    x = keras.layers.Concatenate()([a, b])
    x = keras.layers.Conv2D(6, 1, name="c")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ModelError, match="nothing it can remove"):
        channel_prune(model, fraction=0.5)


def test_optimize_channels_stage(keras):
    from tinykeras.optimize import Dataset, OptimizeOptions, optimize

    keras.utils.set_random_seed(0)
    model = residual_cnn(keras)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    result = optimize(model, Dataset(x[:64], y[:64], x_test=x[64:], y_test=y[64:]),
                      OptimizeOptions(structured="channels:0.5", epochs=1))
    names = [s.name for s in result.stages]
    assert names == ["float", "channels", "int8"]
    float_stage, channels, int8 = result.stages
    assert channels.macs < float_stage.macs / 2 and channels.params < float_stage.params
    assert int8.macs == channels.macs and int8.tflite_bytes < float_stage.tflite_bytes
    assert model.get_layer("stem").filters == 8  # the input model is untouched


K3_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "0"
    import keras
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 4, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(i)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Add()([x, keras.layers.Activation("relu")(y)])
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(i, keras.layers.Dense(3, activation="softmax")(x)).save(sys.argv[1])
    s = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    s.save(sys.argv[2])
    keras.Sequential([keras.Input((6,)), keras.layers.RMSNormalization(), keras.layers.Dense(2)]).save(sys.argv[3])
""")


@pytest.fixture(scope="module")
def keras3_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("k3")
    paths = [root / "functional.keras", root / "sequential.keras", root / "rmsnorm.keras"]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", K3_SCRIPT, *map(str, paths)], env=env, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"could not save the Keras 3 fixtures: {proc.stderr[-800:]}")
    return paths


def test_keras3_models_are_rebuilt_in_tf_keras(keras, keras3_files):
    import keras as keras3

    from tinykeras.keras_io import _saved_by_keras3
    from tinykeras.optimize import load_keras_model

    for path in keras3_files[:2]:
        assert _saved_by_keras3(path)
        model = load_keras_model(path)
        assert isinstance(model, keras.Model)
        original = keras3.saving.load_model(path, compile=False)
        shape = (5,) + tuple(model.inputs[0].shape[1:])
        x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(model(x).numpy(), np.asarray(original(x)), rtol=1e-5, atol=1e-5)


def test_keras3_layer_without_tf_keras_twin_is_named(keras3_files):
    from tinykeras.optimize import load_keras_model

    with pytest.raises(ModelError, match=r"'rms_normalization' \(RMSNormalization.*no tf_keras equivalent"):
        load_keras_model(keras3_files[2])


def test_a_keras3_object_is_refused_with_advice():
    import keras as keras3

    from tinykeras.optimize import ensure_tf_keras

    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(2)])
    with pytest.raises(ModelError, match="load_keras_model"):
        ensure_tf_keras(model)


def test_cli_optimizes_a_keras3_file_with_the_table_output(keras3_files, tmp_path):
    from click.testing import CliRunner

    from tinykeras.cli import cli

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8, 4, 1)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=rng.integers(0, 3, 60))
    result = CliRunner().invoke(cli, ["optimize", str(keras3_files[0]), "--data", str(tmp_path / "d.npz"),
                                      "--structured", "channels:0.5", "--epochs", "1", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    for word in ("float", "channels", "int8", "MACs", "gzip B", "wrote"):
        assert word in result.output
    assert (tmp_path / "o" / "model.tflite").exists()
