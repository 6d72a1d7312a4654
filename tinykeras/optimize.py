"""Optimize a float tf_keras model for a microcontroller, stage by stage, and report what each stage costs.

``float`` → [``channels``: structured channel pruning + fine-tune] → [``pruned``: tfmot magnitude or 2:4
pruning + fine-tune + strip] → [``qat``: sparsity-preserving quantization-aware training] → ``int8``
(full-integer TFLite, evaluated on the TFLite-Micro host interpreter).

Every stage is measured the same way: the metric on the test split, and params, MACs, .tflite bytes, gzip
bytes, estimated arena and weight sparsity read from the stage's own flatbuffer (``tinykeras.inspect``).
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import DataError, ModelError, TinyKerasError
from tinykeras.keras_io import import_tf, match_input_shape, tf_keras
from tinykeras.metrics import roc_auc

SCHEDULES = ("polynomial", "constant")
METRICS = ("auto", "accuracy", "auc", "mse")
KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
DEPTHWISE_NOTE = "DepthwiseConv2D is not pruned: tfmot has no pruning for it (its sparsity is shown as null)"


# ---------------------------------------------------------------------------------------------- options


@dataclass
class OptimizeOptions:
    """What to do. ``prune`` is the target magnitude sparsity in (0, 1); ``structured`` is "2:4",
    "channels" or "channels:FRACTION" (FRACTION of channels removed from every prunable layer);
    ``target_macs`` (with channels) picks the fraction so MACs fall to that ratio of the original."""

    prune: float | None = None
    schedule: str = "polynomial"
    structured: str | None = None
    qat: bool = False
    epochs: int = 2
    qat_epochs: int | None = None  # default: epochs
    batch_size: int = 32
    learning_rate: float = 5e-4
    metric: str = "auto"
    target_macs: float | None = None
    importance: str = "l1"
    rep_samples: int = 200
    seed: int = 0
    per_tensor_dense: bool = False   # one weight scale per FULLY_CONNECTED (libraries without per-channel FC)

    def validate(self) -> None:
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise TinyKerasError(f"--prune {self.prune}: sparsity must be strictly between 0 and 1 "
                                 "(for example 0.5 or 0.75)")
        if self.schedule not in SCHEDULES:
            raise TinyKerasError(f"--schedule {self.schedule}: choose one of {', '.join(SCHEDULES)}")
        if self.metric not in METRICS:
            raise TinyKerasError(f"--metric {self.metric}: choose one of {', '.join(METRICS)}")
        if self.epochs < 1 or (self.qat_epochs is not None and self.qat_epochs < 1):
            raise TinyKerasError("--epochs/--qat-epochs: fine-tuning needs at least 1 epoch")
        kind, fraction = parse_structured(self.structured)
        if kind == "2:4" and self.prune is not None:
            raise TinyKerasError("--structured 2:4 fixes the sparsity at 50 %; drop --prune or drop 2:4")
        if self.target_macs is not None:
            if kind != "channels":
                raise TinyKerasError("--target-macs needs --structured channels")
            if not 0.0 < self.target_macs < 1.0:
                raise TinyKerasError(f"--target-macs {self.target_macs}: a ratio strictly between 0 and 1 "
                                     "(0.5 = half the MACs)")
            if fraction is not None and self.structured and ":" in self.structured:
                raise TinyKerasError("give either channels:FRACTION or --target-macs, not both")
        if self.importance not in ("l1", "bn"):
            raise TinyKerasError(f"--importance {self.importance}: choose l1 or bn")


def parse_structured(text: str | None) -> tuple[str | None, float | None]:
    """``None`` | ``"2:4"`` | ``"channels"`` | ``"channels:0.3"`` → (kind, fraction of channels removed)."""
    if not text:
        return None, None
    if text == "2:4":
        return "2:4", None
    if text == "channels":
        return "channels", 0.5
    if text.startswith("channels:"):
        try:
            fraction = float(text.split(":", 1)[1])
        except ValueError:
            fraction = -1.0
        if not 0.0 < fraction < 1.0:
            raise TinyKerasError(f"--structured {text}: FRACTION (channels removed) must be strictly between "
                                 "0 and 1, for example channels:0.3")
        return "channels", fraction
    raise TinyKerasError(f"--structured {text}: choose 2:4, channels or channels:FRACTION")


# ------------------------------------------------------------------------------------------------- data


@dataclass
class Dataset:
    """Train/val/test splits. ``y_*`` may be None (autoencoders train on x alone)."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    note: str = ""
    # optional (batch_size, seed) -> tf.data.Dataset of augmented (x, y) batches, one epoch per pass
    train_stream: Any = field(default=None, repr=False)

    def eval_split(self) -> tuple[str, np.ndarray, np.ndarray | None]:
        if self.x_test is not None:
            return "test", self.x_test, self.y_test
        if self.x_val is not None:
            return "val", self.x_val, self.y_val
        return "train", self.x_train, self.y_train


