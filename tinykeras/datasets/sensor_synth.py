"""A synthetic rotating machine for anomaly detection: normal running sound and faulty sound.

Normal: a shaft at 20-50 Hz whose speed and load drift within a clip, its harmonics, a gear mesh tone with
sidebands, a structural resonance and background noise. Faults (test only): bearing impulses (a decaying
2-5 kHz ring at the outer-race defect rate), imbalance (a strong 1x/2x component modulating the mesh) and
friction (rubbing noise in bursts synchronous with the shaft). Fault severities range from clear to subtle.

Layout written (read by ``tinykeras.recipes.sensor``)::

    DIR/train/normal/*.wav       normal running only (the autoencoder never sees a fault)
    DIR/test/normal/*.wav        held-out normal clips (new load trajectories and noise)
    DIR/test/anomaly/*.wav       faulty clips, named after the fault
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinykeras.datasets import note, write_wav
from tinykeras.errors import DataError

RATE = 16000
FAULTS = ("bearing", "imbalance", "friction")


@dataclass(frozen=True)
class SensorSynthConfig:
    train_normal: int = 200
    test_normal: int = 60
    test_anomaly: int = 60
    seconds: float = 2.0
    seed: int = 0


@dataclass(frozen=True)
class Machine:
    """The fixed character of one machine."""

    shaft_hz: float = 29.0
    harmonics: tuple[float, ...] = (1.0, 0.55, 0.35, 0.2, 0.12, 0.08)
    mesh_teeth: int = 23
    resonance_hz: float = 1800.0


def _resonance(x: np.ndarray, f0: float, q: float) -> np.ndarray:
    """Band-pass ``x`` around f0 with a quality factor q (FFT-domain Lorentzian)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / RATE)
    return np.fft.irfft(spec / (1 + (q * (f / f0 - f0 / np.maximum(f, 1.0))) ** 2) ** 0.5, len(x))


def clip(machine: Machine, rng: np.random.Generator, seconds: float, fault: str | None = None,
         severity: float = 1.0) -> np.ndarray:
    """One clip of float audio in [-1, 1]."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    load = rng.uniform(0.3, 1.0) + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 6.3))
    speed = machine.shaft_hz * (1.0 + rng.uniform(-0.08, 0.08)) * (1.0 - 0.04 * load)
    phase = 2 * np.pi * np.cumsum(speed) / RATE
    x = np.zeros(n)
    for h, a in enumerate(machine.harmonics, start=1):
        x += a * (0.6 + 0.4 * load) * np.sin(h * phase + rng.uniform(0, 6.3))
    mesh_amp = 0.25 * (0.5 + load)
    mesh = np.sin(machine.mesh_teeth * phase) + 0.4 * np.sin(2 * machine.mesh_teeth * phase)
    x += mesh_amp * mesh * (1 + 0.1 * np.sin(phase))
    broadband = rng.standard_normal(n)
    x += 0.15 * broadband + 0.3 * _resonance(broadband, machine.resonance_hz * rng.uniform(0.97, 1.03), 6.0)
    if fault == "bearing":
        rate = speed * 3.58
        impulses = np.zeros(n)
        ticks = np.nonzero(np.diff(np.floor(np.cumsum(rate) / RATE)) > 0)[0]
        impulses[ticks] = rng.uniform(0.5, 1.0, len(ticks))
        ring = np.exp(-np.arange(200) / 25.0) * np.sin(2 * np.pi * rng.uniform(2500, 4500) * np.arange(200) / RATE)
        x += 3.0 * severity * np.convolve(impulses, ring)[:n]
    elif fault == "imbalance":
        x += 1.5 * severity * (np.sin(phase) + 0.5 * np.sin(2 * phase))
        x += mesh_amp * mesh * 0.8 * severity * np.sin(phase)
    elif fault == "friction":
        rub = _resonance(rng.standard_normal(n), rng.uniform(3000, 6000), 2.0)
        gate = np.clip(np.sin(phase + rng.uniform(0, 6.3)), 0, None) ** 4
        x += 1.2 * severity * rub * gate
    x *= rng.uniform(0.8, 1.2)  # microphone gain
    return (0.08 * x).clip(-1, 1).astype(np.float32)


def synthesize(dest: Path, config: SensorSynthConfig = SensorSynthConfig()) -> dict[str, int]:
    """Write the dataset into ``dest`` (empty or absent). Returns clip counts per folder."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DataError(f"{dest}: not empty; pick a new directory for the synthesised dataset")
    machine = Machine()
    train_rng, test_rng = np.random.default_rng([config.seed, 0]), np.random.default_rng([config.seed, 1])
    for k in range(config.train_normal):
        write_wav(dest / "train" / "normal" / f"normal_{k:04d}.wav", clip(machine, train_rng, config.seconds), RATE)
    for k in range(config.test_normal):
        write_wav(dest / "test" / "normal" / f"normal_{k:04d}.wav", clip(machine, test_rng, config.seconds), RATE)
    for k in range(config.test_anomaly):
        fault = FAULTS[k % len(FAULTS)]
        severity = float(test_rng.uniform(0.15, 1.0))
        audio = clip(machine, test_rng, config.seconds, fault, severity)
        write_wav(dest / "test" / "anomaly" / f"anomaly_{fault}_{k:04d}.wav", audio, RATE)
    (dest / "README.txt").write_text(
        "Synthesised by `tinykeras data synth sensor`: a rotating machine, 16 kHz WAV.\n"
        f"faults (test only): {', '.join(FAULTS)}; severity 0.15-1.0\n"
        f"train_normal={config.train_normal} test_normal={config.test_normal} "
        f"test_anomaly={config.test_anomaly} seconds={config.seconds:g} seed={config.seed}\n")
    note(f"  synthesised {config.train_normal} training clips, {config.test_normal} normal and "
         f"{config.test_anomaly} anomalous test clips")
    return {"train/normal": config.train_normal, "test/normal": config.test_normal,
            "test/anomaly": config.test_anomaly}
