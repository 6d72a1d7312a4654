"""The search: Keras Tuner's oracle, the tuner, resume checks and the run that writes the outputs."""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinykeras import fsutil
from tinykeras.boards import load_board
from tinykeras.errors import DataError, ToolchainError
from tinykeras.tune.costs import search_limits
from tinykeras.tune.distributed import consecutive_failures, serve_chief
from tinykeras.tune.options import MAX_CONSECUTIVE_FAILURES, PROJECT, TuneOptions
from tinykeras.tune.progress import Progress
from tinykeras.tune.report import collect, write_outputs
from tinykeras.tune.space import load_space
from tinykeras.tune.trial import SearchContext, tuner_class


def make_oracle(options: TuneOptions) -> Any:
    import warnings

    import keras_tuner as kt

    warnings.filterwarnings("ignore", module="sklearn")  # Gaussian-process fit notes, one per trial
    objective = kt.Objective("score", direction="max")
    common = {"objective": objective, "seed": options.seed + 1,
              "max_consecutive_failed_trials": MAX_CONSECUTIVE_FAILURES}
    if options.algorithm == "random":
        return kt.oracles.RandomSearchOracle(max_trials=options.max_trials, **common)
    if options.algorithm == "bayesian":
        try:
            return _bayesian_class(kt)(max_trials=options.max_trials,
                                       num_initial_points=max(2, min(4, options.max_trials // 3)), **common)
        except ImportError as exc:
            raise ToolchainError("--algorithm bayesian needs scikit-learn: pip install 'keras-tuner[bayesian]' "
                                 "(or use --algorithm random)") from exc
    max_epochs = options.epochs or (2 if options.quick else 60)
    oracle = kt.oracles.HyperbandOracle(max_epochs=max_epochs, factor=3, **common)
    oracle.max_trials = options.max_trials  # Oracle.create_trial stops at max_trials
    return oracle


def _bayesian_class(kt: Any) -> Any:
    class UntriedBayesian(kt.oracles.BayesianOptimizationOracle):
        """Keras Tuner's Gaussian-process oracle, except that a proposal equal to a trial already run (it does not
        check) is replaced by random untried values, so no trial of the budget repeats another."""

        def populate_space(self, trial_id: str) -> dict[str, Any]:
            result = super().populate_space(trial_id)
            values = result.get("values")
            if result.get("status") == "RUNNING" and values is not None and self._duplicate(values):
                fresh = self._random_values()
                result = {"status": "RUNNING", "values": fresh} if fresh is not None else \
                    {"status": "STOPPED", "values": None}
            return result

    return UntriedBayesian


def import_keras_tuner() -> Any:
    """keras_tuner, imported after TensorFlow is set up (tf_keras) and with its start-up noise captured."""
    from tinykeras.keras_io import import_tf
    from tinykeras.stdio import capture_native_stderr

    import_tf()
    try:
        with capture_native_stderr():
            import keras_tuner
    except ImportError as exc:
        raise ToolchainError("keras-tuner is not installed: pip install 'keras-tuner>=1.4'") from exc
    return keras_tuner


def configure_distribution(options: TuneOptions) -> str:
    """Set Keras Tuner's environment for --chief/--worker; return the role (local, chief or worker)."""
    role = options.role
    if role == "local" and "KERASTUNER_ORACLE_IP" in os.environ:  # the documented launch by environment
        role = "chief" if "chief" in os.environ.get("KERASTUNER_TUNER_ID", "") else "worker"
    if role == "local":
        return role
    if options.oracle:
        host, _, port = options.oracle.rpartition(":")
        if not host or not port.isdigit():
            raise DataError(f"--oracle '{options.oracle}': expected HOST:PORT (e.g. 127.0.0.1:8000)")
        os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"] = host, port
    if "KERASTUNER_ORACLE_IP" not in os.environ or "KERASTUNER_ORACLE_PORT" not in os.environ:
        raise DataError(f"--{role} needs --oracle HOST:PORT (or KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT)")
    if role == "chief":
        os.environ["KERASTUNER_TUNER_ID"] = "chief"
    elif "chief" in os.environ.get("KERASTUNER_TUNER_ID", "chief"):
        os.environ["KERASTUNER_TUNER_ID"] = f"worker-{socket.gethostname()}-{os.getpid()}"
    return role


@dataclass
class TuneResult:
    """What a search produced (``report`` is what tune.json holds)."""

    out_dir: Path
    report: dict[str, Any]
    best_dir: Path | None
    role: str


def tune(options: TuneOptions, progress: Progress | None = None) -> TuneResult:
    """Run (or resume) a search; the chief and single-process runs write tune.json, pareto.png and best/."""
    options.validate()
    board = load_board(options.board)
    limits = search_limits(board, options.max_ram, options.max_flash, options.max_latency_ms)
    progress = progress or Progress()
    role = configure_distribution(options)
    ctx = SearchContext(options, limits, progress)
    if role != "chief" or ctx.model_fn is not None:
        ctx.data_for(ctx.default_values())  # bad data fails here, before any trial
    kt = import_keras_tuner()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_search(out, options, role)
    oracle = make_oracle(options)

    class HyperModel(kt.HyperModel):
        def build(self, hp: Any) -> Any:
            return ctx.build_hp(hp)

    with _quiet_stdout():  # "Reloading Tuner from ..." when resuming
        tuner = tuner_class()(ctx, oracle=oracle, hypermodel=HyperModel(), directory=str(out),
                               project_name=PROJECT, overwrite=False)
    if role == "chief":
        tuner.oracle.verbose = 0  # the chief prints its own one-line records
        tuner.save()
        serve_chief(tuner.oracle, options.worker_timeout, progress)
    else:
        try:
            with _quiet_stdout():
                tuner.search(verbose=0)
        except RuntimeError as exc:
            if "consecutive failures" not in str(exc):
                raise
            raise consecutive_failures(exc) from exc
    if role == "worker":
        return TuneResult(out, {}, None, role)
    report = collect(tuner.oracle, options, limits, out)
    best_dir = write_outputs(report, out, board)
    return TuneResult(out, report, best_dir, role)


class _quiet_stdout:  # noqa: N801
    """Keras Tuner prints 'Reloading Tuner from ...' and its own trial tables on stdout; route them to stderr."""

    def __enter__(self) -> None:
        self._old = sys.stdout
        sys.stdout = sys.stderr

    def __exit__(self, *exc: Any) -> None:
        sys.stdout = self._old


def _check_same_search(out: Path, options: TuneOptions, role: str) -> None:
    """A rerun into the same -o resumes; a different recipe/space/objective there is refused."""
    if role == "worker":
        return
    stamp = out / PROJECT / "tinykeras_search.json"
    want = {"recipe": options.recipe, "board": options.board, "objective": options.objective,
            "max_ram": options.max_ram, "max_flash": options.max_flash, "max_latency_ms": options.max_latency_ms,
            "algorithm": options.algorithm, "model_fn": options.model_fn,
            "space": None if options.model_fn else load_space(options.recipe, options.space)}
    if stamp.exists():
        have = json.loads(stamp.read_text())
        diff = sorted(k for k in want if have.get(k) != json.loads(json.dumps(want[k])))
        if diff:
            raise DataError(f"{out}: holds a search with a different {', '.join(diff)}; rerun with the same "
                            "options to resume it, or pick a new -o directory")
        return
    stamp.parent.mkdir(parents=True, exist_ok=True)
    fsutil.write_text_atomic(stamp, json.dumps(want, indent=2, sort_keys=True) + "\n")
