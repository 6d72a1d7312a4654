"""The official MLPerf Tiny runner (mlcommons/tiny benchmark/runner, unmodified, from $TINYKERAS_THIRD_PARTY)
against firmware built with ``tinykeras build --board qemu_m4 --mlperf``, in accuracy and performance mode, on
small datasets the project writes in the official formats. Every result the board printed must equal what the
TFLM host interpreter computes on the same input after the reference conversions (uint8 - 128, float32
quantized, the ad01 anomaly score), and the accuracy and AUC the runner prints must equal the host's; so must
``tinykeras bench --protocol mlperf --dataset``.

The one bridge: the runner finds its DUT only by USB VID:PID (DeviceManager.scan), and QEMU's UART is a pty.
BRIDGE below lists that pty as the L4R5ZI's ST-LINK port (0483:374B) and reports no other USB device; the
runner's own code does everything else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tinykeras import mlperf_data, mlperf_models
from tinykeras.inspect import inspect_bytes

RUNNER = "mlperf-tiny-runner-1afd2c9"
REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (scripts/setup.sh)")

# Runs the runner's main.py with QEMU's pty ($TK_DUT_PTY) enumerated as the DUT's USB serial port.
BRIDGE = """
import os, runpy, sys
import usb.core
from serial.tools import list_ports, list_ports_common
def comports(include_links=False):
    port = list_ports_common.ListPortInfo(os.environ["TK_DUT_PTY"], skip_link_detection=True)
    port.vid, port.pid, port.description = 0x0483, 0x374B, "QEMU mps2-an386 UART0 (pty)"
    return [port]
