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

Every emulated core (``--boards qemu_m3,qemu_m4,qemu_m7,qemu_m33,qemu_m55``; default qemu_m4): the qemu
figures, TFLM and the bit-exactness check run per board, side by side in one run, under
``models[name]["boards"][board]``. ``--models`` takes names, .tflite files or folders of .tflite files (real
MLPerf Tiny models, for example); ``--no-tflm`` skips the TFLM builds (one library archive per core and kernels).

Usage:
    .venv/bin/python scripts/bench_runtime.py [-o bench_runtime.json] [--models NAME|FILE|DIR ...]
        [--boards qemu_m4,qemu_m55] [--samples 200] [--no-qemu] [--no-tflm] [--no-check] [--host-us]
    .venv/bin/python scripts/bench_runtime.py --table bench_runtime.json    # the README "Runtimes" table
Instruction counts on the emulated boards are deterministic (resolution: one counter tick, 31.25-50
instructions); host timings are not.
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
BUILT = ("dscnn_kws", "mobilenet_v1_025_96", "mobilenet_v2_035_96", "streaming_ww")
LABELS = {
    "ad01_int8": "MLPerf Tiny AD (`ad01_int8`)",
    "pretrainedResnet_quant": "ResNet-8 (`pretrainedResnet_quant`)",
    "dscnn_kws": "DS-CNN keyword spotter (MLPerf KWS shape)",
    "mobilenet_v1_025_96": "MobileNet-v1 0.25 96x96 (MLPerf VWW shape)",
    "mobilenet_v2_035_96": "MobileNetV2 0.35 96x96",
    "streaming_ww": "streaming wake word DS-TCN (MLPerf shape)",
}


def collect_models(names: list[str] | None = None) -> dict[str, bytes]:
    """name -> .tflite bytes of every model to benchmark, in a stable order (built ones only if asked for
    or when no names are given: building needs TensorFlow). ``names`` may hold .tflite files and folders of
    them: those are benchmarked by file stem, beside the named ones."""
    files: dict[str, bytes] = {}
    for item in names or []:
        path = Path(item)
        if path.is_dir():
            files.update({p.stem: p.read_bytes() for p in sorted(path.glob("*.tflite"))})
        elif path.suffix == ".tflite" and path.is_file():
            files[path.stem] = path.read_bytes()
    if names is not None and files:
        names = [n for n in names if not Path(n).exists()]
        if not names:
            return files
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
    return {**models, **files}


# ------------------------------------------------------------------------------------------ TFLM


def tflm_on_qemu(data: bytes, info: ModelInfo, name: str, kernels: str,
                 board: str = "qemu_m4") -> dict[str, Any] | None:
    """TFLite-Micro on an emulated board with ``kernels`` ("reference" or "cmsis-nn"), built from the TFLM tree
    named by $TINYKERAS_TFLM_DIR (or ../shared/third_party/tflite-micro-90b983c) with TFLM's own Makefile flags
    and -DNDEBUG (`tinykeras build --board BOARD --runtime tflm`). None when no tree is available."""
    import os

    from tinykeras.boards import load_board
    from tinykeras.errors import SerialError, ToolchainError
    from tinykeras.pipeline import measure

    tree = os.environ.get("TINYKERAS_TFLM_DIR") or str(REPO.parent / "shared" / "third_party" / "tflite-micro-90b983c")
    if not Path(tree).is_dir():
        return None
    with tempfile.TemporaryDirectory(prefix="tk-bench-tflm-") as tmp:
        try:
            out = measure(data, info, Path(tmp), name=name, runs=2, warmup=1, runtime="tflm", kernels=kernels,
                          tflm_dir=tree, timeout=900, board=load_board(board))
        except (ToolchainError, SerialError) as exc:   # a failed build or run is a result, said in the JSON
            print(f"TFLM on {board} ({kernels}) unavailable: {exc}", file=sys.stderr)
            return {"instructions": None, "failed": str(exc).splitlines()[0][:300]}
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


def measure_qemu(data: bytes, info: ModelInfo, name: str, board: str = "qemu_m4") -> dict[str, Any]:
    """aot on an emulated board: instructions per inference and ELF sizes; {"skipped"/"error": why} otherwise."""
    from tinykeras import pipeline
    from tinykeras.boards import load_board
    from tinykeras.errors import TinyKerasError, ToolchainError
    from tinykeras.target import qemu

    try:
        qemu.check_toolchain()
        qemu.check_qemu()
    except ToolchainError as exc:
        return {"skipped": str(exc)}
    with tempfile.TemporaryDirectory(prefix="tk-bench-") as tmp:
        try:
            return pipeline.measure(data, info, Path(tmp), name=name, runs=2, warmup=1, timeout=600.0,
                                    board=load_board(board))
        except TinyKerasError as exc:
            return {"error": str(exc)}


def _inputs(info: ModelInfo, count: int, seed: int) -> np.ndarray:
    t = info.input_tensors()[0]
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(count,) + tuple(t.shape[1:]), dtype=np.int8)


