"""The shared training loop behind ``tinykeras train``: seeding, callbacks, distribution, outputs.

``train()`` loads (or synthesises) a recipe's data, builds and fits its model with EarlyStopping, a best-only
ModelCheckpoint, ReduceLROnPlateau and CSVLogger, evaluates it on the test split and writes, atomically:

    model.keras        the best model (no optimizer state; byte-identical for the same seed and data)
    test.npz           x, y (the test split, model inputs)       rep.npz   x, y (representative training inputs)
    history.csv        per-epoch metrics                          training_curves.png
    confusion_matrix.png (classifiers) or roc.png (anomaly detection)
    metrics.json       task, metric, value, classes, ...          settings.json  labels + feature parameters
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.datasets import cache_dir, note
from tinykeras.errors import DataError
from tinykeras.fsutil import atomic_output_dir
from tinykeras.recipes import get_recipe
from tinykeras.recipes.base import Recipe, RecipeData, plot_history

REP_SAMPLES = 200
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class TrainResult:
    """What a training run produced (the files are in ``out_dir``)."""

    recipe: str
    out_dir: Path
    model: Any
    data: RecipeData
    metrics: dict[str, Any]
    seconds: float


def dataset_path(recipe: Recipe, data_dir: Path | None, quick: bool, seed: int) -> Path:
    """``data_dir`` if given; otherwise a synthesised dataset in the cache (made once, reused after)."""
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise DataError(f"{data_dir}: no such dataset directory")
        return Path(data_dir)
    target = cache_dir() / f"{recipe.name}-{'quick' if quick else 'full'}-seed{seed}"
    if (target / ".complete").exists():
        note(f"no --data given: using the synthesised {recipe.name} dataset cached in {target}")
        return target
    note(f"no --data given: synthesising a {recipe.name} dataset into {target} (cached for later runs)")
    shutil.rmtree(target, ignore_errors=True)
    with atomic_output_dir(target) as tmp:
        recipe.synthesize(tmp, quick, seed)
        (tmp / ".complete").write_text("")
    return target


def distribution_strategy() -> Any:
    """MirroredStrategy when more than one GPU is visible, else the default strategy."""
    from tinykeras.keras_io import import_tf

    tf = import_tf()
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        note(f"training on {len(gpus)} GPUs with MirroredStrategy")
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic TensorFlow kernels."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    tf_keras().backend.clear_session()  # also resets layer-name counters, so configs match run to run
    tf_keras().utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def params_text(model: Any) -> str:
    """Keras' parameter count, and why ``tinykeras inspect`` counts fewer in the .tflite (BatchNorm folded)."""
    total = int(model.count_params())
    batchnorm = sum(int(w.shape.num_elements()) for layer in model.layers if "BatchNormalization" in
                    type(layer).__name__ for w in layer.weights)
    if not batchnorm:
        return f"{total:,} parameters"
    return (f"{total:,} parameters ({batchnorm:,} of them in BatchNorm layers, which the .tflite folds into the "
            "layers before them, so `tinykeras inspect` counts fewer)")


def save_keras_deterministic(model: Any, path: Path) -> None:
    """Save ``model`` without optimizer state, then rewrite the .keras zip with fixed times and no save date."""
    from tinykeras.keras_io import tf_keras

    keras = tf_keras()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    raw = path.with_suffix(".raw.keras")
    clone.save(raw)
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(src.namelist()):
            data = src.read(name)
            if name == "metadata.json":
                meta = json.loads(data)
                meta.pop("date_saved", None)
                data = json.dumps(meta, sort_keys=True).encode()
            dst.writestr(zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME), data, zipfile.ZIP_DEFLATED)
    raw.unlink()


