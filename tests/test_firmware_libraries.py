"""Every PlatformIO board's generated project, compiled with the library its board pins (the real trees in
$TINYKERAS_THIRD_PARTY), linked with the stand-in ports for a Cortex-M on QEMU mps2-an386 and run: outputs
bit-exact with the TFLM host interpreter, arena used <= planned. Also qemu_m4 --runtime tflm.

What is compiled for what (also in the README):
- pico: its own Cortex-M0+ flags (the code runs on QEMU's M4); nano33ble, nucleo_l4r5zi: Cortex-M4F.
- esp32, esp32s3: esp-tflite-micro 1.3.8 with esp-nn 1.2.0's plain-C kernels (what a plain ESP32 runs), built for
  a Cortex-M4F stand-in: no Xtensa compiler here, and the ESP32-S3 assembly kernels are not compiled.
- No real Arduino core or ESP-IDF: tests/ports stands in for the few calls the glue makes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import requires_tool
from standin import build_standin, run_and_compare

from tinykeras.boards import load_board
from tinykeras.inspect import inspect_bytes
from tinykeras.pipeline import BuildOptions, build
from tinykeras.resources import models_dir

pytestmark = [requires_tool("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm"), pytest.mark.slow]

BOARDS = ("esp32", "esp32s3", "nano33ble", "nucleo_l4r5zi", "pico")
SHIPPED = ("kws", "gesture", "sensor")
REFERENCE = ("ad01_int8", "pretrainedResnet_quant")


def _model_path(name: str, reference_models: dict[str, Path]) -> Path:
    return reference_models[name] if name in reference_models else models_dir() / name / "model.tflite"


@pytest.mark.parametrize("model", SHIPPED + REFERENCE)
@pytest.mark.parametrize("board", BOARDS)
def test_board_project_builds_and_runs_bit_exact(board: str, model: str, reference_models: dict[str, Path],
                                                 third_party_dir: Path, tmp_path: Path) -> None:
    path = _model_path(model, reference_models)
    result = build(BuildOptions(board=board, model=path, runs=2, warmup=1, out=tmp_path / "project",
                                tflm_dir=third_party_dir / "tflite-micro-90b983c"), log=lambda _m: None)
    lib = result.board.tflm.lib
    report = json.loads((result.project_dir / "tinykeras_build.json").read_text())
    assert report["tflm_library"]["library"] == lib.id
    elf = build_standin(result.project_dir, load_board(board), lib, result.board.tflm.kernels, third_party_dir,
                        tmp_path / "standin")
    model_bytes = path.read_bytes()
    figures = run_and_compare(elf, model_bytes, inspect_bytes(model_bytes, str(path)), result.arena.planned_bytes)
    print(f"{board} {model} {lib.id}: arena used {figures['arena_used']} of {figures['arena_planned']} planned")


# TFLM's reference kernels on qemu_m4 are measured by scripts/bench_boards.py (one more full TFLM compile here).
@pytest.mark.parametrize("kernels", ["cmsis-nn"])
def test_qemu_m4_runs_tflm_bit_exact(kernels: str, reference_models: dict[str, Path], third_party_dir: Path,
                                     tmp_path: Path) -> None:
    from tinykeras.target import qemu

    path = reference_models["ad01_int8"]
    result = build(BuildOptions(board="qemu_m4", model=path, runtime="tflm", kernels=kernels, runs=2, warmup=1,
                                out=tmp_path / "project", tflm_dir=third_party_dir / "tflite-micro-90b983c"),
                   log=lambda _m: None)
    makefile = (result.project_dir / "Makefile").read_text()
    assert "-DNDEBUG" in makefile and ("-DCMSIS_NN" in makefile) == (kernels == "cmsis-nn")
    elf = qemu.compile_project(result.project_dir)
    model = path.read_bytes()
    run_and_compare(elf, model, inspect_bytes(model, str(path)), result.arena.planned_bytes)


def test_missing_tflm_tree_names_the_variable(reference_models: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tinykeras.errors import ToolchainError

    monkeypatch.delenv("TINYKERAS_TFLM_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(shutil, "which", lambda _name: None)   # no git: the online path is unavailable
    with pytest.raises(ToolchainError, match="TINYKERAS_TFLM_DIR"):
        build(BuildOptions(board="pico", model=reference_models["ad01_int8"], out=tmp_path / "p"),
              log=lambda _m: None)
    assert not (tmp_path / "p").exists()


def test_tree_at_another_version_is_refused(reference_models: dict[str, Path], third_party_dir: Path,
                                            tmp_path: Path) -> None:
    from tinykeras.errors import ToolchainError

    with pytest.raises(ToolchainError, match="90b983c2b3f1480642e040bbd2ddb37b998f3424"):
        build(BuildOptions(board="pico", model=reference_models["ad01_int8"], out=tmp_path / "p",
                           tflm_dir=third_party_dir / "Chirale_TensorFlowLite-2.0.0"), log=lambda _m: None)
