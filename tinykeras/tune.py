"""``tinykeras tune``: hardware-aware model search with Keras Tuner.

Each trial builds a model from the recipe's search space (``tinykeras/recipes/<recipe>_space.toml``, data) or
from the user's ``--model-fn module:function`` (which takes Keras Tuner's ``hp``), then:

    int8 conversion of the untrained model -> aot arena + flash (exact for the architecture) -> board limits
      infeasible: recorded with the figure that broke the limit, not trained, never wins
    train (EarlyStopping on the validation split) -> int8 (tinykeras.convert) -> validation accuracy of the
    int8 model on the TFLite-Micro host interpreter -> aot arena/flash -> instructions per inference on qemu_m4
    (or an estimate from MACs where QEMU or the Arm toolchain is missing, labelled as such)

Keras Tuner drives the search (its oracles: bayesian, hyperband, random) through a ``BaseTuner`` subclass whose
``run_trial`` returns plain metrics, so the tf_keras models tinykeras trains never meet Keras Tuner's Keras 3
checks. Its project directory (``OUT/search``) holds the search state, so an interrupted search resumes.
Distributed mode is Keras Tuner's own (gRPC, ``KERASTUNER_TUNER_ID``/``_ORACLE_IP``/``_ORACLE_PORT``); the chief
adds a heartbeat watchdog so a worker that dies mid-trial gets its trial recorded as failed.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import inspect as pyinspect
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras import fsutil
from tinykeras.boards import Board, load_board
from tinykeras.errors import DataError, DoesNotFitError, ModelError, TinyKerasError, ToolchainError
from tinykeras.recipes import RECIPES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

OBJECTIVES = ("accuracy", "auc")
ALGORITHMS = ("bayesian", "hyperband", "random")
SPACE_FIELDS = ("about", "values", "min", "max", "step", "default", "sampling")
PROJECT = "search"
REPORT_JSON = "tune.json"
PARETO_PNG = "pareto.png"
REP_SAMPLES = 200
HEARTBEAT_S = 5.0
MAX_CONSECUTIVE_FAILURES = 3
# instructions per MAC when QEMU cannot run: the aot runtime's measured ratio on the DS-CNN (README table)
INSTRUCTIONS_PER_MAC_ESTIMATE = 3.04
TRIAL_FILES = ("model.keras", "model.tflite", "settings.json", "metrics.json")


class TuneError(TinyKerasError):
    """A search could not run or found nothing that fits."""

    exit_code = 10


# ----------------------------------------------------------------------------------------------- search space

def space_path(recipe: str) -> Path:
    return Path(__file__).parent / "recipes" / f"{recipe}_space.toml"


def _did_you_mean(word: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def load_space(recipe: str, path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The validated search space of ``recipe`` (its packaged file, or ``path``): {key: entry}."""
    from tinykeras.recipes import get_recipe

    rec = get_recipe(recipe)
    path = Path(path) if path is not None else space_path(recipe)
    if not path.exists():
        raise DataError(f"{path}: no such search-space file" if path != space_path(recipe) else
                        f"recipe {recipe} has no search space ({path.name}); use --model-fn module:function")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid TOML ({exc})") from exc
    known = rec.search_keys
    space: dict[str, dict[str, Any]] = {}
    for key, entry in raw.items():
        if key not in known:
            raise DataError(f"{path}: unknown search-space key '{key}' for recipe {recipe}"
                            f"{_did_you_mean(key, known)} Known keys: {', '.join(known)}")
        if not isinstance(entry, dict):
            raise DataError(f"{path}: [{key}] must be a table with values = [...] or min/max")
        for field in entry:
            if field not in SPACE_FIELDS:
                raise DataError(f"{path}: [{key}] has unknown field '{field}'{_did_you_mean(field, SPACE_FIELDS)} "
                                f"Known fields: {', '.join(SPACE_FIELDS)}")
        if "values" in entry:
            values = entry["values"]
            if not isinstance(values, list) or not values or len({type(v) for v in values}) != 1:
                raise DataError(f"{path}: [{key}] values must be a non-empty list of one type")
            if "default" in entry and entry["default"] not in values:
                raise DataError(f"{path}: [{key}] default {entry['default']!r} is not one of its values")
        elif "min" in entry and "max" in entry:
            if entry["min"] > entry["max"]:
                raise DataError(f"{path}: [{key}] min {entry['min']} is above max {entry['max']}")
        else:
            raise DataError(f"{path}: [{key}] needs values = [...] or min and max")
        space[key] = dict(entry)
    if not space:
        raise DataError(f"{path}: an empty search space")
    return space