def _callbacks(recipe: Recipe, checkpoint: Path, history_csv: Path, patience: int) -> list[Any]:
    from tinykeras.keras_io import tf_keras

    cb = tf_keras().callbacks
    mon, mode = recipe.monitor, recipe.monitor_mode
    return [
        cb.EarlyStopping(monitor=mon, mode=mode, patience=patience, restore_best_weights=True, verbose=0),
        cb.ModelCheckpoint(str(checkpoint), monitor=mon, mode=mode, save_best_only=True, save_weights_only=True,
                           verbose=0),
        cb.ReduceLROnPlateau(monitor=mon, mode=mode, factor=0.5, patience=max(2, patience // 3), min_lr=1e-5,
                             verbose=0),
        cb.CSVLogger(str(history_csv)),
    ]


def _read_history(path: Path) -> dict[str, list[float]]:
    lines = path.read_text().splitlines() if path.exists() else []
    if not lines:
        return {}
    keys = lines[0].split(",")
    cols: dict[str, list[float]] = {k: [] for k in keys}
    for line in lines[1:]:
        for k, v in zip(keys, line.split(","), strict=False):
            cols[k].append(float(v))
    return cols


def train(recipe_name: str, out_dir: Path | str, data_dir: Path | None = None, epochs: int | None = None,
          seed: int = 0, quick: bool = False, variant: str | None = None, verbose: int = 2) -> TrainResult:
    """Train recipe ``recipe_name`` and write its outputs into ``out_dir`` (atomically)."""
    recipe = get_recipe(recipe_name)
    variant = variant or recipe.variants[0]
    if variant not in recipe.variants:
        raise DataError(f"recipe {recipe.name} has no model '{variant}'; choose one of {', '.join(recipe.variants)}")
    if epochs is not None and epochs < 1:
        raise DataError("--epochs must be at least 1")
    path = dataset_path(recipe, data_dir, quick, seed)
    seed_everything(seed)
    start = time.monotonic()
    data = recipe.load(path, quick, seed)
    note(f"{recipe.name}: {data.describe()}")
    epochs = epochs or (recipe.quick_epochs if quick else recipe.epochs)
    with distribution_strategy().scope():
        model = recipe.build_model(data, variant)
        recipe.compile(model)
    note(f"{recipe.name}: model {model.name}, {params_text(model)}, up to {epochs} epochs")
    with tempfile.TemporaryDirectory(prefix="tinykeras-train-") as work, atomic_output_dir(out_dir) as tmp:
        checkpoint = Path(work) / "best.weights.h5"
        callbacks = _callbacks(recipe, checkpoint, tmp / "history.csv", recipe.patience)
        if data.train_dataset is not None:
            fit_args: dict[str, Any] = {"x": data.train_dataset(recipe.batch_size, seed)}
        else:
            fit_args = {"x": data.x_train, "y": data.y_train, "batch_size": recipe.batch_size, "shuffle": True}
        model.fit(**fit_args, validation_data=(data.x_val, data.y_val), epochs=epochs, callbacks=callbacks,
                  verbose=verbose)
        if checkpoint.exists():
            model.load_weights(str(checkpoint))
        save_keras_deterministic(model, tmp / "model.keras")
        results = recipe.evaluate(model, data, tmp)
        history = _read_history(tmp / "history.csv")
        plot_history(history, tmp / "training_curves.png", f"{recipe.name} ({model.name})")
        np.savez_compressed(tmp / "test.npz", **recipe.test_arrays(data))
        rep_x = recipe.representative(data, REP_SAMPLES, seed)
        np.savez_compressed(tmp / "rep.npz", x=rep_x)
        monitored = history.get(recipe.monitor, [])
        best = (int(np.argmax(monitored)) if recipe.monitor_mode == "max" else int(np.argmin(monitored))) \
            if monitored else None
        metrics = {"task": recipe.task, "recipe": recipe.name, "model": model.name, "variant": variant,
                   "classes": data.classes, **results,
                   "evaluated_on": "float Keras model, test split",
                   "params": int(model.count_params()), "input_shape": list(data.x_train.shape[1:]),
                   "samples": {"train": int(len(data.x_train)), "val": int(len(data.x_val)),
                               "test": int(len(data.x_test))},
                   "epochs_run": len(monitored), "epochs_max": epochs, "best_epoch": best,
                   "monitor": recipe.monitor, "seed": seed, "quick": quick, "data": data.source}
        settings = dict(data.settings)
        settings["input_shape"] = list(data.x_train.shape[1:])
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        (tmp / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    seconds = time.monotonic() - start
    note(f"{recipe.name}: test {metrics['metric']} {metrics['value']:.4f} after {len(monitored)} epochs "
         f"({seconds:.0f} s); wrote {out_dir}")
    return TrainResult(recipe.name, Path(out_dir), model, data, metrics, seconds)
