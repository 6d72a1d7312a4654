#!/usr/bin/env python3
"""Benchmark tinykeras' aot runtime against TFLite-Micro and write one JSON per run.

Models: the MLPerf Tiny reference models ($TINYKERAS_REFERENCE_MODELS, default tests/data/reference_models),
the MLPerf Tiny shapes built from Keras with random weights (tinykeras.bench_models: DS-CNN keyword
spotter, MobileNet-v1 0.25 96x96, MobileNetV2 0.35 96x96) and every shipped models/*/model.tflite.

Per model:
- MACs; aot arena (static plan), constant bytes, and on qemu_m4 (QEMU -icount shift=0): instructions per
  inference and per MAC, ELF flash/RAM (tinykeras.pipeline.measure);
- bit-exactness against the TFLM host interpreter: the host build under ASan + UBSan and the qemu_m4
  build (Cortex-M4 DSP kernels), ``--samples`` random inputs each (default 200);
- TFLM: the smallest arena the host interpreter works with (bisection), and TFLM reference / TFLM +
  CMSIS-NN on qemu_m4 through :func:`tflm_on_qemu` (the hook for the TFLM runner on qemu_m4). Until that
  runner exists the CMSIS-NN figures come from scripts/data/tflm_qemu_issue12.json (labelled as such);
- ratios aot / TFLM + CMSIS-NN (instructions, arena, flash) where both are known.

Usage:
    .venv/bin/python scripts/bench_runtime.py [-o bench_runtime.json] [--models NAME ...] [--samples 200]
        [--no-qemu] [--no-check] [--host-us]
    .venv/bin/python scripts/bench_runtime.py --table bench_runtime.json    # the README "Runtimes" table
Instruction counts on qemu_m4 are deterministic (resolution 40 instructions); host timings are not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinykeras.inspect import inspect_bytes  # noqa: E402
from tinykeras.types import ModelInfo  # noqa: E402

REFERENCE_DIR = Path(os.environ.get("TINYKERAS_REFERENCE_MODELS", REPO / "tests" / "data" / "reference_models"))
ISSUE_FIGURES = REPO / "scripts" / "data" / "tflm_qemu_issue12.json"
BUILT = ("dscnn_kws", "mobilenet_v1_025_96", "mobilenet_v2_035_96")
LABELS = {
    "ad01_int8": "MLPerf Tiny AD (`ad01_int8`)",
    "pretrainedResnet_quant": "ResNet-8 (`pretrainedResnet_quant`)",
    "dscnn_kws": "DS-CNN keyword spotter (MLPerf KWS shape)",
    "mobilenet_v1_025_96": "MobileNet-v1 0.25 96x96 (MLPerf VWW shape)",
    "mobilenet_v2_035_96": "MobileNetV2 0.35 96x96",
}


def collect_models(names: list[str] | None = None) -> dict[str, bytes]:
    """name -> .tflite bytes of every model to benchmark, in a stable order (built ones only if asked for
    or when no names are given: building needs TensorFlow)."""
    models: dict[str, bytes] = {}
    for path in sorted(REFERENCE_DIR.glob("*.tflite")):
        models[path.stem] = path.read_bytes()
    for name in BUILT:
        if names is None or name in names:
            from tinykeras.bench_models import build_tflite

            models[name] = build_tflite(name)
    for path in sorted((REPO / "models").glob("*/model.tflite")):
        models[f"shipped_{path.parent.name}"] = path.read_bytes()
    if names is not None:
        models = {k: v for k, v in models.items() if k in set(names)}
    return models


# ------------------------------------------------------------------------------------------ TFLM


def tflm_on_qemu(data: bytes, info: ModelInfo, name: str, kernels: str) -> dict[str, Any] | None:
    """TFLite-Micro on qemu_m4 with ``kernels`` ("reference" or "cmsis-nn"), built from the TFLM tree named by
    $TINYKERAS_TFLM_DIR (or ../shared/third_party/tflite-micro-90b983c) with TFLM's own Makefile flags and
    -DNDEBUG (`tinykeras build --board qemu_m4 --runtime tflm`). None when no tree is available."""
    import os

    from tinykeras.errors import ToolchainError
    from tinykeras.pipeline import measure

    tree = os.environ.get("TINYKERAS_TFLM_DIR") or str(REPO.parent / "shared" / "third_party" / "tflite-micro-90b983c")
    if not Path(tree).is_dir():
        return None
    with tempfile.TemporaryDirectory(prefix="tk-bench-tflm-") as tmp:
        try:
            out = measure(data, info, Path(tmp), name=name, runs=2, warmup=1, runtime="tflm", kernels=kernels,
                          tflm_dir=tree, timeout=900)
        except ToolchainError as exc:
            print(f"TFLM on qemu_m4 ({kernels}) unavailable: {exc}", file=sys.stderr)
            return None
    return {"instructions": out["instructions_per_inference"], "arena_bytes": out["arena_used"],
            "flash_bytes": out["sizes"]["flash"], "source": f"measured in this run (TFLM tree {tree})"}


def issue_figures(name: str) -> dict[str, Any] | None:
    """TFLM + CMSIS-NN figures of the issue's table for models of the same shape (instructions, arena)."""
    table = json.loads(ISSUE_FIGURES.read_text())
    entry = table["models"].get(name, {}).get("cmsis_nn")
    if entry is None:
        return None
    return {**entry, "flash_bytes": None, "source": table["source"]}


