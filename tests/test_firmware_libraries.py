"""Every PlatformIO board's generated project, compiled with the library its board pins (the real trees in
$TINYKERAS_THIRD_PARTY), linked with the stand-in ports and run on the emulator of its instruction set where this
machine has one (tests/standin.py emulator_for), else on QEMU mps2-an386: outputs bit-exact with the TFLM host
interpreter, arena used <= planned. Also qemu_m4 --runtime tflm.

What is compiled for what, and run where (also in docs/boards.md):
- pico: its own Cortex-M0+ flags, run on `microbit` (Cortex-M0, 16 KB RAM) when the model fits there, else on
  mps2-an386; nano33ble, nucleo_l4r5zi, uno_r4_minima: Cortex-M4F on mps2-an386.
- teensy41, portenta_h7: Cortex-M7 (fpv5-d16) on mps2-an500; pico2: Cortex-M33 (fpv5-sp-d16) on mps2-an505.
- xiao_esp32c3, esp32c6: esp-tflite-micro 1.3.8 + esp-nn's plain-C kernels for RV32IMC (C: Debian's
  riscv64-unknown-elf-gcc + picolibc; C++: PyPI ziglang's clang with libc++ headers) on qemu-system-riscv32 virt.
- esp32, esp32s3, xiao_esp32s3: esp-tflite-micro 1.3.8 with esp-nn 1.2.0's plain-C kernels (what a plain ESP32
  runs), built for a Cortex-M4F stand-in: no Xtensa compiler here, and the ESP32-S3 assembly kernels are not compiled.
- No real Arduino core or ESP-IDF: tests/ports stands in for the few calls the glue makes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import requires_tool
from standin import build_standin, emulator_for, run_and_compare

from tinykeras.boards import load_board
from tinykeras.inspect import inspect_bytes
from tinykeras.pipeline import BuildOptions, build
from tinykeras.resources import models_dir

pytestmark = [requires_tool("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm"), pytest.mark.slow]

BOARDS = ("esp32", "esp32s3", "nano33ble", "nucleo_l4r5zi", "pico")
SHIPPED = ("kws", "gesture", "sensor")
REFERENCE = ("ad01_int8", "pretrainedResnet_quant")
# The boards added for issue #20, one representative model each in CI (scripts/bench_boards.py runs every model).
# New library archives compiled cold: TFLM for the M7 and for the M33, esp-tflite-micro for RV32IMC; uno_r4_minima
# and xiao_esp32s3 share the M4 archives above. portenta_h7 (Chirale for the M7, a fourth archive) runs in
# scripts/bench_boards.py only, to keep the cold CI run within its budget.
NEW_BOARDS = {"pico2": "kws", "teensy41": "kws", "uno_r4_minima": "sensor", "xiao_esp32c3": "kws",
              "esp32c6": "gesture", "xiao_esp32s3": "gesture", "nano_esp32": "gesture"}
# Where each board's build runs (the aot gesture model fits the microbit).
EMULATORS = {"pico": "microbit", "pico2": "mps2-an505", "teensy41": "mps2-an500", "portenta_h7": "mps2-an500",
             "xiao_esp32c3": "virt", "esp32c6": "virt", "uno_r4_minima": "mps2-an386", "esp32": "mps2-an386",
             "esp32s3": "mps2-an386", "xiao_esp32s3": "mps2-an386", "nano_esp32": "mps2-an386",
             "nano33ble": "mps2-an386",
             "nucleo_l4r5zi": "mps2-an386"}


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
    print(f"{board} {model} {lib.id} on {figures['emulator']}: arena used {figures['arena_used']} of "
          f"{figures['arena_planned']} planned {figures['note']}")
    return figures


def _require_emulator(board: str) -> None:
    if emulator_for(load_board(board)).riscv:
        pytest.importorskip("ziglang", reason="RISC-V C++ needs PyPI ziglang (pip install -e .[dev])")
        for tool in ("riscv64-unknown-elf-gcc", "qemu-system-riscv32"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} not found (apt: gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf "
                            "qemu-system-misc; scripts/setup.sh installs them)")


@pytest.mark.parametrize("board", sorted(EMULATORS))
def test_aot_project_runs_on_the_boards_emulator(board: str, tmp_path: Path) -> None:
    """The board's glue, benchmark and aot model (no library: seconds, no archive) compiled with its core's flags
    and run on its emulator, bit-exact with the TFLM host interpreter."""
    _require_emulator(board)
    path = models_dir() / "gesture" / "model.tflite"
    result = build(BuildOptions(board=board, model=path, runtime="aot", runs=2, warmup=1, out=tmp_path / "project"),
                   log=lambda _m: None)
    standin = build_standin(result.project_dir, load_board(board), None, None, tmp_path, tmp_path / "standin")
    model = path.read_bytes()
    figures = run_and_compare(standin, model, inspect_bytes(model, str(path)), result.arena.planned_bytes)
    assert figures["emulator"] == EMULATORS[board]


@pytest.mark.parametrize("board", sorted(NEW_BOARDS))
def test_new_board_runs_on_its_own_instruction_set(board: str, reference_models: dict[str, Path],
                                                   third_party_dir: Path, tmp_path: Path) -> None:
    _require_emulator(board)
    figures = test_board_project_builds_and_runs_bit_exact(board, NEW_BOARDS[board], reference_models,
                                                           third_party_dir, tmp_path)
    assert figures["emulator"] == EMULATORS[board]


def test_pico_models_that_fit_run_on_the_cortex_m0(reference_models: dict[str, Path], third_party_dir: Path,
                                                   tmp_path: Path) -> None:
    figures = test_board_project_builds_and_runs_bit_exact("pico", "sensor", reference_models, third_party_dir,
                                                           tmp_path)
    assert figures["emulator"] == "microbit" and not figures["note"]


def test_every_board_names_its_emulator() -> None:
    from tinykeras.boards import list_boards

    for b in list_boards():
        if b.kind == "platformio":
            assert emulator_for(b).name == EMULATORS[b.name], b.name
            assert b.proven_on.split()[0].replace("riscv32", "virt") == EMULATORS[b.name], b.name


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


def test_profile_tflm_and_aot_per_layer_on_the_same_counter(reference_models: dict[str, Path],
                                                           third_party_dir: Path, tmp_path: Path) -> None:
    """`tinykeras profile --runtime tflm`: TFLM's MicroProfiler events read the same counter as aot's per-op
    reads, so the two runtimes compare layer by layer; the ops add up to most of the benchmark build's count."""
    from click.testing import CliRunner

    from tinykeras.cli import cli

    path = reference_models["ad01_int8"]
    rows = {}
    for runtime in ("tflm", "aot"):
        extra = ["--kernels", "cmsis-nn", "--tflm-dir", str(third_party_dir / "tflite-micro-90b983c")] \
            if runtime == "tflm" else []
        res = CliRunner().invoke(cli, ["profile", str(path), "--board", "qemu_m4", "--runtime", runtime, "--json",
                                       "-o", str(tmp_path / runtime), *extra])
        assert res.exit_code == 0, res.output
        prof = json.loads(res.stdout[res.stdout.index("{"):])
        assert prof["runtime"] == runtime and len(prof["ops"]) == 10
        total = sum(o["count"] for o in prof["ops"])
        assert all(o["count"] > 0 for o in prof["ops"])
        assert 0.8 * prof["benchmark_total"] <= total <= prof["profile_total"], (runtime, total, prof)
        rows[runtime] = [o["count"] for o in prof["ops"]]
    assert sum(rows["aot"]) < sum(rows["tflm"])   # the side-by-side the profile is for
    res = CliRunner().invoke(cli, ["profile", str(path), "--kernels", "cmsis-nn"])
    assert res.exit_code != 0 and "apply to --runtime tflm" in res.output


