"""Measure `tinykeras tune`: the KWS search on nano33ble limits, and distributed vs single-process search.

    python scripts/bench_tune.py kws --data DIR [--trials 8 --epochs 25] [-o bench/tune_kws.json]
    python scripts/bench_tune.py distributed [--trials 6] [-o bench/tune_distributed.json]

``kws`` runs `tinykeras tune kws --board nano33ble` (resumable: its search directory is kept), builds the best
model for qemu_m4 with --run, and puts its held-out (test) accuracy, arena, flash and instructions next to the
shipped model's (models/kws) measured the same way on the same test split.

``distributed`` runs the same tiny search (kws --quick data, random oracle, same seed and trial budget) once in
one process and once as a chief + 2 workers on 127.0.0.1, and checks that every trial ran exactly once.
Writes JSON; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tinykeras(*args: str, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "tinykeras", *args], cwd=ROOT, stdout=out,
                            stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def run(*args: str, log: Path | None = None) -> tuple[int, float]:
    start = time.monotonic()
    proc = tinykeras(*args, log=log)
    return proc.wait(), round(time.monotonic() - start, 1)


def model_figures(tflite: Path, work: Path, test: Any) -> dict[str, Any]:
    """Held-out accuracy (int8, TFLM host), arena/flash as `build --board nano33ble` checks them, instructions."""
    import numpy as np

    from tinykeras.boards import load_board
    from tinykeras.inspect import read_model_bytes
    from tinykeras.tune import int8_scores, model_costs, search_limits

    data = read_model_bytes(tflite)
    limits = search_limits(load_board("nano33ble"))
    costs = model_costs(data, limits, instructions=True, work=work)
    x, y = test
    acc = float(np.mean(np.argmax(int8_scores(data, x), 1) == y))
    return {"test_accuracy_int8": round(acc, 4), "test_samples": int(len(y)), **costs}


def bench_kws(args: argparse.Namespace) -> dict[str, Any]:
    from tinykeras.recipes import get_recipe
    from tinykeras.resources import models_dir

    out = Path(args.search_dir)
    cmd = ["tune", "kws", "--board", "nano33ble", "--data", str(args.data), "--max-trials", str(args.trials),
           "--epochs", str(args.epochs), "--patience", str(args.patience), "--algorithm", args.algorithm,
           "-o", str(out)]
    rc, seconds = run(*cmd, log=out.with_suffix(".log"))
    report = json.loads((out / "tune.json").read_text()) if (out / "tune.json").exists() else None
    result: dict[str, Any] = {"command": "tinykeras " + " ".join(cmd), "exit_code": rc, "wall_s": seconds}
    if report is None:
        return result
    result["search"] = {k: report[k] for k in ("trials_total", "trials_completed", "trials_failed",
                                               "trials_feasible", "front_latency", "front_ram", "best", "limits")}
    result["trials"] = [{"trial_id": t["trial_id"], "status": t["status"], "feasible": t["feasible"],
                         "hyperparameters": t["hyperparameters"],
                         **{k: t["metrics"].get(k) for k in ("val_accuracy", "test_accuracy", "test_accuracy_float",
                                                             "arena_bytes", "ram_bytes", "flash_bytes",
                                                             "instructions", "latency_ms", "epochs", "seconds")}}
                        for t in report["trials"]]
    # the same held-out test split for the best and the shipped model (the shipped model's own front end)
    recipe = get_recipe("kws")
    source = recipe.search_source(Path(args.data), False, 0)
    with tempfile.TemporaryDirectory() as work:
        shipped = model_figures(models_dir() / "kws" / "model.tflite", Path(work) / "shipped",
                                _test(recipe.search_data(source, {})))
        result["shipped"] = {"model": "models/kws/model.tflite", **shipped}
        if report["best"] is not None:
            best = report["trials"][[t["trial_id"] for t in report["trials"]].index(report["best"])]
            best_fig = model_figures(out / "best" / "model.tflite", Path(work) / "best",
                                     _test(recipe.search_data(source, best["hyperparameters"])))
            result["best"] = {"trial_id": report["best"], "hyperparameters": best["hyperparameters"],
                              "val_accuracy_int8": best["metrics"]["val_accuracy"], **best_fig}
            build_dir = Path(work) / "build"
            rc_build, _ = run("build", "--board", "qemu_m4", "--model", str(out / "best" / "model.tflite"), "--run",
                              "--json", "-o", str(build_dir), log=Path(work) / "build.log")
            result["best_build_qemu_m4"] = {"exit_code": rc_build}
            if (build_dir / "bench.json").exists():
                bench = json.loads((build_dir / "bench.json").read_text())
                result["best_build_qemu_m4"].update({k: bench["qemu"].get(k) for k in (
                    "instructions_per_inference", "estimate_ms", "arena_bytes", "sizes")})
    result["target"] = {"test_accuracy": 0.90, "board": "nano33ble",
                        "met": bool(result.get("best") and result["best"]["test_accuracy_int8"] >= 0.90)}
    return result


def _test(data: Any) -> tuple[Any, Any]:
    return data.x_test, data.y_test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_distributed(args: argparse.Namespace) -> dict[str, Any]:
    base = ["tune", "kws", "--board", "nano33ble", "--quick", "--max-trials", str(args.trials), "--algorithm",
            "random", "--epochs", str(args.epochs), "--seed", "0"]
    work = Path(args.search_dir)
    single_dir, dist_dir = work / "single", work / "distributed"
    rc_single, single_s = run(*base, "-o", str(single_dir), log=work / "single.log")
    port = _free_port()
    oracle = f"127.0.0.1:{port}"
    start = time.monotonic()
    chief = tinykeras(*base, "-o", str(dist_dir), "--chief", "--oracle", oracle, log=work / "chief.log")
    time.sleep(2.0)
    workers = [tinykeras(*base, "-o", str(dist_dir), "--worker", "--oracle", oracle,
                         env={"KERASTUNER_TUNER_ID": f"tuner{k}"}, log=work / f"worker{k}.log") for k in (1, 2)]
    worker_rc = [w.wait() for w in workers]
    rc_chief = chief.wait()
    dist_s = round(time.monotonic() - start, 1)

    def trials(directory: Path) -> list[dict[str, Any]]:
        report = json.loads((directory / "tune.json").read_text()) if (directory / "tune.json").exists() else None
        return report["trials"] if report else []

    single, dist = trials(single_dir), trials(dist_dir)
    ids = [t["trial_id"] for t in dist]
    hashes = [json.dumps(t["hyperparameters"], sort_keys=True) for t in dist]
    ran_by = {}
    for k in (1, 2):
        log = (work / "chief.log").read_text() if (work / "chief.log").exists() else ""
        ran_by[f"tuner{k}"] = sum(1 for line in log.splitlines() if line.rstrip().endswith(f"-> tuner{k}"))
    return {
        "command_single": "tinykeras " + " ".join(base) + " -o DIR",
        "command_chief": "tinykeras " + " ".join(base) + f" -o DIR --chief --oracle {oracle}",
        "command_worker": ("KERASTUNER_TUNER_ID=tunerN tinykeras " + " ".join(base)
                           + f" -o DIR --worker --oracle {oracle}"),
        "single": {"exit_code": rc_single, "wall_s": single_s, "trials": len(single),
                   "completed": sum(t["status"] == "completed" for t in single)},
        "distributed": {"exit_code_chief": rc_chief, "exit_code_workers": worker_rc, "wall_s": dist_s,
                        "trials": len(dist), "completed": sum(t["status"] == "completed" for t in dist),
                        "trials_per_worker": ran_by},
        "same_trial_count": len(single) == len(dist) == args.trials,
        "no_duplicate_trial_ids": len(ids) == len(set(ids)),
        "no_duplicate_hyperparameters": len(hashes) == len(set(hashes)),
        "same_hyperparameters_as_single": [t["hyperparameters"] for t in single] == [t["hyperparameters"]
                                                                                       for t in dist],
        "same_figures_as_single": [_figures(t) for t in single] == [_figures(t) for t in dist],
        "speedup": round(single_s / dist_s, 2) if dist_s else None,
    }


def _figures(trial: dict[str, Any]) -> tuple[Any, ...]:
    m = trial["metrics"]
    return trial["trial_id"], m.get("val_accuracy"), m.get("instructions"), m.get("arena_bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["kws", "distributed"])
    parser.add_argument("--data", type=Path, help="kws: dataset directory (tinykeras data synth kws DIR)")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--algorithm", default="bayesian")
    parser.add_argument("--search-dir", default=None, help="where the searches run (kept, so a rerun resumes)")
    parser.add_argument("-o", "--out", type=Path, default=None)
    args = parser.parse_args()
    if args.what == "kws":
        if args.data is None:
            parser.error("kws needs --data DIR (tinykeras data synth kws DIR --per-word 200)")
        args.trials, args.epochs = args.trials or 8, args.epochs or 25
        args.search_dir = args.search_dir or str(ROOT / "bench" / "tune-kws")
        Path(args.search_dir).parent.mkdir(parents=True, exist_ok=True)
        result = bench_kws(args)
    else:
        args.trials, args.epochs = args.trials or 6, args.epochs or 2
        args.search_dir = args.search_dir or tempfile.mkdtemp(prefix="tinykeras-bench-tune-")
        result = bench_distributed(args)
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                         "load_average_1_5_15_min_at_end": [round(v, 2) for v in os.getloadavg()]}
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    out = args.out or ROOT / "bench" / f"tune_{args.what}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