_ARENA_CHILD = (
    "import sys\n"
    "from tinykeras.arena import measure_arena_bytes\n"
    "from tinykeras.inspect import load_model_info\n"
    "path = sys.argv[1]\n"
    "print(measure_arena_bytes(open(path, 'rb').read(), load_model_info(path)))\n"
)


def measure_tflm_host_arena(data: bytes) -> dict[str, Any]:
    """Smallest arena_size the TFLM host interpreter allocates and invokes with (tinykeras.arena bisection),
    in a child process: the host interpreter can crash on arenas that are too small."""
    with tempfile.TemporaryDirectory(prefix="tk-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        proc = subprocess.run([sys.executable, "-c", _ARENA_CHILD, str(path)], capture_output=True, text=True,
                              cwd=REPO, timeout=1200, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines and lines[-1].isdigit():
        return {"bytes": int(lines[-1]), "method": "smallest working arena_size, bisection (tinykeras.arena)"}
    return {"bytes": None, "error": f"measurement process exited with {proc.returncode}: {proc.stderr[-300:]}"}


# ------------------------------------------------------------------------------------------- aot


def measure_aot(data: bytes, info: ModelInfo) -> dict[str, Any]:
    from tinykeras import aot

    program = aot.generate(data, info)
    return {
        "arena_bytes": program.arena_bytes,
        "weights_bytes": program.weights_bytes,
        "activation_peak_bytes": info.activation_peak_bytes,
        "ops": [{"index": p.index, "op": p.op, "kernel": p.kernel, "fast_path": p.fast_path,
                 "scratch_bytes": p.scratch_bytes, "in_place": p.in_place} for p in program.ops],
        "general_kernel_ops": [p.index for p in program.ops if not p.fast_path],
    }


def measure_qemu(data: bytes, info: ModelInfo, name: str) -> dict[str, Any]:
    """aot on qemu_m4: instructions per inference and ELF sizes; {"skipped"/"error": why} otherwise."""
    from tinykeras import pipeline
    from tinykeras.errors import TinyKerasError, ToolchainError
    from tinykeras.target import qemu

    try:
        qemu.check_toolchain()
        qemu.check_qemu()
    except ToolchainError as exc:
        return {"skipped": str(exc)}
    with tempfile.TemporaryDirectory(prefix="tk-bench-") as tmp:
        try:
            return pipeline.measure(data, info, Path(tmp), name=name, runs=2, warmup=1, timeout=600.0)
        except TinyKerasError as exc:
            return {"error": str(exc)}


def _inputs(info: ModelInfo, count: int, seed: int) -> np.ndarray:
    t = info.input_tensors()[0]
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(count,) + tuple(t.shape[1:]), dtype=np.int8)


def check_bit_exact(data: bytes, info: ModelInfo, samples: int, with_qemu: bool) -> dict[str, Any]:
    """aot vs the TFLM host interpreter on ``samples`` random inputs: host build under ASan + UBSan, and the
    qemu_m4 build (tinykeras.device_check)."""
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.errors import TinyKerasError
    from tinykeras.tflm_host import TflmRunner

    out: dict[str, Any] = {}
    if info.input_tensors()[0].dtype == "int8" and len(info.inputs) == 1:
        x = _inputs(info, samples, seed=7)
        ours = AotHostRunner(data, info, sanitize=True).run_all(x)
        ref = TflmRunner(data, info).run_all(x)
        mismatches = int(np.sum(ours != ref))
        out["host_asan_ubsan"] = {"samples": samples, "values": int(ref.size), "mismatches": mismatches,
                                  "bit_exact": mismatches == 0}
    if with_qemu:
        from tinykeras.device_check import check_on_qemu

        try:
            out["qemu_m4"] = check_on_qemu(data, info, samples=samples)
        except TinyKerasError as exc:
            out["qemu_m4"] = {"error": str(exc)}
    return out


