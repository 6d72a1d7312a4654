"""Gestures from a 3-axis accelerometer (TFLM magic-wand classes): 128 x 3 windows, per-axis normalisation,
a small 2-D CNN. Training windows are augmented with rotated (up to 30 degrees per axis) and
time-shifted copies.

Data: ``DIR/<class>/*.csv`` with columns ``ax,ay,az`` (in g; a header row is optional). A file of exactly
128 rows is one window; a longer recording is cut into consecutive 128-row windows. ``validation_list.txt``
and ``testing_list.txt`` (paths relative to DIR) pick the held-out files; without them whole files are split
80/10/10 at random (seeded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.datasets import note
from tinykeras.errors import DataError
from tinykeras.recipes.base import Recipe, RecipeData, pair, read_list, stratified_subset

CLASSES = ["wing", "ring", "slope", "negative"]
WINDOW = 128
CHANNELS = 3
SAMPLE_RATE = 25
AUGMENT_COPIES = 2  # rotated + shifted copies added per training window
ROTATE_DEG = 30.0
SHIFT = 24


def read_csv(path: Path) -> np.ndarray:
    """A CSV of accelerometer rows -> [n, 3] float32 (a non-numeric first row is taken as the header)."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        cells = [c.strip() for c in line.split(",")]
        try:
            values = [float(c) for c in cells[:CHANNELS]]
        except ValueError:
            if number == 1:
                continue
            raise DataError(f"{path}:{number}: not a number in '{line[:60]}'") from None
        if len(values) != CHANNELS:
            raise DataError(f"{path}:{number}: expected {CHANNELS} columns (ax, ay, az), got {len(cells)}")
        rows.append(values)
    if len(rows) < WINDOW:
        raise DataError(f"{path}: {len(rows)} rows; a gesture window needs {WINDOW} rows of ax,ay,az")
    return np.asarray(rows, np.float32)


def load_layout(root: Path, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (x [n, 128, 3], y [n])} from a class-per-folder tree of CSV files."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset directory (one folder per class: {', '.join(CLASSES)})")
    missing = [c for c in CLASSES if not (root / c).is_dir()]
    if missing:
        raise DataError(f"{root}: missing class folder(s) {', '.join(missing)}; "
                        f"expected {', '.join(CLASSES)} with CSV files of ax,ay,az")
    val, test = read_list(root / "validation_list.txt"), read_list(root / "testing_list.txt")
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for label, cls in enumerate(CLASSES):
        for csv in sorted((root / cls).glob("*.csv")):
            rel = f"{cls}/{csv.name}"
            if val or test:
                split = "test" if rel in test else "val" if rel in val else "train"
            else:
                r = rng.random()
                split = "test" if r < 0.1 else "val" if r < 0.2 else "train"
            data = read_csv(csv)
            for start in range(0, len(data) - WINDOW + 1, WINDOW):
                out[split][0].append(data[start:start + WINDOW])
                out[split][1].append(label)
    result = {}
    for split, (xs, ys) in out.items():
        if not xs:
            raise DataError(f"{root}: the {split} split is empty (add files or fix the list files)")
        result[split] = (np.stack(xs), np.asarray(ys, np.int64))
    return result


def rotate_and_shift(x: np.ndarray, rng: np.random.Generator, max_deg: float = ROTATE_DEG,
                     max_shift: int = SHIFT) -> np.ndarray:
    """Augment raw windows [n, 128, 3]: a random rotation of the sensor frame and a circular time shift."""
    out = np.empty_like(x)
    for i in range(len(x)):
        a = np.radians(rng.uniform(-max_deg, max_deg, 3))
        c, s = np.cos(a), np.sin(a)
        rx = np.array([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]])
        ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
        rz = np.array([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]])
        out[i] = np.roll(x[i] @ (rz @ ry @ rx).T, int(rng.integers(-max_shift, max_shift + 1)), axis=0)
    return out.astype(np.float32)


