"""Course-style Keras models reach an int8 .tflite: batch-1 export, several inputs/outputs in Keras order with
their names, recurrent layers, int32 Embedding inputs, Keras 3 loading paths, validate metrics and thresholds,
and the Python API. Tiny untrained (or few-epoch) models; every int8 model is run on the TFLM host
interpreter and compared with the float model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinykeras.cli import cli
from tinykeras.errors import DataError
from tinykeras.metrics import check_thresholds, output_metrics

DYNAMIC_BATCH_OPS = {"SHAPE", "STRIDED_SLICE", "PACK", "EXPAND_DIMS"}


@pytest.fixture(scope="module")
def k3():
    from tinykeras.keras_io import import_tf

    import_tf()
    keras = pytest.importorskip("keras")
    if not str(keras.__version__).startswith("3"):
        pytest.skip("needs Keras 3")
    keras.utils.set_random_seed(1)
    return keras


def _quantize(model, rep, **kw):
    import tinykeras

    return tinykeras.quantize(model, rep, **kw)


def test_keras3_flatten_and_conv1d_export_with_batch_1(k3) -> None:
    rng = np.random.default_rng(0)
    mlp = k3.Sequential([k3.Input((6, 6)), k3.layers.Flatten(), k3.layers.Dense(8, activation="relu"),
                         k3.layers.Dense(3, activation="softmax")])
    conv = k3.Sequential([k3.Input((16, 3)), k3.layers.Conv1D(4, 3, activation="relu"),
                          k3.layers.GlobalAveragePooling1D(), k3.layers.Dense(2)])
    for model, shape, first in ((mlp, (6, 6), "RESHAPE"), (conv, (16, 3), "RESHAPE")):
        result = _quantize(model, rng.normal(size=(24,) + shape).astype(np.float32))
        ops = set(result.info.op_names)
        assert not ops & DYNAMIC_BATCH_OPS, ops
        assert result.info.op_names[0] == first
        assert result.info.input_tensors()[0].shape == (1,) + shape
        assert result.info.is_int8
        assert result.comparison["outputs"][0]["max_abs_diff"] < 0.1


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_multi_input_output_keep_keras_order_and_names(flavour: str, k3, tmp_path: Path) -> None:
    from tinykeras.keras_io import tf_keras

    K = k3 if flavour == "keras3" else tf_keras()
    # input names sort the other way round, outputs too: the converter would reorder them
    a, b = K.Input((8,), name="zeta"), K.Input((4,), name="alpha")
    h = K.layers.Concatenate()([K.layers.Dense(6, activation="relu")(a), b])
    cls = K.layers.Dense(3, activation="softmax", name="zz_class")(h)
    reg = K.layers.Dense(1, name="aa_value")(h)
    model = K.Model([a, b], [cls, reg])
    rng = np.random.default_rng(0)
    rep = {"alpha": rng.normal(size=(32, 4)).astype(np.float32), "zeta": rng.normal(size=(32, 8)).astype(np.float32)}
    result = _quantize(model, rep, out_dir=tmp_path / "q", name="twohead")
    assert result.input_names == ["zeta", "alpha"]
    assert [t.shape for t in result.info.input_tensors()] == [(1, 8), (1, 4)]
    assert result.output_names == ["zz_class", "aa_value"]
    assert [t.shape for t in result.info.output_tensors()] == [(1, 3), (1, 1)]
    outputs = result.comparison["outputs"]
    assert [o["name"] for o in outputs] == ["zz_class", "aa_value"]
    assert [o["task"] for o in outputs] == ["classification", "regression"]
    assert outputs[0]["agreement"] >= 0.9 and outputs[1]["r2"] > 0.9
    settings = json.loads((tmp_path / "q" / "settings.json").read_text())
    assert settings["name"] == "twohead"
    assert [o["name"] for o in settings["outputs"]] == ["zz_class", "aa_value"]
    header = (tmp_path / "q" / "model_settings.h").read_text()
    assert '#define TK_OUTPUT1_NAME "aa_value"' in header and '#define TK_INPUT0_NAME "zeta"' in header
    # emulate runs several inputs (keyed by name) and compares every output with the float model
    from tinykeras.emulate import emulate
    from tinykeras.keras_io import from_keras

    run = emulate(result.data, rep, keras=from_keras(model), tflite=True, measure_arena=False)
    assert [o["name"] for o in run.data["outputs"]] == ["zz_class", "aa_value"]
    assert run.data["outputs"][1]["r2"] > 0.9 and run.data["comparisons"]["tflite"]["max_abs_lsb"] <= 1
    # the same data in input order, and a wrong shape named by input
    again = _quantize(model, [rep["zeta"], rep["alpha"]])
    assert again.data == result.data
    with pytest.raises(DataError, match=r"input 'alpha'.*expects \[4\]"):
        _quantize(model, {"zeta": rep["zeta"], "alpha": rep["zeta"]})


def test_recurrent_layers_convert_and_agree(k3) -> None:
    from tinykeras.keras_io import tf_keras

    K2 = tf_keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 10, 3)).astype(np.float32)
    lstm2 = K2.Sequential([K2.Input((10, 3)), K2.layers.LSTM(8), K2.layers.Dense(4, activation="softmax")])
    fused = _quantize(lstm2, x)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in fused.info.op_names
    for layer in (k3.layers.SimpleRNN, k3.layers.GRU, k3.layers.LSTM):
        model = k3.Sequential([k3.Input((10, 3)), layer(8), k3.layers.Dense(4, activation="softmax")])
        result = _quantize(model, x)
        assert "WHILE" not in result.info.op_names and result.info.is_int8, layer.__name__
        assert result.comparison["outputs"][0]["agreement"] >= 0.8, layer.__name__
    both = k3.Sequential([k3.Input((10, 3)), k3.layers.Bidirectional(k3.layers.LSTM(6)),
                          k3.layers.Dense(4, activation="softmax")])  # a loop here crashed the converter
    assert "CONCATENATION" in _quantize(both, x).info.op_names


def test_int32_embedding_input_through_quantize_and_emulate(k3, tmp_path: Path) -> None:
    model = k3.Sequential([k3.Input((12,), dtype="int32"), k3.layers.Embedding(50, 8),
                           k3.layers.GlobalAveragePooling1D(), k3.layers.Dense(3, activation="softmax")])
    tokens = np.random.default_rng(0).integers(0, 50, size=(32, 12))
    result = _quantize(model, tokens, out_dir=tmp_path / "q")
    assert result.info.input_tensors()[0].dtype == "int32"
    assert result.info.output_tensors()[0].dtype == "int8"
    assert set(result.info.op_names) <= {"GATHER", "MEAN", "FULLY_CONNECTED", "SOFTMAX"}
    model.save(tmp_path / "emb.keras")
    np.savez(tmp_path / "test.npz", x=tokens.astype(np.int32))
    tflite = str(tmp_path / "q" / "model.tflite")
    run = CliRunner().invoke(cli, ["emulate", tflite, "--data", str(tmp_path / "test.npz"),
                                   "--keras", str(tmp_path / "emb.keras"), "--no-tflite", "--json"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert report["max_abs_deviation"] < 0.05  # untrained: near-uniform scores, so no top-1 figure
    assert report["outputs"][0]["task"] == "classification"
    random_run = CliRunner().invoke(cli, ["emulate", str(tmp_path / "q" / "model.tflite"), "--no-tflite", "--json"])
    assert random_run.exit_code == 0, random_run.output
    check = CliRunner().invoke(cli, ["inspect", tflite, "--check"])
    assert check.exit_code == 0, check.output  # int8 with int32 token ids is TFLM-ready
    build = CliRunner().invoke(cli, ["build", "--board", "esp32", "--model", tflite, "-o", str(tmp_path / "fw")])
    assert build.exit_code == 0, build.output  # the benchmark feeds valid ids: 0..49, read from the model
    assert "#define TK_INPUT0_ID_LIMIT 50u" in (tmp_path / "fw" / "src" / "model_settings.h").read_text()
    with pytest.raises(DataError, match="integer indices"):
        _quantize(model, tokens + 0.5)


def test_validate_metrics_and_threshold_exit_code(k3, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, :2].sum(axis=1, keepdims=True)).astype(np.float32)
    model = k3.Sequential([k3.Input((5,)), k3.layers.Dense(8, activation="relu"), k3.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs=20, verbose=0)
    model.save(tmp_path / "reg.keras")
    np.savez(tmp_path / "rep.npz", x=x[:100])
    np.savez(tmp_path / "test.npz", x=x[100:], y=y[100:])
    q = CliRunner().invoke(cli, ["quantize", str(tmp_path / "reg.keras"), "--rep-data", str(tmp_path / "rep.npz"),
                                 "--data", str(tmp_path / "test.npz"), "-o", str(tmp_path / "q")])
    assert q.exit_code == 0, q.output
    assert "held-out data" in q.output and "R²" in q.output and "top-1" not in q.output
    base = ["validate", str(tmp_path / "q" / "model.tflite"), "--data", str(tmp_path / "test.npz"),
            "--keras", str(tmp_path / "reg.keras"), "--json"]
    ok = CliRunner().invoke(cli, base + ["--min-r2", "0.9", "--max-rmse", "1.0"])
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    out = report["outputs"][0]
    assert out["task"] == "regression" and out["r2"] > 0.9 and out["samples"] == 100
    assert {"mae", "rmse", "labels_rmse", "reference_labels_r2"} <= set(out) and "agreement" not in out
    strict = CliRunner().invoke(cli, base + ["--max-rmse", "0.0"])
    assert strict.exit_code == 12 and "--max-rmse" in strict.output
    no_metric = CliRunner().invoke(cli, base + ["--min-top1", "0.5"])  # a regression head has no top-1
    assert no_metric.exit_code == 12


def test_collapsed_output_is_flagged() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 1)).astype(np.float32)
    flat = np.full_like(ref, 0.25)
    m = output_metrics(flat, ref, task="regression", name="price")
    assert m["collapsed"] and m["r2"] < 0
    assert check_thresholds([m], {"min_r2": 0.5}) and not check_thresholds([m], {"max_mae": 10.0})
    good = output_metrics(ref + 0.01, ref, task="regression", name="price")
    assert not good["collapsed"] and good["r2"] > 0.99


def test_keras3_h5_export_and_registered_subclass_load(k3, tmp_path: Path) -> None:
    from tinykeras.convert import quantize_model
    from tinykeras.keras_io import load_custom_objects, load_model

    module = tmp_path / "my_layers.py"
    module.write_text(
        "import keras\n\n"
        "@keras.saving.register_keras_serializable(package='tk_test')\n"
        "class TkNet(keras.Model):\n"
        "    def __init__(self, **kw):\n"
        "        super().__init__(**kw)\n"
        "        self.d1 = keras.layers.Dense(8, activation='relu')\n"
        "        self.d2 = keras.layers.Dense(3, activation='softmax')\n\n"
        "    def call(self, x):\n"
        "        return self.d2(self.d1(x))\n")
    classes = load_custom_objects(module)
    net = classes["TkNet"]()
    net(np.zeros((1, 6), np.float32))
    net.save(tmp_path / "sub.keras")
    seq = k3.Sequential([k3.Input((6,)), k3.layers.Dense(8, activation="relu"), k3.layers.Dense(3)])
    seq.save(tmp_path / "k3.h5")
    seq.export(str(tmp_path / "exported"), verbose=False)
    rep = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    for path, origin in ((tmp_path / "k3.h5", "keras3"), (tmp_path / "exported", "saved_model"),
                         (tmp_path / "sub.keras", "keras3")):
        loaded = load_model(path, custom_objects=str(module))
        assert loaded.origin == origin, path
        result = quantize_model(loaded, rep)[0]
        assert result.info.input_tensors()[0].shape == (1, 6), path
        assert result.comparison["outputs"][0]["max_abs_diff"] < 0.1, path


def test_import_tinykeras_does_not_import_tensorflow() -> None:
    code = ("import sys, tinykeras; assert callable(tinykeras.quantize) and callable(tinykeras.validate); "
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_validate_on_the_emulated_board_reads_outputs_back(k3, tmp_path: Path) -> None:
    import shutil

    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm (scripts/setup.sh)")
    pytest.importorskip("tinykeras.aot")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6, 6)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)
    model = k3.Sequential([k3.Input((6, 6)), k3.layers.Flatten(), k3.layers.Dense(8, activation="relu"),
                           k3.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=5, verbose=0)
    result = _quantize(model, x[:60], out_dir=tmp_path / "q")
    np.savez(tmp_path / "test.npz", x=x[60:], y=y[60:])
    tflite, test = str(tmp_path / "q" / "model.tflite"), str(tmp_path / "test.npz")
    run = CliRunner().invoke(cli, ["validate", tflite, "--data", test, "--board", "qemu_m4", "--samples", "6",
                                   "--json"])
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert report["samples"] == 6 and report["board"]["matches_host_tflm"], report["board"]
    host = CliRunner().invoke(cli, ["validate", tflite, "--data", test, "--samples", "6", "--json"])
    assert json.loads(host.stdout)["outputs"][0]["accuracy"] == report["outputs"][0]["accuracy"]
    assert result.info.is_int8


def test_adapted_normalization_is_moved_out_of_the_int8_graph(k3) -> None:
    """It used to collapse (one int8 input scale for features from 0.01 to 1000); now the Normalization runs in
    float before quantizing (tinykeras.input_norm) and the int8 model follows the float one."""
    rng = np.random.default_rng(0)
    scales = np.array([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0], np.float32)
    x = (rng.normal(size=(200, 6)) * scales + scales).astype(np.float32)
    norm = k3.layers.Normalization(name="norm")
    norm.adapt(x)
    model = k3.Sequential([k3.Input((6,)), norm, k3.layers.Dense(8, activation="relu"), k3.layers.Dense(1)])
    y = ((x - scales) / scales)[:, :1]
    model.compile("adam", "mse")
    model.fit(x, y, epochs=5, verbose=0)
    result = _quantize(model, x[:100], test_data=(x[100:], y[100:]))
    out = result.comparison["outputs"][0]
    assert not out["collapsed"] and out["r2"] > 0.95, out
    assert not result.comparison["warnings"]
    assert "layer 'norm' (Normalization)" in result.comparison["input_normalization"][0]
    assert result.input_norm[0]["layer"] == "norm"
