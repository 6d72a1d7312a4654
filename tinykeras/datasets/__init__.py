"""Offline datasets: WAV/CSV readers and the synthesisers behind ``tinykeras data synth``."""

from __future__ import annotations

import os
import sys
import wave
from pathlib import Path

import numpy as np

from tinykeras.errors import DataError


def cache_dir() -> Path:
    """Where recipes keep synthesised datasets: $TINYKERAS_CACHE or ~/.cache/tinykeras."""
    root = os.environ.get("TINYKERAS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tinykeras")
    return Path(root) / "data"


def note(message: str) -> None:
    """Progress and notices go to stderr, so stdout stays clean for results."""
    print(message, file=sys.stderr, flush=True)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono or multi-channel 16-bit PCM WAV -> (float32 samples in [-1, 1] of the first channel, rate)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, width, channels, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable WAV file ({exc})") from exc
    if width != 2:
        raise DataError(f"{path}: {8 * width}-bit WAV; tinykeras reads 16-bit PCM (convert with "
                        f"`sox {path.name} -b 16 out.wav`)")
    data = np.frombuffer(raw, dtype="<i2").reshape(-1, channels)[:, 0]
    return data.astype(np.float32) / 32768.0, rate


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """Float audio in [-1, 1] -> 16-bit PCM mono WAV (clipped)."""
    pcm = np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
