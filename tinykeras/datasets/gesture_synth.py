"""Synthetic accelerometer gestures (TFLM magic-wand classes: wing, ring, slope, negative).

Each window is 128 samples x 3 axes at 25 Hz, in g. A gesture is a 2-D stroke in the vertical plane in front of
the user (W for wing, O for ring, a falling diagonal plus a horizontal stroke for slope), traversed with a
smooth speed profile; the sensor measures the hand's acceleration minus gravity, rotated into the wand's frame
(with the subject's grip and per-take jitter), plus tremor, bias and noise. "negative" windows are idle
holding, shakes, random smooth motion and incomplete strokes.

Subjects are parameter sets (stroke size, duration, grip tilt, tremor). Validation and test subjects are drawn
from parameter ranges that no training subject uses, so the test measures generalisation to new people.

Layout written (read by ``tinykeras.recipes.gesture``): ``DIR/<class>/<subject>_<k>.csv`` with header
``ax,ay,az`` and 128 rows, plus ``validation_list.txt`` and ``testing_list.txt`` naming held-out subjects' files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinykeras.datasets import note
from tinykeras.errors import DataError

CLASSES = ("wing", "ring", "slope", "negative")
RATE = 25
WINDOW = 128
G = 9.81
OVERSAMPLE = 8

# (size m, duration s, grip tilt deg, tremor g) ranges: training subjects vs held-out subjects
TRAIN_RANGES = {"size": (0.22, 0.42), "duration": (1.3, 2.3), "tilt": (-20.0, 20.0), "tremor": (0.005, 0.02)}
HELD_OUT_RANGES = {"size": (0.42, 0.52), "duration": (1.05, 1.3), "tilt": (20.0, 32.0), "tremor": (0.02, 0.03)}

_STROKES = {
    "wing": np.array([[0.0, 1.0], [0.25, 0.0], [0.5, 0.65], [0.75, 0.0], [1.0, 1.0]]),
    "slope": np.array([[0.8, 1.0], [0.0, 0.0], [1.0, 0.0]]),
}


@dataclass(frozen=True)
class Subject:
    name: str
    size: float
    duration: float
    tilt: float
    tremor: float


@dataclass(frozen=True)
class GestureSynthConfig:
    per_class: int = 80  # windows per class per subject
    train_subjects: int = 8
    val_subjects: int = 2
    test_subjects: int = 3
    seed: int = 0


def _subject(name: str, ranges: dict[str, tuple[float, float]], rng: np.random.Generator) -> Subject:
    v = {k: float(rng.uniform(*r)) for k, r in ranges.items()}
    if ranges is HELD_OUT_RANGES and rng.random() < 0.5:
        v["tilt"] = -v["tilt"]
    return Subject(name, v["size"], v["duration"], v["tilt"], v["tremor"])


def _polyline(points: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Positions at normalised arc length ``s`` in [0, 1] along a polyline."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)]) / seg.sum()
    return np.stack([np.interp(s, cum, points[:, 0]), np.interp(s, cum, points[:, 1])], axis=1)


def _smooth(x: np.ndarray, width: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 (edge-padded), width in samples."""
    if width <= 0:
        return x
    r = int(3 * width) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / width) ** 2)
    k /= k.sum()
    pad = np.pad(x, [(r, r)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    return np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(x.shape[1])], axis=1)


