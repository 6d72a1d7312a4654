"""inspect.py: op lists, MACs, params and memory of real models, checked against counts made by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinykeras.cli import cli
from tinykeras.errors import ModelError, UnsupportedOpError
from tinykeras.inspect import (
    inspect_bytes,
    load_model_info,
    require_int8,
    unsupported_tflm_ops,
)
from tinykeras.runtime.support import require_tflm_ops
from tinykeras.types import activation_peak_bytes


def conv_macs(out_h: int, out_w: int, cout: int, kh: int, kw: int, cin: int) -> int:
    return out_h * out_w * cout * kh * kw * cin


# The MLPerf Tiny AD autoencoder, layer by layer: 640-128-128-128-8-128-128-128-640 plus 128-128 twice.
AD_LAYERS = [(640, 128), (128, 128), (128, 128), (128, 128), (128, 8), (8, 128), (128, 128), (128, 128), (128, 128),
             (128, 640)]
# ResNet-8 (MLPerf Tiny IC) from its layer shapes: (out_h, out_w, cout, kh, kw, cin).
RESNET_CONVS = [
    (32, 32, 16, 3, 3, 3),  # stem
    (32, 32, 16, 3, 3, 16), (32, 32, 16, 3, 3, 16),  # stack 1
    (16, 16, 32, 3, 3, 16), (16, 16, 32, 3, 3, 32), (16, 16, 32, 1, 1, 16),  # stack 2 + 1x1 shortcut
    (8, 8, 64, 3, 3, 32), (8, 8, 64, 3, 3, 64), (8, 8, 64, 1, 1, 32),  # stack 3 + 1x1 shortcut
]


def test_ad01_ops_and_macs(reference_models: dict[str, Path]) -> None:
    info = load_model_info(reference_models["ad01_int8"])
    assert [op.op for op in info.ops] == ["FULLY_CONNECTED"] * 10
    assert [op.macs for op in info.ops] == [a * b for a, b in AD_LAYERS]
    assert info.macs == sum(a * b for a, b in AD_LAYERS) == 264_192
    assert info.params == sum(a * b + b for a, b in AD_LAYERS)
    assert info.model_bytes == reference_models["ad01_int8"].stat().st_size
    assert info.is_int8
    assert info.input_tensors()[0].shape == (1, 640)
    # Widest moments: the 640-byte int8 input with the first 128-byte hidden output (and the mirror at the end).
    assert activation_peak_bytes(info) == 640 + 128


def test_resnet_ops_and_macs(reference_models: dict[str, Path]) -> None:
    info = load_model_info(reference_models["pretrainedResnet_quant"])
    names = [op.op for op in info.ops]
    assert names == ["CONV_2D"] * 3 + ["ADD"] + ["CONV_2D"] * 3 + ["ADD"] + ["CONV_2D"] * 3 + [
        "ADD", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    conv_ops = [op for op in info.ops if op.op == "CONV_2D"]
    assert sorted(op.macs for op in conv_ops) == sorted(conv_macs(*c) for c in RESNET_CONVS)
    expected = sum(conv_macs(*c) for c in RESNET_CONVS) + 64 * 10
    assert info.macs == expected == 12_501_632
    conv0 = info.ops[0]
    weights = info.tensors[conv0.inputs[1]]
    assert weights.quantization is not None and len(weights.quantization.scales) == 16  # per-channel
    assert conv0.options["padding"] == "SAME" and conv0.options["fusedActivationFunction"] == "RELU"
    # Peak: the first residual ADD holds two 32x32x16 int8 inputs and its output.
    assert activation_peak_bytes(info) == 3 * 32 * 32 * 16
    assert unsupported_tflm_ops(info) == []
    require_tflm_ops(info)
    require_int8(info)


def test_inspect_json_cli(reference_models: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(reference_models["pretrainedResnet_quant"]), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [op["index"] for op in data["ops"]] == list(range(16))
    assert {"index", "op", "macs", "version", "params", "activation_bytes"} <= set(data["ops"][0])
    assert data["totals"]["macs"] == 12_501_632
    assert data["totals"]["model_bytes"] == 98_496
    assert data["totals"]["activation_peak_bytes"] == 49_152
    assert data["totals"]["params"] > 70_000
    assert data["ops"][0]["outputs"][0]["zero_point"] == -128
    assert data["ops"][0]["inputs"][1]["num_scales"] == 16


def test_inspect_table_cli(reference_models: dict[str, Path]) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(reference_models["ad01_int8"])])
    assert result.exit_code == 0, result.output
    assert "FULLY_CONNECTED" in result.output and "264,192 MACs" in result.output
    assert "all ops supported" in result.output


def test_inspect_does_not_import_tensorflow(reference_models: dict[str, Path]) -> None:
    code = (
        "import sys; from click.testing import CliRunner; from tinykeras.cli import cli; "
        f"r = CliRunner().invoke(cli, ['inspect', {str(reference_models['ad01_int8'])!r}, '--json']); "
        "assert r.exit_code == 0, r.output; "
        "bad = [m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')]; "
        "assert not bad, bad[:3]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("cut", [16, 4_000, 50_000, 98_000])
def test_truncated_model_is_a_clear_error(reference_models: dict[str, Path], tmp_path: Path, cut: int) -> None:
    data = reference_models["pretrainedResnet_quant"].read_bytes()[:cut]
    with pytest.raises(ModelError, match="corrupt or truncated|not a TFLite"):
        inspect_bytes(data, "cut.tflite")
    path = tmp_path / "cut.tflite"
    path.write_bytes(data)
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    assert result.exit_code == ModelError.exit_code
    assert result.output.startswith("error: ") and "Traceback" not in result.output


def test_not_a_flatbuffer_and_missing_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"definitely not a model, just text\n" * 10)
    result = CliRunner().invoke(cli, ["inspect", str(junk)])
    assert result.exit_code == 3 and "TFL3" in result.output
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "nope.tflite")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_check_rejects_float_model(float_tile_model: Path) -> None:
    info = load_model_info(float_tile_model)
    with pytest.raises(ModelError, match="int8 model required"):
        require_int8(info)
    result = CliRunner().invoke(cli, ["inspect", str(float_tile_model), "--check"])
    assert result.exit_code != 0
    assert "TILE" in result.output


def test_unsupported_op_named_with_index(float_tile_model: Path) -> None:
    info = load_model_info(float_tile_model)
    missing = unsupported_tflm_ops(info)
    assert [name for _, name in missing] == ["TILE"]
    index = missing[0][0]
    assert info.ops[index].op == "TILE"
    with pytest.raises(UnsupportedOpError, match=rf"TILE \(operator #{index}\)"):
        require_tflm_ops(info)
    result = CliRunner().invoke(cli, ["inspect", str(float_tile_model)])
    assert result.exit_code == 0 and "not supported by TFLite-Micro" in result.output


@pytest.fixture(scope="module")
def float_tile_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float model whose graph holds TILE, an op TFLite-Micro has no kernel for."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: tf.tile(t, [1, 3]))(inputs)
    outputs = keras.layers.Dense(2)(x)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs))
    path = tmp_path_factory.mktemp("tile") / "tile_float.tflite"
    path.write_bytes(converter.convert())
    return path


def test_supported_ops_doc_is_current() -> None:
    from tinykeras.supported_ops import doc_path, render

    assert doc_path().read_text() == render(), "run `python -m tinykeras.supported_ops` to refresh the doc"
