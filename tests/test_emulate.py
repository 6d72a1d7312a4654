"""tinykeras emulate: TFLM host runs checked against independent runs of TFLM, tf.lite, aot and Keras."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinykeras import emulate as E
from tinykeras.cli import cli
from tinykeras.errors import DataError
from tinykeras.tflm_host import TflmRunner, dequantize

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (apt) for the aot runtime")


def _tflm_direct(model: E.Model, xq: np.ndarray) -> np.ndarray:
    runner = TflmRunner(model.data, model.info)
    return np.concatenate([runner.invoke(xq[k:k + 1])[0] for k in range(len(xq))])


def _tflite_direct(model: E.Model, xq: np.ndarray) -> np.ndarray:
    from tinykeras.keras_io import import_tf

    tf = import_tf()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interp = tf.lite.Interpreter(
            model_content=model.data,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    outs = []
    for k in range(len(xq)):
        interp.set_tensor(interp.get_input_details()[0]["index"], xq[k:k + 1])
        interp.invoke()
        outs.append(interp.get_tensor(interp.get_output_details()[0]["index"]).copy())
    return np.concatenate(outs)


def _arena_works(model: E.Model, size: int) -> bool:
    from tflite_micro import runtime

    from tinykeras.stdio import capture_native_stderr

    try:
        with capture_native_stderr():
            interp = runtime.Interpreter.from_bytes(model.data, arena_size=size)
            interp.set_input(np.zeros(model.input.shape, dtype=model.input.dtype), 0)
            interp.invoke()
    except Exception:
        return False
    return True


@pytest.mark.parametrize("name", ["ad01_int8", "pretrainedResnet_quant"])
def test_emulate_reference_model_random_inputs(name: str, reference_models: dict[str, Path]) -> None:
    samples = 6
    result = E.emulate(reference_models[name], samples=samples)
    data = result.to_json()
    json.dumps(data, allow_nan=False)
    for key in ("runtime", "samples", "arena_bytes", "accuracy", "agreement", "host_us_per_inference"):
        assert key in data
    assert data["runtime"] == "tflm" and data["samples"] == samples and data["accuracy"] is None
    assert data["input"].startswith("random int8")
    model = E.load(reference_models[name])
    xq = E.random_inputs(model, samples)
    tflm, ref = _tflm_direct(model, xq), _tflite_direct(model, xq)
    block = data["comparisons"]["tflite"]
    assert block["mismatches"] == int(np.sum(tflm != ref))
    assert block["bit_exact"] == bool(np.array_equal(tflm, ref)) == data["bit_exact"]
    assert block["max_abs_lsb"] == int(np.max(np.abs(tflm.astype(int) - ref.astype(int))))
    deviation = np.max(np.abs(dequantize(tflm, model.output) - dequantize(ref, model.output)))
    assert block["max_abs_deviation"] == pytest.approx(float(deviation))
    top_tflm, top_ref = tflm.reshape(samples, -1).argmax(1), ref.reshape(samples, -1).argmax(1)
    assert data["agreement"] == float(np.mean(top_tflm == top_ref))
    # the arena figure is what TFLM really needs: it works with that size and fails 64 bytes below it
    assert _arena_works(model, data["arena_bytes"])
    assert not _arena_works(model, data["arena_bytes"] - 64)
    assert data["arena"]["tflm_recorded_bytes"] <= data["arena_bytes"]
    assert data["host_us_per_inference"] > 0


@needs_gcc
@pytest.mark.parametrize("name", ["ad01_int8", "pretrainedResnet_quant"])
def test_emulate_aot_is_bit_exact_with_tflm(name: str, reference_models: dict[str, Path]) -> None:
    data = E.emulate(reference_models[name], samples=4, runtime="aot", tflite=False, measure_arena=False).to_json()
    assert data["runtime"] == "aot" and data["bit_exact_vs"] == "tflm"
    assert data["bit_exact"] is True and data["mismatches"] == 0
    assert data["comparisons"]["tflm"]["agreement"] == 1.0
    assert 0 < data["arena_bytes"] and data["host_us"]["aot"] > 0


def test_compare_counts_mismatches() -> None:
    from tinykeras.types import Quantization, TensorInfo

    t = TensorInfo(0, "out", (1, 4), "int8", Quantization((0.5,), (-3,)), False, 0)
    a = np.array([[1, 2, 3, 4], [9, 0, 0, 0]], dtype=np.int8)
    b = np.array([[1, 2, 5, 4], [9, 0, 0, 0]], dtype=np.int8)
    out = E.compare(a, b, a_tensor=t, b_tensor=t)
    assert out == {"agreement": 0.5, "max_abs_deviation": 1.0, "bit_exact": False, "mismatches": 1,
                   "max_abs_lsb": 2, "disagreeing_samples": [0]}
    same = E.compare(a, a.copy(), a_tensor=t, b_tensor=t)
    assert same["bit_exact"] and same["mismatches"] == 0 and same["agreement"] == 1.0


@pytest.fixture(scope="module")
def tiny_int8(tiny_cnn_path: Path, tiny_rep_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The conftest tiny CNN converted to int8, with labelled float test data."""
    from tinykeras.convert import convert
    from tinykeras.keras_io import load_arrays, load_model

    loaded = load_model(tiny_cnn_path)
    rep = load_arrays(tiny_rep_data)["x"]
    tflite = convert(loaded, "int8", rep).data
    root = tmp_path_factory.mktemp("emu")
    (root / "tiny.tflite").write_bytes(tflite)
    x = np.random.default_rng(5).random((40, 8, 8, 1), dtype=np.float32)
    y = np.random.default_rng(6).integers(0, 4, size=40)
    np.savez(root / "test.npz", x=x, y=y)
    return {"root": root, "tflite": root / "tiny.tflite", "data": root / "test.npz", "x": x, "y": y,
            "keras": loaded}


