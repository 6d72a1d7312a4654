"""What a search reports: every trial's figures, the Pareto fronts, the best (``best/``), the summary."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from tinykeras import fsutil
from tinykeras.boards import Board
from tinykeras.errors import DoesNotFitError, TuneError
from tinykeras.tune.costs import INSTRUCTIONS_PER_MAC_ESTIMATE, SearchLimits, describe_violations, violations
from tinykeras.tune.options import PARETO_PNG, PROJECT, REPORT_JSON, TRIAL_FILES, TuneOptions
from tinykeras.tune.plot import plot_pareto


def collect(oracle: Any, options: TuneOptions, limits: SearchLimits, out: Path) -> dict[str, Any]:
    """Every trial the oracle knows, with hyperparameters and measured figures, plus the fronts and the best."""
    trials = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        metrics = {name: _last(trial.metrics, name) for name in trial.metrics.metrics}
        values = {k: v for k, v in trial.hyperparameters.values.items()}
        record: dict[str, Any] = {"trial_id": trial_id, "status": trial.status.lower(), "hyperparameters": values,
                                  "metrics": metrics}
        if trial.status == "COMPLETED":
            broken = violations({"ram_bytes": metrics.get("ram_bytes"), "flash_bytes": metrics.get("flash_bytes"),
                                 "latency_ms": metrics.get("latency_ms")}, limits)
            record["feasible"] = not broken and bool(metrics.get("feasible"))
            record["violations"] = broken
            record["trained"] = bool(metrics.get("trained"))
            if metrics.get("trained") and "instructions" in metrics:
                record["instructions_method"] = ("measured on qemu_m4" if metrics.get("instructions_measured")
                                                 else f"estimated: {INSTRUCTIONS_PER_MAC_ESTIMATE} instructions/MAC")
        else:
            record["feasible"] = False
            record["message"] = (trial.message or "").strip().splitlines()[-1][:300] if trial.message else None
        trials.append(record)
    objective = f"val_{options.objective}"
    feasible = [t for t in trials if t["feasible"]]
    best = max(feasible, key=lambda t: (t["metrics"][objective], -t["metrics"].get("instructions", 0),
                                        -t["metrics"]["ram_bytes"], -int(t["trial_id"])), default=None)
    trained = [t for t in trials if t["status"] == "completed" and t.get("trained")]
    return {
        "recipe": options.recipe, "board": options.board, "algorithm": options.algorithm,
        "objective": objective, "objective_note": "int8 model on the TFLite-Micro host interpreter, validation split",
        "model_fn": options.model_fn, "limits": limits.to_json(),
        "trials_total": len(trials), "trials_completed": sum(t["status"] == "completed" for t in trials),
        "trials_failed": sum(t["status"] in ("failed", "invalid") for t in trials),
        "trials_feasible": len(feasible),
        "front_latency": pareto_front(trained, objective, "instructions"),
        "front_ram": pareto_front(trained, objective, "ram_bytes"),
        "best": best["trial_id"] if best else None,
        "closest": None if best else closest_trial(trials),
        "trials": trials, "project_dir": str(out / PROJECT),
    }


def _last(tracker: Any, name: str) -> float | None:
    history = tracker.get_history(name)
    return float(history[-1].value[0]) if history else None


def pareto_front(trials: list[dict[str, Any]], objective: str, cost: str) -> list[str]:
    """Trial ids not dominated in (higher objective, lower cost), by increasing cost."""
    points = [(t["metrics"].get(cost), t["metrics"].get(objective), t["trial_id"]) for t in trials]
    points = sorted((c, -o, i) for c, o, i in points if c is not None and o is not None)
    front, best = [], -math.inf
    for _cost, neg_o, trial_id in points:
        if -neg_o > best:
            front.append(trial_id)
            best = -neg_o
    return front


def closest_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The infeasible trial nearest to the limits (smallest worst ratio)."""
    candidates = [t for t in trials if t.get("violations")]
    if not candidates:
        return None
    t = min(candidates, key=lambda t: max(v["ratio"] for v in t["violations"]))
    return {"trial_id": t["trial_id"], "violations": t["violations"], "hyperparameters": t["hyperparameters"]}


def write_outputs(report: dict[str, Any], out: Path, board: Board) -> Path | None:
    """tune.json, pareto.png and (when a trial fits) best/ — each written atomically."""
    plot_pareto(report, out / PARETO_PNG)
    best_dir = None
    if report["best"] is not None:
        trial_dir = Path(report["project_dir"]) / f"trial_{report['best']}"
        missing = [f for f in TRIAL_FILES if not (trial_dir / f).exists()]
        if missing:
            report["best_dir_note"] = (f"trial {report['best']} ran on another machine: copy its {trial_dir} "
                                       f"({', '.join(missing)}) to make best/")
        else:
            best_dir = out / "best"
            with fsutil.atomic_output_dir(best_dir) as tmp:
                for name in TRIAL_FILES:
                    shutil.copyfile(trial_dir / name, tmp / name)
                record = json.loads((trial_dir / "metrics.json").read_text())
                record.update({"trial_id": report["best"], "recipe": report["recipe"], "board": report["board"],
                               "limits": report["limits"], "objective": report["objective"]})
                (tmp / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    fsutil.write_text_atomic(out / REPORT_JSON, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return best_dir


def summary_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per trial for the final table."""
    objective = report["objective"]
    rows = []
    for t in report["trials"]:
        m = t["metrics"]
        acc = f"{m[objective]:.4f}" if m.get(objective) is not None else "-"
        fit = "yes" if t["feasible"] else (describe_violations(t["violations"]) if t.get("violations")
                                           else t["status"])
        rows.append((t["trial_id"] + (" *" if t["trial_id"] == report["best"] else ""), acc,
                     f"{int(m['ram_bytes']):,}" if m.get("ram_bytes") else "-",
                     f"{int(m['flash_bytes']):,}" if m.get("flash_bytes") else "-",
                     f"{int(m['instructions']):,}" if m.get("instructions") else "-", fit))
    return rows


def require_feasible(report: dict[str, Any]) -> None:
    """Raise DoesNotFitError naming the closest trial's figures when no trial met the limits."""
    if report["best"] is not None:
        return
    closest = report.get("closest")
    if closest is None:
        raise TuneError(f"no trial completed ({report['trials_failed']} failed); see {REPORT_JSON} for the messages")
    raise DoesNotFitError(
        f"no trial fits board '{report['board']}' within the limits: the closest, trial {closest['trial_id']} "
        f"({', '.join(f'{k}={v}' for k, v in closest['hyperparameters'].items() if not k.startswith('tuner/'))}), "
        f"needs {describe_violations(closest['violations'])}. Loosen --max-ram/--max-flash/--max-latency-ms, "
        "search smaller models (--space), or pick a larger board")