def magic_wand_cnn(classes: int, filters: int = 16, kernel: tuple[int, int] = (4, 3),
                   pool: tuple[int, int] = (3, 3), dense: int | None = None) -> Any:
    """The TFLM magic-wand CNN shape, twice as wide: conv 4x3, pool 3x3, conv 4x1, pool 3x1, dense, softmax.
    The keyword arguments are what ``tinykeras tune gesture`` searches (gesture_space.toml)."""
    from tinykeras.keras_io import tf_keras

    keras = tf_keras()
    layers = keras.layers
    inputs = keras.Input(shape=(WINDOW, CHANNELS, 1))
    x = layers.Conv2D(filters, kernel, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(pool)(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Conv2D(2 * filters, (4, 1), padding="same", activation="relu")(x)
    x = layers.MaxPooling2D((3, 1), padding="same")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense or 2 * filters, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="magic_wand_cnn")


class GestureRecipe(Recipe):
    name = "gesture"
    epochs = 60
    quick_epochs = 3
    batch_size = 64
    learning_rate = 2e-3
    patience = 12
    search_keys = ("width", "kernel", "pool", "dense")

    def synthesize(self, dest: Path, quick: bool, seed: int) -> dict[str, int]:
        from tinykeras.datasets.gesture_synth import GestureSynthConfig, synthesize

        cfg = GestureSynthConfig(per_class=6, train_subjects=4, val_subjects=1, test_subjects=1, seed=seed) \
            if quick else GestureSynthConfig(seed=seed)
        return synthesize(dest, cfg)

    def load(self, path: Path, quick: bool, seed: int) -> RecipeData:
        from tinykeras.features import fit_normalization, normalize

        splits = load_layout(path, seed)
        if quick:
            for name, cap in {"train": 24, "val": 6, "test": 6}.items():
                x, y = splits[name]
                keep = stratified_subset(y, cap, seed)
                splits[name] = (x[keep], y[keep])
        note(f"gesture windows: {', '.join(f'{k}: {len(v[1])}' for k, v in splits.items())}")
        x_train, y_train = splits["train"]
        rng = np.random.default_rng(seed)
        copies = [rotate_and_shift(x_train, rng) for _ in range(0 if quick else AUGMENT_COPIES)]
        x_train = np.concatenate([x_train, *copies])
        y_train = np.concatenate([y_train] * (1 + len(copies)))
        mean, std = fit_normalization(x_train)

        def prep(x: np.ndarray) -> np.ndarray:
            return normalize(x, mean, std)[..., None]

        settings = {"recipe": "gesture", "labels": CLASSES, "input": "normalised accelerometer [128, 3, 1]",
                    "features": {"kind": "imu", "window": WINDOW, "channels": CHANNELS,
                                 "sample_rate": SAMPLE_RATE, "units": "g",
                                 "normalize": {"mean": [float(v) for v in mean],
                                               "std": [float(v) for v in std]}},
                    "augmentation": {"copies": AUGMENT_COPIES, "rotation_deg": ROTATE_DEG, "time_shift": SHIFT}}
        return RecipeData(x_train=prep(x_train), y_train=y_train,
                          x_val=prep(splits["val"][0]), y_val=splits["val"][1],
                          x_test=prep(splits["test"][0]), y_test=splits["test"][1],
                          classes=CLASSES, settings=settings, source=str(path),
                          extra={"test_raw": splits["test"][0]})

    def build_model(self, data: RecipeData, variant: str) -> Any:
        return magic_wand_cnn(len(data.classes))

    def search_model(self, data: RecipeData, values: dict[str, Any]) -> Any:
        filters = max(2, int(round(16 * float(values.get("width", 1.0)))))
        return magic_wand_cnn(len(data.classes), filters=filters, kernel=pair(values.get("kernel", "4x3")),
                              pool=pair(values.get("pool", "3x3")), dense=int(values.get("dense", 2 * filters)))


RECIPE = GestureRecipe()
