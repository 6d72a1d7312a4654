"""Rendered PlatformIO projects: golden trees, PlatformIO's own parser, the op resolver, determinism and the
measured arena. Compiling and running them against the real libraries: tests/test_firmware_libraries.py.

Refresh the golden trees after an intended template change with:
    TINYKERAS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_firmware.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_tool

from tinykeras.arena import MARGIN_MIN_BYTES, plan_arena, plan_from_measured
from tinykeras.boards import load_board
from tinykeras.inspect import inspect_bytes
from tinykeras.pipeline import BuildOptions, build
from tinykeras.resources import models_dir, templates_dir
from tinykeras.target.platformio import BENCH_SOURCES, RenderRequest, render_platformio

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
STUBS = HERE / "stubs"
BOARDS = ("esp32", "esp32s3", "nano33ble", "nucleo_l4r5zi", "pico", "pico2", "teensy41", "portenta_h7", "uno_r4_minima",
          "xiao_esp32c3", "esp32c6", "xiao_esp32s3", "nano_esp32")
UPDATE = os.environ.get("TINYKERAS_UPDATE_GOLDEN") == "1"
# Stored in the golden tree by hash only: the model array is large and is cgen's output (tests/test_cgen.py);
# the benchmark sources are copies of firmware_templates/runtime/bench (checked by test_bench_sources_copied).
HASH_ONLY = ("src/model_data.cc", "lib/tflm/")   # lib/tflm: TFLM sources copied from the tree
NOT_GOLDEN = tuple(f"src/{name}" for name in BENCH_SOURCES) + (".tinykeras-output",)  # fsutil's marker


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# TFLM copied from a tree: rendered only with $TINYKERAS_THIRD_PARTY
TREE_BOARDS = ("nucleo_l4r5zi", "pico", "pico2", "teensy41", "uno_r4_minima")
SMALL_RAM_BOARDS = ("uno_r4_minima",)   # 32 KB of RAM: ResNet-8 does not fit; the shipped sensor model does


@pytest.fixture(scope="module")
def projects(reference_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each PlatformIO board rendered (runtime tflm) for the ResNet-8 reference model."""
    third_party = os.environ.get("TINYKERAS_THIRD_PARTY")
    out = {}
    for board in BOARDS:
        if board in TREE_BOARDS and not third_party:
            continue
        target = tmp_path_factory.mktemp("fw") / board
        tflm_dir = Path(third_party) / "tflite-micro-90b983c" if third_party else None
        model = (models_dir() / "sensor" / "model.tflite" if board in SMALL_RAM_BOARDS
                 else reference_models["pretrainedResnet_quant"])
        build(BuildOptions(board=board, model=model, out=target,
                           tflm_dir=tflm_dir), log=lambda msg: None)
        out[board] = target
    return out


def _project(projects: dict[str, Path], board: str) -> Path:
    if board not in projects:
        pytest.skip(f"{board} copies TFLM from a tree: set TINYKERAS_THIRD_PARTY (CI: ../shared/third_party)")
    return projects[board]


@pytest.mark.parametrize("board", BOARDS)
def test_golden_tree(board: str, projects: dict[str, Path]) -> None:
    tree = _tree(_project(projects, board))
    golden_dir = GOLDEN / f"{board}-tflm"
    manifest = "".join(f"{hashlib.sha256(data).hexdigest()}  {rel}\n"
                       for rel, data in tree.items() if rel not in NOT_GOLDEN)
    stored = {rel: data for rel, data in tree.items() if rel not in NOT_GOLDEN and not rel.startswith(HASH_ONLY)}
    if UPDATE:
        shutil.rmtree(golden_dir, ignore_errors=True)
        for rel, data in stored.items():
            (golden_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden_dir / rel).write_bytes(data)
        (golden_dir / "MANIFEST.sha256").write_text(manifest)
    assert golden_dir.is_dir(), f"no golden tree {golden_dir}; run with TINYKERAS_UPDATE_GOLDEN=1"
    golden = _tree(golden_dir)
    assert golden.pop("MANIFEST.sha256").decode() == manifest, "file set or a hashed file changed"
    assert sorted(golden) == sorted(stored)
    for rel, data in stored.items():
        assert data == golden[rel], f"{rel} differs from {golden_dir / rel} (TINYKERAS_UPDATE_GOLDEN=1 refreshes)"


