"""What every recipe provides, and helpers they share (splits, plots, metrics)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class RecipeData:
    """Model-ready arrays for one run, plus what the device needs to know (``settings``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    settings: dict[str, Any]
    source: str
    # batch_size, seed -> tf.data.Dataset of augmented (x, y) batches; None: train on x_train/y_train as is
    train_dataset: Callable[[int, int], Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return (f"{len(self.x_train)} train, {len(self.x_val)} validation, {len(self.x_test)} test samples "
                f"of shape {list(self.x_train.shape[1:])}")


class Recipe:
    """Base class. Subclasses set the attributes and implement the methods that raise NotImplementedError."""

    name = ""
    task = "classification"  # or "anomaly_detection"
    metric = "accuracy"
    monitor = "val_accuracy"  # what EarlyStopping / ModelCheckpoint / ReduceLROnPlateau watch
    monitor_mode = "max"
    epochs = 40
    quick_epochs = 3
    batch_size = 64
    learning_rate = 1e-3
    patience = 10
    variants: tuple[str, ...] = ("default",)
    # `tinykeras tune`: the hyperparameters search_model/search_data read (the keys of <name>_space.toml), and
    # those of them that change the model inputs (the feature front end)
    search_keys: tuple[str, ...] = ()
    search_feature_keys: tuple[str, ...] = ()

    def synthesize(self, dest: Path, quick: bool, seed: int) -> dict[str, int]:
        """Write a synthetic dataset into ``dest`` (the recipe's layout)."""
        raise NotImplementedError

    def load(self, path: Path, quick: bool, seed: int) -> RecipeData:
        """Read a dataset directory into model-ready arrays."""
        raise NotImplementedError

    def build_model(self, data: RecipeData, variant: str) -> Any:
        """An uncompiled tf_keras model for ``data``."""
        raise NotImplementedError

    def compile(self, model: Any) -> None:
        keras = _keras()
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def evaluate(self, model: Any, data: RecipeData, out_dir: Path) -> dict[str, Any]:
        """Test metrics (``metric``/``value`` at least); write the evaluation plots into ``out_dir``."""
        return evaluate_classifier(model, data, out_dir)

    def search_source(self, path: Path, quick: bool, seed: int) -> Any:
        """What a search loads once (kws: the audio clips, so that trials can change the front end)."""
        return (path, quick, seed)

    def search_data(self, source: Any, values: dict[str, Any]) -> RecipeData:
        """Model-ready data for one trial's hyperparameter ``values`` (only search_feature_keys matter)."""
        return self.load(*source)

    def search_model(self, data: RecipeData, values: dict[str, Any]) -> Any:
        """An uncompiled tf_keras model for one trial's hyperparameter ``values`` (keys: search_keys)."""
        raise NotImplementedError(f"recipe {self.name} declares no search space")

    def test_arrays(self, data: RecipeData) -> dict[str, np.ndarray]:
        return {"x": data.x_test.astype(np.float32), "y": data.y_test}

    def representative(self, data: RecipeData, count: int, seed: int) -> np.ndarray:
        """``count`` training inputs to calibrate int8 scales."""
        idx = np.sort(np.random.default_rng(seed).permutation(len(data.x_train))[:count])
        return data.x_train[idx].astype(np.float32)


def _keras() -> Any:
    from tinykeras.keras_io import tf_keras

    return tf_keras()


def pair(value: Any) -> tuple[int, int]:
    """A kernel size or stride from a search space: 3 -> (3, 3), "10x4" -> (10, 4)."""
    if isinstance(value, str) and "x" in value:
        first, second = value.split("x", 1)
        return int(first), int(second)
    return int(value), int(value)


def stratified_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``per_class`` samples of each label."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        idx = np.nonzero(y == label)[0]
        keep.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)


def read_list(path: Path) -> set[str]:
    """A Speech-Commands-style list file (relative paths, one a line); empty if absent."""
    if not path.exists():
        return set()
    return {line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return cm


def evaluate_classifier(model: Any, data: RecipeData, out_dir: Path) -> dict[str, Any]:
    """Accuracy, per-class recall and the confusion matrix (PNG) on the test split."""
    probs = model.predict(data.x_test, batch_size=256, verbose=0)
    pred = np.argmax(probs, axis=1)
    cm = confusion_matrix(data.y_test, pred, len(data.classes))
    acc = float(np.mean(pred == data.y_test)) if len(pred) else 0.0
    recall = {c: round(float(cm[i, i] / cm[i].sum()), 4) if cm[i].sum() else None
              for i, c in enumerate(data.classes)}
    plot_confusion(cm, data.classes, out_dir / "confusion_matrix.png", f"test accuracy {acc:.1%}")
    return {"metric": "accuracy", "value": round(acc, 4), "test_samples": int(len(pred)),
            "per_class_recall": recall, "confusion_matrix": cm.tolist()}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=90, metadata={"Software": None})
    _pyplot().close(fig)


def plot_confusion(cm: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * len(classes), 0.8 + 0.5 * len(classes)))
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def plot_history(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Loss and (if present) accuracy per epoch, train vs validation."""
    plt = _pyplot()
    keys = [k for k in ("loss", "accuracy") if k in history]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(history[f"val_{key}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, path)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve (fpr, tpr) over every distinct score as a threshold. labels: 1 = anomalous. The area under
    it is :func:`tinykeras.metrics.roc_auc`."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    thresholds = np.unique(scores)[::-1]
    tpr = np.array([0.0] + [float(np.mean(pos >= t)) for t in thresholds])
    fpr = np.array([0.0] + [float(np.mean(neg >= t)) for t in thresholds])
    return fpr, tpr


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    fig.tight_layout()
    save_png(fig, path)