def dataset_from_arrays(arrays: dict[str, np.ndarray], source: str = "data", seed: int = 0) -> Dataset:
    """Keys ``x_train``/``y_train`` (+ optional ``x_val``/``y_val``, ``x_test``/``y_test``), or ``x``/``y``
    split 80/10/10 with a seeded shuffle."""
    def get(key: str) -> np.ndarray | None:
        return arrays.get(key)

    if "x_train" in arrays:
        data = Dataset(get("x_train"), get("y_train"), get("x_val"), get("y_val"), get("x_test"), get("y_test"),
                       note="splits from the file")
    elif "x" in arrays:
        x, y = arrays["x"], arrays.get("y")
        n = len(x)
        if n < 10:
            raise DataError(f"{source}: {n} samples in 'x'; need at least 10 to split train/val/test")
        order = np.random.default_rng(seed).permutation(n)
        n_test = n_val = max(1, n // 10)
        test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
        ys = [None if y is None else y[idx] for idx in (train, val, test)]
        data = Dataset(x[train], ys[0], x[val], ys[1], x[test], ys[2],
                       note="x/y split 80/10/10 (seeded shuffle)")
    else:
        raise DataError(f"{source}: expected arrays x_train/y_train (optionally x_val/y_val, x_test/y_test) or "
                        f"x/y; found {', '.join(sorted(arrays)) or 'none'}")
    for prefix in ("train", "val", "test"):
        x, y = getattr(data, f"x_{prefix}"), getattr(data, f"y_{prefix}")
        if x is None and y is not None:
            raise DataError(f"{source}: y_{prefix} without x_{prefix}")
        if x is not None and y is not None and len(x) != len(y):
            raise DataError(f"{source}: x_{prefix} has {len(x)} samples but y_{prefix} has {len(y)}")
        if x is not None and not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{source}: x_{prefix} has dtype {x.dtype}; expected numbers")
    return data


def load_dataset(path: Path | str, seed: int = 0) -> Dataset:
    from tinykeras.keras_io import load_arrays

    return dataset_from_arrays(load_arrays(path), str(path), seed)


# ------------------------------------------------------------------------------------------------- task


@dataclass(frozen=True)
class Task:
    """How the model is trained and scored."""

    kind: str  # classification | binary | autoencoder
    metric: str  # accuracy | auc | mse
    from_logits: bool
    classes: int

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "mse"


def detect_task(model: Any, data: Dataset, metric: str = "auto") -> Task:
    """Classification (softmax/logits), binary (one unit) or autoencoder (output shape = input shape)."""
    in_shape = tuple(model.inputs[0].shape[1:])
    out_shape = tuple(model.outputs[0].shape[1:])
    sample = np.asarray(model(data.x_train[: min(64, len(data.x_train))].astype(np.float32), training=False))
    probs = bool(np.all(sample >= -1e-6) and np.all(sample <= 1 + 1e-6))
    _, _, y_eval = data.eval_split()
    reconstructs = out_shape == in_shape and int(np.prod(out_shape)) > 1
    if (metric == "auto" and reconstructs) or metric in ("auc", "mse"):
        if out_shape != in_shape:
            raise DataError(f"--metric {metric} scores reconstructions, but the model maps {list(in_shape)} to "
                            f"{list(out_shape)}; use --metric accuracy")
        has_labels = y_eval is not None and len(np.unique(y_eval)) == 2
        chosen = metric if metric in ("auc", "mse") else ("auc" if has_labels else "mse")
        if chosen == "auc" and not has_labels:
            raise DataError("AUC needs anomaly labels (0 normal, 1 anomalous) in y_test (or y_val)")
        return Task("autoencoder", chosen, False, 0)
    units = int(out_shape[-1]) if out_shape else 1
    if units == 1:
        return Task("binary", "accuracy", not probs, 2)
    sums = sample.reshape(len(sample), -1).sum(axis=1)
    softmax = probs and bool(np.allclose(sums, 1.0, atol=1e-3))
    return Task("classification", "accuracy", not softmax, units)


def _labels(y: np.ndarray | None, task: Task, split: str) -> np.ndarray | None:
    if y is None or task.kind == "autoencoder":
        return y
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == task.classes and task.classes > 1:
        y = np.argmax(y, axis=1)  # one-hot
    y = y.reshape(len(y))
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(f"y_{split}: expected integer class labels, got values like {y[:3].tolist()}")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= task.classes):
        raise DataError(f"y_{split}: labels span {int(y.min())}..{int(y.max())} but the model has "
                        f"{task.classes} classes")
    return y