@pytest.mark.parametrize("board", BOARDS)
def test_platformio_ini_validates_offline(board: str, projects: dict[str, Path]) -> None:
    _project(projects, board)
    from platformio.project.config import ProjectConfig

    ini = projects[board] / "platformio.ini"
    assert ProjectConfig.lint(str(ini)) == {"errors": [], "warnings": []}
    config = ProjectConfig(str(ini))
    env = f"env:{board}"
    b = load_board(board)
    assert config.envs() == [board]
    assert config.get(env, "board") == b.platformio.board
    assert config.get(env, "monitor_speed") == b.baud
    lib = b.tflm.lib
    if lib.lib_dep:   # a registry library: pinned in lib_deps
        assert config.get(env, "lib_deps") == [lib.lib_dep]
    else:             # an ESP-IDF component (src/idf_component.yml) or TFLM copied into lib/tflm
        assert not config.has_option(env, "lib_deps")
        if lib.delivery["kind"] == "idf-component":
            yml = (projects[board] / "src" / "idf_component.yml").read_text()
            assert f'{lib.delivery["component"]}: "=={lib.delivery["component_version"]}"' in yml
        else:
            assert (projects[board] / "lib" / "tflm" / "library.json").is_file()
    flags = config.get(env, "build_flags") if config.has_option(env, "build_flags") else []
    sdkconfig = projects[board] / "sdkconfig.defaults"
    assert "-DNDEBUG" in flags or "CONFIG_COMPILER_OPTIMIZATION_ASSERTIONS_DISABLE=y" in sdkconfig.read_text()


def test_every_generated_file_has_the_banner(projects: dict[str, Path]) -> None:
    for root in projects.values():
        for rel, data in _tree(root).items():
            if rel.endswith(".json") or rel.startswith("lib/tflm/") or rel == ".tinykeras-output":
                continue  # JSON has no comments; lib/tflm holds TFLM's own sources, unchanged
            head = data[:400].decode()
            assert "Generated by tinykeras" in head and "SHA-256: " in head, rel


def test_bench_sources_copied(projects: dict[str, Path]) -> None:
    tree = _tree(projects["esp32"])
    for name in BENCH_SOURCES:
        source = (templates_dir() / "runtime" / "bench" / name).read_text()
        text = tree[f"src/{name}"].decode()
        assert text.startswith("// Generated by tinykeras") and text.endswith(source)


@pytest.mark.parametrize("model", ["ad01_int8", "pretrainedResnet_quant"])
def test_resolver_lists_exactly_the_model_ops(model: str, reference_models: dict[str, Path]) -> None:
    from tinykeras.arena import plan_arena
    from tinykeras.runtime.tflm import tflm_sources

    data = reference_models[model].read_bytes()
    info = inspect_bytes(data, str(reference_models[model]))
    library = load_board("nano33ble").tflm.lib
    sources = tflm_sources(data, info, library, plan_arena(data, info), lambda c: c, source_name=f"{model}.tflite")
    request = RenderRequest(board=load_board("nano33ble"), runtime=sources, model=data, info=info,
                            model_name=model, source_name=f"{model}.tflite")
    source = render_platformio(request)["src/tk_model_tflm.cpp"]
    entry = r"tflite::BuiltinOperator_(\w+), tflite::((?:\w+::)*Register_\w+)\(\), tflite::(Parse\w+)\}"
    registered = re.findall(entry, source)
    assert sorted(op for op, _r, _p in registered) == sorted(set(info.op_names))
    assert all(library.ops[op]["register"] == r and library.ops[op]["parser"] == p for op, r, p in registered)
    assert f"TkOp ops_[{len(set(info.op_names))}];" in source
    assert "alignas(16) uint8_t g_tensor_arena[TK_ARENA_BYTES];" in source


def test_identical_inputs_give_identical_bytes(reference_models: dict[str, Path], tmp_path: Path) -> None:
    trees = []
    for k in range(2):
        out = tmp_path / f"p{k}"
        build(BuildOptions(board="nano33ble", model=reference_models["ad01_int8"], out=out), log=lambda m: None)
        trees.append(_tree(out))
    assert trees[0] == trees[1]


def test_aot_project_has_no_lib_deps_when_available(reference_models: dict[str, Path], tmp_path: Path) -> None:
    aot = pytest.importorskip("tinykeras.aot", reason="the aot runtime (helper A) is not in this tree yet")
    if not hasattr(aot, "generate"):
        pytest.skip("tinykeras.aot.generate does not exist yet")
    out = tmp_path / "aot"
    result = build(BuildOptions(board="nucleo_l4r5zi", model=reference_models["ad01_int8"], runtime="aot", out=out),
                   log=lambda m: None)
    from platformio.project.config import ProjectConfig

    ini = (out / "platformio.ini").read_text()
    assert "lib_deps" not in ini
    assert ProjectConfig.lint(str(out / "platformio.ini")) == {"errors": [], "warnings": []}
    assert (out / "src" / "tk_model.c").exists() and not (out / "src" / "model_data.cc").exists()
    assert not (out / "src" / "tk_model_tflm.cpp").exists()
    assert result.arena.measured_bytes is None and result.arena.planned_bytes > 0


