"""MLPerf Tiny model ids by content, --mlperf-model checks, the reference conventions' host mirrors, datasets in
the official runner's format and its accuracy/AUC. Cheap: no compiler, no QEMU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinykeras import mlperf_data, mlperf_models
from tinykeras.errors import DataError, ModelError
from tinykeras.inspect import inspect_bytes

REPO = Path(__file__).resolve().parent.parent
KWS = REPO / "models" / "kws" / "model.tflite"


def test_reference_models_are_recognised_by_content(reference_models: dict[str, Path]) -> None:
    ad01 = reference_models["ad01_int8"].read_bytes()
    ic01 = reference_models["pretrainedResnet_quant"].read_bytes()
    assert mlperf_models.identify(ad01).id == "ad01" and mlperf_models.identify(ic01).id == "ic01"
    assert mlperf_models.identify(ad01[:-1] + bytes([ad01[-1] ^ 1])) is None
    assert mlperf_models.identify(KWS.read_bytes()) is None
    assert mlperf_models.conventions(ad01, inspect_bytes(ad01)) == mlperf_models.Conventions("ad01", "float32", "mse")
    assert mlperf_models.conventions(ic01, inspect_bytes(ic01)) == mlperf_models.Conventions("ic01", "uint8", "scores")
    assert {m.id for m in mlperf_models.table()} == set(mlperf_models.IDS)


def test_requested_id_must_fit_the_model(reference_models: dict[str, Path]) -> None:
    kws = KWS.read_bytes()
    info = inspect_bytes(kws)
    assert mlperf_models.conventions(kws, info, "kws01") == mlperf_models.Conventions("kws01", "int8", "scores")
    with pytest.raises(ModelError, match=r"maps \[1, 49, 10, 1\] -> \[1, 12\], but vww01 maps \[1, 96, 96, 3\]"):
        mlperf_models.conventions(kws, info, "vww01")
    with pytest.raises(DataError, match="not an MLPerf Tiny model id"):
        mlperf_models.conventions(kws, info, "kws02")
    ad01 = reference_models["ad01_int8"].read_bytes()
    with pytest.raises(ModelError, match="published MLPerf Tiny ad01 model"):
        mlperf_models.conventions(ad01, inspect_bytes(ad01), "ic01")


def test_host_mirrors_follow_the_reference() -> None:
    u8 = mlperf_models.Conventions("ic01", "uint8", "scores")
    assert mlperf_models.load_tensor(u8, bytes([0, 128, 255]), 3, 1.0, 0).tolist() == [-128, 0, 127]
    with pytest.raises(DataError, match="needs exactly 3"):
        mlperf_models.load_tensor(u8, bytes(2), 3, 1.0, 0)
    assert mlperf_models.quantize([0.25, -0.25, 0.75, 1e9, float("nan")], 0.5, 0).tolist() == [1, -1, 2, 127, -128]
    assert mlperf_models.fixed3(0.0625) == "0.062" and mlperf_models.fixed3(-1.5) == "-1.500"
    ad = mlperf_models.Conventions("ad01", "float32", "mse")
    x = np.array([1.0, 2.0], dtype="<f4").tobytes()
    # output dequantized (q - 1) * 0.5 = [1.0, 3.0]; MSE vs [1, 2] = 0.5
    assert mlperf_models.results_line(ad, [3, 7], 0.5, 1, x) == "m-results-[0.500]"
    name = mlperf_models.dut_name("qemu_m4", True, "QEMU [x]")
    assert "]" not in name and "emulator" in name and mlperf_models.dut_name("esp32", False) == "tinykeras esp32"


def test_dataset_round_trip_and_runner_scores(tmp_path: Path) -> None:
    kws = mlperf_models.Conventions("kws01", "int8", "scores")
    d = mlperf_data.write_dataset(tmp_path, kws, 490, 12, seed=3)
    files = mlperf_data.read_dataset(d)
    assert len(files) == 12 and {f.label for f in files} == set(range(12))
    assert all(len(f.segments) == 1 and len(f.segments[0]) == 490 for f in files)
    ad = mlperf_models.Conventions("ad01", "float32", "mse")
    files = mlperf_data.read_dataset(mlperf_data.write_dataset(tmp_path, ad, 640, 2, files=4, ad_frames=8))
    assert [len(f.segments) for f in files] == [4] * 4 and len(files[0].segments[1]) == 2560
    assert files[0].segments[1][:512] == files[0].segments[0][512:1024]  # windows overlap by 4 frames
    # the runner: normalised per inference, averaged per file, argmax (Top 1%); AUC over the averages
    s = mlperf_data.score([[[0.2, 0.6, 0.2]], [[0.8, 0.1, 0.1]], [[0.1, 0.8, 0.1]]], [1, 0, 2])
    assert s["accuracy"] == pytest.approx(200 / 3)
    with pytest.raises(DataError, match="AUC is undefined"):
        mlperf_data.score([[[0.2, 0.6, 0.2]], [[0.8, 0.1, 0.1]]], [1, 0])
    s = mlperf_data.score([[[1.0], [3.0]], [[10.0]], [[0.5]], [[9.0]]], [0, 1, 0, 1])
    assert s == {"accuracy": pytest.approx(100.0), "auc": 1.0}
    with pytest.raises(DataError, match="no y_labels.csv"):
        mlperf_data.read_dataset(tmp_path)


def test_cli_mlperf_options_fail_with_one_line(tmp_path: Path) -> None:
    from tinykeras.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["build", "--board", "qemu_m4", "--model", str(KWS), "--mlperf-model", "vww01",
                               "-o", str(tmp_path / "p")])
    assert res.exit_code == ModelError.exit_code and "vww01 maps [1, 96, 96, 3]" in res.output
    assert not (tmp_path / "p").exists()
    res = runner.invoke(cli, ["build", "--board", "qemu_m4", "--model", str(KWS), "--runs", "0", "--run",
                               "-o", str(tmp_path / "q")])
    assert res.exit_code == DataError.exit_code and "--runs 0" in res.output and not (tmp_path / "q").exists()
    res = runner.invoke(cli, ["build", "--board", "qemu_m4", "--model", str(KWS), "--mlperf", "--runs", "5"])
    assert res.exit_code == DataError.exit_code and "--mlperf" in res.output
    res = runner.invoke(cli, ["bench", "--dataset", str(tmp_path), "--port", "socket://127.0.0.1:9"])
    assert res.exit_code == DataError.exit_code and "--protocol mlperf" in res.output
    res = runner.invoke(cli, ["bench", "--protocol", "mlperf", "--dataset", str(tmp_path / "none")])
    assert res.exit_code != 0 and "no such dataset directory" in res.output