def declare(hp: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Declare every entry of ``space`` on Keras Tuner's ``hp``; return the trial's values."""
    values: dict[str, Any] = {}
    for key, entry in space.items():
        if "values" in entry:
            values[key] = hp.Choice(key, entry["values"], default=entry.get("default", entry["values"][0]))
        elif all(isinstance(entry[k], int) for k in ("min", "max")) and isinstance(entry.get("step", 1), int):
            values[key] = hp.Int(key, entry["min"], entry["max"], step=entry.get("step", 1),
                                 default=entry.get("default"), sampling=entry.get("sampling", "linear"))
        else:
            values[key] = hp.Float(key, float(entry["min"]), float(entry["max"]), step=entry.get("step"),
                                   default=entry.get("default"), sampling=entry.get("sampling", "linear"))
    return values


def load_model_fn(spec: str) -> Callable[..., Any]:
    """``module:function`` (a module on sys.path or a path/to/file.py) -> the function."""
    if ":" not in spec:
        raise DataError(f"--model-fn '{spec}': expected module:function (e.g. my_models:build)")
    module_name, attr = spec.rsplit(":", 1)
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            file = Path(module_name)
            if not file.exists():
                raise DataError(f"--model-fn: {file}: no such file")
            spec_obj = importlib.util.spec_from_file_location(file.stem, file)
            module = importlib.util.module_from_spec(spec_obj)  # type: ignore[arg-type]
            spec_obj.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except TinyKerasError:
        raise
    except Exception as exc:
        raise DataError(f"--model-fn: cannot import '{module_name}' ({type(exc).__name__}: {exc})") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise DataError(f"--model-fn: '{module_name}' has no function '{attr}'{_did_you_mean(attr, names)}")
    return fn


# ------------------------------------------------------------------------------------------------ limits, costs

@dataclass(frozen=True)
class SearchLimits:
    """What a trial must meet: the board's free RAM and flash (limits minus reserved), tightened by options."""

    board: str
    ram_bytes: int
    flash_bytes: int
    latency_ms: float | None
    clock_hz: int
    clock_label: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def search_limits(board: Board, max_ram: int | None = None, max_flash: int | None = None,
                  max_latency_ms: float | None = None) -> SearchLimits:
    for name, value in (("--max-ram", max_ram), ("--max-flash", max_flash), ("--max-latency-ms", max_latency_ms)):
        if value is not None and value <= 0:
            raise DataError(f"{name} must be positive (got {value})")
    ram = board.limits.app_ram_bytes if max_ram is None else min(max_ram, board.limits.app_ram_bytes)
    flash = board.limits.app_flash_bytes if max_flash is None else min(max_flash, board.limits.app_flash_bytes)
    if board.kind == "qemu":
        from tinykeras.target.qemu import qemu_settings

        s = qemu_settings(board)
        clock, label = int(s["estimate_clock_hz"]), str(s["estimate_label"])
    else:
        clock = int(board.mcu.clock_hz)
        label = (f"estimate: qemu_m4 instructions at {board.name}'s {clock / 1e6:g} MHz, assuming 1 instruction "
                 "per cycle")
    return SearchLimits(board.name, int(ram), int(flash), max_latency_ms, clock, label)


def qemu_available() -> bool:
    from tinykeras.target.qemu import CC, QEMU

    return shutil.which(CC) is not None and shutil.which(QEMU) is not None


def model_costs(tflite: bytes, limits: SearchLimits, *, instructions: bool, work: Path) -> dict[str, Any]:
    """Arena, RAM, flash (aot runtime, as ``tinykeras build --runtime aot`` checks them) and, if asked,
    instructions per inference on qemu_m4 (or estimated from MACs) for an int8 model."""
    from tinykeras import aot
    from tinykeras.inspect import inspect_bytes
    from tinykeras.pipeline import BENCH_FLASH, BENCH_RAM
    from tinykeras.runtime.aot import CORE_FLASH as AOT_CORE_FLASH
    from tinykeras.runtime.aot import FLASH_PER_OP as AOT_FLASH_PER_OP

    info = inspect_bytes(tflite, path="model.tflite")
    program = aot.generate(tflite, info, name="model")
    costs: dict[str, Any] = {
        "arena_bytes": int(program.arena_bytes), "ram_bytes": int(program.arena_bytes) + BENCH_RAM,
        "weights_bytes": int(program.weights_bytes),
        "flash_bytes": int(program.weights_bytes) + AOT_CORE_FLASH + AOT_FLASH_PER_OP * len(info.op_names)
        + BENCH_FLASH,
        "tflite_bytes": len(tflite), "macs": int(info.macs),
    }
    if instructions:
        if qemu_available():
            from tinykeras.pipeline import measure

            measured = measure(tflite, info, work, runs=1, warmup=0)
            costs["instructions"] = int(measured["instructions_per_inference"])
            costs["instructions_measured"] = 1
        else:
            costs["instructions"] = int(round(INSTRUCTIONS_PER_MAC_ESTIMATE * info.macs))
            costs["instructions_measured"] = 0
        costs["latency_ms"] = round(costs["instructions"] / limits.clock_hz * 1000.0, 3)
    return costs


def violations(costs: dict[str, Any], limits: SearchLimits) -> list[dict[str, Any]]:
    """The limits ``costs`` break: [{what, needed, limit, ratio}]."""
    out = []
    for what, key, limit in (("ram", "ram_bytes", limits.ram_bytes), ("flash", "flash_bytes", limits.flash_bytes),
                             ("latency", "latency_ms", limits.latency_ms)):
        needed = costs.get(key)
        if needed is not None:
            needed = int(needed) if key.endswith("_bytes") else round(float(needed), 3)
        if limit is not None and needed is not None and needed > limit:
            out.append({"what": what, "needed": needed, "limit": limit, "ratio": round(needed / limit, 4)})
    return out


def describe_violations(found: list[dict[str, Any]]) -> str:
    units = {"ram": "B", "flash": "B", "latency": "ms"}
    return "; ".join(f"{v['what']} {v['needed']:,} {units[v['what']]} > {v['limit']:,} {units[v['what']]}"
                     for v in found)


# --------------------------------------------------------------------------------------------------- the trial

def macro_auc(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes present in ``y``."""
    from tinykeras.metrics import roc_auc

    aucs = [roc_auc(probs[:, c], (y == c).astype(int)) for c in range(probs.shape[1])
            if 0 < np.sum(y == c) < len(y)]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def int8_scores(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of the int8 model on the TFLite-Micro host interpreter."""
    from tinykeras.inspect import inspect_bytes
    from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs

    info = inspect_bytes(tflite)
    runner = TflmRunner(tflite, info)
    raw = runner.run_all(prepare_inputs(x.astype(np.float32), info.input_tensors()[0]))
    return dequantize(raw, info.output_tensors()[0]).reshape(len(x), -1)


def quantize(model: Any, rep: np.ndarray) -> bytes:
    from tinykeras.convert import convert
    from tinykeras.keras_io import _from_keras2

    return convert(_from_keras2(Path("model.keras"), model, "keras2"), "int8", rep).data


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
            raise DataError(f"unknown recipe '{self.recipe}'{_did_you_mean(self.recipe, RECIPES)} "
                            f"Known recipes: {', '.join(RECIPES)}")
        if self.objective not in OBJECTIVES:
            raise DataError(f"unknown objective '{self.objective}'{_did_you_mean(self.objective, OBJECTIVES)}")
        if self.algorithm not in ALGORITHMS:
            raise DataError(f"unknown algorithm '{self.algorithm}'{_did_you_mean(self.algorithm, ALGORITHMS)}")
        if self.max_trials < 1:
            raise DataError(f"--max-trials must be at least 1 (got {self.max_trials})")
        if self.epochs is not None and self.epochs < 1:
            raise DataError(f"--epochs must be at least 1 (got {self.epochs})")


class Progress:
    """Per-trial progress on a rich console: a status line while a trial runs, one summary line per trial."""

    def __init__(self, console: Any | None = None):
        from rich.console import Console

        self.console = console or Console(stderr=True, highlight=False)
        self._status: Any = None

    def begin(self, trial_id: str, values: dict[str, Any]) -> None:
        hps = ", ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("tuner/"))
        self.console.print(f"[bold]trial {trial_id}[/bold] {hps}", soft_wrap=True)
        self._status = self.console.status(f"trial {trial_id}: building")
        self._status.start()

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def end(self, line: str) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        self.console.print(line, soft_wrap=True)


def _tuner_class() -> Any:
    from keras_tuner.engine import base_tuner

    class _Tuner(base_tuner.BaseTuner):
        """Runs tinykeras trials for a Keras Tuner oracle; ``run_trial`` returns the measured metrics."""

        def __init__(self, ctx: SearchContext, **kwargs: Any):
            self.ctx = ctx
            super().__init__(**kwargs)

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
            stop = threading.Event()
            beat = None
            if hasattr(self.oracle, "stub"):  # a worker: tell the chief it is alive while the trial runs
                beat = threading.Thread(target=_heartbeat, args=(self.oracle, trial.trial_id, stop), daemon=True)
                beat.start()
            try:
                trial_dir = Path(self.get_trial_dir(trial.trial_id))
                return self.ctx.run_trial(trial.trial_id, trial.hyperparameters, trial_dir)
            finally:
                stop.set()

        def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
            """Models are saved by run_trial into the trial directory."""

        def load_model(self, trial: Any) -> Any:
            from tinykeras.keras_io import load_model

            return load_model(Path(self.get_trial_dir(trial.trial_id)) / "model.keras").keras_model

    return _Tuner


def _heartbeat(client: Any, trial_id: str, stop: threading.Event) -> None:
    from keras_tuner.src import protos

    while not stop.wait(HEARTBEAT_S):
        try:
            client.stub.GetTrial(protos.get_service().GetTrialRequest(trial_id=trial_id), timeout=10)
        except Exception:  # the chief may be busy or gone; the trial itself decides what to do
            pass


class SearchContext:
    """Everything a trial needs: recipe, data (cached per front-end setting), board limits, options."""

    def __init__(self, options: TuneOptions, limits: SearchLimits, progress: Progress):
        from tinykeras.recipes import get_recipe

        self.options = options
        self.limits = limits
        self.progress = progress
        self.recipe = get_recipe(options.recipe)
        if self.recipe.task != "classification":
            raise DataError(f"recipe {options.recipe} has no search space yet: its validation split holds only "
                            "normal data, so there is no validation AUC to search on; tune kws or gesture")
        self.model_fn = load_model_fn(options.model_fn) if options.model_fn else None
        self.space = None if self.model_fn else load_space(options.recipe, options.space)
        self._source: Any = None
        self._data: dict[tuple[Any, ...], Any] = {}
        self.need_instructions = True

    # the hypermodel: declares the space; Keras Tuner calls it on the chief and on every worker
    def build_hp(self, hp: Any) -> Any:
        if self.model_fn is not None:
            return self._call_model_fn(hp, self._data.get(self._default_key()))
        return declare(hp, self.space or {})

    def _call_model_fn(self, hp: Any, data: Any) -> Any:
        fn = self.model_fn
        assert fn is not None
        params = pyinspect.signature(fn).parameters
        kwargs: dict[str, Any] = {}
        if data is not None:
            if "input_shape" in params:
                kwargs["input_shape"] = tuple(data.x_train.shape[1:])
            if "classes" in params:
                kwargs["classes"] = len(data.classes)
        return fn(hp, **kwargs)

    def _default_key(self) -> tuple[Any, ...]:
        return tuple(self.default_values().get(k) for k in self.recipe.search_feature_keys)

    def default_values(self) -> dict[str, Any]:
        return {k: e.get("default", e["values"][0] if "values" in e else e["min"])
                for k, e in (self.space or {}).items()}

    def data_for(self, values: dict[str, Any]) -> Any:
        from tinykeras.train import dataset_path

        if self._source is None:
            path = dataset_path(self.recipe, self.options.data_dir, self.options.quick, self.options.seed)
            self._source = self.recipe.search_source(path, self.options.quick, self.options.seed)
        key = tuple(values.get(k) for k in self.recipe.search_feature_keys)
        if key not in self._data:
            self._data[key] = self.recipe.search_data(self._source, values)
        return self._data[key]

    def build_model(self, hp: Any, data: Any) -> Any:
        from tinykeras.keras_io import tf_keras
        from tinykeras.train import distribution_strategy

        keras = tf_keras()
        with distribution_strategy().scope():
            if self.model_fn is not None:
                model = self._call_model_fn(hp, data)
                if not isinstance(model, keras.Model):
                    raise ModelError(f"--model-fn {self.options.model_fn} returned {type(model).__name__}, not a "
                                     "tf_keras Model (build it with `import tf_keras as keras`)")
            else:
                model = self.recipe.search_model(data, dict(hp.values))
            if model.optimizer is None:
                self.recipe.compile(model)
        return model

    def run_trial(self, trial_id: str, hp: Any, trial_dir: Path) -> dict[str, float]:
        from tinykeras.keras_io import tf_keras
        from tinykeras.train import save_keras_deterministic, seed_everything

        opts = self.options
        values = {k: v for k, v in hp.values.items()}
        start = time.monotonic()
        self.progress.begin(trial_id, values)
        try:
            data = self.data_for(values)
            seed_everything(opts.seed + int(trial_id))
            model = self.build_model(hp, data)
            rep = self.recipe.representative(data, REP_SAMPLES, opts.seed)
            measure_latency = opts.max_latency_ms is not None
            with tempfile.TemporaryDirectory(prefix="tinykeras-tune-") as work:
                self.progress.update(f"trial {trial_id}: int8 + aot plan of the untrained model")
                pre = model_costs(quantize(model, rep), self.limits, instructions=measure_latency,
                                  work=Path(work) / "pre")
            broken = violations(pre, self.limits)
            metrics: dict[str, float] = {"params": float(model.count_params()), "trained": 0.0}
            metrics.update({k: float(v) for k, v in pre.items()})
            if broken:
                metrics.update(self._infeasible_score(broken))
                metrics["seconds"] = round(time.monotonic() - start, 1)
                _write_trial(trial_dir, values, metrics, broken, None, None, None)
                self.progress.end(f"  [red]infeasible[/red] before training: {describe_violations(broken)}")
                return metrics

            epochs = self._epochs(values)
            keras = tf_keras()
            callbacks = [
                keras.callbacks.EarlyStopping(monitor=self.recipe.monitor, mode=self.recipe.monitor_mode,
                                              patience=opts.patience or self.recipe.patience,
                                              restore_best_weights=True),
                keras.callbacks.ReduceLROnPlateau(monitor=self.recipe.monitor, mode=self.recipe.monitor_mode,
                                                  factor=0.5, patience=max(2, (opts.patience or self.recipe.patience)
                                                                           // 3), min_lr=1e-5),
                _EpochProgress(self.progress, trial_id, epochs, self.recipe.monitor),
            ]
            if data.train_dataset is not None:
                fit: dict[str, Any] = {"x": data.train_dataset(self.recipe.batch_size, opts.seed)}
            else:
                fit = {"x": data.x_train, "y": data.y_train, "batch_size": self.recipe.batch_size, "shuffle": True}
            history = model.fit(**fit, validation_data=(data.x_val, data.y_val), epochs=epochs, callbacks=callbacks,
                                verbose=0)
            self.progress.update(f"trial {trial_id}: int8 conversion, TFLM validation, qemu_m4")
            tflite = quantize(model, rep)
            with tempfile.TemporaryDirectory(prefix="tinykeras-tune-") as work:
                costs = model_costs(tflite, self.limits, instructions=True, work=Path(work) / "post")
            metrics.update({k: float(v) for k, v in costs.items()})
            metrics["trained"] = 1.0
            metrics["epochs"] = float(len(history.history.get("loss", [])))
            metrics.update(self._accuracies(model, tflite, data))
            broken = violations(costs, self.limits)
            if broken:
                metrics.update(self._infeasible_score(broken))
            else:
                metrics["feasible"] = 1.0
                metrics["score"] = metrics[f"val_{opts.objective}"]
            metrics["seconds"] = round(time.monotonic() - start, 1)
            _write_trial(trial_dir, values, metrics, broken, model, tflite, data.settings,
                         save=save_keras_deterministic)
            verdict = "[red]infeasible[/red] " + describe_violations(broken) if broken else "[green]fits[/green]"
            self.progress.end(
                f"  val {opts.objective} {metrics[f'val_{opts.objective}']:.4f} (int8, TFLM host), "
                f"arena {int(metrics['arena_bytes']):,} B, flash {int(metrics['flash_bytes']):,} B, "
                f"{int(metrics['instructions']):,} instructions"
                f"{'' if metrics.get('instructions_measured') else ' (estimated from MACs)'}, "
                f"{metrics['epochs']:.0f} epochs, {metrics['seconds']:.0f} s: {verdict}")
            return metrics
        except BaseException as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            self.progress.end(f"  [red]failed[/red]: {type(exc).__name__}: {first}")
            raise

    def _epochs(self, values: dict[str, Any]) -> int:
        if "tuner/epochs" in values:  # hyperband's budget for this bracket
            return int(values["tuner/epochs"])
        if self.options.epochs:
            return self.options.epochs
        return self.recipe.quick_epochs if self.options.quick else self.recipe.epochs

    def _infeasible_score(self, broken: list[dict[str, Any]]) -> dict[str, float]:
        # below every feasible score (those are in [0, 1]): the further over a limit, the lower
        worst = max(v["ratio"] for v in broken)
        out = {"feasible": 0.0, "score": -float(worst)}
        for v in broken:
            out[f"over_{v['what']}"] = float(v["ratio"])
        return out

    def _accuracies(self, model: Any, tflite: bytes, data: Any) -> dict[str, float]:
        out: dict[str, float] = {}
        for split, x, y in (("val", data.x_val, data.y_val), ("test", data.x_test, data.y_test)):
            probs_f = np.asarray(model.predict(x, batch_size=256, verbose=0)).reshape(len(x), -1)
            probs_q = int8_scores(tflite, x)
            out[f"{split}_accuracy_float"] = float(np.mean(np.argmax(probs_f, 1) == y))
            out[f"{split}_accuracy"] = float(np.mean(np.argmax(probs_q, 1) == y))
            out[f"{split}_agreement"] = float(np.mean(np.argmax(probs_f, 1) == np.argmax(probs_q, 1)))
            auc = macro_auc(probs_q, y)
            if not math.isnan(auc):
                out[f"{split}_auc"] = auc
        if f"val_{self.options.objective}" not in out:
            raise DataError(f"objective {self.options.objective}: not computable on the validation split "
                            "(it needs every class present)")
        return out


def _epoch_progress_class() -> Any:
    from tinykeras.keras_io import tf_keras

    class EpochProgress(tf_keras().callbacks.Callback):
        def __init__(self, progress: Progress, trial_id: str, epochs: int, monitor: str):
            super().__init__()
            self.progress, self.trial_id, self.epochs, self.monitor = progress, trial_id, epochs, monitor

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            value = (logs or {}).get(self.monitor)
            shown = f", {self.monitor} {value:.4f}" if value is not None else ""
            self.progress.update(f"trial {self.trial_id}: epoch {epoch + 1}/{self.epochs}{shown}")

    return EpochProgress


def _EpochProgress(progress: Progress, trial_id: str, epochs: int, monitor: str) -> Any:  # noqa: N802
    return _epoch_progress_class()(progress, trial_id, epochs, monitor)


def _write_trial(trial_dir: Path, values: dict[str, Any], metrics: dict[str, float], broken: list[dict[str, Any]],
                 model: Any, tflite: bytes | None, settings: dict[str, Any] | None,
                 save: Callable[[Any, Path], None] | None = None) -> None:
    """The trial's artifacts (what best/ is copied from), written next to Keras Tuner's trial.json."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    record = {"hyperparameters": values, "metrics": metrics, "violations": broken}
    if model is not None and tflite is not None and save is not None:
        save(model, trial_dir / "model.keras")
        fsutil.write_bytes_atomic(trial_dir / "model.tflite", tflite)
        full = dict(settings or {})
        full["input_shape"] = [int(d) for d in model.inputs[0].shape[1:]]
        fsutil.write_text_atomic(trial_dir / "settings.json", json.dumps(full, indent=2, sort_keys=True) + "\n")
    fsutil.write_text_atomic(trial_dir / "metrics.json", json.dumps(record, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------------- the search

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
        tuner = _tuner_class()(ctx, oracle=oracle, hypermodel=HyperModel(), directory=str(out),
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
            raise _consecutive(exc) from exc
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


# ------------------------------------------------------------------------------------------ distributed: chief

def serve_chief(oracle: Any, worker_timeout: float, progress: Progress) -> None:
    """Keras Tuner's oracle server (``oracle_chief.start_server``) plus a heartbeat watchdog: a trial whose worker
    has been silent for ``worker_timeout`` seconds is ended as FAILED and the search goes on."""
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief
    from keras_tuner.src.engine import trial as trial_module

    seen: dict[str, float] = {}
    abandoned: set[str] = set()
    lock = threading.Lock()

    def touch_trial(trial_id: str) -> None:
        for tuner_id, trial in list(oracle.ongoing_trials.items()):
            if trial.trial_id == trial_id:
                seen[tuner_id] = time.monotonic()

    class Servicer(oracle_chief.OracleServicer):
        def CreateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            with lock:
                seen[request.tuner_id] = time.monotonic()
            response = super().CreateTrial(request, context)
            trial = trial_module.Trial.from_proto(response.trial)
            if trial.status == trial_module.TrialStatus.RUNNING:
                progress.console.print(f"chief: trial {trial.trial_id} -> {request.tuner_id}")
            return response

        def GetTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            with lock:
                touch_trial(request.trial_id)
            return super().GetTrial(request, context)

        def UpdateTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            if request.trial_id in abandoned:  # a worker declared dead came back: keep the failure
                return protos.get_service().UpdateTrialResponse(trial=oracle.get_trial(request.trial_id).to_proto())
            with lock:
                touch_trial(request.trial_id)
            return super().UpdateTrial(request, context)

        def EndTrial(self, request: Any, context: Any) -> Any:  # noqa: N802
            if request.trial.trial_id in abandoned:
                return protos.get_service().EndTrialResponse()
            response = super().EndTrial(request, context)
            trial = oracle.get_trial(request.trial.trial_id)
            progress.console.print(f"chief: trial {trial.trial_id} {trial.status.lower()}"
                                   + (f", score {trial.score:.4f}" if trial.score is not None else ""))
            return response

    host, port = os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = Servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise ToolchainError(f"chief: cannot listen on {host}:{port} (in use?); pick another --oracle port")
    server.start()
    progress.console.print(f"chief: oracle listening on {host}:{port}; start workers with "
                           f"`tinykeras tune ... --worker --oracle {host}:{port}`")
    last_contact = time.monotonic()
    try:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with lock:
                if seen:
                    last_contact = max(last_contact, max(seen.values()))
                for tuner_id, trial in list(oracle.ongoing_trials.items()):
                    silent = now - seen.get(tuner_id, now)
                    if silent > worker_timeout:
                        trial.status = trial_module.TrialStatus.FAILED
                        trial.message = (f"worker {tuner_id} stopped responding during the trial "
                                         f"(no heartbeat for {silent:.0f} s)")
                        abandoned.add(trial.trial_id)
                        _end_trial(oracle, trial)
                        oracle.tuner_ids.discard(tuner_id)
                        seen.pop(tuner_id, None)
                        progress.console.print(f"chief: trial {trial.trial_id} failed: {trial.message}")
            if servicer.stop_triggered and oracle_chief.exit_chief(oracle):
                break
            if not oracle.ongoing_trials and now - last_contact > max(worker_timeout, 60.0):
                if len(oracle.trials) >= (oracle.max_trials or 0) and oracle.trials:
                    break  # every trial ran; the remaining workers are gone
                raise TuneError(f"chief: no worker has contacted {host}:{port} for {now - last_contact:.0f} s "
                                f"({len(oracle.trials)} trials so far); start workers with --worker --oracle "
                                f"{host}:{port}, then rerun the chief to resume")
    finally:
        server.stop(grace=2)


def _end_trial(oracle: Any, trial: Any) -> None:
    try:
        oracle.end_trial(trial)
    except RuntimeError as exc:  # Keras Tuner's max_consecutive_failed_trials
        raise _consecutive(exc) from exc


def _consecutive(exc: RuntimeError) -> TuneError:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return TuneError(f"{MAX_CONSECUTIVE_FAILURES} trials in a row failed, stopping the search; the last: "
                     f"{lines[-1][:300] if lines else exc}. Rerun with the same -o to resume after fixing it")


# -------------------------------------------------------------------------------------------------- reporting

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


def plot_pareto(report: dict[str, Any], path: Path) -> None:
    """Validation objective against instructions and against RAM: every trained trial, the fronts, the best."""
    from tinykeras.recipes.base import _pyplot, save_png

    plt = _pyplot()
    objective = report["objective"]
    trained = [t for t in report["trials"] if t.get("trained") and objective in t["metrics"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    limits = report["limits"]
    for ax, cost, front_key, label, limit in (
            (axes[0], "instructions", "front_latency", "instructions per inference (qemu_m4)",
             limits["latency_ms"] * limits["clock_hz"] / 1000.0 if limits["latency_ms"] else None),
            (axes[1], "ram_bytes", "front_ram", "RAM: aot arena + benchmark buffers (bytes)", limits["ram_bytes"])):
        for t in trained:
            m = t["metrics"]
            if cost not in m:
                continue
            ax.scatter(m[cost], m[objective], marker="o" if t["feasible"] else "x",
                       color="tab:blue" if t["feasible"] else "tab:gray", zorder=2)
            ax.annotate(t["trial_id"], (m[cost], m[objective]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        front = [next(t for t in trained if t["trial_id"] == i) for i in report[front_key]]
        if front:
            ax.plot([t["metrics"][cost] for t in front], [t["metrics"][objective] for t in front], "-",
                    color="tab:orange", label="Pareto front", zorder=1)
        best = next((t for t in trained if t["trial_id"] == report["best"]), None)
        if best is not None:
            ax.scatter(best["metrics"][cost], best["metrics"][objective], marker="*", s=180, color="tab:red",
                       label=f"best (trial {best['trial_id']})", zorder=3)
        if limit is not None:
            ax.axvline(limit, color="tab:red", linestyle="--", linewidth=0.8, label=f"{report['board']} limit")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel(f"{objective} (int8)", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"tinykeras tune {report['recipe']} --board {report['board']}: {len(trained)} trained trials "
                 f"(x = breaks a limit)", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


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