list_ports.comports = comports
usb.core.find = lambda find_all=False, **kw: iter(()) if find_all else None
runner = os.environ["TK_RUNNER_DIR"]
sys.path.insert(0, runner)
sys.argv = [os.path.join(runner, "main.py"), *sys.argv[1:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

# Performance mode with the official script's shape (5 windows: download, infer N W) and small N, so the test
# stays short; the official tests_performance.yaml asks for windows of at least 10 s.
PERF_SCRIPT = """{model}:
  name: tinykeras_short_performance
  model: {model}
  truth_file: y_labels.csv
  script:
    - loop 5:
      - download
      - infer 3 1
"""


@pytest.fixture(scope="module")
def runner_dir() -> Path:
    value = os.environ.get("TINYKERAS_THIRD_PARTY")
    if not value:
        pytest.skip("TINYKERAS_THIRD_PARTY is unset: set it to ../shared/third_party (it holds the official "
                    f"MLPerf Tiny runner, {RUNNER})")
    path = Path(value) / RUNNER / "benchmark" / "runner"
    if not (path / "main.py").is_file():
        pytest.fail(f"{path}/main.py is missing: TINYKERAS_THIRD_PARTY={value} has no {RUNNER}")
    pytest.importorskip("usb.core", reason="the runner imports pyusb (pip install -e .[dev])")
    return path


@contextlib.contextmanager
def qemu_pty(elf: Path) -> Iterator[str]:
    """QEMU running ``elf`` with UART0 on a pty; yields the pty's path."""
    from tinykeras.boards import load_board
    from tinykeras.target import qemu

    cmd = ["qemu-system-arm", *qemu.qemu_args(load_board("qemu_m4")), "-kernel", str(elf), "-serial", "pty"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        found = re.search(r"(/dev/pts/\d+)", line)
        assert found, f"QEMU did not announce its pty: {line!r}"
        yield found.group(1)
    finally:
        proc.kill()
        proc.wait()


def run_runner(runner: Path, pty: str, mode: str, datasets: Path, model: str, work: Path) -> tuple[str, list]:
    """The official runner in ``mode`` ("a" or "p") against the board on ``pty``; its log and results.json."""
    devices = runner / ("devices_ad.yaml" if model == "ad01" else "devices_kws_ic_vww.yaml")
    work.mkdir(parents=True, exist_ok=True)
    if mode == "a":
        script = runner / "tests_accuracy.yaml"
    else:
        script = work / "tests_performance_short.yaml"
        script.write_text(PERF_SCRIPT.format(model=model))
    env = dict(os.environ, TK_DUT_PTY=pty, TK_RUNNER_DIR=str(runner), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", BRIDGE, "-d", str(devices), "-t", str(script), "-s", str(datasets),
                           "-m", mode], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    sessions = sorted((work / "sessions").glob("*/results.json"))
    assert sessions, log[-3000:]
    return log, json.loads(sessions[-1].read_text())


def host_results(model: bytes, conv: mlperf_models.Conventions, files: list[mlperf_data.DatasetFile]) -> list:
    """What the board must print for every input of every file: the TFLM host interpreter's outputs."""
    from tinykeras.tflm_host import TflmRunner

    info = inspect_bytes(model)
    t_in, t_out = info.input_tensors()[0], info.output_tensors()[0]
    q_in, q_out = t_in.quantization, t_out.quantization
    tflm = TflmRunner(model, info)
    out = []
    for f in files:
        lines = []
        for seg in f.segments:
            x = mlperf_models.load_tensor(conv, seg, t_in.num_elements, q_in.scale, q_in.zero_point)
            y = np.asarray(tflm.invoke(x.reshape(t_in.shape))[0]).ravel()
            line = mlperf_models.results_line(conv, y, q_out.scale, q_out.zero_point, seg)
            lines.append([float(v) for v in line[len("m-results-["):-1].split(",")])
        out.append(lines)
    return out


def build_firmware(model_path: Path, runtime: str, mlperf_id: str | None, out: Path, third_party: Path) -> Path:
    from tinykeras.pipeline import BuildOptions, build

    result = build(BuildOptions(board="qemu_m4", model=model_path, runtime=runtime, runs=0, warmup=0, out=out,
                                mlperf_model=mlperf_id, compile=True,
                                kernels="cmsis-nn" if runtime == "tflm" else None,
                                tflm_dir=third_party / "tflite-micro-90b983c" if runtime == "tflm" else None),
                   log=lambda _m: None)
    return result.project_dir / "build" / "firmware.elf"


def _printed(log: str, what: str) -> float:
    found = re.findall(rf"ulp-mlperf: {re.escape(what)} = ([0-9.]+)", log)
    assert found, f"the runner printed no '{what}':\n{log[-2000:]}"
    return float(found[-1])


# One representative model per benchmark the runner supports, aot and TFLM (CMSIS-NN: the archive the qemu_m4
# TFLM test compiles already). kws01 is not in the repository: the shipped DS-CNN keyword spotter, same
# [1,49,10,1] -> [1,12] tensors, stands in for it with --mlperf-model kws01.
# `tinykeras bench --protocol mlperf --dataset` runs on the cheapest (every input is a few dozen `db` commands).
CASES = [
    ("kws01", "models/kws/model.tflite", "aot", "kws01", True),
    ("ic01", "tests/data/reference_models/pretrainedResnet_quant.tflite", "aot", None, False),
    ("ad01", "tests/data/reference_models/ad01_int8.tflite", "aot", None, False),
    ("ad01", "tests/data/reference_models/ad01_int8.tflite", "tflm", None, False),
]


@pytest.mark.parametrize(("mlperf_id", "model_rel", "runtime", "requested", "ours"), CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_official_runner_on_qemu(mlperf_id: str, model_rel: str, runtime: str, requested: str | None, ours: bool,
                                 runner_dir: Path, tmp_path: Path) -> None:
    model_path = REPO / model_rel
    model = model_path.read_bytes()
    info = inspect_bytes(model)
    conv = mlperf_models.conventions(model, info, requested)
    assert conv.id == mlperf_id
    t_in, t_out = info.input_tensors()[0], info.output_tensors()[0]
    datasets = tmp_path / "datasets"
    # ad01: 5 files (performance mode's loop takes 5) of 6 frames, 2 overlapping windows each
    directory = mlperf_data.write_dataset(datasets, conv, t_in.num_elements, t_out.shape[-1], seed=7,
                                          files=5 if mlperf_id == "ad01" else None, ad_frames=6)
    files = mlperf_data.read_dataset(directory)
    want = host_results(model, conv, files)
    want_score = mlperf_data.score(want, [f.label for f in files])

    elf = build_firmware(model_path, runtime, requested, tmp_path / "fw", runner_dir.parents[2])
    with qemu_pty(elf) as pty:
        log, results = run_runner(runner_dir, pty, "a", datasets, mlperf_id, tmp_path / "acc")
        assert f"Device model retrieved: {mlperf_id}" in log
        assert "emulator" in re.search(r"Device name retrieved: (.*)", log).group(1)
        got = [r["infer"]["results"] for r in results if "infer" in r]
        assert got == [seg for f in want for seg in f]  # every input, in the runner's order
        assert _printed(log, "Top 1%") == round(want_score["accuracy"], 1)
        assert _printed(log, "AUC") == round(want_score["auc"], 3)

        log, results = run_runner(runner_dir, pty, "p", datasets, mlperf_id, tmp_path / "perf")
        windows = [r["infer"] for r in results if "infer" in r]
        assert len(windows) == 5 and "ERROR 1" not in log
        for k, w in enumerate(windows):  # performance mode sends the first input (ad01: window) of file k
            assert w["results"] == want[k % len(want)][0]
            assert w["elapsed_time"] > 0 and w["throughput"] == pytest.approx(3 / (w["elapsed_time"] / 1e6))
    if ours:
        check_bench_dataset(elf, directory, mlperf_id, want, want_score)


def check_bench_dataset(elf: Path, directory: Path, mlperf_id: str, want: list, want_score: dict) -> None:
    """`tinykeras bench --protocol mlperf --dataset` gives the board's results and the runner's figures."""
    from click.testing import CliRunner

    from tinykeras.boards import load_board
    from tinykeras.cli import cli
    from tinykeras.target import qemu

    out = directory.parent.parent / "bench.json"
    with qemu.qemu_session(elf, load_board("qemu_m4")) as url:
        res = CliRunner().invoke(cli, ["bench", "--protocol", "mlperf", "--port", url, "--dataset",
                                       str(directory.parent), "--timeout", "60", "-o", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert got["model"] == mlperf_id and out.with_suffix(".log").stat().st_size > 0
    assert [f["results"] for f in got["files"]] == want
    assert (got["accuracy"], got["auc"]) == (want_score["accuracy"], want_score["auc"])
    assert f"Top 1% = {want_score['accuracy']:2.1f}" in res.output