def check_bit_exact(data: bytes, info: ModelInfo, samples: int, with_qemu: bool, board: str = "qemu_m4",
                    host: bool = True) -> dict[str, Any]:
    """aot vs the TFLM host interpreter on ``samples`` random inputs: host build under ASan + UBSan (``host``),
    and the build for ``board`` (tinykeras.device_check)."""
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.errors import TinyKerasError
    from tinykeras.tflm_host import TflmRunner

    out: dict[str, Any] = {}
    if host and info.input_tensors()[0].dtype == "int8" and len(info.inputs) == 1:
        x = _inputs(info, samples, seed=7)
        ours = AotHostRunner(data, info, sanitize=True).run_all(x)
        ref = TflmRunner(data, info).run_all(x)
        mismatches = int(np.sum(ours != ref))
        out["host_asan_ubsan"] = {"samples": samples, "values": int(ref.size), "mismatches": mismatches,
                                  "bit_exact": mismatches == 0}
    if with_qemu:
        from tinykeras.device_check import check_on_qemu

        try:
            out[board] = check_on_qemu(data, info, samples=samples, board=board)
        except TinyKerasError as exc:
            out[board] = {"error": str(exc)}
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


def bench_board(name: str, data: bytes, info: ModelInfo, aot_block: dict[str, Any], tflm_host_arena: dict[str, Any],
                board: str, args: argparse.Namespace) -> dict[str, Any]:
    """One board's figures: aot on it, TFLM reference and + CMSIS-NN on it, ratios, bit-exactness."""
    out: dict[str, Any] = {"aot": {}}
    q = measure_qemu(data, info, name, board)
    out["aot"] = {"qemu": q, "instructions": q.get("instructions_per_inference"),
                  "instructions_per_mac": q.get("instructions_per_mac"),
                  "flash_bytes": (q.get("sizes") or {}).get("flash"),
                  "arena_bytes": q.get("arena_bytes") or aot_block["arena_bytes"]}  # the board's plan (its core's)
    tflm: dict[str, Any] = {}
    for kernels, key in (("reference", "reference"), ("cmsis-nn", "cmsis_nn")):
        wanted = not args.no_tflm and kernels in args.kernels
        measured = tflm_on_qemu(data, info, name, kernels, board) if wanted else None
        if measured is None and key == "cmsis_nn" and board == "qemu_m4":
            measured = issue_figures(name)
        tflm[key] = measured
    out["tflm"] = tflm
    cmsis = tflm.get("cmsis_nn") or {}
    tflm_arena = cmsis.get("arena_bytes") or tflm_host_arena.get("bytes")
    out["ratios"] = {
        "instructions_aot_over_tflm_cmsis_nn": _ratio(out["aot"]["instructions"], cmsis.get("instructions")),
        "instructions_aot_over_tflm_reference": _ratio(out["aot"]["instructions"],
                                                       (tflm.get("reference") or {}).get("instructions")),
        "arena_aot_over_tflm": _ratio(out["aot"]["arena_bytes"], tflm_arena),
        "arena_tflm_source": f"TFLM + CMSIS-NN on {board}" if cmsis.get("arena_bytes") else "TFLM host interpreter",
        "flash_aot_over_tflm_cmsis_nn": _ratio(out["aot"]["flash_bytes"], cmsis.get("flash_bytes")),
    }
    if not args.no_check:
        out["correctness"] = check_bit_exact(data, info, args.samples, with_qemu=True, board=board, host=False)
    return out


def bench_model(name: str, data: bytes, args: argparse.Namespace) -> dict[str, Any]:
    info = inspect_bytes(data, path=name)
    aot_block = measure_aot(data, info)
    result: dict[str, Any] = {"model_bytes": len(data), "macs": info.macs, "ops": info.op_names, "aot": aot_block}
    host_arena = measure_tflm_host_arena(data)
    result["tflm_host_arena"] = host_arena
    if not args.no_check:
        result["correctness"] = check_bit_exact(data, info, args.samples, with_qemu=False)
    if not args.no_qemu:
        result["boards"] = {board: bench_board(name, data, info, aot_block, host_arena, board, args)
                            for board in args.boards}
    if args.host_us:
        result["host"] = measure_host_us(data, info)
    return result