def prepare(model: Any, data: Dataset, metric: str = "auto") -> tuple[Task, Dataset]:
    """Check every split against the model's input shape and normalise the labels."""
    shape = tuple(model.inputs[0].shape)
    fixed: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        x = getattr(data, f"x_{split}")
        if x is not None:
            fixed[f"x_{split}"] = match_input_shape(np.asarray(x, dtype=np.float32), shape, f"x_{split}")
    data = replace(data, **fixed)
    task = detect_task(model, data, metric)
    if task.kind != "autoencoder" and data.y_train is None:
        raise DataError("y_train is missing: a classifier needs labels to fine-tune (or pass an autoencoder)")
    labelled = {f"y_{s}": _labels(getattr(data, f"y_{s}"), task, s) for s in ("train", "val", "test")}
    return task, replace(data, **labelled)


def score(outputs: np.ndarray, x: np.ndarray, y: np.ndarray | None, task: Task) -> float | None:
    """The task's metric from model outputs (float, or dequantized int8)."""
    out = np.asarray(outputs, dtype=np.float64).reshape(len(x), -1)
    if task.kind == "autoencoder":
        errors = np.mean((out - x.reshape(len(x), -1).astype(np.float64)) ** 2, axis=1)
        if task.metric == "mse":
            return float(np.mean(errors))
        auc = roc_auc(errors, np.asarray(y))
        if math.isnan(auc):
            raise DataError("AUC needs both normal (0) and anomalous (1) samples in the evaluation split")
        return auc
    if y is None:
        return None
    if task.kind == "binary":
        predicted = out[:, 0] > (0.0 if task.from_logits else 0.5)
        return float(np.mean(predicted == (y > 0)))
    return float(np.mean(np.argmax(out, axis=1) == y))


# ------------------------------------------------------------------------------------------------ stages


@dataclass
class Stage:
    """One row of the report. Size fields come from the stage's own .tflite (float32 before int8)."""

    name: str
    kind: str  # "float32" (Keras float model), "qat" (fake-quant Keras model) or "int8" (TFLM host)
    metric: str
    value: float | None
    params: int | None
    macs: int | None
    tflite_bytes: int | None
    gzip_bytes: int | None
    arena_bytes: int | None
    sparsity: float | None  # zero weights / all conv+dense weights
    layer_sparsity: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class OptimizeResult:
    stages: list[Stage]
    tflite: bytes  # the final int8 model
    model: Any  # the last float tf_keras model (pruned/stripped or channel-pruned), before QAT
    task: Task
    eval_split: str
    eval_samples: int
    notes: list[str]
    options: OptimizeOptions

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.kind,
            "metric": self.task.metric,
            "eval_split": self.eval_split,
            "eval_samples": self.eval_samples,
            "options": asdict(self.options),
            "stages": [s.to_json() for s in self.stages],
            "notes": self.notes,
        }


def _gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _kernel_sparsity(model: Any, unpruned: set[str]) -> tuple[float | None, dict[str, float | None]]:
    zeros = total = 0
    layers: dict[str, float | None] = {}
    for layer in model.layers:
        for w in layer.weights:
            short = w.name.split("/")[-1].split(":")[0]
            if short not in KERNEL_NAMES:
                continue
            values = w.numpy()
            z = int(np.sum(values == 0))
            zeros += z
            total += values.size
            name = _base_name(layer.name)
            layers[name] = None if name in unpruned else round(z / values.size, 6)
    return (round(zeros / total, 6) if total else None), layers