def test_emulate_with_labels_and_keras(tiny_int8: dict, tiny_cnn_path: Path) -> None:
    out = tiny_int8["root"] / "plots"
    result = CliRunner().invoke(cli, ["emulate", str(tiny_int8["tflite"]), "--data", str(tiny_int8["data"]),
                                      "--keras", str(tiny_cnn_path), "--json", "--plots", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    model = E.load(tiny_int8["tflite"])
    xq = E.quantized_inputs(model, tiny_int8["x"])
    raw = _tflm_direct(model, xq)
    pred = raw.reshape(40, -1).argmax(1)
    assert data["accuracy"] == pytest.approx(float(np.mean(pred == tiny_int8["y"])))
    keras_out = tiny_int8["keras"].predict(tiny_int8["x"])
    assert data["comparisons"]["keras"]["agreement"] == pytest.approx(float(np.mean(pred == keras_out.argmax(1))))
    assert data["agreement_vs"] == "keras" and data["agreement"] == data["comparisons"]["keras"]["agreement"]
    deviation = np.max(np.abs(dequantize(raw, model.output) - keras_out))
    assert data["comparisons"]["keras"]["max_abs_deviation"] == pytest.approx(float(deviation), abs=1e-6)
    matrix = np.array(data["confusion_matrix"])
    assert matrix.sum() == 40 and np.trace(matrix) == int(np.sum(pred == tiny_int8["y"]))
    assert data["input"].startswith("float data quantized with scale")
    for png in ("confusion_matrix.png", "scores.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    first = {p: (out / p).read_bytes() for p in ("confusion_matrix.png", "scores.png")}
    again = CliRunner().invoke(cli, ["emulate", str(tiny_int8["tflite"]), "--data", str(tiny_int8["data"]),
                                     "--no-tflite", "--plots", str(out), "--keras", str(tiny_cnn_path)])
    assert again.exit_code == 0, again.output
    assert "Keras" in again.output and "agreement" in again.output
    assert {p: (out / p).read_bytes() for p in first} == first  # deterministic plots


def test_int8_data_gives_the_same_outputs_as_float(tiny_int8: dict) -> None:
    model = E.load(tiny_int8["tflite"])
    xq = E.quantized_inputs(model, tiny_int8["x"])
    a = E.emulate(model, tiny_int8["x"], tiny_int8["y"], tflite=False, measure_arena=False).to_json()
    b = E.emulate(model, xq, tiny_int8["y"], tflite=False, measure_arena=False).to_json()
    assert a["accuracy"] == b["accuracy"] and a["confusion_matrix"] == b["confusion_matrix"]
    assert b["input"] == "int8 data"


def test_emulate_rejects_data_of_the_wrong_shape(tiny_int8: dict, tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 7), np.float32))
    result = CliRunner().invoke(cli, ["emulate", str(tiny_int8["tflite"]), "--data", str(bad), "--no-tflite"])
    assert result.exit_code == DataError.exit_code
    assert result.output.startswith("error:") and "[7]" in result.output and "Traceback" not in result.output


def test_emulate_samples_limits_and_json_file(tiny_int8: dict, tmp_path: Path) -> None:
    report = tmp_path / "emu.json"
    result = CliRunner().invoke(cli, ["emulate", str(tiny_int8["tflite"]), "--data", str(tiny_int8["data"]),
                                      "--samples", "10", "--no-tflite", "-o", str(report)])
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["samples"] == 10


def test_regression_targets_are_not_scored_as_classes(tiny_int8: dict) -> None:
    y = np.linspace(0.1, 3.7, 40)  # float targets, not class indices
    data = E.emulate(tiny_int8["tflite"], tiny_int8["x"], y, tflite=False, measure_arena=False).to_json()
    assert data["accuracy"] is None and "labels_note" in data and "confusion_matrix" not in data
