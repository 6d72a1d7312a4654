#!/usr/bin/env python3
"""Benchmark the optimization pipeline on a recipe (default: kws) and write the stage tables as JSON.

Runs, each from the same float model:
  int8            post-training full-integer int8 alone
  prune50_qat     50 % magnitude sparsity (polynomial) + sparsity-preserving QAT + int8
  prune75_qat     75 % magnitude sparsity (polynomial) + sparsity-preserving QAT + int8
  prune75_ptq     75 % magnitude sparsity + post-training int8 (no QAT), for comparison (not run by default)
  channels_half   channel pruning searched to half the MACs + fine-tune + int8

The float model is models/<recipe>/model.keras when it exists (the shipped model), else one trained here with
the recipe API. Data: the recipe's own splits (tinykeras.train.dataset_path + recipe.load, seed 0), so the
test split is the one the shipped model never saw. With --qemu, each int8 model also runs on the emulated
board (aot runtime, qemu_m4) and the instruction counts are reported.

    nice .venv/bin/python scripts/bench_optimize.py -o results/bench_optimize.json
    nice .venv/bin/python scripts/bench_optimize.py --quick --epochs 1 --runs int8,channels_half
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGETS = {"int8": 0.5, "prune75_qat": 1.0, "prune75_ptq": 1.0, "channels_half": 1.5}  # allowed drop in points vs float


def run_options(name: str, epochs: int, qat_epochs: int, batch_size: int) -> Any:
    from tinykeras.optimize import OptimizeOptions

    common = {"epochs": epochs, "qat_epochs": qat_epochs, "batch_size": batch_size}
    return {
        "int8": OptimizeOptions(),
        "prune50_qat": OptimizeOptions(prune=0.5, qat=True, **common),
        "prune75_qat": OptimizeOptions(prune=0.75, qat=True, **common),
        "prune75_ptq": OptimizeOptions(prune=0.75, **common),  # for comparison: post-training int8, no QAT
        "channels_half": OptimizeOptions(structured="channels", target_macs=0.5, **common),
    }[name]


def load_float_model(recipe_name: str, quick: bool, seed: int) -> tuple[Any, str]:
    from tinykeras.optimize import load_keras_model

    shipped = REPO / "models" / recipe_name / "model.keras"
    if shipped.exists() and not quick:
        return load_keras_model(shipped), str(shipped.relative_to(REPO))
    from tinykeras.train import train

    with tempfile.TemporaryDirectory(prefix="bench-opt-") as tmp:
        result = train(recipe_name, Path(tmp) / "model", quick=quick, seed=seed, verbose=0)
    return result.model, f"trained here (quick={quick}, seed={seed})"


def shipped_data_dir(recipe_name: str, quick: bool) -> Path | None:
    """The dataset the shipped model was trained on, when models/<recipe>/metrics.json names one that exists."""
    metrics = REPO / "models" / recipe_name / "metrics.json"
    if quick or not metrics.exists():
        return None
    path = json.loads(metrics.read_text()).get("data")
    return Path(path) if isinstance(path, str) and Path(path).is_dir() else None


def qemu_latency(tflite: bytes, work: Path) -> dict[str, Any]:
    """Instructions per inference on qemu_m4 with the aot runtime, or why it could not run."""
    try:
        from tinykeras.inspect import inspect_bytes
        from tinykeras.pipeline import measure

        out = measure(tflite, inspect_bytes(tflite), work, runs=3, warmup=1)
        return {"instructions": out.get("runs"), "summary": {k: v for k, v in out.items() if k != "runs"}}
    except Exception as exc:  # report, do not hide: the JSON says why there is no latency
        return {"error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="kws")
    parser.add_argument("--runs", default="int8,prune50_qat,prune75_qat,channels_half")
    parser.add_argument("--epochs", type=int, default=12, help="fine-tuning epochs (pruning, channels)")
    parser.add_argument("--qat-epochs", type=int, default=3, help="QAT epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="quick dataset and a freshly trained quick model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path,
                        help="recipe dataset directory; default: the one named in models/<recipe>/metrics.json, "
                             "else the synthesised cache")
    parser.add_argument("--qemu", action="store_true", help="also measure each int8 model on qemu_m4 (aot)")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "results" / "bench_optimize.json")
    args = parser.parse_args()

    from tinykeras.optimize import dataset_from_recipe, optimize
    from tinykeras.recipes import get_recipe
    from tinykeras.train import dataset_path

    recipe = get_recipe(args.recipe)
    data_dir = args.data or shipped_data_dir(args.recipe, args.quick)
    rdata = recipe.load(dataset_path(recipe, data_dir, args.quick, args.seed), args.quick, args.seed)
    data = dataset_from_recipe(rdata)
    model, origin = load_float_model(args.recipe, args.quick, args.seed)
    report: dict[str, Any] = {
        "recipe": args.recipe, "model": origin, "data": rdata.source,
        "epochs": args.epochs, "qat_epochs": args.qat_epochs, "batch_size": args.batch_size, "seed": args.seed,
        "quick": args.quick,
        "samples": {"train": len(data.x_train), "val": len(data.x_val), "test": len(data.x_test)},
        "fine_tuning": data.note + "; Adam, seeded", "runs": {},
    }
    for name in args.runs.split(","):
        start = time.monotonic()
        print(f"[bench_optimize] {name} ...", file=sys.stderr, flush=True)
        result = optimize(model, data, run_options(name, args.epochs, args.qat_epochs, args.batch_size),
                          log=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
        stages = [s.to_json() for s in result.stages]
        float_stage, int8_stage = stages[0], stages[-1]
        entry: dict[str, Any] = {
            "seconds": round(time.monotonic() - start, 1),
            "metric": result.task.metric, "eval_split": result.eval_split, "eval_samples": result.eval_samples,
            "stages": stages,
            "drop_points": round(100 * (float_stage["value"] - int8_stage["value"]), 2),
            "macs_ratio": round(int8_stage["macs"] / float_stage["macs"], 4),
            "gzip_ratio_vs_float32": round(int8_stage["gzip_bytes"] / float_stage["gzip_bytes"], 4),
        }
        if name in TARGETS:
            entry["target_drop_points"] = TARGETS[name]
            entry["target_met"] = entry["drop_points"] <= TARGETS[name] and (
                name != "channels_half" or entry["macs_ratio"] <= 0.5)
        if args.qemu:
            with tempfile.TemporaryDirectory(prefix="bench-opt-qemu-") as work:
                entry["qemu_m4_aot"] = qemu_latency(result.tflite, Path(work))
        shipped = REPO / "models" / args.recipe / "metrics.json"
        if shipped.exists() and not args.quick:  # same model + same test split => the same float metric
            entry["shipped_float_metric"] = json.loads(shipped.read_text()).get("value")
        report["runs"][name] = entry
        print(f"  {name}: float {float_stage['value']:.4f} -> int8 {int8_stage['value']:.4f} "
              f"({entry['drop_points']:+.2f} pt drop), MACs x{entry['macs_ratio']}, "
              f"{int8_stage['tflite_bytes']} B / gzip {int8_stage['gzip_bytes']} B", file=sys.stderr, flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # after every run: partial results survive
    print(json.dumps({k: {"drop_points": v["drop_points"], "macs_ratio": v["macs_ratio"],
                          "target_met": v.get("target_met")} for k, v in report["runs"].items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
