"""`tinykeras build`: the CLI contract, the checks before anything is written, PlatformIO invocation, and
the emulated board end to end."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import requires_tool

from tinykeras import pipeline
from tinykeras.cli import cli
from tinykeras.resources import boards_dir
from tinykeras.target import pio as toolchain


def _invoke(*args: str) -> object:
    return CliRunner().invoke(cli, ["build", *args])


def test_build_json_schema(reference_models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "proj"
    result = _invoke("--board", "esp32", "--model", str(reference_models["pretrainedResnet_quant"]),
                     "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("project_dir", "board", "runtime", "ops", "model_bytes", "arena_bytes"):
        assert key in data
    assert data["project_dir"] == str(out.resolve())
    assert (data["board"], data["runtime"]) == ("esp32", "tflm")
    assert data["ops"] == ["CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert data["model_bytes"] == reference_models["pretrainedResnet_quant"].stat().st_size
    assert data["arena_bytes"] == data["arena"]["planned_bytes"] > data["arena"]["measured_bytes"]
    saved = json.loads((out / "tinykeras_build.json").read_text())
    assert saved["arena"] == data["arena"] and saved["files"] == data["files"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                  if p.is_file() and p.name != ".tinykeras-output") == data["files"]
    # the planned arena is what the firmware allocates
    assert f"#define TK_ARENA_BYTES {data['arena_bytes']}" in (out / "src" / "tk_model_tflm.cpp").read_text()


def _small_board(tmp_path: Path, flash: int, ram: int) -> Path:
    text = (boards_dir() / "pico.toml").read_text().replace('name = "pico"', 'name = "tiny"')
    text = text.replace("flash_bytes = 2097152", f"flash_bytes = {flash}")
    text = text.replace("ram_bytes = 270336", f"ram_bytes = {ram}")
    text = text.replace("reserved_flash_bytes = 65536", "reserved_flash_bytes = 1024")
    text = text.replace("reserved_ram_bytes = 32768", "reserved_ram_bytes = 1024")
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_does_not_fit_flash_and_ram_before_writing(reference_models: dict[str, Path], tmp_path: Path) -> None:
    board = _small_board(tmp_path, flash=128 * 1024, ram=32 * 1024)
    out = tmp_path / "never"
    result = _invoke("--board", str(board), "--model", str(reference_models["ad01_int8"]), "-o", str(out))
    assert result.exit_code == 6, result.output
    message = result.stderr
    assert "does not fit board 'tiny'" in message and "flash needs" in message
    assert "276,976" in message and "130,048 B are free" in message  # model bytes; 128 KiB - 1 KiB
    assert not out.exists()
    big_model_small_ram = _small_board(tmp_path, flash=4 * 1024 * 1024, ram=8 * 1024)
    result = _invoke("--board", str(big_model_small_ram), "--model",
                     str(reference_models["pretrainedResnet_quant"]), "-o", str(out))
    assert result.exit_code == 6 and "RAM needs" in result.stderr and "arena 61,696" in result.stderr
    assert not out.exists()


def test_unknown_board_cli() -> None:
    result = _invoke("--board", "esp23", "--model", "x.tflite")
    assert result.exit_code == 5
    assert "unknown board 'esp23'; did you mean 'esp32'?" in result.stderr


def test_missing_default_model_asks_for_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(pipeline, "models_dir", lambda: tmp_path)
    result = _invoke("--board", "esp32")
    assert result.exit_code == 2
    assert "no shipped model for recipe 'kws'" in result.stderr and "--model" in result.stderr


def test_default_model_comes_from_the_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             reference_models: dict[str, Path]) -> None:
    (tmp_path / "sensor").mkdir()
    shutil.copy(reference_models["ad01_int8"], tmp_path / "sensor" / "model.tflite")
    (tmp_path / "sensor" / "settings.json").write_text(json.dumps({"labels": ["normal", "anomaly"]}))
    monkeypatch.setattr(pipeline, "models_dir", lambda: tmp_path)
    result = _invoke("--board", "nano33ble", "--recipe", "sensor", "-o", str(tmp_path / "p"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == "sensor"
    settings = (tmp_path / "p" / "src" / "model_settings.h").read_text()
    assert '#define TK_LABELS { "normal", "anomaly" }' in settings
    # the sensor recipe ships the MLPerf Tiny ad01 model itself: recognised by its SHA-256
    main = (tmp_path / "p" / "src" / "main.cpp").read_text()
    assert '/* mlperf_model */ "ad01"' in main and "/* input_format */ 2u" in main


def _with_unsupported_op(path: Path, tmp_path: Path) -> Path:
    """The model with its first operator code changed to LSH_PROJECTION, which neither runtime has."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    model.operatorCodes[0].builtinCode = schema.BuiltinOperator.LSH_PROJECTION
    model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.LSH_PROJECTION
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(builder.Output()))
    return bad


