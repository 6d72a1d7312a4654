"""What a search is asked to do: the options, their validation, the names of its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinykeras.errors import DataError, TuneError, did_you_mean
from tinykeras.fsutil import check_output_location
from tinykeras.recipes import RECIPES

__all__ = ["TuneError", "TuneOptions"]

OBJECTIVES = ("accuracy", "auc")
ALGORITHMS = ("bayesian", "hyperband", "random")
PROJECT = "search"
REPORT_JSON = "tune.json"
PARETO_PNG = "pareto.png"
REP_SAMPLES = 200
HEARTBEAT_S = 5.0
MAX_CONSECUTIVE_FAILURES = 3
TRIAL_FILES = ("model.keras", "model.tflite", "rep.npz", "settings.json", "metrics.json")


@dataclass
class TuneOptions:
    recipe: str
    board: str
    out: Path
    max_ram: int | None = None
    max_flash: int | None = None
    max_latency_ms: float | None = None
    objective: str = "accuracy"
    max_trials: int = 10
    algorithm: str = "bayesian"
    quick: bool = False
    data_dir: Path | None = None
    epochs: int | None = None
    patience: int | None = None
    seed: int = 0
    model_fn: str | None = None
    space: Path | None = None
    role: str = "local"  # local | chief | worker
    oracle: str | None = None  # HOST:PORT for chief/worker
    worker_timeout: float = 300.0

    def validate(self) -> None:
        if self.recipe not in RECIPES:
            raise DataError(f"unknown recipe '{self.recipe}'{did_you_mean(self.recipe, RECIPES)} "
                            f"Known recipes: {', '.join(RECIPES)}")
        if self.objective not in OBJECTIVES:
            raise DataError(f"unknown objective '{self.objective}'{did_you_mean(self.objective, OBJECTIVES)}")
        if self.algorithm not in ALGORITHMS:
            raise DataError(f"unknown algorithm '{self.algorithm}'{did_you_mean(self.algorithm, ALGORITHMS)}")
        if self.max_trials < 1:
            raise DataError(f"--max-trials must be at least 1 (got {self.max_trials})")
        if self.epochs is not None and self.epochs < 1:
            raise DataError(f"--epochs must be at least 1 (got {self.epochs})")
        check_output_location(Path(self.out))  # -o is resumed into, not replaced: only where it may be
