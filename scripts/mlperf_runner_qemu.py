"""Run the official MLPerf Tiny runner (mlcommons/tiny benchmark/runner, unmodified) against the emulated board.

Builds ``tinykeras build --board qemu_m4 --mlperf`` firmware for MODEL, starts QEMU with its UART on a pty, and
runs the runner's main.py in accuracy and/or performance mode with the runner's own device and test files.
The runner finds its DUT only by USB VID:PID; BRIDGE lists the pty as the L4R5ZI's port (0483:374B) and
nothing else, which is the only thing added. Writes one JSON: the runner's printed figures (Top 1%, AUC, median
throughput, per-window throughput) and where its session logs are. Emulated figures are instruction counts:
QEMU -icount shift=0 runs one guest instruction per ns, so "inf./sec." is 1e9 / instructions per inference.

    TINYKERAS_THIRD_PARTY=../shared/third_party python scripts/mlperf_runner_qemu.py \\
        --model tests/data/reference_models/ad01_int8.tflite --modes a,p -o out/mlperf-ad01.json
    # no dataset given: a small one in the official format is written (random inputs, every class once)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinykeras import mlperf_data, mlperf_models  # noqa: E402
from tinykeras.boards import load_board  # noqa: E402
from tinykeras.inspect import inspect_bytes  # noqa: E402
from tinykeras.pipeline import BuildOptions, build  # noqa: E402
from tinykeras.target import qemu  # noqa: E402

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
FIGURES = {"top1": r"Top 1% = ([0-9.]+)", "auc": r"AUC = ([0-9.]+)",
           "median_throughput": r"Median throughput is\s+([0-9.]+)"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--mlperf-model", help="the benchmark id of a stand-in (default: recognised by content)")
    ap.add_argument("--runtime", choices=["aot", "tflm"], default="aot")
    ap.add_argument("--kernels", choices=["reference", "cmsis-nn"], default=None)
    ap.add_argument("--dataset", type=Path, help="a datasets/ folder holding <id>/y_labels.csv (default: written)")
    ap.add_argument("--modes", default="a,p", help="runner modes, comma-separated: a (accuracy), p (performance)")
    ap.add_argument("-o", "--out", type=Path, default=Path("out/mlperf_runner_qemu.json"))
    args = ap.parse_args()
    third = Path(os.environ.get("TINYKERAS_THIRD_PARTY", "../shared/third_party"))
    runner = third / "mlperf-tiny-runner-1afd2c9" / "benchmark" / "runner"
    if not (runner / "main.py").is_file():
        sys.exit(f"error: {runner}/main.py not found; set TINYKERAS_THIRD_PARTY to the folder holding the runner")
    model = args.model.read_bytes()
    info = inspect_bytes(model)
    conv = mlperf_models.conventions(model, info, args.mlperf_model)
    if conv.id is None:
        sys.exit(f"error: {args.model} is not an MLPerf Tiny reference model; pass --mlperf-model ID for a stand-in")
    work = Path(tempfile.mkdtemp(prefix="tk-mlperf-"))
    datasets = args.dataset
    if datasets is None:
        datasets = work / "datasets"
        t_in, t_out = info.input_tensors()[0], info.output_tensors()[0]
        mlperf_data.write_dataset(datasets, conv, t_in.num_elements, t_out.shape[-1], seed=0,
                                  files=6 if conv.id == "ad01" else None)
    tflm_dir = third / "tflite-micro-90b983c" if args.runtime == "tflm" else None
    result = build(BuildOptions(board="qemu_m4", model=args.model, runtime=args.runtime, kernels=args.kernels,
                                tflm_dir=tflm_dir, runs=0, warmup=0, out=work / "fw", compile=True,
                                mlperf_model=args.mlperf_model), log=lambda m: print(m, file=sys.stderr))
    elf = result.project_dir / "build" / "firmware.elf"
    cmd = ["qemu-system-arm", *qemu.qemu_args(load_board("qemu_m4")), "-kernel", str(elf), "-serial", "pty"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    report = {"model": str(args.model), "mlperf_model": conv.id, "runtime": args.runtime, "kernels": args.kernels,
              "board": "qemu_m4", "time_unit": "instructions at 1 ns each (QEMU -icount shift=0)", "modes": {}}
    try:
        pty = re.search(r"(/dev/pts/\d+)", proc.stdout.readline() if proc.stdout else "")
        if not pty:
            sys.exit("error: QEMU did not announce its pty")
        devices = runner / ("devices_ad.yaml" if conv.id == "ad01" else "devices_kws_ic_vww.yaml")
        for mode in args.modes.split(","):
            script = runner / {"a": "tests_accuracy.yaml", "p": "tests_performance.yaml"}[mode]
            cwd = work / f"runner-{mode}"
            cwd.mkdir()
            env = dict(os.environ, TK_DUT_PTY=pty.group(1), TK_RUNNER_DIR=str(runner), MPLBACKEND="Agg")
            run = subprocess.run([sys.executable, "-c", BRIDGE, "-d", str(devices), "-t", str(script), "-s",
                                  str(datasets), "-m", mode], cwd=cwd, env=env, capture_output=True, text=True)
            log = run.stdout + run.stderr
            figures = {k: float(m[-1]) for k, rx in FIGURES.items() if (m := re.findall(rx, log))}
            windows = [float(v) for v in re.findall(r"Throughput   :\s+([0-9.]+)", log)]
            report["modes"][mode] = {"exit_code": run.returncode, **figures, "window_throughput": windows,
                                     "errors": re.findall(r"ERROR[^\n]*", log), "session": str(cwd / "sessions")}
    finally:
        proc.kill()
        proc.wait()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if all(m["exit_code"] == 0 for m in report["modes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
