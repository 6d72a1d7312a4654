"""MLPerf Tiny datasets in the official runner's format, and its accuracy and AUC.

A dataset directory holds ``<id>/y_labels.csv`` (rows ``file, classes, class[, bytes_to_send, stride]``, read as
the runner's ``datasets.DataSet`` reads them) and the input files: raw int8 bytes (kws01), uint8 pixels (ic01,
vww01) or float32 feature frames cut into overlapping windows (ad01). :func:`score` computes the runner's
"Top 1%" and "AUC" (main.py ``summarize_result``) from the results a board printed. No TensorFlow.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import DataError
from tinykeras.mlperf_models import Conventions

LABELS = "y_labels.csv"
AD_FRAME = 128          # ad01: 128 log-mel bands per frame; one input = 5 frames (640 float32 = 2,560 bytes)
AD_WINDOW_BYTES = 640 * 4
AD_STRIDE_BYTES = AD_FRAME * 4


@dataclass(frozen=True)
class DatasetFile:
    """One file of a dataset: its name, true class and the inputs the runner sends from it (one, or ad01's windows)."""

    file: str
    label: int
    segments: tuple[bytes, ...]


def write_dataset(root: Path, conv: Conventions, input_elements: int, classes: int, files: int | None = None,
                  seed: int = 0, ad_frames: int = 8) -> Path:
    """Write a small deterministic dataset for benchmark ``conv.id`` into ``root/<id>``; return that directory.

    Classifiers get one file per class (at least ``files``), so the runner's AUC is defined; ad01 alternates
    normal (0) and anomalous (1) files of ``ad_frames`` frames each. The values are random, not recordings:
    the check they serve is that a board computes what the host interpreter computes on the same bytes."""
    if conv.id is None:
        raise DataError("a dataset needs an MLPerf Tiny model id (kws01, vww01, ic01, ad01)")
    rng = np.random.default_rng(seed)
    out = Path(root) / conv.id
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    if conv.input == "float32":
        for k in range(max(files or 4, 2)):
            frames = rng.uniform(-60.0, 10.0, size=(ad_frames, AD_FRAME)).astype("<f4")
            name = f"tk_{k:06d}_{'anomaly' if k % 2 else 'normal'}.bin"
            (out / name).write_bytes(frames.tobytes())
            rows.append([name, 2, k % 2, AD_WINDOW_BYTES, AD_STRIDE_BYTES])
    else:
        dtype = np.uint8 if conv.input == "uint8" else np.int8
        info = np.iinfo(dtype)
        for k in range(max(files or classes, classes)):
            data = rng.integers(info.min, info.max + 1, size=input_elements, dtype=np.int32).astype(dtype)
            name = f"tk_{k:06d}_c{k % classes}.bin"
            (out / name).write_bytes(data.tobytes())
            rows.append([name, classes, k % classes])
    with open(out / LABELS, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return out


def read_dataset(directory: Path) -> list[DatasetFile]:
    """The files of a dataset directory (holding y_labels.csv), split into the inputs the runner sends."""
    directory = Path(directory)
    labels = directory / LABELS
    if not labels.is_file():
        raise DataError(f"{directory}: no {LABELS}; an MLPerf Tiny dataset directory holds {LABELS} and the "
                        "files it lists (e.g. datasets/kws01/)")
    out = []
    with open(labels, newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh, fieldnames=["file", "classes", "class", "bytes_to_send",
                                                                "stride"]), start=1):
            try:
                name, label = (row["file"] or "").strip(), int(row["class"])
                path = directory / name
                data = path.read_bytes()
            except (TypeError, ValueError, OSError) as exc:
                raise DataError(f"{labels}:{n}: bad row {list(row.values())} ({exc}); expected "
                                "`file, classes, class[, bytes_to_send, stride]`") from exc
            if row.get("bytes_to_send") and row.get("stride"):
                size, stride = int(row["bytes_to_send"]), int(row["stride"])
                if size <= 0 or stride <= 0:
                    raise DataError(f"{labels}:{n}: bytes_to_send and stride must be > 0")
                segments = tuple(data[s:s + size] for s in range(0, len(data) - size + 1, stride))
            else:
                segments = (data,)
            out.append(DatasetFile(name, label, segments))
    if not out:
        raise DataError(f"{labels} lists no files")
    return out


def score(results: list[list[list[float]]], labels: list[int]) -> dict[str, float]:
    """The runner's accuracy ("Top 1%") and AUC from each file's printed results (one list per input sent).

    Multi-value results are normalised to sum 1 and averaged per file; one value (ad01) is averaged as is. The
    accuracy of one-value results is the runner's best (precision + recall) / 2 over 100 thresholds."""
    from sklearn.metrics import roc_auc_score

    per_file = []
    for res in results:
        rows = [list(r) if len(r) == 1 else [v / sum(r) for v in r] for r in res]
        per_file.append(np.mean(np.asarray(rows, dtype=np.float64), axis=0))
    y_pred, y_true = np.array(per_file), np.array(labels)
    if y_pred.shape[1] == 1:
        accuracy = 0.0
        lo, hi = np.amin(y_pred), np.amax(y_pred)
        for threshold in lo + np.arange(0.0, 1.0, 0.01) * (hi - lo):
            binary = (y_pred > threshold).astype(int)
            tp = np.sum(binary[y_true == 1] == 1)
            fp = np.sum(binary[y_true == 0] == 1)
            fn = np.sum(binary[y_true == 1] == 0)
            precision, recall = tp / (tp + fp + 1e-8), tp / (tp + fn + 1e-8)
            accuracy = max(accuracy, 100 * (precision + recall) / 2)
    else:
        accuracy = 100 * np.sum(y_true == np.argmax(y_pred, axis=1)) / len(y_pred)
    auc: Any
    try:
        if y_pred.shape[1] == 2:
            auc = roc_auc_score(y_true, y_pred[:, 1])
        else:
            auc = roc_auc_score(y_true, y_pred, multi_class="ovr")
    except ValueError as exc:  # the runner stops here too
        raise DataError(f"the AUC is undefined for this dataset ({exc}); the runner needs every class of the "
                        "model among the files") from None
    return {"accuracy": float(accuracy), "auc": float(auc)}
