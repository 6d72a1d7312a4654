"""Per-output quality metrics of a quantized model against the float model and against labels.

Every output is compared, each with the metrics of its task: top-1 accuracy and agreement for classifiers
(softmax or class labels), accuracy and agreement at 0.5 for a single sigmoid, and MAE, RMSE, R² and cosine
similarity for regression and reconstruction. A near-constant int8 output whose float twin varies is flagged
as collapsed. Pure numpy; used by ``quantize``, ``emulate`` and ``validate``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from tinykeras.types import ModelInfo

COLLAPSE_STD_RATIO = 0.1   # int8 output std below this fraction of the float std: collapsed
COLLAPSE_R2 = 0.5          # or R² against the float output below this

# threshold option -> (metric key, comparison)
THRESHOLDS = {
    "min_top1": ("accuracy", ">="),
    "min_agreement": ("agreement", ">="),
    "max_mae": ("mae", "<="),
    "max_rmse": ("rmse", "<="),
    "min_r2": ("r2", ">="),
    "min_cosine": ("cosine", ">="),
}


def producers(info: ModelInfo) -> dict[int, str]:
    """Tensor index -> the op that writes it."""
    return {t: op.op for op in info.ops for t in op.outputs}


def detect_task(info: ModelInfo | None, index: int, shape: tuple[int, ...], labels: np.ndarray | None = None,
                task: str = "auto") -> str:
    """The task of output ``index``: from its producing op (SOFTMAX, LOGISTIC), its labels, its shape."""
    if task != "auto":
        return task
    per_sample = tuple(shape[1:])
    elements = int(np.prod(per_sample)) if per_sample else 1
    op = producers(info).get(info.outputs[index]) if info is not None and index < len(info.outputs) else None
    if op == "SOFTMAX" and elements > 1:
        return "classification"
    if op == "LOGISTIC" and elements == 1:
        return "binary"
    if labels is not None and elements > 1 and len(per_sample) == 1 and _class_labels(labels, elements):
        return "classification"
    return "regression"


def _class_labels(y: np.ndarray, classes: int) -> bool:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == classes and y.shape[1] > 1:
        return bool(np.all((y == 0) | (y == 1)))
    flat = y.reshape(len(y), -1)
    if flat.shape[1] != 1:
        return False
    values = flat[:, 0]
    return bool(np.all(np.mod(values, 1) == 0) and values.min(initial=0) >= 0 and values.max(initial=0) < classes)


def _classes(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    return y.reshape(len(y)).astype(np.int64)


def _regression(pred: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    p = pred.reshape(len(pred), -1).astype(np.float64)
    t = truth.reshape(len(truth), -1).astype(np.float64)
    err = p - t
    ss_tot = float(np.sum((t - t.mean(axis=0)) ** 2))
    norms = np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1)
    cos = np.sum(p * t, axis=1) / np.where(norms > 0, norms, 1.0)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "r2": None if ss_tot <= 0 else float(1.0 - np.sum(err ** 2) / ss_tot),
        "cosine": float(np.mean(cos)) if p.shape[1] > 1 else None,
    }


def confusion(truth: np.ndarray, pred: np.ndarray, classes: int) -> list[list[int]]:
    """Counts: row = true class, column = predicted class (labels outside 0..classes-1 are left out)."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    ok = (truth >= 0) & (truth < classes)
    np.add.at(matrix, (truth[ok].astype(np.int64), pred[ok]), 1)
    return matrix.tolist()