def _fmt(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else ("–" if v is None else str(v))


def _per_board(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{board: figures} of one model; a JSON written before --boards existed holds qemu_m4 at the top level."""
    if "boards" in m:
        return m["boards"]
    corr = m.get("correctness") or {}
    return {"qemu_m4": {"aot": m["aot"], "tflm": m["tflm"], "ratios": m["ratios"],
                        "correctness": {"qemu_m4": corr.get("qemu_m4")}}}


def _mark(c: dict[str, Any] | None) -> str:
    return f"{c['mismatches']} / {c['samples']}" if c and "mismatches" in c else "–"


def markdown_table(report: dict[str, Any]) -> str:
    """The README "Runtimes" table from a bench_runtime JSON: one row per model and emulated core."""
    rows = ["| model | core | MACs | aot instructions (per MAC) | TFLM + CMSIS-NN | aot / CMSIS-NN | aot arena "
            "| TFLM arena | arena aot / TFLM | aot flash (.tflite) | flash aot / CMSIS-NN | bit-exact (host, board) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in report["models"].items():
        if name.startswith("shipped_"):
            continue
        host = _mark((m.get("correctness") or {}).get("host_asan_ubsan"))
        host_arena = (m.get("tflm_host_arena") or m.get("tflm", {}).get("host_arena") or {}).get("bytes")
        boards = _per_board(m)
        order = [k for k in report.get("boards", ()) if k in boards] or list(boards)   # the run's --boards order
        for board, b in ((k, boards[k]) for k in order):
            aot, r = b["aot"], b["ratios"]
            cmsis = b["tflm"].get("cmsis_nn") or {}
            per = f" ({aot['instructions_per_mac']:.2f})" if aot.get("instructions_per_mac") else ""
            rows.append(
                f"| {LABELS.get(name, name)} | `{board}` | {_fmt(m['macs'])} | {_fmt(aot.get('instructions'))}{per} "
                f"| {_fmt(cmsis.get('instructions'))} | {_fmt(r['instructions_aot_over_tflm_cmsis_nn'])} "
                f"| {_fmt(aot.get('arena_bytes') or m['aot']['arena_bytes'])} B "
                f"| {_fmt(cmsis.get('arena_bytes') or host_arena)} B "
                f"| {_fmt(r['arena_aot_over_tflm'])} | {_fmt(aot.get('flash_bytes'))} B ({_fmt(m['model_bytes'])} B) "
                f"| {_fmt(r.get('flash_aot_over_tflm_cmsis_nn'))} "
                f"| {host}, {_mark((b.get('correctness') or {}).get(board))} |")
    return "\n".join(rows)


def merge_base(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The report a ``--merge`` run starts from: ``old``'s models, boards in their order plus the new ones, and
    its commands (``command`` and ``runs``) followed by this run's, in ``runs``.

    >>> merge_base({"command": "a", "boards": ["qemu_m4"], "models": {"x": {}}},
    ...            {"command": "b", "boards": ["qemu_m55", "qemu_m4"], "models": {}, "notes": []})["runs"]
    ['a', 'b']
    """
    runs = list(old.get("runs") or [old.get("command", "")])
    boards = list(old.get("boards", [])) + [b for b in new["boards"] if b not in old.get("boards", [])]
    return {**new, "command": new["command"], "runs": [*runs, new["command"]], "boards": boards,
            "models": dict(old.get("models", {}))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=Path("bench_runtime.json"))
    parser.add_argument("--models", nargs="*", help="only these model names, or .tflite files / folders of them")
    parser.add_argument("--boards", default="qemu_m4",
                        help="comma-separated emulated boards (qemu_m3,qemu_m4,qemu_m7,qemu_m33,qemu_m55)")
    parser.add_argument("--no-tflm", action="store_true", help="skip the TFLM builds on the boards")
    parser.add_argument("--kernels", default="reference,cmsis-nn",
                        help="comma-separated TFLM kernel sets to build on the boards (reference,cmsis-nn)")
    parser.add_argument("--samples", type=int, default=200, help="random inputs per bit-exactness check")
    parser.add_argument("--no-qemu", action="store_true", help="skip everything on the emulated boards")
    parser.add_argument("--no-check", action="store_true", help="skip the bit-exactness checks")
    parser.add_argument("--host-us", action="store_true", help="also time aot and TFLM on the host")
    parser.add_argument("--table", type=Path, help="print the README table of this JSON and exit")
    parser.add_argument("--merge", action="store_true",
                        help="update --out in place: this run's models x boards replace theirs, the rest is kept, "
                             "and the command joins the file's list of runs")
    args = parser.parse_args(argv)
    args.boards = [b.strip() for b in args.boards.split(",") if b.strip()]
    args.kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return 0

    models = collect_models(args.models)
    report: dict[str, Any] = {
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "command": " ".join(["scripts/bench_runtime.py", *(argv if argv is not None else sys.argv[1:])]),
        "notes": ["instructions: QEMU -icount shift=0 on each board's machine (qemu_m3 mps2-an385, qemu_m4 "
                  "mps2-an386, qemu_m7 mps2-an500, qemu_m33 mps2-an505, qemu_m55 mps3-an547), resolution one "
                  "counter tick (40, 50 or 31.25 instructions)",
                  "TFLM + CMSIS-NN figures: see boards.<board>.tflm.cmsis_nn.source per model"],
        "boards": args.boards,
        "models": {},
    }
    if args.merge and args.out.exists():
        report = merge_base(json.loads(args.out.read_text()), report)
    for name, data in models.items():
        print(f"[bench_runtime] {name} ...", file=sys.stderr, flush=True)
        result = bench_model(name, data, args)
        if name in report["models"]:  # --merge: this run's boards replace theirs, the other boards stay
            result["boards"] = {**report["models"][name].get("boards", {}), **result["boards"]}
        report["models"][name] = result
        args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")   # what is measured so far
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"[bench_runtime] wrote {args.out}", file=sys.stderr)
    print(markdown_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
