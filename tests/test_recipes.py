"""Recipes: synthetic datasets, loaders, `tinykeras train --quick` outputs and reproducibility."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import requires_tool

from tinykeras.cli import cli
from tinykeras.errors import DataError, ToolchainError

OUTPUTS = {"model.keras", "test.npz", "rep.npz", "history.csv", "training_curves.png", "metrics.json",
           "settings.json"}


@pytest.fixture(scope="session")
def gesture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinykeras.datasets.gesture_synth import GestureSynthConfig, synthesize

    dest = tmp_path_factory.mktemp("gesture") / "data"
    synthesize(dest, GestureSynthConfig(per_class=6, train_subjects=3, val_subjects=1, test_subjects=1, seed=3))
    return dest


@pytest.fixture(scope="session")
def sensor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinykeras.datasets.sensor_synth import SensorSynthConfig, synthesize

    dest = tmp_path_factory.mktemp("sensor") / "data"
    synthesize(dest, SensorSynthConfig(train_normal=12, test_normal=4, test_anomaly=6, seed=3))
    return dest


@pytest.fixture(scope="session")
def kws_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinykeras.datasets.kws_synth import KwsSynthConfig, synthesize

    dest = tmp_path_factory.mktemp("kws") / "data"
    synthesize(dest, KwsSynthConfig(per_word=8, unknown_total=25, seed=3, noise_seconds=3.0))
    return dest


# ------------------------------------------------------------------ data and loaders

def test_gesture_synth_holds_out_subjects(gesture_dir: Path) -> None:
    from tinykeras.recipes.gesture import CLASSES, load_layout, read_csv

    test = (gesture_dir / "testing_list.txt").read_text().split()
    val = (gesture_dir / "validation_list.txt").read_text().split()
    assert test and val and all("/test" in p for p in test) and all("/val" in p for p in val)
    splits = load_layout(gesture_dir, seed=0)
    assert splits["train"][0].shape[1:] == (128, 3)
    assert sorted(set(splits["test"][1].tolist())) == list(range(len(CLASSES)))
    window = read_csv(gesture_dir / test[0])
    # gravity: a wand at rest reads about 1 g in total
    assert 0.7 < float(np.median(np.linalg.norm(window, axis=1))) < 1.3


def test_gesture_csv_loader_rejects_bad_files(tmp_path: Path) -> None:
    from tinykeras.recipes.gesture import load_layout, read_csv

    bad = tmp_path / "bad.csv"
    bad.write_text("ax,ay,az\n" + "0,0,1\n" * 10 + "x,0,1\n")
    with pytest.raises(DataError, match=r"bad.csv:12: not a number"):
        read_csv(bad)
    short = tmp_path / "short.csv"
    short.write_text("0,0,1\n" * 20)
    with pytest.raises(DataError, match="20 rows; a gesture window needs 128"):
        read_csv(short)
    long = tmp_path / "long.csv"
    long.write_text("0.1,0.2,1.0\n" * 300)
    assert read_csv(long).shape == (300, 3)
    with pytest.raises(DataError, match="missing class folder"):
        load_layout(tmp_path, seed=0)


def test_roc_auc() -> None:
    from tinykeras.metrics import roc_auc

    labels = np.array([0, 0, 1, 1])
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5


def test_sensor_loader_layout(sensor_dir: Path, tmp_path: Path) -> None:
    from tinykeras.recipes.sensor import segments

    wav = sorted((sensor_dir / "test" / "anomaly").glob("*.wav"))[0]
    assert len(segments(wav)) == 1 and len(segments(wav)[0]) == 32000
    csv = tmp_path / "vib.csv"
    csv.write_text("value\n" + "\n".join("0.01" for _ in range(40000)) + "\n")
    assert len(segments(csv)) == 1
    (tmp_path / "tiny.csv").write_text("0.1\n" * 100)
    with pytest.raises(DataError, match="tiny.csv: 0.01 s long"):
        segments(tmp_path / "tiny.csv")


def test_kws_synth_needs_its_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tinykeras.datasets import kws_synth

    monkeypatch.setattr(kws_synth.shutil, "which", lambda tool: None)
    with pytest.raises(ToolchainError, match="apt-get install espeak-ng"):
        kws_synth.synthesize(tmp_path / "kws")


@requires_tool("espeak-ng", "sox")
def test_kws_synth_holds_out_whole_accents(kws_dir: Path) -> None:
    from tinykeras.datasets.kws_synth import TEST_ACCENTS, TRAIN_ACCENTS, VALIDATION_ACCENTS, VOICES, speaker_id
    from tinykeras.recipes.kws import CLASSES, load_layout

    test_speakers = {speaker_id(a, v) for a in TEST_ACCENTS for v in VOICES}
    test = (kws_dir / "testing_list.txt").read_text().split()
    assert test and all(p.split("/")[1].split("_nohash_")[0] in test_speakers for p in test)
    listed = set(test) | set((kws_dir / "validation_list.txt").read_text().split())
    train = [p for p in kws_dir.glob("*/*.wav") if f"{p.parent.name}/{p.name}" not in listed
             and p.parent.name != "_background_noise_"]
    assert train and not any(p.name.split("_nohash_")[0] in test_speakers for p in train)
    assert set(TEST_ACCENTS).isdisjoint(TRAIN_ACCENTS + VALIDATION_ACCENTS)
    splits, noise = load_layout(kws_dir)
    assert {label for label, _ in splits["test"]} <= set(CLASSES)
    assert all(len(a) == 16000 for _, a in splits["train"]) and len(noise) > 16000


def test_kws_loader_rejects_a_non_speech_commands_tree(tmp_path: Path) -> None:
    from tinykeras.recipes.kws import load_layout

    (tmp_path / "yes").mkdir()
    with pytest.raises(DataError, match="validation_list.txt and testing_list.txt"):
        load_layout(tmp_path)


# ------------------------------------------------------------------ training

@pytest.mark.slow
def test_train_gesture_quick_is_complete_and_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --data: the first run synthesises into the cache, the second reuses it; outputs are byte-identical."""
    monkeypatch.setenv("TINYKERAS_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    outs = []
    notices = ("synthesising a gesture dataset into", "using the synthesised gesture dataset cached in")
    for run, notice in zip(("a", "b"), notices, strict=True):
        out = tmp_path / run
        result = runner.invoke(cli, ["train", "gesture", "--quick", "--epochs", "2", "--seed", "5", "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert notice in result.output  # printed on stderr (the runner mixes it in)
        outs.append(out)
    assert (tmp_path / "cache" / "data" / "gesture-quick-seed5" / ".complete").exists()
    assert OUTPUTS | {"confusion_matrix.png"} <= {p.name for p in outs[0].iterdir()}
    metrics = json.loads((outs[0] / "metrics.json").read_text())
    assert metrics["task"] == "classification" and metrics["metric"] == "accuracy"
    assert metrics["classes"] == ["wing", "ring", "slope", "negative"] and 0.0 <= metrics["value"] <= 1.0
    with np.load(outs[0] / "test.npz") as test:
        assert test["x"].shape[1:] == (128, 3, 1) and len(test["y"]) == len(test["x"])
    settings = json.loads((outs[0] / "settings.json").read_text())
    assert settings["labels"] == metrics["classes"] and len(settings["features"]["normalize"]["mean"]) == 3
    for name in ("model.keras", "history.csv", "metrics.json", "test.npz", "rep.npz"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


@pytest.mark.slow
def test_train_sensor_quick(sensor_dir: Path, tmp_path: Path) -> None:
    from tinykeras.train import train

    result = train("sensor", tmp_path / "sensor", data_dir=sensor_dir, quick=True, epochs=1, verbose=0)
    m = result.metrics
    assert m["task"] == "anomaly_detection" and m["metric"] == "auc" and 0.0 <= m["value"] <= 1.0
    assert OUTPUTS | {"roc.png"} <= {p.name for p in (tmp_path / "sensor").iterdir()}
    with np.load(tmp_path / "sensor" / "test.npz") as test:
        assert test["x"].shape[1] == 320 and set(np.unique(test["y"])) == {0, 1}


@requires_tool("espeak-ng", "sox")
@pytest.mark.slow
def test_train_kws_quick_and_quantize(kws_dir: Path, tmp_path: Path) -> None:
    from tinykeras.convert import quantize_model
    from tinykeras.keras_io import load_arrays, load_model
    from tinykeras.train import train

    result = train("kws", tmp_path / "kws", data_dir=kws_dir, quick=True, epochs=1, verbose=0)
    assert result.metrics["classes"][-2:] == ["silence", "unknown"]
    with np.load(tmp_path / "kws" / "test.npz") as test:
        assert test["x"].shape[1:] == (49, 10, 1)
    rep = load_arrays(tmp_path / "kws" / "rep.npz")["x"]
    conversion = quantize_model(load_model(tmp_path / "kws" / "model.keras"), rep)[0]
    assert "DEPTHWISE_CONV_2D" in conversion.info.op_names


def test_cli_reports_bad_data_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "gesture", "--data", str(tmp_path / "nope"), "-o", str(tmp_path)])
    assert result.exit_code == DataError.exit_code
    assert "error:" in result.output and "nope: no such dataset directory" in result.output


def test_cli_data_synth(tmp_path: Path) -> None:
    runner = CliRunner()
    dest = tmp_path / "g"
    ok = runner.invoke(cli, ["data", "synth", "gesture", str(dest), "--per-class", "1"])
    assert ok.exit_code == 0, ok.output
    assert len(list((dest / "ring").glob("*.csv"))) == 13  # 8 + 2 + 3 subjects
    again = runner.invoke(cli, ["data", "synth", "gesture", str(dest)])
    assert again.exit_code == DataError.exit_code and "not empty" in again.output



def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("recipe", ["gesture", "sensor", "kws"])
def test_synthesis_is_byte_identical_for_a_seed(recipe: str, tmp_path: Path) -> None:
    if recipe == "kws":
        if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
            pytest.skip("needs espeak-ng and sox (apt)")
        from tinykeras.datasets.kws_synth import KwsSynthConfig, synthesize

        config = KwsSynthConfig(per_word=1, unknown_total=3, seed=4, noise_seconds=2.0)
    elif recipe == "gesture":
        from tinykeras.datasets.gesture_synth import GestureSynthConfig, synthesize  # type: ignore[assignment]

        config = GestureSynthConfig(per_class=1, train_subjects=1, val_subjects=1, test_subjects=1, seed=4)
    else:
        from tinykeras.datasets.sensor_synth import SensorSynthConfig, synthesize  # type: ignore[assignment]

        config = SensorSynthConfig(train_normal=1, test_normal=1, test_anomaly=3, seed=4)
    synthesize(tmp_path / "a", config)
    synthesize(tmp_path / "b", config)
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