def _stroke(cls: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A 2-D unit-size path of ``n`` points for a gesture class (with small shape jitter)."""
    u = np.linspace(0.0, 1.0, n)
    ease = u * u * (3 - 2 * u)  # smooth start and stop
    if cls == "ring":
        start = rng.uniform(-0.3, 0.3) + np.pi / 2
        ang = start - 2 * np.pi * ease * rng.uniform(0.95, 1.1)
        aspect = rng.uniform(0.8, 1.25)
        return np.stack([0.5 + 0.5 * np.cos(ang) * aspect, 0.5 + 0.5 * np.sin(ang)], axis=1)
    pts = _STROKES[cls] + rng.normal(0, 0.05, _STROKES[cls].shape)
    return _polyline(pts, ease)


def _negative(n: int, rng: np.random.Generator, dt: float) -> np.ndarray:
    """Non-gesture motion: a still hand, a shake, random smooth motion or an incomplete stroke."""
    kind = rng.integers(0, 4)
    if kind == 0:
        return np.zeros((n, 2))
    if kind == 1:
        f = rng.uniform(2.0, 5.0)
        t = np.arange(n) * dt
        amp = rng.uniform(0.02, 0.08)
        d = rng.normal(size=2)
        return np.outer(np.sin(2 * np.pi * f * t), d / np.linalg.norm(d)) * amp
    if kind == 2:
        pts = rng.uniform(0, 1, (int(rng.integers(3, 7)), 2))
        return _polyline(pts, np.linspace(0, 1, n) ** rng.uniform(0.8, 1.2))
    cls = ("wing", "slope", "ring")[int(rng.integers(0, 3))]
    part = _stroke(cls, n, rng)
    cut = max(2, int(n * rng.uniform(0.25, 0.5)))
    out = np.repeat(part[cut - 1:cut], n, axis=0)
    out[:cut] = part[:cut]
    return out


def _rotation(tilt_deg: float, rng: np.random.Generator, jitter_deg: float = 8.0) -> np.ndarray:
    """The wand's orientation: subject grip tilt about the forward axis plus small random yaw/pitch/roll."""
    a = np.radians(np.array([rng.normal(0, jitter_deg), rng.normal(0, jitter_deg),
                             tilt_deg + rng.normal(0, jitter_deg)]))
    cx, cy, cz = np.cos(a)
    sx, sy, sz = np.sin(a)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_window(cls: str, subject: Subject, rng: np.random.Generator) -> np.ndarray:
    """One [128, 3] accelerometer window in g."""
    fs = RATE * OVERSAMPLE
    dt = 1.0 / fs
    total = WINDOW * OVERSAMPLE
    pos = np.zeros((total, 3))  # world: x right, y forward, z up; strokes drawn in the x-z plane
    duration = subject.duration * rng.uniform(0.85, 1.15)
    size = subject.size * rng.uniform(0.85, 1.15)
    n = min(int(duration * fs), total - 1)
    path = _negative(n, rng, dt) * size if cls == "negative" else (_stroke(cls, n, rng) - 0.5) * size
    start = int(rng.integers(0, total - n))
    pos[start:start + n, 0] = path[:, 0]
    pos[start:start + n, 2] = path[:, 1]
    pos[start + n:, 0] = path[-1, 0]
    pos[start + n:, 2] = path[-1, 1]
    pos[:start, 0], pos[:start, 2] = path[0, 0], path[0, 1]
    pos[:, 1] = rng.normal(0, 0.01) * np.sin(np.linspace(0, np.pi, total))  # a little forward push
    pos = _smooth(pos, 0.04 * fs)
    acc = np.gradient(np.gradient(pos, dt, axis=0), dt, axis=0)
    specific_force = (acc + np.array([0.0, 0.0, G])) / G  # what an accelerometer measures, in g
    reading = specific_force @ _rotation(subject.tilt, rng)  # world -> wand frame
    reading = reading[::OVERSAMPLE]
    tremor = _smooth(rng.normal(0, 1, (WINDOW, 3)), 1.0) * subject.tremor * 3
    noise = rng.normal(0, 0.01, (WINDOW, 3)) + rng.normal(0, 0.02, 3)
    return (reading + tremor + noise).astype(np.float32)


def write_csv(path: Path, window: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["ax,ay,az"] + [f"{a:.5f},{b:.5f},{c:.5f}" for a, b, c in window]
    path.write_text("\n".join(lines) + "\n")


def synthesize(dest: Path, config: GestureSynthConfig = GestureSynthConfig()) -> dict[str, int]:
    """Write the dataset into ``dest`` (empty or absent). Returns window counts per class."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DataError(f"{dest}: not empty; pick a new directory for the synthesised dataset")
    rng = np.random.default_rng(config.seed)
    groups = [("train", config.train_subjects, TRAIN_RANGES), ("val", config.val_subjects, HELD_OUT_RANGES),
              ("test", config.test_subjects, HELD_OUT_RANGES)]
    counts = {c: 0 for c in CLASSES}
    lists: dict[str, list[str]] = {"val": [], "test": []}
    described = []
    for group, count, ranges in groups:
        for s in range(count):
            subject = _subject(f"{group}{s:02d}", ranges, rng)
            described.append(f"{subject.name}: size {subject.size:.2f} m, duration {subject.duration:.2f} s, "
                             f"tilt {subject.tilt:+.0f} deg, tremor {subject.tremor:.3f} g")
            for cls in CLASSES:
                for k in range(config.per_class):
                    rel = f"{cls}/{subject.name}_{k:03d}.csv"
                    write_csv(dest / rel, make_window(cls, subject, rng))
                    counts[cls] += 1
                    if group in lists:
                        lists[group].append(rel)
        note(f"  synthesised {group} subjects ({count})")
    (dest / "validation_list.txt").write_text("".join(f"{p}\n" for p in sorted(lists["val"])))
    (dest / "testing_list.txt").write_text("".join(f"{p}\n" for p in sorted(lists["test"])))
    (dest / "README.txt").write_text(
        "Synthesised by `tinykeras data synth gesture`: 128 x 3 accelerometer windows in g at 25 Hz.\n"
        f"training ranges: {TRAIN_RANGES}\nheld-out ranges (validation, test): {HELD_OUT_RANGES}\n"
        + "\n".join(described) + "\n")
    return counts