def _base_name(name: str) -> str:
    for prefix in ("quant_", "prune_low_magnitude_"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def _tflite_sparsity(info: Any, unpruned: set[str]) -> tuple[float | None, dict[str, float | None]]:
    zeros = total = 0
    layers: dict[str, float | None] = {}
    for op in info.ops:
        if op.op not in WEIGHT_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        t = info.tensors[op.inputs[1]]
        if t.data is None:
            continue
        values = np.asarray(t.data)
        zeros += int(np.sum(values == 0))
        total += values.size
        parts = t.name.split(";")[0].split("/")
        name = _base_name(parts[1] if len(parts) > 2 else parts[0]) or f"{op.op}#{op.index}"
        layers[name] = None if name in unpruned else round(float(np.mean(values == 0)), 6)
    return (round(zeros / total, 6) if total else None), layers


def _as_loaded(model: Any, name: str) -> Any:
    from tinykeras.keras_io import LoadedModel

    return LoadedModel(path=Path(f"<{name} stage>"), keras_model=model, saved_model_dir=None, origin="keras2",
                       predict=lambda x: np.asarray(model(x, training=False)),
                       input_shape=tuple(model.inputs[0].shape))


def _predict(model: Any, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[k:k + batch], training=False)) for k in range(0, len(x), batch)])


def measure_float(model: Any, name: str, task: Task, x: np.ndarray, y: np.ndarray | None,
                  unpruned: set[str] = frozenset(), notes: list[str] | None = None) -> Stage:
    """Score a float Keras model and measure its float32 flatbuffer."""
    from tinykeras.convert import convert

    conv = convert(_as_loaded(model, name), "float32")
    sparsity, layers = _kernel_sparsity(model, set(unpruned))
    return Stage(name=name, kind="float32", metric=task.metric, value=score(_predict(model, x), x, y, task),
                 params=conv.info.params, macs=conv.info.macs, tflite_bytes=len(conv.data),
                 gzip_bytes=_gzip_size(conv.data), arena_bytes=conv.info.activation_peak_bytes,
                 sparsity=sparsity, layer_sparsity=layers, notes=list(notes or []))


def measure_int8(data: bytes, task: Task, x: np.ndarray, y: np.ndarray | None,
                 unpruned: set[str] = frozenset(), notes: list[str] | None = None) -> tuple[Stage, Any]:
    """Score an int8 flatbuffer on the TFLite-Micro host interpreter and measure it."""
    from tinykeras.inspect import inspect_bytes
    from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs

    info = inspect_bytes(data, path="model.tflite")
    runner = TflmRunner(data, info)
    out = dequantize(runner.run_all(prepare_inputs(x, info.input_tensors()[0])), info.output_tensors()[0])
    sparsity, layers = _tflite_sparsity(info, set(unpruned))
    stage = Stage(name="int8", kind="int8", metric=task.metric, value=score(out, x, y, task), params=info.params,
                  macs=info.macs, tflite_bytes=len(data), gzip_bytes=_gzip_size(data),
                  arena_bytes=info.activation_peak_bytes, sparsity=sparsity, layer_sparsity=layers,
                  notes=list(notes or []))
    return stage, info


# ------------------------------------------------------------------------------------------------ training


def _loss(task: Task) -> Any:
    keras = tf_keras()
    if task.kind == "autoencoder":
        return keras.losses.MeanSquaredError()
    if task.kind == "binary":
        return keras.losses.BinaryCrossentropy(from_logits=task.from_logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=task.from_logits)


def fine_tune(model: Any, data: Dataset, task: Task, options: OptimizeOptions, callbacks: list[Any] | None = None,
              learning_rate: float | None = None, epochs: int | None = None, best_from: int = 0) -> Any:
    """Compile and fit ``model`` (seeded). Autoencoders learn x -> x; ``data.train_stream`` (augmented batches)
    is used when given. With validation data, the weights of the epoch (from ``best_from`` on) with the
    lowest validation loss are kept."""
    keras = tf_keras()
    keras.utils.set_random_seed(options.seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate or options.learning_rate), loss=_loss(task))
    val = None
    if data.x_val is not None and (task.kind == "autoencoder" or data.y_val is not None):
        val = (data.x_val, data.x_val if task.kind == "autoencoder" else data.y_val)
    if data.train_stream is not None and task.kind != "autoencoder":
        fit: dict[str, Any] = {"x": data.train_stream(options.batch_size, options.seed)}
    else:
        y = data.x_train if task.kind == "autoencoder" else data.y_train
        fit = {"x": data.x_train, "y": y, "batch_size": options.batch_size, "shuffle": True}
    extra = [_KeepBest(best_from)] if val is not None else []
    model.fit(**fit, epochs=epochs or options.epochs, validation_data=val, verbose=0,
              callbacks=(callbacks or []) + extra)
    return model


