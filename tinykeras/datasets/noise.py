"""Synthetic background noises (white, pink, brown, hum, babble-like, rain-like), seeded."""

from __future__ import annotations

import numpy as np


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec /= f ** (exponent / 2.0)
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def background_noises(seconds: float, rate: int, seed: int) -> dict[str, np.ndarray]:
    """Named float32 noise tracks at about -20 dBFS RMS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    hum = sum(np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3, 5))
    hum = hum / np.sqrt(np.mean(hum * hum)) + 0.3 * _colored(rng, n, 1.0)
    babble = _colored(rng, n, 1.0) * (1 + np.sin(2 * np.pi * rng.uniform(2, 5) * t)) ** 2
    rain = _colored(rng, n, 0.3) * (1 + 3 * (rng.random(n) < 0.002))
    tracks = {
        "white_noise": rng.standard_normal(n),
        "pink_noise": _colored(rng, n, 1.0),
        "brown_noise": _colored(rng, n, 2.0),
        "hum": hum,
        "babble": babble,
        "rain": rain,
    }
    out = {}
    for name, x in sorted(tracks.items()):
        x = np.asarray(x, np.float64)
        out[name] = (0.1 * x / (np.sqrt(np.mean(x * x)) + 1e-12)).clip(-0.99, 0.99).astype(np.float32)
    return out
