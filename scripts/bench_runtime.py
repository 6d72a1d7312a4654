#!/usr/bin/env python3
"""Benchmark tinykeras' aot runtime against TFLite-Micro and write JSON.

For each model (the MLPerf Tiny reference models in ../shared/reference_models, a DS-CNN keyword spotter
built here with random weights, and every shipped models/*/model.tflite) it reports:
- MACs;
- aot arena bytes (the static plan) vs the smallest arena the TFLM host interpreter works with (bisection);
- aot weights/flash bytes (constant arrays of the generated C);
- host microseconds per inference of the aot C (shared library, -O2, no sanitizer) and of the TFLM host
  interpreter, measured in the same run, and their ratio;
- a bit-exactness check of both on the same random inputs;
- on qemu_m4 (when arm-none-eabi-gcc and qemu-system-arm are installed): instructions per inference,
  instructions per MAC, ELF .text/.rodata/.data/.bss (see tinykeras.qemu.measure).

Usage:
    .venv/bin/python scripts/bench_runtime.py [--out bench_runtime.json] [--no-qemu] [--runs 50]
Host timings depend on the machine and its load; instruction counts on qemu_m4 are deterministic.
"""

from __future__ import annotations

import argparse
import json
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
sys.path.insert(0, str(REPO / "tests"))  # aot_support: the DS-CNN builder shared with the tests

from tinykeras.inspect import inspect_bytes  # noqa: E402
from tinykeras.types import ModelInfo  # noqa: E402

REFERENCE_DIR = REPO.parent / "shared" / "reference_models"


def collect_models(include_dscnn: bool = True) -> dict[str, bytes]:
    """name -> .tflite bytes of every model to benchmark, in a stable order."""
    models: dict[str, bytes] = {}
    for path in sorted(REFERENCE_DIR.glob("*.tflite")):
        models[path.stem] = path.read_bytes()
    if include_dscnn:
        from aot_support import dscnn_tflite

        models["dscnn_kws_random"] = dscnn_tflite(seed=0)
    for path in sorted((REPO / "models").glob("*/model.tflite")):
        models[f"shipped_{path.parent.name}"] = path.read_bytes()
    return models


def measure_aot_memory(data: bytes, info: ModelInfo) -> dict[str, Any]:
    """Arena and constant-data bytes of the generated C, with the per-op plan."""
    from tinykeras import aot

    program = aot.generate(data, info)
    return {
        "arena_bytes": program.arena_bytes,
        "weights_bytes": program.weights_bytes,
        "activation_peak_bytes": info.activation_peak_bytes,
        "ops": [{"index": p.index, "op": p.op, "kernel": p.kernel, "scratch_bytes": p.scratch_bytes,
                 "in_place": p.in_place} for p in program.ops],
    }


_ARENA_CHILD = (
    "import sys\n"
    "from tinykeras.arena import measure_arena_bytes\n"
    "from tinykeras.inspect import load_model_info\n"
    "path = sys.argv[1]\n"
    "print(measure_arena_bytes(open(path, 'rb').read(), load_model_info(path)))\n"
)