@pytest.mark.parametrize("runtime", ["tflm", "aot"])
def test_unsupported_op_is_named(runtime: str, reference_models: dict[str, Path], tmp_path: Path) -> None:
    if runtime == "aot":
        pytest.importorskip("tinykeras.aot")
    bad = _with_unsupported_op(reference_models["ad01_int8"], tmp_path)
    result = _invoke("--board", "esp32", "--runtime", runtime, "--model", str(bad), "-o", str(tmp_path / "p"))
    assert result.exit_code == 3, result.output
    assert "LSH_PROJECTION (operator #0)" in result.stderr
    assert not (tmp_path / "p").exists()


def _fake_pio(tmp_path: Path) -> Path:
    """A `pio` that only records its argv (one JSON list per line): tests argv construction, not a compile."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "pio_argv.jsonl"
    script = bindir / "pio"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


def test_pio_argv_with_a_fake_pio(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  reference_models: dict[str, Path]) -> None:
    """Argv construction only: the fake `pio` compiles nothing. The platform looks installed, and the aot
    runtime has no lib_deps, so nothing needs the network."""
    log = _fake_pio(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    core = tmp_path / "pio_core"
    (core / "platforms" / "espressif32").mkdir(parents=True)
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(core))
    out = tmp_path / "p"
    model = str(reference_models["ad01_int8"])
    result = _invoke("--board", "esp32", "--runtime", "aot", "--model", model, "-o", str(out), "--compile")
    assert result.exit_code == 0, result.output
    result = _invoke("--board", "esp32", "--runtime", "aot", "--model", model, "-o", str(out),
                     "--upload", "--port", "/dev/ttyUSB7", "--monitor")
    assert result.exit_code == 0, result.output
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    project = str(out.resolve())
    assert calls == [
        ["run", "-d", project],
        ["run", "-d", project, "-t", "upload", "--upload-port", "/dev/ttyUSB7"],
        ["device", "monitor", "-b", "115200", "-d", project, "-p", "/dev/ttyUSB7"],
    ]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_offline_platformio_fails_fast_and_keeps_the_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                             reference_models: dict[str, Path]) -> None:
    log = _fake_pio(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "empty_core"))
    monkeypatch.setattr(toolchain, "REGISTRY", ("127.0.0.1", _closed_port()))
    out = tmp_path / "p"
    start = time.monotonic()
    result = _invoke("--board", "nano33ble", "--model", str(reference_models["ad01_int8"]), "-o", str(out),
                     "--compile")
    assert time.monotonic() - start < 20
    assert result.exit_code == 7, result.output
    line = result.stderr.strip()
    assert "\n" not in line
    assert "platform 'nordicnrf52'" in line and "lib_deps" in line and "unreachable" in line
    assert (out / "platformio.ini").exists() and str(out.resolve()) in line
    assert not log.exists()  # pio itself was never started


def test_keras_model_is_quantized_first(tiny_cnn_path: Path, tiny_rep_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "k"
    result = _invoke("--board", "esp32", "--model", str(tiny_cnn_path), "--rep-data", str(tiny_rep_data),
                     "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "tiny_cnn" and data["model_source"] == "tiny_cnn.tflite"
    assert "DEPTHWISE_CONV_2D" in data["ops"]
    assert "tflite::Register_DEPTHWISE_CONV_2D()" in (out / "src" / "tk_model_tflm.cpp").read_text()
    noisy = _invoke("--board", "esp32", "--model", str(tiny_cnn_path), "-o", str(tmp_path / "k2"))
    assert noisy.exit_code == 0, noisy.output
    assert "random noise" in noisy.stderr


@requires_tool("arm-none-eabi-gcc")
def test_aot_platformio_sources_cross_compile(reference_models: dict[str, Path], tmp_path: Path) -> None:
    """The plain C of an aot PlatformIO project (model, kernels, benchmark) compiles for a Cortex-M4F."""
    import subprocess

    pytest.importorskip("tinykeras.aot")
    out = tmp_path / "aot"
    result = _invoke("--board", "nano33ble", "--runtime", "aot", "--model",
                     str(reference_models["pretrainedResnet_quant"]), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "lib_deps" not in (out / "platformio.ini").read_text()
    for c_file in sorted((out / "src").glob("*.c")):
        proc = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                               "-mfpu=fpv4-sp-d16", "-O2", "-Wall", "-c", str(c_file), "-o",
                               str(tmp_path / (c_file.stem + ".o"))], capture_output=True, text=True)
        assert proc.returncode == 0, f"{c_file.name}: {proc.stderr}"


@requires_tool("arm-none-eabi-gcc", "qemu-system-arm", "make")
def test_qemu_board_runs_through_the_pipeline(reference_models: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("tinykeras.aot")
    out = tmp_path / "q"
    result = _invoke("--board", "qemu_m4", "--model", str(reference_models["ad01_int8"]), "-o", str(out),
                     "--run", "--runs", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["runtime"] == "aot" and data["actions"] == ["compile", "run"]
    assert data["bench"]["complete"] and data["bench"]["runs"] == 2
    assert data["qemu"]["instructions_per_inference"] > data["bench"]["macs"] > 0
    saved = json.loads((out / "bench.json").read_text())
    assert saved["qemu"]["instructions_per_inference"] == data["qemu"]["instructions_per_inference"]
    assert saved["arena_bytes"] == data["arena_bytes"]


def test_build_modules_do_not_import_tensorflow() -> None:
    import subprocess

    code = ("import sys, tinykeras.boards, tinykeras.target.platformio, tinykeras.arena, tinykeras.target.pio, "
            "tinykeras.pipeline, tinykeras.commands.build; "
            "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_plan_build_is_builds_check_without_writing(reference_models: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """plan_build (what tune asks) runs build's checks and gives build's fit figures, writing nothing."""
    from tinykeras.errors import DoesNotFitError

    monkeypatch.chdir(tmp_path)
    model = reference_models["ad01_int8"]
    plan = pipeline.plan_build("qemu_m4", model.read_bytes(), name="ad01_int8")
    assert list(tmp_path.iterdir()) == []
    assert (plan.runtime.name, plan.board.name) == ("aot", "qemu_m4")
    result = _invoke("--board", "qemu_m4", "--model", str(model), "-o", str(tmp_path / "p"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fit"] == plan.fit and plan.flash_bytes == data["fit"]["flash_needed"]
    assert plan.arena_bytes == data["arena_bytes"] and plan.ram_bytes == data["fit"]["ram_needed"]
    board = pipeline.load_board(str(_small_board(tmp_path, flash=128 * 1024, ram=32 * 1024)))
    with pytest.raises(DoesNotFitError, match="does not fit board 'tiny'"):
        pipeline.plan_build(board, model.read_bytes(), runtime="aot")
