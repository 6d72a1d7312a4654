"""One trial: build, cost before training, train, int8, score, cost again; Keras Tuner's tuner class."""

from __future__ import annotations

import inspect as pyinspect
import io
import json
import math
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras import fsutil
from tinykeras.errors import DataError, ModelError
from tinykeras.tune.costs import SearchLimits, describe_violations, model_costs, violations
from tinykeras.tune.distributed import heartbeat
from tinykeras.tune.metrics import int8_scores, macro_auc, quantize
from tinykeras.tune.options import REP_SAMPLES, TuneOptions
from tinykeras.tune.progress import EpochProgress, Progress
from tinykeras.tune.space import declare, load_model_fn, load_space


def tuner_class() -> Any:
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
                beat = threading.Thread(target=heartbeat, args=(self.oracle, trial.trial_id, stop), daemon=True)
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
                self.progress.update(f"trial {trial_id}: int8 + {self.limits.runtime} plan of the untrained model")
                pre = model_costs(quantize(model, rep, self.limits.per_tensor_dense), self.limits,
                                  instructions=measure_latency, work=Path(work) / "pre")
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
                EpochProgress(self.progress, trial_id, epochs, self.recipe.monitor),
            ]
            if data.train_dataset is not None:
                fit: dict[str, Any] = {"x": data.train_dataset(self.recipe.batch_size, opts.seed)}
            else:
                fit = {"x": data.x_train, "y": data.y_train, "batch_size": self.recipe.batch_size, "shuffle": True}
            history = model.fit(**fit, validation_data=(data.x_val, data.y_val), epochs=epochs, callbacks=callbacks,
                                verbose=0)
            self.progress.update(f"trial {trial_id}: int8 conversion, TFLM validation, qemu_m4")
            tflite = quantize(model, rep, self.limits.per_tensor_dense)
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
                         save=save_keras_deterministic, rep=rep)
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


def _write_trial(trial_dir: Path, values: dict[str, Any], metrics: dict[str, float], broken: list[dict[str, Any]],
                 model: Any, tflite: bytes | None, settings: dict[str, Any] | None,
                 save: Callable[[Any, Path], None] | None = None, rep: np.ndarray | None = None) -> None:
    """The trial's artifacts (what best/ is copied from), written next to Keras Tuner's trial.json: rep.npz is the
    representative set its int8 model was calibrated on (``tinykeras quantize/build --rep-data``)."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    record = {"hyperparameters": values, "metrics": metrics, "violations": broken}
    if model is not None and tflite is not None and save is not None:
        save(model, trial_dir / "model.keras")
        fsutil.write_bytes_atomic(trial_dir / "model.tflite", tflite)
        if rep is not None:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, x=rep.astype(np.float32))
            fsutil.write_bytes_atomic(trial_dir / "rep.npz", buffer.getvalue())
        full = dict(settings or {})
        full["input_shape"] = [int(d) for d in model.inputs[0].shape[1:]]
        fsutil.write_text_atomic(trial_dir / "settings.json", json.dumps(full, indent=2, sort_keys=True) + "\n")
    fsutil.write_text_atomic(trial_dir / "metrics.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
