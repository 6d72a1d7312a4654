"""tinykeras.optimize: tfmot pruning, sparsity-preserving QAT, int8, the stage report and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinykeras.errors import DataError, ModelError, TinyKerasError


def _quadrant_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images; the class is the quadrant holding a bright 4x4 patch. Learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 8, 8, 1)).astype(np.float32)
    for k, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[k, 4 * r:4 * r + 4, 4 * q:4 * q + 4, 0] += 1.0
    return x, y


def build_block_cnn(keras, filters: int = 8):
    """Conv-BN-ReLU, depthwise block with a residual Add, GAP, Dense: the DS-CNN shape in miniature."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    y = keras.layers.BatchNormalization(momentum=0.9, name="dw_bn")(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Conv2D(filters, 1, use_bias=False, name="pw")(y)
    y = keras.layers.BatchNormalization(momentum=0.9, name="pw_bn")(y)
    y = keras.layers.ReLU()(y)
    x = keras.layers.Add(name="res")([x, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained block CNN (.keras) and its data (.npz with x_train/y_train/x_val/y_val/x_test/y_test)."""
    from tinykeras.keras_io import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(1)
    model = build_block_cnn(keras)
    x, y = _quadrant_data(480, 0)
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x[:320], y[:320], epochs=6, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("opt")
    model.save(root / "model.keras")
    np.savez(root / "data.npz", x_train=x[:320], y_train=y[:320], x_val=x[320:400], y_val=y[320:400],
             x_test=x[400:], y_test=y[400:])
    return root / "model.keras", root / "data.npz", model


@pytest.fixture(scope="module")
def cli_run(trained, tmp_path_factory):
    """One `tinykeras optimize --prune 0.5 --qat --json` run, shared by the tests that read its outputs."""
    from click.testing import CliRunner

    from tinykeras.cli import cli

    model_path, data_path, _ = trained
    out = tmp_path_factory.mktemp("cli") / "out"
    result = CliRunner().invoke(cli, ["optimize", str(model_path), "--data", str(data_path), "--prune", "0.5",
                                      "--schedule", "constant", "--qat", "--epochs", "2", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_cli_writes_atomic_outputs_and_stage_json(cli_run):
    out, report = cli_run
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".tinykeras-output", "model.tflite", "model_data.h", "model_data.cc", "model_settings.h", "optimize.json",
         "optimize.png"])
    assert [s["name"] for s in report["stages"]] == ["float", "pruned", "qat", "int8"]
    for stage in report["stages"]:
        assert {"name", "metric", "value", "params", "macs", "tflite_bytes", "sparsity"} <= set(stage)
        assert stage["metric"] == "accuracy"
    assert json.loads((out / "optimize.json").read_text())["stages"] == report["stages"]
    assert (out / "optimize.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.tmp")]


def test_int8_model_is_full_integer_and_matches_the_report(cli_run):
    from tinykeras.inspect import load_model_info

    out, report = cli_run
    info = load_model_info(out / "model.tflite")
    assert info.is_int8
    int8 = report["stages"][-1]
    assert int8["tflite_bytes"] == (out / "model.tflite").stat().st_size
    assert int8["macs"] == info.macs and int8["params"] == info.params
    assert int8["arena_bytes"] == info.activation_peak_bytes
    assert 0 < int8["gzip_bytes"] < int8["tflite_bytes"]


def test_pruning_sparsity_survives_qat_and_int8(cli_run):
    _, report = cli_run
    pruned, qat, int8 = report["stages"][1:]
    for stage in (pruned, qat, int8):
        for layer in ("stem", "pw", "hidden", "out"):
            assert stage["layer_sparsity"][layer] >= 0.49, (stage["name"], layer, stage["layer_sparsity"])
    # tfmot leaves DepthwiseConv2D dense: reported as null with a note, not as a 0 % result
    assert pruned["layer_sparsity"]["dw"] is None and int8["layer_sparsity"]["dw"] is None
    assert any("DepthwiseConv2D" in note for note in pruned["notes"])
    assert report["stages"][0]["layer_sparsity"]["stem"] < 0.1
    # zeros compress: the pruned int8 model gzips smaller relative to its size than the float one
    float_stage = report["stages"][0]
    assert int8["gzip_bytes"] / int8["tflite_bytes"] < float_stage["gzip_bytes"] / float_stage["tflite_bytes"]


def test_accuracy_is_kept_through_the_stages(cli_run):
    _, report = cli_run
    values = {s["name"]: s["value"] for s in report["stages"]}
    assert values["float"] > 0.8, values  # the fixture learns the task
    assert values["int8"] >= values["float"] - 0.1, values
    assert values["int8"] >= values["qat"] - 0.05, values


def test_options_are_validated():
    from tinykeras.optimize import OptimizeOptions, parse_structured

    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(TinyKerasError, match="strictly between 0 and 1"):
            OptimizeOptions(prune=bad).validate()
    with pytest.raises(TinyKerasError, match="2:4"):
        OptimizeOptions(prune=0.5, structured="2:4").validate()
    with pytest.raises(TinyKerasError, match="channels:FRACTION"):
        parse_structured("rows")
    with pytest.raises(TinyKerasError, match="FRACTION"):
        parse_structured("channels:1.2")
    with pytest.raises(TinyKerasError, match="--target-macs needs"):
        OptimizeOptions(target_macs=0.5).validate()
    assert parse_structured("channels:0.25") == ("channels", 0.25)


def test_cli_rejects_bad_sparsity_without_traceback(trained, tmp_path):
    from click.testing import CliRunner

    from tinykeras.cli import cli

    model_path, data_path, _ = trained
    result = CliRunner().invoke(cli, ["optimize", str(model_path), "--data", str(data_path), "--prune", "1.5",
                                      "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "error: --prune 1.5: sparsity must be strictly between 0 and 1" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_data_that_does_not_match_the_model(trained):
    from tinykeras.optimize import Dataset, OptimizeOptions, optimize

    _, _, model = trained
    x = np.zeros((20, 6, 6, 1), np.float32)
    with pytest.raises(DataError, match=r"samples have shape \[6, 6, 1\], but the model expects \[8, 8, 1\]"):
        optimize(model, Dataset(x, np.zeros(20, int)), OptimizeOptions())
    x = np.zeros((20, 8, 8, 1), np.float32)
    with pytest.raises(DataError, match="4 classes"):
        optimize(model, Dataset(x, np.full(20, 7)), OptimizeOptions())


def test_dataset_keys(tmp_path):
    from tinykeras.optimize import load_dataset

    x, y = _quadrant_data(50, 2)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    data = load_dataset(tmp_path / "xy.npz")
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (40, 5, 5)
    np.savez(tmp_path / "bad.npz", inputs=x)
    with pytest.raises(DataError, match="x_train/y_train"):
        load_dataset(tmp_path / "bad.npz")
    np.savez(tmp_path / "mismatch.npz", x_train=x, y_train=y[:10])
    with pytest.raises(DataError, match="50 samples but y_train has 10"):
        load_dataset(tmp_path / "mismatch.npz")


def test_custom_layer_is_named_when_it_cannot_be_pruned_or_quantized():
    from tinykeras.keras_io import tf_keras
    from tinykeras.optimize import Dataset, OptimizeOptions, magnitude_prune, prepare, quantize_aware

    keras = tf_keras()

    class Scale(keras.layers.Layer):  # a custom layer with a weight
        def build(self, shape):
            self.w = self.add_weight(name="w", shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    class Double(keras.layers.Layer):  # a custom layer without weights
        def call(self, x):
            return 2.0 * x

    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = Scale(name="my_scale")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    data = Dataset(np.zeros((16, 6), np.float32), np.zeros(16, int))
    task, data = prepare(model, data)
    with pytest.raises(ModelError, match=r"layer 'my_scale' \(Scale\) cannot be pruned: tfmot's prune registry"):
        magnitude_prune(model, data, task, OptimizeOptions(prune=0.5))

    inputs = keras.Input((6,))
    x = Double(name="my_double")(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    with pytest.raises(ModelError, match=r"layer 'my_double' \(Double\) cannot be quantization-aware trained"):
        quantize_aware(model, data, task, OptimizeOptions(qat=True), preserve_sparsity=False)


def test_two_four_sparsity_pattern():
    from tinykeras.keras_io import tf_keras
    from tinykeras.optimize import Dataset, OptimizeOptions, magnitude_prune, prepare

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(8, activation="relu", name="a")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="b")(hidden))
    rng = np.random.default_rng(0)
    task, data = prepare(model, Dataset(rng.normal(size=(64, 12)).astype(np.float32), rng.integers(0, 3, 64)))
    stripped, unpruned, notes = magnitude_prune(model, data, task, OptimizeOptions(structured="2:4", epochs=1))
    kernel = stripped.get_layer("a").kernel.numpy()  # [in=12, out=8]: groups of 4 consecutive inputs
    groups = kernel.T.reshape(8, 3, 4)
    assert np.all(np.sum(groups == 0, axis=-1) >= 2)
    assert "b" not in unpruned  # 8 inputs: a multiple of 4
    assert model.get_layer("a").kernel.numpy().all()  # the input model is not modified


def test_roc_auc_matches_pairwise_definition():
    from tinykeras.metrics import roc_auc

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=60), 1)  # ties on purpose
    labels = rng.integers(0, 2, 60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(scores, labels) == pytest.approx(pairwise)


def test_autoencoder_is_scored_by_auc_on_float_and_int8():
    """No fine-tuning stage: float -> int8, AUC from reconstruction error on both."""
    from tinykeras.keras_io import tf_keras
    from tinykeras.optimize import Dataset, OptimizeOptions, optimize

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 16)).astype(np.float32)
    normal = (rng.normal(size=(200, 3)) @ basis).astype(np.float32)
    inputs = keras.Input((16,))
    code = keras.layers.Dense(3, name="enc")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(16, name="dec")(code))
    model.compile(keras.optimizers.Adam(0.02), "mse")
    model.fit(normal[:160], normal[:160], epochs=40, verbose=0)
    anomalies = rng.normal(size=(20, 16)).astype(np.float32) * 2
    x_test = np.concatenate([normal[160:], anomalies])
    y_test = np.concatenate([np.zeros(40), np.ones(20)])
    result = optimize(model, Dataset(normal[:160], None, x_test=x_test, y_test=y_test), OptimizeOptions())
    assert result.task.kind == "autoencoder" and result.task.metric == "auc"
    assert [s.name for s in result.stages] == ["float", "int8"]
    float_auc, int8_auc = (s.value for s in result.stages)
    assert float_auc > 0.9 and int8_auc > 0.85, (float_auc, int8_auc)


def test_outputs_are_deterministic(cli_run, tmp_path):
    from tinykeras.optimize import OptimizeOptions, OptimizeResult, Stage, Task, write_outputs

    out, report = cli_run
    stages = [Stage(**{k: v for k, v in s.items()}) for s in report["stages"]]
    result = OptimizeResult(stages=stages, tflite=(out / "model.tflite").read_bytes(), model=None,
                            task=Task("classification", "accuracy", False, 4), eval_split="test",
                            eval_samples=80, notes=[], options=OptimizeOptions())
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_outputs(result, tmp_path / name, source="m.keras")
    for file in ("optimize.json", "optimize.png", "model_data.cc", "model_settings.h"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_optimize_help_has_example():
    from click.testing import CliRunner

    from tinykeras.cli import cli

    result = CliRunner().invoke(cli, ["optimize", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--structured" in result.output


def test_fine_tuning_uses_a_recipe_stream_when_given():
    from tinykeras.keras_io import import_tf, tf_keras
    from tinykeras.optimize import Dataset, OptimizeOptions, fine_tune, prepare, steps_per_epoch

    tf, keras = import_tf(), tf_keras()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)).astype(np.float32), rng.integers(0, 2, 30)
    calls = []

    def stream(batch_size: int, seed: int):
        calls.append((batch_size, seed))
        return tf.data.Dataset.from_tensor_slices((x[:24], y[:24])).batch(batch_size)

    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    task, data = prepare(model, Dataset(x, y, train_stream=stream))
    assert steps_per_epoch(data, 8) == 3  # the stream's 24 samples, not x_train's 30
    fine_tune(model, data, task, OptimizeOptions(epochs=1, batch_size=8, seed=5))
    assert calls[-1] == (8, 5)


def test_builtin_layer_without_qat_support_is_named():
    from tinykeras.keras_io import tf_keras
    from tinykeras.optimize import Dataset, OptimizeOptions, prepare, quantize_aware

    keras = tf_keras()
    inputs = keras.Input((6,))
    x = keras.layers.LayerNormalization(name="my_norm")(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    task, data = prepare(model, Dataset(np.zeros((16, 6), np.float32), np.zeros(16, int)))
    with pytest.raises(ModelError, match=r"tfmot cannot apply QAT.*my_norm.*Drop --qat"):
        quantize_aware(model, data, task, OptimizeOptions(qat=True), preserve_sparsity=False)


def test_train_rejects_bad_optimize_options_before_training(tmp_path):
    from click.testing import CliRunner

    from tinykeras.cli import cli

    result = CliRunner().invoke(cli, ["train", "gesture", "--quick", "--prune", "0", "-o", str(tmp_path / "t")])
    assert result.exit_code != 0
    assert "error: --prune 0.0: sparsity must be strictly between 0 and 1" in result.output
    assert not (tmp_path / "t").exists()