def measure_tflm_arena(data: bytes, info: ModelInfo) -> dict[str, Any]:
    """Smallest arena_size the TFLM host interpreter allocates and invokes with (tinykeras.arena bisection).

    Runs in a child process: the TFLM host interpreter can crash on arenas that are too small.
    """
    with tempfile.TemporaryDirectory(prefix="tk-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        proc = subprocess.run([sys.executable, "-c", _ARENA_CHILD, str(path)], capture_output=True, text=True,
                              cwd=REPO, timeout=600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines and lines[-1].isdigit():
        return {"bytes": int(lines[-1]), "method": "smallest working arena_size, bisection (tinykeras.arena)"}
    return {"bytes": None, "error": f"measurement process exited with {proc.returncode}: {proc.stderr[-300:]}"}


def _random_input(info: ModelInfo, count: int, seed: int) -> np.ndarray:
    t = info.input_tensors()[0]
    rng = np.random.default_rng(seed)
    shape = (count,) + tuple(t.shape[1:])
    if t.dtype == "int8":
        return rng.integers(-128, 128, size=shape, dtype=np.int8)
    return rng.normal(0, 1, size=shape).astype(t.dtype)


def check_bit_exact(data: bytes, info: ModelInfo, samples: int = 20) -> dict[str, Any]:
    """aot (optimised host build) vs TFLM on the same random inputs."""
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.tflm_host import TflmRunner

    x = _random_input(info, samples, seed=7)
    ours = AotHostRunner(data, info).run_all(x)
    ref = TflmRunner(data, info).run_all(x)
    mismatches = int(np.sum(ours != ref))
    return {"samples": samples, "bit_exact": mismatches == 0, "mismatches": mismatches}


def measure_host_us(data: bytes, info: ModelInfo, runs: int) -> dict[str, Any]:
    """Host µs per inference: aot C (.so, -O2; a C loop of tk_invoke) and TFLM (interpreter.invoke())."""
    from tflite_micro import runtime

    from tinykeras.aot.host import AotHostRunner

    x = _random_input(info, 1, seed=3)
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
    tflm_us = best * 1e6
    return {"aot_us": round(aot_us, 2), "tflm_us": round(tflm_us, 2), "tflm_over_aot": round(tflm_us / aot_us, 2),
            "runs": runs, "method": "best of 3 batches; aot: C loop over tk_invoke, TFLM: Python loop over invoke()"}


def measure_qemu(data: bytes, info: ModelInfo, name: str) -> dict[str, Any]:
    """Instructions per inference of the aot firmware on qemu_m4 (tinykeras.qemu.measure).

    ``{"skipped": why}`` when arm-none-eabi-gcc/newlib or qemu-system-arm is missing; ``{"error": why}`` when
    the build or the run fails (reported, not hidden).
    """
    from tinykeras import qemu
    from tinykeras.errors import TinyKerasError, ToolchainError

    try:
        qemu.check_toolchain()
        qemu.check_qemu()
    except ToolchainError as exc:
        return {"skipped": str(exc)}
    with tempfile.TemporaryDirectory(prefix="tk-bench-") as tmp:
        try:
            return qemu.measure(data, info, Path(tmp), name=name, runs=3, warmup=1, timeout=300.0)
        except TinyKerasError as exc:
            return {"error": str(exc)}


def bench_model(name: str, data: bytes, runs: int, with_qemu: bool) -> dict[str, Any]:
    info = inspect_bytes(data, path=name)
    aot_mem = measure_aot_memory(data, info)
    tflm_arena = measure_tflm_arena(data, info)
    result: dict[str, Any] = {
        "model_bytes": len(data),
        "macs": info.macs,
        "ops": info.op_names,
        "aot": aot_mem,
        "tflm_arena": tflm_arena,
        "arena_ratio_aot_over_tflm": (round(aot_mem["arena_bytes"] / tflm_arena["bytes"], 3)
                                      if tflm_arena["bytes"] else None),
        "correctness": check_bit_exact(data, info),
        "host": measure_host_us(data, info, runs),
    }
    if with_qemu:
        result["qemu_m4"] = measure_qemu(data, info, name)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_runtime.json"))
    parser.add_argument("--runs", type=int, default=50, help="host inferences per timing batch")
    parser.add_argument("--no-qemu", action="store_true", help="skip the qemu_m4 instruction counts")
    parser.add_argument("--no-dscnn", action="store_true", help="skip the DS-CNN (needs TensorFlow to build)")
    parser.add_argument("--models", nargs="*", help="only these model names")
    args = parser.parse_args(argv)

    models = collect_models(include_dscnn=not args.no_dscnn)
    if args.models:
        models = {k: v for k, v in models.items() if k in set(args.models)}
    report: dict[str, Any] = {
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "models": {},
    }
    for name, data in models.items():
        print(f"[bench_runtime] {name} ...", file=sys.stderr, flush=True)
        report["models"][name] = bench_model(name, data, args.runs, with_qemu=not args.no_qemu)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"[bench_runtime] wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