class _KeepBest:
    """Keras callback (built lazily: tf_keras is imported on first use): restore the best val_loss epoch."""

    def __new__(cls, start_epoch: int) -> Any:
        keras = tf_keras()

        class KeepBest(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.best, self.weights = np.inf, None

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                loss = (logs or {}).get("val_loss")
                if epoch >= start_epoch and loss is not None and loss < self.best:
                    self.best, self.weights = loss, self.model.get_weights()

            def on_train_end(self, logs: dict | None = None) -> None:
                if self.weights is not None:
                    self.model.set_weights(self.weights)

        return KeepBest()


def steps_per_epoch(data: Dataset, batch_size: int) -> int:
    """Batches in one epoch: the stream's cardinality when it knows it, else len(x_train) / batch_size."""
    if data.train_stream is not None:
        cardinality = int(data.train_stream(batch_size, 0).cardinality())
        if cardinality > 0:
            return cardinality
    return int(np.ceil(len(data.x_train) / batch_size))


def copy_model(model: Any) -> Any:
    """A fresh tf_keras model with the same architecture and weights (optimizing never mutates the input)."""
    keras = tf_keras()
    try:
        clone = keras.models.clone_model(model)
    except Exception as exc:
        raise ModelError(f"cannot clone the model ({str(exc).splitlines()[0][:200]}); custom layers need "
                         "get_config()/from_config()") from exc
    clone.set_weights(model.get_weights())
    return clone


def ensure_tf_keras(model: Any) -> None:
    """tfmot works on tf_keras (Keras 2) models only."""
    keras = tf_keras()
    if not isinstance(model, keras.Model):
        module = type(model).__module__
        raise ModelError(
            f"the model is a {module}.{type(model).__name__}, not a tf_keras model; tfmot (pruning, QAT) needs "
            "tf_keras. Load .keras files with tinykeras.optimize.load_keras_model(), which rebuilds Keras 3 "
            "models in tf_keras")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "tinykeras optimizes single-input, single-output models")
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise ModelError(f"layer '{layer.name}' is a nested model; tfmot cannot prune or quantize nested "
                             "models. Flatten it into one functional model")


# ------------------------------------------------------------------------------------------------ pruning


def _prunable(layer: Any) -> tuple[bool, str]:
    """(tfmot will prune weights of this layer, reason if it cannot but has weights)."""
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    if isinstance(layer, tfmot.sparsity.keras.PrunableLayer):
        return True, ""
    if PruneRegistry.supports(layer):
        names = PruneRegistry._LAYERS_WEIGHTS_MAP.get(layer.__class__)  # None for RNN layers: cells decide
        return bool(names) if names is not None else bool(layer.weights), ""
    if not layer.weights:
        return False, ""
    return False, (f"layer '{layer.name}' ({type(layer).__name__}) cannot be pruned: tfmot's prune registry does "
                   "not know this layer class. Make it implement tfmot.sparsity.keras.PrunableLayer "
                   "(get_prunable_weights) or replace it with built-in layers")


def _m_by_n_ok(layer: Any) -> tuple[bool, str]:
    """2:4 sparsity groups 4 consecutive input channels of Conv2D/Dense kernels."""
    keras = tf_keras()
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) or \
            isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose)):
        return False, f"{layer.name}: 2:4 applies to Conv2D and Dense only"
    cin = int(layer.kernel.shape[-2])
    if cin % 4:
        return False, f"{layer.name}: not 2:4-pruned ({cin} input channels, not a multiple of 4)"
    return True, ""