def output_metrics(got: np.ndarray, reference: np.ndarray | None = None, labels: np.ndarray | None = None, *,
                   task: str = "regression", name: str = "output_0") -> dict[str, Any]:
    """Metrics of one output. ``got``: the (dequantized) outputs under test; ``reference``: the float model's
    outputs on the same samples; ``labels``: ground truth. Metrics against the reference are plain keys
    (``agreement``, ``mae`` ...), against labels they are ``accuracy`` / ``labels_*`` (and ``reference_*``
    for the float model's own score)."""
    got = np.asarray(got, dtype=np.float32)
    n = len(got)
    flat = got.reshape(n, -1)
    out: dict[str, Any] = {"name": name, "task": task, "samples": int(n), "shape": list(got.shape[1:])}
    ref = None if reference is None else np.asarray(reference, dtype=np.float32).reshape(n, -1)
    if ref is not None:
        if ref.shape != flat.shape:
            raise ValueError(f"output '{name}': {flat.shape[1]} values per sample but the float model gives "
                             f"{ref.shape[1]}")
        diff = np.abs(flat - ref)
        out["max_abs_diff"] = float(diff.max()) if diff.size else 0.0
        out["mean_abs_diff"] = float(diff.mean()) if diff.size else 0.0
        out["output_std"] = float(flat.std(axis=0).mean())
        out["reference_std"] = float(ref.std(axis=0).mean())
    if task == "classification":
        pred = np.argmax(flat, axis=1)
        if ref is not None:
            out["agreement"] = float(np.mean(pred == np.argmax(ref, axis=1)))
        if labels is not None:
            truth = _classes(labels)[:n]
            out["accuracy"] = float(np.mean(pred == truth))
            out["confusion"] = confusion(truth, pred, flat.shape[1])
            if ref is not None:
                out["reference_accuracy"] = float(np.mean(np.argmax(ref, axis=1) == truth))
    elif task == "binary":
        pred = flat[:, 0] > 0.5
        if ref is not None:
            out["agreement"] = float(np.mean(pred == (ref[:, 0] > 0.5)))
        if labels is not None:
            truth = np.asarray(labels).reshape(len(labels))[:n] > 0.5
            out["accuracy"] = float(np.mean(pred == truth))
            if ref is not None:
                out["reference_accuracy"] = float(np.mean((ref[:, 0] > 0.5) == truth))
    else:
        if ref is not None:
            out.update(_regression(flat, ref))
            if flat.shape[1] > 1 and len(got.shape) == 2:
                out["agreement"] = float(np.mean(np.argmax(flat, axis=1) == np.argmax(ref, axis=1)))
        if labels is not None:
            y = np.asarray(labels, dtype=np.float32)[:n]
            if y.size == flat.size:
                for key, value in _regression(flat, y).items():
                    out[f"labels_{key}"] = value
                if ref is not None:
                    for key, value in _regression(ref, y).items():
                        out[f"reference_labels_{key}"] = value
    if ref is not None:
        r2 = out.get("r2")
        varies = out["reference_std"] > 1e-6
        out["collapsed"] = bool(varies and (out["output_std"] <= COLLAPSE_STD_RATIO * out["reference_std"]
                                            or (task == "regression" and r2 is not None and r2 < COLLAPSE_R2)))
    return out


def collapse_warnings(outputs: list[dict[str, Any]], what: str = "int8") -> list[str]:
    """One loud line per collapsed output, with the measured figures."""
    lines = []
    for m in outputs:
        if not m.get("collapsed"):
            continue
        r2 = m.get("r2")
        lines.append(
            f"WARNING: {what} output '{m['name']}' COLLAPSED: its values barely vary (std {m['output_std']:.4g} vs "
            f"{m['reference_std']:.4g} for the float model{'' if r2 is None else f', R² vs float {r2:.3f}'}, "
            f"max |diff| {m['max_abs_diff']:.4g}, {m['samples']} samples). Likely causes: inputs on very different "
            "scales sharing one int8 scale (normalise them before the model), or unrepresentative calibration "
            "data")
    return lines


def check_thresholds(outputs: list[dict[str, Any]], thresholds: dict[str, float | None]) -> list[str]:
    """Failed thresholds, one line each (empty when all pass). A threshold on a metric that no output has
    is a failure too (a CI gate that silently checks nothing is worse than none)."""
    failures = []
    for option, limit in thresholds.items():
        if limit is None:
            continue
        key, op = THRESHOLDS[option]
        checked = False
        for m in outputs:
            value = m.get(key)
            if value is None:
                value = m.get(f"labels_{key}")
            if value is None:
                continue
            checked = True
            ok = value >= limit if op == ">=" else value <= limit
            if not ok:
                failures.append(f"output '{m['name']}': {key} {value:.4g} {'<' if op == '>=' else '>'} "
                                f"{limit:g} (--{option.replace('_', '-')})")
        if not checked:
            failures.append(f"--{option.replace('_', '-')}: no output has a {key} figure (needs "
                            f"{'labels' if key == 'accuracy' else 'the float model or labels'})")
    return failures


def stats(values: Iterable[float]) -> dict[str, float] | None:
    """min, mean, p50, p90, p99, max and sample std (ddof=1; 0 for one value). None for no values.

    Percentiles interpolate linearly between order statistics (numpy's default method).
    """
    data = sorted(float(v) for v in values)
    n = len(data)
    if n == 0:
        return None

    def pct(p: float) -> float:
        pos = (n - 1) * p / 100.0
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return data[lo] + (data[hi] - data[lo]) * (pos - lo)

    mean = math.fsum(data) / n
    var = math.fsum((v - mean) ** 2 for v in data) / (n - 1) if n > 1 else 0.0
    return {"min": data[0], "mean": mean, "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": data[-1],
            "std": math.sqrt(var)}


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve: Mann-Whitney U over average ranks (label 1 = positive, a higher score = more
    positive, ties count half); nan unless both classes are present. The one AUC of tinykeras.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(labels).reshape(-1) > 0
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - counts + (counts + 1) / 2.0)[inverse.reshape(-1)]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
