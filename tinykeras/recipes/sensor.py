"""Machine-sound / vibration anomaly detection, MLPerf Tiny AD style: log-mel frames, a dense autoencoder,
scored by reconstruction error (AUC).

Data: ``DIR/train/normal/`` holds normal recordings only; ``DIR/test/normal/`` and ``DIR/test/anomaly/`` the
evaluation recordings. Files are 16 kHz 16-bit WAV, or CSV with one sample per row (first column) at 16 kHz.
Recordings are cut into 2 s segments; each segment gives 61 log-mel frames (1024-sample window, 512 step,
64 mel bands, 50-8000 Hz), normalised per band, and every run of 5 consecutive frames (320 values) is one model
input. A segment's anomaly score is the mean squared reconstruction error over its windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.datasets import note, read_wav
from tinykeras.errors import DataError
from tinykeras.metrics import roc_auc
from tinykeras.recipes.base import Recipe, RecipeData, plot_roc, roc_curve
from tinykeras.recipes.frontend import AudioFeatures

SEGMENT_SECONDS = 2.0
CONTEXT = 5
FEATURES = AudioFeatures(kind="log_mel", sample_rate=16000, clip_samples=int(16000 * SEGMENT_SECONDS),
                         frame_length=1024, frame_step=512, num_mel_bins=64, lower_hz=50.0, upper_hz=8000.0,
                         log_offset=1e-6)
CLASSES = ["normal", "anomaly"]
BN_MOMENTUM = 0.9  # small datasets: moving statistics must settle within a few hundred steps


def read_signal(path: Path) -> np.ndarray:
    """A WAV (16 kHz) or a CSV (one sample per row, first column) -> float32 samples."""
    if path.suffix.lower() == ".wav":
        audio, rate = read_wav(path)
        if rate != FEATURES.sample_rate:
            raise DataError(f"{path}: {rate} Hz; the sensor recipe needs 16 kHz "
                            f"(resample with `sox in.wav -r 16000 out.wav`)")
        return audio
    values = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        cell = line.split(",")[0].strip()
        if not cell:
            continue
        try:
            values.append(float(cell))
        except ValueError:
            if number == 1:
                continue
            raise DataError(f"{path}:{number}: not a number: '{cell[:40]}'") from None
    return np.asarray(values, np.float32)


def segments(path: Path) -> list[np.ndarray]:
    """Consecutive 2 s segments of a recording (the remainder is dropped)."""
    x = read_signal(path)
    n = FEATURES.clip_samples
    if len(x) < n:
        raise DataError(f"{path}: {len(x) / FEATURES.sample_rate:.2f} s long; recordings need at least "
                        f"{SEGMENT_SECONDS:g} s at {FEATURES.sample_rate} Hz")
    return [x[i:i + n] for i in range(0, len(x) - n + 1, n)]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix.lower() in (".wav", ".csv")) if folder.is_dir() else []


def windows(frames: np.ndarray, stride: int = 1) -> np.ndarray:
    """[segments, frames, mels] -> [segments, windows, CONTEXT * mels] (frame-major, as the device stacks them)."""
    n = frames.shape[1] - CONTEXT + 1
    idx = np.arange(0, n, stride)[:, None] + np.arange(CONTEXT)[None, :]
    return frames[:, idx, :].reshape(frames.shape[0], len(idx), -1)


def autoencoder(dim: int, width: int = 64, bottleneck: int = 8) -> Any:
    """Dense autoencoder (MLPerf Tiny AD shape, narrower): 3 x width, bottleneck, 3 x width, linear out."""
    from tinykeras.keras_io import tf_keras

    keras = tf_keras()
    layers = keras.layers
    inputs = keras.Input(shape=(dim,))
    x = inputs
    for units in (width, width, width, bottleneck, width, width, width):
        x = layers.Dense(units)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.Activation("relu")(x)
    outputs = layers.Dense(dim)(x)
    return keras.Model(inputs, outputs, name=f"ad_autoencoder_{width}")


class SensorRecipe(Recipe):
    name = "sensor"
    task = "anomaly_detection"
    metric = "auc"
    monitor = "val_loss"
    monitor_mode = "min"
    epochs = 60
    quick_epochs = 2
    batch_size = 256
    learning_rate = 1e-3
    patience = 8

    def synthesize(self, dest: Path, quick: bool, seed: int) -> dict[str, int]:
        from tinykeras.datasets.sensor_synth import SensorSynthConfig, synthesize

        cfg = SensorSynthConfig(train_normal=20, test_normal=8, test_anomaly=9, seed=seed) if quick \
            else SensorSynthConfig(seed=seed)
        return synthesize(dest, cfg)

    def compile(self, model: Any) -> None:
        from tinykeras.keras_io import tf_keras

        model.compile(optimizer=tf_keras().optimizers.Adam(self.learning_rate), loss="mse")

    def load(self, path: Path, quick: bool, seed: int) -> RecipeData:
        from tinykeras.features import audio_features, fit_normalization, normalize

        path = Path(path)
        train_files = _files(path / "train" / "normal")
        normal_files, anomaly_files = _files(path / "test" / "normal"), _files(path / "test" / "anomaly")
        if not train_files or not normal_files or not anomaly_files:
            raise DataError(f"{path}: needs WAV/CSV files in train/normal, test/normal and test/anomaly "
                            "(see `tinykeras data synth sensor --help`)")
        if quick:
            train_files, normal_files, anomaly_files = train_files[:16], normal_files[:6], anomaly_files[:6]
        rng = np.random.default_rng(seed)
        train_seg = [s for f in train_files for s in segments(f)]
        order = rng.permutation(len(train_seg))
        n_val = max(1, len(train_seg) // 10)
        val_seg = [train_seg[i] for i in sorted(order[:n_val])]
        train_seg = [train_seg[i] for i in sorted(order[n_val:])]
        test_seg, test_label, test_name = [], [], []
        for label, files in ((0, normal_files), (1, anomaly_files)):
            for f in files:
                for s in segments(f):
                    test_seg.append(s)
                    test_label.append(label)
                    test_name.append(f.stem)
        note(f"computing log-mel features ({len(train_seg)} train, {len(val_seg)} validation, "
             f"{len(test_seg)} test segments)")
        f_train = audio_features(np.stack(train_seg), FEATURES)
        mean, std = fit_normalization(f_train)
        f_train = normalize(f_train, mean, std)
        f_val = normalize(audio_features(np.stack(val_seg), FEATURES), mean, std)
        f_test = normalize(audio_features(np.stack(test_seg), FEATURES), mean, std)
        x_train = windows(f_train).reshape(-1, CONTEXT * FEATURES.num_mel_bins)
        x_val = windows(f_val).reshape(-1, CONTEXT * FEATURES.num_mel_bins)
        features = FEATURES.to_dict()
        features.update(context_frames=CONTEXT, segment_seconds=SEGMENT_SECONDS,
                        normalize={"mean": [float(v) for v in mean], "std": [float(v) for v in std]})
        settings = {"recipe": "sensor", "labels": CLASSES,
                    "input": f"{CONTEXT} consecutive normalised log-mel frames [{CONTEXT * FEATURES.num_mel_bins}]",
                    "score": "mean squared reconstruction error, averaged over a segment's windows",
                    "features": features}
        y_test = np.asarray(test_label, np.int64)
        return RecipeData(x_train=x_train, y_train=x_train, x_val=x_val, y_val=x_val,
                          x_test=windows(f_test).reshape(-1, CONTEXT * FEATURES.num_mel_bins),
                          y_test=np.repeat(y_test, f_test.shape[1] - CONTEXT + 1),
                          classes=CLASSES, settings=settings, source=str(path),
                          extra={"test_frames": f_test, "test_labels": y_test, "test_names": test_name,
                                 "val_frames": f_val})

    def build_model(self, data: RecipeData, variant: str) -> Any:
        return autoencoder(int(data.x_train.shape[1]))

    def scores(self, model: Any, frames: np.ndarray) -> np.ndarray:
        """Per-segment anomaly scores for normalised frames [segments, frames, mels]."""
        w = windows(frames)
        flat = w.reshape(-1, w.shape[-1])
        recon = model.predict(flat, batch_size=1024, verbose=0)
        err = np.mean((recon - flat) ** 2, axis=1).reshape(w.shape[0], w.shape[1])
        return err.mean(axis=1)

    def evaluate(self, model: Any, data: RecipeData, out_dir: Path) -> dict[str, Any]:
        scores = self.scores(model, data.extra["test_frames"])
        labels = data.extra["test_labels"]
        auc = roc_auc(scores, labels)
        fpr, tpr = roc_curve(scores, labels)
        plot_roc(fpr, tpr, auc, out_dir / "roc.png")
        val_scores = self.scores(model, data.extra["val_frames"])
        threshold = float(np.quantile(val_scores, 0.95))
        per_fault = {}
        names = np.asarray(data.extra["test_names"])
        for fault in sorted({n.split("_")[1] for n in names if n.startswith("anomaly_") and n.count("_") >= 2}):
            mask = (labels == 0) | np.char.startswith(names, f"anomaly_{fault}_")
            per_fault[fault] = round(roc_auc(scores[mask], labels[mask]), 4)
        data.settings["threshold"] = threshold
        return {"metric": "auc", "value": round(auc, 4), "test_segments": int(len(labels)),
                "test_anomalous": int(labels.sum()), "auc_per_fault": per_fault,
                "threshold_p95_validation": round(threshold, 6),
                "detected_at_threshold": round(float(np.mean(scores[labels == 1] > threshold)), 4)
                if labels.sum() else None,
                "false_alarms_at_threshold": round(float(np.mean(scores[labels == 0] > threshold)), 4)}

    def test_arrays(self, data: RecipeData) -> dict[str, np.ndarray]:
        """Non-overlapping windows of the test segments, y = 1 for anomalous, segment = index of the segment."""
        w = windows(data.extra["test_frames"], stride=CONTEXT)
        y = np.repeat(data.extra["test_labels"], w.shape[1])
        seg = np.repeat(np.arange(w.shape[0]), w.shape[1])
        return {"x": w.reshape(-1, w.shape[-1]).astype(np.float32), "y": y, "segment": seg}


RECIPE = SensorRecipe()