def magnitude_prune(model: Any, data: Dataset, task: Task, options: OptimizeOptions) -> tuple[Any, set[str], list[str]]:
    """tfmot prune_low_magnitude (or 2:4) + fine-tune with UpdatePruningStep + strip_pruning.

    Returns the stripped model, the names of layers with weights that were left dense, and notes.
    """
    import tensorflow_model_optimization as tfmot

    keras = tf_keras()
    sparsity_api = tfmot.sparsity.keras
    kind, _ = parse_structured(options.structured)
    steps = steps_per_epoch(data, options.batch_size) * options.epochs
    if kind == "2:4":
        target = 0.5
    else:
        target = float(options.prune)
    if options.schedule == "constant" or kind == "2:4":
        schedule = sparsity_api.ConstantSparsity(target, begin_step=0, frequency=max(1, steps // 20))
    else:
        end = max(1, int(0.7 * steps))
        schedule = sparsity_api.PolynomialDecay(0.0, target, begin_step=0, end_step=end,
                                                frequency=max(1, end // 10))
    unpruned: set[str] = set()
    notes: list[str] = []
    for layer in model.layers:
        ok, why = _prunable(layer)
        if why:
            raise ModelError(why)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            unpruned.add(layer.name)
        elif ok and kind == "2:4":
            fits, reason = _m_by_n_ok(layer)
            if not fits:
                unpruned.add(layer.name)
                notes.append(reason)
    if any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in model.layers):
        notes.append(DEPTHWISE_NOTE)

    def wrap(layer: Any) -> Any:
        ok, _ = _prunable(layer)
        if not ok or layer.name in unpruned:
            return layer
        if kind == "2:4":
            return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule, sparsity_m_by_n=(2, 4))
        return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)

    base = copy_model(model)
    try:
        pruned = keras.models.clone_model(base, clone_function=wrap)
    except ValueError as exc:
        raise ModelError(f"tfmot cannot prune this model: {str(exc).splitlines()[0][:300]}") from exc
    ramp_end = 0 if options.schedule == "constant" or kind == "2:4" else int(np.ceil(0.7 * options.epochs))
    fine_tune(pruned, data, task, options, callbacks=[sparsity_api.UpdatePruningStep()], best_from=ramp_end)
    return sparsity_api.strip_pruning(pruned), unpruned, notes


# ------------------------------------------------------------------------------------------------ QAT


def quantize_aware(model: Any, data: Dataset, task: Task, options: OptimizeOptions,
                   preserve_sparsity: bool) -> Any:
    """tfmot QAT. With ``preserve_sparsity`` the prune-preserving scheme keeps the zeros (plain
    ``quantize_model`` does not)."""
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    for layer in model.layers:
        builtin = type(layer).__module__.startswith(("tf_keras.", "keras.src.", "tensorflow."))
        if not builtin and not registry.supports(layer):
            raise ModelError(
                f"layer '{layer.name}' ({type(layer).__name__}) cannot be quantization-aware trained: it is a "
                "custom layer and tfmot's default 8-bit scheme has no rule for it. Drop --qat (post-training "
                "int8 still works), or annotate it with a tfmot QuantizeConfig in your own code")
    qapi = tfmot.quantization.keras
    scheme = (tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme() if preserve_sparsity
              else qapi.default_8bit.Default8BitQuantizeScheme())
    try:
        with qapi.quantize_scope():
            qat = qapi.quantize_apply(qapi.quantize_annotate_model(copy_model(model)), scheme)
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise ModelError(f"tfmot cannot apply QAT to this model: {str(exc).splitlines()[0][:300]} "
                         "Drop --qat to use post-training int8 only") from exc
    return fine_tune(qat, data, task, options, learning_rate=options.learning_rate / 2,
                     epochs=options.qat_epochs or options.epochs)


# ------------------------------------------------------------------------------------------------ driver


def representative(data: Dataset, samples: int, seed: int) -> np.ndarray:
    n = len(data.x_train)
    idx = np.sort(np.random.default_rng(seed).permutation(n)[: min(samples, n)])
    return data.x_train[idx]


def optimize(model: Any, data: Dataset, options: OptimizeOptions | None = None, log: Any = None) -> OptimizeResult:
    """Run the stages ``options`` ask for on a tf_keras ``model``; the input model is not modified.

    ``log`` (optional callable taking a string) receives one line per stage as it starts.
    """
    options = options or OptimizeOptions()
    options.validate()
    ensure_tf_keras(model)
    say = log or (lambda _msg: None)
    import_tf()
    task, data = prepare(model, data, options.metric)
    split, x_eval, y_eval = data.eval_split()
    notes: list[str] = []
    if data.note:
        notes.append(data.note)
    if split != "test":
        notes.append(f"no test split: metrics are measured on the {split} split")
    kind, fraction = parse_structured(options.structured)

    say("float: measuring")
    stages = [measure_float(model, "float", task, x_eval, y_eval)]
    current = model
    unpruned: set[str] = set()
    if kind == "channels":
        from tinykeras.prune_channels import channel_prune

        say("channels: ranking, removing and fine-tuning channels")
        pruned, plan = channel_prune(copy_model(current), fraction=None if options.target_macs else fraction,
                                     target_macs=options.target_macs, importance=options.importance,
                                     x_sample=data.x_train[:8])
        current = fine_tune(pruned, data, task, options)
        stages.append(measure_float(current, "channels", task, x_eval, y_eval, notes=plan.notes()))
    if options.prune is not None or kind == "2:4":
        label = "2:4" if kind == "2:4" else f"{options.prune:.0%} {options.schedule}"
        say(f"pruned: magnitude pruning ({label}) and fine-tuning")
        current, unpruned, prune_notes = magnitude_prune(current, data, task, options)
        stages.append(measure_float(current, "pruned", task, x_eval, y_eval, unpruned, prune_notes))
    final_float = current
    if options.qat:
        preserve = options.prune is not None or kind == "2:4"
        say("qat: quantization-aware training" + (" (sparsity-preserving)" if preserve else ""))
        current = quantize_aware(current, data, task, options, preserve)
        sparsity, layers = _kernel_sparsity(current, unpruned)
        qat_notes = ["fake-quant Keras model; its flatbuffer is the int8 stage"]
        stages.append(Stage(name="qat", kind="qat", metric=task.metric,
                            value=score(_predict(current, x_eval), x_eval, y_eval, task),
                            params=stages[-1].params, macs=stages[-1].macs, tflite_bytes=None, gzip_bytes=None,
                            arena_bytes=None, sparsity=sparsity, layer_sparsity=layers, notes=qat_notes))
    say("int8: full-integer conversion, evaluated on the TFLite-Micro host interpreter")
    from tinykeras.convert import convert

    conv = convert(_as_loaded(current, "int8"), "int8", representative(data, options.rep_samples, options.seed),
                   per_tensor_dense=options.per_tensor_dense)
    int8_stage, _ = measure_int8(conv.data, task, x_eval, y_eval, unpruned,
                                 ["from the QAT model" if options.qat else "post-training quantization"])
    stages.append(int8_stage)
    return OptimizeResult(stages=stages, tflite=conv.data, model=final_float, task=task, eval_split=split,
                          eval_samples=int(len(x_eval)), notes=notes, options=options)


# ------------------------------------------------------------------------------------------------ output


def stage_table(result: OptimizeResult) -> Any:
    """A rich Table of the stages."""
    from rich.table import Table

    metric = result.task.metric
    table = Table(title=f"tinykeras optimize: {metric} on {result.eval_samples} {result.eval_split} samples")
    for col in ("stage", metric, "params", "MACs", ".tflite B", "gzip B", "arena B", "sparsity"):
        table.add_column(col, justify="left" if col == "stage" else "right")

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for s in result.stages:
        value = "-" if s.value is None else (f"{s.value:.2%}" if metric == "accuracy" else f"{s.value:.4f}")
        table.add_row(s.name, value, fmt(s.params, ","), fmt(s.macs, ","), fmt(s.tflite_bytes, ","),
                      fmt(s.gzip_bytes, ","), fmt(s.arena_bytes, ","), fmt(s.sparsity, ".1%"))
    return table


def sparsity_table(result: OptimizeResult) -> Any:
    """A rich Table of per-layer weight sparsity (rows: layers, columns: stages); "-" = not pruned by tfmot."""
    from rich.table import Table

    table = Table(title="weight sparsity per layer")
    table.add_column("layer")
    layers: dict[str, None] = {}
    for stage in result.stages:
        table.add_column(stage.name, justify="right")
        layers.update(dict.fromkeys(stage.layer_sparsity))
    for layer in layers:
        cells = []
        for stage in result.stages:
            value = stage.layer_sparsity.get(layer, "n/a")
            cells.append("n/a" if value == "n/a" else ("-" if value is None else f"{value:.1%}"))
        table.add_row(layer, *cells)
    return table


def plot_stages(result: OptimizeResult, path: Path) -> None:
    """PNG comparing the stages: metric, bytes (.tflite and gzip), MACs, arena. Deterministic (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in result.stages]
    pos = np.arange(len(names))
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    panels = [
        (result.task.metric, [s.value for s in result.stages], None),
        ("bytes", [s.tflite_bytes for s in result.stages], [s.gzip_bytes for s in result.stages]),
        ("MACs", [s.macs for s in result.stages], None),
        ("arena bytes (estimate)", [s.arena_bytes for s in result.stages], None),
    ]
    for ax, (title, values, second) in zip(axes, panels, strict=True):
        heights = [0 if v is None else v for v in values]
        width = 0.4 if second else 0.7
        ax.bar(pos - (width / 2 if second else 0), heights, width, label=".tflite" if second else None)
        if second:
            ax.bar(pos + width / 2, [0 if v is None else v for v in second], width, label="gzip")
            ax.legend(fontsize=7)
        ax.set_xticks(pos, names, rotation=20, fontsize=8)
        ax.set_title(title, fontsize=9)
        if result.task.metric == "accuracy" and title == "accuracy":
            low = min(v for v in heights if v) if any(heights) else 0
            ax.set_ylim(max(0.0, low - 0.1), 1.0)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)


def write_outputs(result: OptimizeResult, out_dir: Path, source: str, labels: list[str] | None = None) -> dict:
    """Write the int8 model.tflite, its C array (model_data.h/.cc, model_settings.h), optimize.json and
    optimize.png into ``out_dir`` (the caller makes it atomic)."""
    from tinykeras.cgen import c_sources
    from tinykeras.inspect import inspect_bytes

    info = inspect_bytes(result.tflite, path="model.tflite")
    (out_dir / "model.tflite").write_bytes(result.tflite)
    c_sources(result.tflite, info, labels=labels).write(out_dir)
    plot_stages(result, out_dir / "optimize.png")
    _carry_settings(source, out_dir, labels)
    report = {"source": source, "sha256": info.sha256, **result.to_json()}
    (out_dir / "optimize.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    return report


def _carry_settings(source: str, out_dir: Path, labels: list[str] | None) -> None:
    """settings.json (labels, feature front end) beside the source model, carried into ``out_dir`` with the
    model's name, so a build of the optimized model keeps its front end, labels and name."""
    from tinykeras.keras_io import model_name
    from tinykeras.recipes.frontend import settings_beside

    path = Path(source)
    settings = dict((settings_beside(path) if path.suffix else None) or {})
    if labels:
        settings["labels"] = list(labels)
    if not settings:
        return
    settings.setdefault("name", model_name(path))
    (out_dir / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def load_keras_model(path: Path | str, custom_objects: str | None = None) -> Any:
    """Load a .keras/.h5/SavedModel as a tf_keras model; a Keras 3 .keras file is rebuilt in tf_keras."""
    from tinykeras.keras_io import _saved_by_keras3, load_model

    path = Path(path)
    if path.suffix.lower() == ".keras" and path.exists() and _saved_by_keras3(path):
        from tinykeras.keras3_rebuild import rebuild_keras3

        return rebuild_keras3(path)
    loaded = load_model(path, custom_objects=custom_objects)
    if loaded.keras_model is None:
        raise ModelError(f"{path}: loaded as a plain SavedModel ({loaded.origin}), which tfmot cannot prune or "
                         "quantization-aware train. Pass the .keras or .h5 file the model was saved as")
    return loaded.keras_model


def dataset_from_recipe(data: Any) -> Dataset:
    """A :class:`Dataset` from a recipe's ``RecipeData`` (fine-tuning uses the plain, un-augmented arrays)."""
    stream = getattr(data, "train_dataset", None)
    return Dataset(data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test,
                   note=f"recipe splits ({getattr(data, 'source', 'recipe')})"
                        + ("; fine-tuning on the recipe's augmented batches" if stream else ""),
                   train_stream=stream)


def optimize_to_dir(model: Any, data: Dataset, options: OptimizeOptions, out_dir: Path | str, source: str,
                    labels: list[str] | None = None, log: Any = None) -> OptimizeResult:
    """:func:`optimize` and write its outputs atomically into ``out_dir`` (what ``tinykeras train --prune``
    and ``--qat`` call after training)."""
    from tinykeras.fsutil import atomic_output_dir

    result = optimize(model, data, options, log=log)
    with atomic_output_dir(out_dir) as tmp:
        write_outputs(result, tmp, source=source, labels=labels)
    return result