def measure_host_us(data: bytes, info: ModelInfo, runs: int = 50) -> dict[str, Any]:
    """Host µs per inference: aot C (.so, -O2; a C loop of tk_invoke) and TFLM (interpreter.invoke())."""
    from tflite_micro import runtime

    from tinykeras.aot.host import AotHostRunner

    x = _inputs(info, 1, seed=3)
    aot_us = AotHostRunner(data, info).time_us(x, runs=runs)
    interp = runtime.Interpreter.from_bytes(data, arena_size=max(1 << 20, 8 * info.activation_peak_bytes))
    interp.set_input(np.ascontiguousarray(x), 0)
    interp.invoke()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(runs):
            interp.invoke()
        best = min(best, (time.perf_counter() - start) / runs)
    return {"aot_us": round(aot_us, 2), "tflm_us": round(best * 1e6, 2), "runs": runs,
            "method": "best of 3 batches; aot: C loop over tk_invoke, TFLM: Python loop over invoke()"}


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def bench_model(name: str, data: bytes, args: argparse.Namespace) -> dict[str, Any]:
    info = inspect_bytes(data, path=name)
    aot_block = measure_aot(data, info)
    result: dict[str, Any] = {"model_bytes": len(data), "macs": info.macs, "ops": info.op_names, "aot": aot_block}
    if not args.no_qemu:
        q = measure_qemu(data, info, name)
        aot_block["qemu_m4"] = q
        aot_block["instructions"] = q.get("instructions_per_inference")
        aot_block["instructions_per_mac"] = q.get("instructions_per_mac")
        aot_block["flash_bytes"] = (q.get("sizes") or {}).get("flash")
    tflm: dict[str, Any] = {"host_arena": measure_tflm_host_arena(data)}
    for kernels, key in (("reference", "reference"), ("cmsis-nn", "cmsis_nn")):
        measured = tflm_on_qemu(data, info, name, kernels)
        if measured is None and key == "cmsis_nn":
            measured = issue_figures(name)
        tflm[key] = measured
    result["tflm"] = tflm
    cmsis = tflm.get("cmsis_nn") or {}
    tflm_arena = cmsis.get("arena_bytes") or tflm["host_arena"].get("bytes")
    result["ratios"] = {
        "instructions_aot_over_tflm_cmsis_nn": _ratio(aot_block.get("instructions"), cmsis.get("instructions")),
        "instructions_aot_over_tflm_reference": _ratio(aot_block.get("instructions"),
                                                       (tflm.get("reference") or {}).get("instructions")),
        "arena_aot_over_tflm": _ratio(aot_block["arena_bytes"], tflm_arena),
        "arena_tflm_source": "TFLM + CMSIS-NN on qemu_m4" if cmsis.get("arena_bytes") else "TFLM host interpreter",
        "flash_aot_over_tflm_cmsis_nn": _ratio(aot_block.get("flash_bytes"), cmsis.get("flash_bytes")),
    }
    if not args.no_check:
        result["correctness"] = check_bit_exact(data, info, args.samples, with_qemu=not args.no_qemu)
    if args.host_us:
        result["host"] = measure_host_us(data, info)
    return result


def _fmt(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else ("–" if v is None else str(v))


def markdown_table(report: dict[str, Any]) -> str:
    """The README "Runtimes" table from a bench_runtime JSON."""
    rows = ["| model | MACs | aot instructions (per MAC) | TFLM + CMSIS-NN | aot / CMSIS-NN | aot arena | TFLM arena "
            "| arena aot / TFLM | aot flash (.tflite) | bit-exact (host, qemu_m4) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in report["models"].items():
        if name.startswith("shipped_"):
            continue
        aot, tflm, r = m["aot"], m["tflm"], m["ratios"]
        cmsis = tflm.get("cmsis_nn") or {}
        arena_t = cmsis.get("arena_bytes") or tflm["host_arena"].get("bytes")
        ins = aot.get("instructions")
        per = f" ({aot['instructions_per_mac']:.2f})" if aot.get("instructions_per_mac") else ""
        corr = m.get("correctness") or {}
        marks = []
        for key in ("host_asan_ubsan", "qemu_m4"):
            c = corr.get(key) or {}
            marks.append(f"{c['mismatches']} / {c['samples']}" if "mismatches" in c else "–")
        rows.append(f"| {LABELS.get(name, name)} | {_fmt(m['macs'])} | {_fmt(ins)}{per} | "
                    f"{_fmt(cmsis.get('instructions'))} | {_fmt(r['instructions_aot_over_tflm_cmsis_nn'])} | "
                    f"{_fmt(aot['arena_bytes'])} B | {_fmt(arena_t)} B | {_fmt(r['arena_aot_over_tflm'])} | "
                    f"{_fmt(aot.get('flash_bytes'))} B ({_fmt(m['model_bytes'])} B) | {marks[0]}, {marks[1]} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=Path("bench_runtime.json"))
    parser.add_argument("--models", nargs="*", help="only these model names")
    parser.add_argument("--samples", type=int, default=200, help="random inputs per bit-exactness check")
    parser.add_argument("--no-qemu", action="store_true", help="skip everything on qemu_m4")
    parser.add_argument("--no-check", action="store_true", help="skip the bit-exactness checks")
    parser.add_argument("--host-us", action="store_true", help="also time aot and TFLM on the host")
    parser.add_argument("--table", type=Path, help="print the README table of this JSON and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return 0

    models = collect_models(args.models)
    report: dict[str, Any] = {
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "command": " ".join(["scripts/bench_runtime.py", *(argv if argv is not None else sys.argv[1:])]),
        "notes": ["instructions: qemu_m4 (QEMU mps2-an386, -icount shift=0), resolution 40 instructions",
                  "TFLM + CMSIS-NN figures: see tflm.cmsis_nn.source per model"],
        "models": {},
    }
    for name, data in models.items():
        print(f"[bench_runtime] {name} ...", file=sys.stderr, flush=True)
        report["models"][name] = bench_model(name, data, args)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"[bench_runtime] wrote {args.out}", file=sys.stderr)
    print(markdown_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