@pytest.mark.parametrize("model", ["ad01_int8", "pretrainedResnet_quant"])
def test_measured_arena_is_the_smallest_that_works(model: str, reference_models: dict[str, Path]) -> None:
    """Checked with fresh interpreters: the measured size allocates and invokes, 16 B less does not."""
    from tflite_micro import runtime

    data = reference_models[model].read_bytes()
    info = inspect_bytes(data, str(reference_models[model]))
    plan = plan_arena(data, info)
    assert plan.recorded_bytes is not None and plan.recorded_bytes <= plan.measured_bytes
    assert plan.measured_bytes >= info.activation_peak_bytes

    def allocates(size: int) -> bool:
        try:
            interp = runtime.Interpreter.from_bytes(data, arena_size=size)
            t = info.input_tensors()[0]
            interp.set_input(np.zeros(t.shape, dtype=t.dtype), 0)
            interp.invoke()
            return True
        except RuntimeError:
            return False

    assert allocates(plan.measured_bytes)
    assert not allocates(plan.measured_bytes - 16)
    assert plan.planned_bytes == plan_from_measured(plan.measured_bytes)
    assert plan.planned_bytes >= plan.measured_bytes + MARGIN_MIN_BYTES and plan.planned_bytes % 16 == 0


@requires_tool("g++", "gcc")
def test_rendered_aot_project_runs_on_the_host_with_an_arduino_shim(reference_models: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    """Renders the pico project (board glue, benchmark, aot model), links it with tests/stubs/arduino/
    arduino_host.cpp and runs it: the @tk records and MLPerf replies it prints must match the TFLM host
    interpreter on the benchmark's input pattern. Exercises the rendered glue; not a real board."""
    pytest.importorskip("tinykeras.aot")
    from mirrors import bench_input, mlperf_results

    from tinykeras.tflm_host import TflmRunner

    model_path = reference_models["ad01_int8"]
    out = tmp_path / "pico"
    build(BuildOptions(board="pico", model=model_path, runtime="aot", out=out, runs=3, warmup=1), log=lambda m: None)
    src, objs = out / "src", []
    for c_file in sorted(src.glob("*.c")):
        obj = tmp_path / f"{c_file.stem}.o"
        subprocess.run(["gcc", "-std=c99", "-O1", "-c", f"-I{src}", str(c_file), "-o", str(obj)], check=True)
        objs.append(str(obj))
    exe = tmp_path / "fw"
    subprocess.run(["g++", "-std=c++17", "-O1", f"-I{STUBS / 'arduino'}", f"-I{src}", str(src / "main.cpp"),
                    str(src / "tk_port_arduino.cpp"), str(STUBS / "arduino" / "arduino_host.cpp"), *objs,
                    "-o", str(exe)], check=True)
    proc = subprocess.run([str(exe)], input="name%results%", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    records = [json.loads(line[4:]) for line in lines if line.startswith("@tk ")]
    hello = records[0]
    info = inspect_bytes(model_path.read_bytes(), str(model_path))
    assert hello["event"] == "hello" and hello["board"] == "pico" and hello["runtime"] == "aot"
    assert hello["timer"] == "time_us_64" and hello["runs"] == 3 and hello["warmup"] == 1
    assert hello["model_sha256"] == info.sha256[:16] and hello["macs"] == info.macs
    runs = [r for r in records if r["event"] == "run"]
    assert [r["i"] for r in runs] == [0, 1, 2] and records[-1] == {"v": 1, "event": "done", "runs": 3}
    assert all("cycles" not in r for r in runs)  # the pico has no cycle counter
    t_in, t_out = info.input_tensors()[0], info.output_tensors()[0]
    x = np.frombuffer(bench_input(t_in.nbytes), dtype=np.int8).reshape((1, *t_in.shape[1:]))
    expected = TflmRunner(model_path.read_bytes(), info).invoke(x)[0].ravel()
    assert {(r["top"], r["score"]) for r in runs} == {(int(np.argmax(expected)), int(expected.max()))}
    assert "m-name-dut-[tinykeras pico]" in lines and lines.count("m-ready") >= 2  # name%, results%
    q = t_out.quantization
    assert mlperf_results(expected, q.scale, q.zero_point) in lines


def test_arena_bisection_survives_interpreter_crashes() -> None:
    """With some too-small arenas the TFLM host interpreter segfaults (shipped sensor model, ~8 KB):
    the bisection probes in child processes, so the build survives and still finds a working size."""
    from tinykeras.resources import models_dir

    path = models_dir() / "sensor" / "model.tflite"
    data = path.read_bytes()
    info = inspect_bytes(data, str(path))
    plan = plan_arena(data, info)
    assert plan.recorded_bytes is not None and plan.measured_bytes is not None
    assert plan.recorded_bytes <= plan.measured_bytes < plan.planned_bytes
