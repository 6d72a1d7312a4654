"""Latency estimates before flashing (tinykeras/latency.py): calibrated on the public figures of
tinykeras/data/latency.toml, errors measured leave-one-out, no estimate where no figure calibrates a core."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from tinykeras import latency
from tinykeras.boards import list_boards, load_board
from tinykeras.cli import cli
from tinykeras.inspect import inspect_bytes
from tinykeras.resources import models_dir


def _info(path: Path):
    return inspect_bytes(path.read_bytes(), str(path))


def test_calibration_reproduces_its_public_figures_within_the_printed_error() -> None:
    """Every public figure, predicted from the others of its core (leave-one-out), is within the printed error."""
    data = latency._data()
    cals = latency.calibrations()
    points: dict[str, dict[tuple[str, str], float]] = {}
    for fig in data["figure"]:
        where = cals[fig["core"]].counts_core
        for model, ms in fig["ms"].items():
            count = data["counts"][model][where][fig["kernels"]]
            points.setdefault(fig["core"], {})[(fig["board"], model)] = ms / 1000 * fig["clock_hz"] / count
    for core, cpi in points.items():
        cal = cals[core]
        assert cal.figures == len(cpi)
        if cal.loo_error is None:
            assert len(cpi) == 1
            continue
        for key in cpi:
            others = [c for k, c in cpi.items() if k != key]
            predicted = math.exp(sum(math.log(c) for c in others) / len(others))
            assert abs(predicted / cpi[key] - 1) <= cal.loo_error + 1e-9, (core, key)
    assert cals["cortex-m4"].figures == 5 and "NUCLEO-F413ZH" in cals["cortex-m4"].board


def test_measured_models_are_matched_by_hash_and_others_estimated_from_macs(reference_models: dict[str, Path]
                                                                            ) -> None:
    resnet = _info(reference_models["pretrainedResnet_quant"])
    count, measured, err = latency.instructions(resnet, "cmsis-nn")
    assert measured and err == 0
    assert count == latency._data()["counts"]["pretrainedResnet_quant"]["cortex-m4"]["cmsis-nn"]
    fake = resnet.__class__(**{**resnet.__dict__, "sha256": "0" * 64})
    count, measured, err = latency.instructions(fake, "cmsis-nn")
    assert not measured and err > 0 and count == round(resnet.macs * latency._per_mac("cmsis-nn")[0])


def test_estimate_scales_with_the_boards_clock(reference_models: dict[str, Path]) -> None:
    """The M33 calibration (EK-RA6M4 at 200 MHz) applied to the RP2350 at 150 MHz: the same cycles, 4/3 the time."""
    info = _info(reference_models["ad01_int8"])
    e = latency.estimate(info, load_board("pico2"), "tflm")
    cal = latency.calibrations()["cortex-m33"]
    assert e.ms is not None and math.isclose(e.ms, e.instructions * cal.cpi / 150e6 * 1000)
    assert e.error is not None and math.isclose(e.error, cal.loo_error)   # instructions measured for this model


def test_no_estimate_without_a_public_figure_and_no_error_with_one() -> None:
    info = _info(models_dir() / "gesture" / "model.tflite")
    teensy = latency.estimate(info, load_board("teensy41"), "tflm")
    assert teensy.ms is None and "no public TFLM figure" in teensy.text()
    c3 = latency.estimate(info, load_board("xiao_esp32c3"), "tflm")
    assert c3.ms is not None and c3.error is None and "error not measurable" in c3.text()


def test_boards_model_lists_every_board_and_runtime() -> None:
    path = models_dir() / "sensor" / "model.tflite"
    result = CliRunner().invoke(cli, ["boards", "--model", str(path), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    expected = {(b.name, r) for b in list_boards() if b.kind != "qemu" for r in b.runtimes}
    assert {(r["board"], r["runtime"]) for r in rows} == expected
    text = CliRunner().invoke(cli, ["boards", "--model", str(path)])
    assert text.exit_code == 0 and "leave-one-out" in text.output and "pico2" in text.output


def test_inspect_board_prints_the_latency() -> None:
    path = models_dir() / "kws" / "model.tflite"
    result = CliRunner().invoke(cli, ["inspect", str(path), "--board", "nucleo_l4r5zi"])
    assert result.exit_code == 0, result.output
    assert "latency on nucleo_l4r5zi (tflm): ~" in result.output
    data = json.loads(CliRunner().invoke(cli, ["inspect", str(path), "--board", "pico2", "--json"]).output)
    assert {e["runtime"] for e in data["latency"]} == {"tflm", "aot"}


def test_boards_model_names_a_missing_file() -> None:
    result = CliRunner().invoke(cli, ["boards", "--model", "no/such.tflite"])
    assert result.exit_code != 0 and "no/such.tflite" in result.output


def test_counts_are_the_benchmark_jsons() -> None:
    """latency.toml's [counts.*] are what scripts/latency_counts.py reads from the benchmark JSONs in docs/."""
    import sys

    import tomllib

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import latency_counts

    expected = tomllib.loads(latency_counts.toml_text(latency_counts.counts()))["counts"]
    assert latency._data()["counts"] == expected


def test_each_board_is_counted_on_its_own_core(reference_models: dict[str, Path]) -> None:
    """RISC-V boards use RV32IMC counts; Xtensa boards the Cortex-M4 stand-in's, and say so."""
    info = _info(reference_models["pretrainedResnet_quant"])
    counts = latency._data()["counts"]["pretrainedResnet_quant"]
    c3 = latency.estimate(info, load_board("xiao_esp32c3"), "tflm")
    assert c3.instructions == counts["riscv32"]["cmsis-nn"] and c3.basis.startswith("riscv32 instructions measured")
    s3 = latency.estimate(info, load_board("nano_esp32"), "tflm")
    assert s3.instructions == counts["cortex-m4"]["cmsis-nn"] and "cortex-m4 stand-in" in s3.basis
    assert "Cortex-M4 stand-in" in s3.text() and "stand-in" not in c3.text()
    assert latency.calibrations()["riscv32"].counts_core == "riscv32"
    pico2 = latency.estimate(info, load_board("pico2"), "tflm")
    assert pico2.instructions == counts["cortex-m33"]["cmsis-nn"] and pico2.basis.startswith("cortex-m33 instructions")
    assert latency.calibrations()["cortex-m33"].counts_core == "cortex-m33"