def test_fused_lstm_runs_on_tflm_cmsis_nn_within_its_planned_arena(third_party_dir: Path, tmp_path: Path) -> None:
    """A tf_keras LSTM(128) over 128 steps (TFLM's fused UNIDIRECTIONAL_SEQUENCE_LSTM) on qemu_m4 with CMSIS-NN:
    the arena plan adds what CMSIS-NN's LSTM keeps beyond the host's reference kernel (the library file's
    [[kernel_arena]]); without it AllocateTensors failed on the board. Bit-exact, arena used <= planned."""
    import numpy as np

    import tinykeras
    from tinykeras.keras_io import tf_keras
    from tinykeras.target import qemu

    k = tf_keras()
    model = k.Sequential([k.Input((128, 8)), k.layers.LSTM(128), k.layers.Dense(4, activation="softmax")])
    conv = tinykeras.quantize(model, np.random.default_rng(0).normal(size=(32, 128, 8)).astype(np.float32))
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in conv.info.op_names
    path = tmp_path / "lstm.tflite"
    path.write_bytes(conv.data)
    result = build(BuildOptions(board="qemu_m4", model=path, runtime="tflm", kernels="cmsis-nn", runs=2, warmup=1,
                                out=tmp_path / "project", tflm_dir=third_party_dir / "tflite-micro-90b983c"),
                   log=lambda _m: None)
    assert "+4,096 B for operator #0 UNIDIRECTIONAL_SEQUENCE_LSTM" in result.arena.margin_rule
    elf = qemu.compile_project(result.project_dir)
    figures = run_and_compare(elf, conv.data, conv.info, result.arena.planned_bytes)
    assert figures["arena_used"] > result.arena.measured_bytes   # the target needs more than the host measured


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
