"""convert.py + `tinykeras quantize`: full-integer int8 from every kind of Keras model, with its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinykeras.cli import cli
from tinykeras.convert import convert, quantize_model
from tinykeras.errors import DataError, InputFileError, ModelError
from tinykeras.inspect import load_model_info
from tinykeras.keras_io import load_model


def _quantize(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["quantize", *args])
    return result.exit_code, result.output


def test_quantize_cli_writes_int8_model_c_array_and_report(tiny_cnn_path: Path, tiny_rep_data: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = _quantize([str(tiny_cnn_path), "--rep-data", str(tiny_rep_data), "-o", str(out),
                              "--also", "float32", "--also", "dynamic"])
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == [
        "model.tflite", "model_data.cc", "model_data.h", "model_dynamic.tflite", "model_float32.tflite",
        "model_settings.h", "report.json", "settings.json"]
    info = load_model_info(out / "model.tflite")
    assert info.is_int8
    conv = next(op for op in info.ops if op.op == "CONV_2D")
    assert len(info.tensors[conv.inputs[1]].quantization.scales) == 4  # per-channel weights
    assert not load_model_info(out / "model_float32.tflite").is_int8
    report = json.loads((out / "report.json").read_text())
    assert report["tflite_bytes"]["int8"] == (out / "model.tflite").stat().st_size
    assert report["tflite_bytes"]["float32"] == (out / "model_float32.tflite").stat().st_size
    comparison = report["comparison"]
    assert comparison["samples"] == 64
    assert comparison["top1_agreement"] >= 0.9
    assert 0 < comparison["max_abs_diff"] < 0.1
    assert "alignas(16)" in (out / "model_data.cc").read_text()


def test_quantize_is_byte_identical(tiny_cnn_path: Path, tiny_rep_data: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        code, output = _quantize([str(tiny_cnn_path), "--rep-data", str(tiny_rep_data), "-o", str(tmp_path / name)])
        assert code == 0, output
    for file in ("model.tflite", "model_data.cc", "model_data.h", "model_settings.h"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_random_representative_data_warns_loudly(tiny_cnn_path: Path, tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    conversions = quantize_model(load_model(tiny_cnn_path), None)
    assert conversions[0].info.is_int8
    assert "NO REPRESENTATIVE DATA" in capfd.readouterr().err


def _keras_models(tmp_path: Path) -> dict[str, Path]:
    """The same small network as Sequential (.h5), Functional (SavedModel dir) and subclassed (.keras)."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    tf.keras.utils.set_random_seed(1)
    sequential = keras.Sequential([keras.Input((10,)), keras.layers.Dense(6, activation="relu"),
                                   keras.layers.Dense(3, activation="softmax")])
    inputs = keras.Input((10,))
    functional = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(6, activation="relu")(inputs)))

    @keras.saving.register_keras_serializable("tinykeras_tests")
    class Sub(keras.Model):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(6, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x: object) -> object:
            return self.out(self.hidden(x))

    sub = Sub()
    sub(np.zeros((1, 10), np.float32))
    paths = {"sequential": tmp_path / "seq.h5", "functional": tmp_path / "func_savedmodel",
             "subclassed": tmp_path / "sub_savedmodel"}
    sequential.save(paths["sequential"])
    functional.save(paths["functional"], save_format="tf")
    sub.save(paths["subclassed"], save_format="tf")
    return paths


def test_sequential_functional_subclassed_formats(tmp_path: Path) -> None:
    rep = np.random.default_rng(0).normal(size=(32, 10)).astype(np.float32)
    for kind, path in _keras_models(tmp_path).items():
        loaded = load_model(path)
        assert loaded.origin in ("keras2", "saved_model"), kind
        conversions = quantize_model(loaded, rep, also=("float32",))
        info = conversions[0].info
        assert info.is_int8, kind
        assert info.input_tensors()[0].shape == (1, 10), kind
        assert conversions[0].comparison["top1_agreement"] >= 0.9, kind
        assert conversions[1].kind == "float32"


def test_keras3_model_converts_through_saved_model(tmp_path: Path) -> None:
    path = tmp_path / "k3.keras"
    script = (
        "import keras; m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation='relu'), "
        f"keras.layers.Dense(3, activation='softmax')]); m.save({str(path)!r}); print(keras.__version__)"
    )
    env = dict(os.environ, TF_USE_LEGACY_KERAS="0", CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip().startswith("3.")
    loaded = load_model(path)
    assert loaded.origin == "keras3"
    rep = np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)
    conversion = quantize_model(loaded, rep)[0]
    assert conversion.info.is_int8 and conversion.comparison["top1_agreement"] >= 0.9


def test_bad_inputs_are_clear_errors(tiny_cnn_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = _quantize([str(tmp_path / "missing.keras"), "-o", str(out)])
    assert code == InputFileError.exit_code and "no such file" in output
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"\x00\x01 not a zip")
    code, output = _quantize([str(garbage), "-o", str(out)])
    assert code == ModelError.exit_code and "not a .keras archive" in output
    truncated = tmp_path / "half.keras"
    truncated.write_bytes(tiny_cnn_path.read_bytes()[:500])
    code, output = _quantize([str(truncated), "-o", str(out)])
    assert code == ModelError.exit_code
    wrong_shape = tmp_path / "wrong.npz"
    np.savez(wrong_shape, x=np.zeros((4, 3, 3), np.float32))
    code, output = _quantize([str(tiny_cnn_path), "--rep-data", str(wrong_shape), "-o", str(out)])
    assert code == DataError.exit_code and "expects [8, 8, 1]" in output
    for text in [output]:
        assert "Traceback" not in text
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.keras", "half.keras", "wrong.npz"]


def test_unknown_kind_is_rejected(tiny_cnn_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown conversion kind"):
        convert(load_model(tiny_cnn_path), "int4")
