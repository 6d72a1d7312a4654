"""Feature front-end parameters and their on-device tables. NumPy only: no TensorFlow.

The training pipeline (``tinykeras.features``) and the C front end
(``firmware_templates/runtime/frontend/``) use the same tables built here (periodic Hann window,
FFT twiddles, the mel weight matrix of ``tf.signal.linear_to_mel_weight_matrix`` and the DCT-II of
``tf.signal.mfccs_from_log_mel_spectrograms``), so the device computes the features the model was trained on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinykeras.c_literals import c_float_9g
from tinykeras.errors import DataError

MEL_BREAK_HZ = 700.0
MEL_HIGH_Q = 1127.0


@dataclass(frozen=True)
class AudioFeatures:
    """Parameters of an audio front end: framing, FFT, mel filterbank, log and (for MFCC) DCT."""

    kind: str = "mfcc"  # "mfcc" or "log_mel"
    sample_rate: int = 16000
    clip_samples: int = 16000
    frame_length: int = 480
    frame_step: int = 320
    num_mel_bins: int = 40
    lower_hz: float = 20.0
    upper_hz: float = 4000.0
    num_mfcc: int = 10  # ignored for log_mel
    log_offset: float = 1e-6

    def __post_init__(self) -> None:
        if self.kind not in ("mfcc", "log_mel"):
            raise DataError(f"unknown audio feature kind '{self.kind}'; use 'mfcc' or 'log_mel'")
        if self.frame_length > self.clip_samples:
            raise DataError(f"frame_length {self.frame_length} is longer than the clip ({self.clip_samples})")

    @property
    def fft_length(self) -> int:
        """The next power of two >= frame_length, as tf.signal.stft chooses."""
        return 1 << (self.frame_length - 1).bit_length()

    @property
    def num_bins(self) -> int:
        return self.fft_length // 2 + 1

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.frame_length) // self.frame_step

    @property
    def num_coeffs(self) -> int:
        return self.num_mfcc if self.kind == "mfcc" else self.num_mel_bins

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_frames, self.num_coeffs)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(fft_length=self.fft_length, num_frames=self.num_frames, num_coeffs=self.num_coeffs,
                 window="hann (periodic)", magnitude="abs(stft)", log="ln(mel + log_offset)",
                 dct="DCT-II * sqrt(2/num_mel_bins) (tf.signal.mfccs_from_log_mel_spectrograms)"
                 if self.kind == "mfcc" else None)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> AudioFeatures:
        names = AudioFeatures.__dataclass_fields__
        return AudioFeatures(**{k: v for k, v in d.items() if k in names})


def hann_window(length: int) -> np.ndarray:
    """Periodic Hann window (tf.signal.hann_window default), float32."""
    n = np.arange(length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)).astype(np.float32)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return MEL_HIGH_Q * np.log1p(hz / MEL_BREAK_HZ)


def mel_weight_matrix(p: AudioFeatures) -> np.ndarray:
    """[num_bins, num_mel_bins] triangular filters, as tf.signal.linear_to_mel_weight_matrix (DC bin zero)."""
    nyquist = p.sample_rate / 2.0
    bins_hz = np.linspace(0.0, nyquist, p.num_bins, dtype=np.float64)[1:]
    spec_mel = _hz_to_mel(bins_hz)[:, None]
    edges = np.linspace(_hz_to_mel(np.float64(p.lower_hz)), _hz_to_mel(np.float64(p.upper_hz)),
                        p.num_mel_bins + 2, dtype=np.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slopes = (spec_mel - lower) / (center - lower)
    upper_slopes = (upper - spec_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    weights = np.pad(weights, [[1, 0], [0, 0]])
    return weights.astype(np.float32)


def dct_matrix(p: AudioFeatures) -> np.ndarray:
    """[num_mel_bins, num_mfcc]: DCT-II scaled by sqrt(2/N) for every k (k = 0 included), as TensorFlow does."""
    n_mel = p.num_mel_bins
    n = np.arange(n_mel, dtype=np.float64)[:, None]
    k = np.arange(p.num_mfcc, dtype=np.float64)[None, :]
    return (np.cos(np.pi * k * (2 * n + 1) / (2 * n_mel)) * math.sqrt(2.0 / n_mel)).astype(np.float32)


def sparse_mel(weights: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """Per mel band: first non-zero bin, number of bins, and the concatenated weights."""
    starts, counts, values = [], [], []
    for band in range(weights.shape[1]):
        nz = np.nonzero(weights[:, band])[0]
        first, last = (int(nz[0]), int(nz[-1])) if len(nz) else (0, -1)
        starts.append(first)
        counts.append(last - first + 1)
        values.append(weights[first:last + 1, band])
    return starts, counts, np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32)


# ---------------------------------------------------------------- settings -> C

def _c_array(ctype: str, name: str, values: Any, per_line: int = 8, fmt: Any = None) -> str:
    fmt = fmt or (c_float_9g if "float" in ctype else (lambda v: str(int(v))))
    items = [fmt(v) for v in np.asarray(values).ravel()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)] or ["0"]
    body = ",\n  ".join(lines)
    return f"static const {ctype} {name}[{max(len(items), 1)}] = {{\n  {body}\n}};\n"


def feature_defines(settings: dict[str, Any]) -> dict[str, str]:
    """Macros describing a recipe's front end, for ``cgen.model_settings(extra=...)`` (model_settings.h)."""
    fe = settings.get("features", {})
    out: dict[str, str] = {}
    if fe.get("kind") in ("mfcc", "log_mel"):
        p = AudioFeatures.from_dict(fe)
        out.update({
            "TK_FE_KIND_" + p.kind.upper(): "1",
            "TK_FE_SAMPLE_RATE": str(p.sample_rate),
            "TK_FE_CLIP_SAMPLES": str(p.clip_samples),
            "TK_FE_FRAME_LENGTH": str(p.frame_length),
            "TK_FE_FRAME_STEP": str(p.frame_step),
            "TK_FE_FFT_LENGTH": str(p.fft_length),
            "TK_FE_NUM_BINS": str(p.num_bins),
            "TK_FE_NUM_FRAMES": str(p.num_frames),
            "TK_FE_NUM_MEL_BINS": str(p.num_mel_bins),
            "TK_FE_NUM_COEFFS": str(p.num_coeffs),
            "TK_FE_LOWER_HZ": c_float_9g(p.lower_hz),
            "TK_FE_UPPER_HZ": c_float_9g(p.upper_hz),
            "TK_FE_LOG_OFFSET": c_float_9g(p.log_offset),
        })
        if fe.get("context_frames"):
            out["TK_FE_CONTEXT_FRAMES"] = str(int(fe["context_frames"]))
    elif fe.get("kind") == "imu":
        out.update({
            "TK_FE_KIND_IMU": "1",
            "TK_FE_WINDOW": str(int(fe["window"])),
            "TK_FE_SAMPLE_RATE": str(int(fe["sample_rate"])),
        })
    if fe.get("normalize"):
        out["TK_FE_NORMALIZE"] = "1"
        out["TK_FE_CHANNELS"] = str(len(fe["normalize"]["mean"]))
    return out


def frontend_tables(settings: dict[str, Any]) -> str:
    """``tk_frontend_tables.h``: the constant tables the C front end needs for this model's settings."""
    fe = settings.get("features", {})
    defines = feature_defines(settings)
    lines = ["/* Generated by tinykeras from the model's settings.json. Do not edit: regenerate instead. */",
             "#ifndef TK_FRONTEND_TABLES_H_", "#define TK_FRONTEND_TABLES_H_", ""]
    lines += [f"#define {k} {v}" for k, v in sorted(defines.items())] + [""]
    parts = ["\n".join(lines)]
    if fe.get("kind") in ("mfcc", "log_mel"):
        p = AudioFeatures.from_dict(fe)
        n = p.fft_length
        k = np.arange(n // 2, dtype=np.float64)
        parts.append(_c_array("float", "tk_fe_window", hann_window(p.frame_length)))
        parts.append(_c_array("float", "tk_fe_twiddle_re", np.cos(2 * np.pi * k / n).astype(np.float32)))
        parts.append(_c_array("float", "tk_fe_twiddle_im", (-np.sin(2 * np.pi * k / n)).astype(np.float32)))
        starts, counts, values = sparse_mel(mel_weight_matrix(p))
        parts.append(_c_array("int16_t", "tk_fe_mel_start", starts, 16))
        parts.append(_c_array("int16_t", "tk_fe_mel_count", counts, 16))
        parts.append(f"#define TK_FE_MEL_WEIGHTS {len(values)}\n")
        parts.append(_c_array("float", "tk_fe_mel_weights", values))
        if p.kind == "mfcc":
            parts.append(_c_array("float", "tk_fe_dct", dct_matrix(p).T))  # [num_mfcc][num_mel_bins]
    if fe.get("normalize"):
        norm = fe["normalize"]
        parts.append(_c_array("float", "tk_fe_mean", np.asarray(norm["mean"], np.float32)))
        inv = (1.0 / np.asarray(norm["std"], np.float32)).astype(np.float32)
        parts.append(_c_array("float", "tk_fe_inv_std", inv))
    parts.append("#endif  /* TK_FRONTEND_TABLES_H_ */\n")
    return "\n".join(parts)


def frontend_sources(settings: dict[str, Any]) -> dict[str, str]:
    """The C front end for a model: the shared sources plus its generated ``tk_frontend_tables.h``."""
    from tinykeras.resources import templates_dir

    src = templates_dir() / "runtime" / "frontend"
    files = {p.name: p.read_text() for p in sorted(src.iterdir()) if p.suffix in (".c", ".h")}
    files["tk_frontend_tables.h"] = frontend_tables(settings)
    return files


_HOST_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "tk_frontend.h"
#if defined(TK_FE_KIND_MFCC) || defined(TK_FE_KIND_LOG_MEL)
#define IN_N TK_FE_CLIP_SAMPLES
#define OUT_N (TK_FE_NUM_FRAMES * TK_FE_NUM_COEFFS)
#else
#define IN_N (TK_FE_WINDOW * TK_FE_CHANNELS)
#define OUT_N IN_N
#endif
static float in[IN_N], out[OUT_N];
int main(void) {
  while (fread(in, sizeof(float), IN_N, stdin) == IN_N) {
#if defined(TK_FE_KIND_MFCC) || defined(TK_FE_KIND_LOG_MEL)
    tk_fe_audio_clip(in, out);
#else
    for (int i = 0; i < IN_N; ++i) out[i] = in[i];
    tk_fe_normalize(out, TK_FE_WINDOW);
#endif
    fwrite(out, sizeof(float), OUT_N, stdout);
  }
  return 0;
}
"""


def host_features(settings: dict[str, Any], inputs: np.ndarray, cc: str = "gcc") -> np.ndarray:
    """Compile the C front end for ``settings`` with the host C compiler and run it over ``inputs``.

    ``inputs``: audio clips [n, clip_samples] (float, [-1, 1]) or IMU windows [n, window, channels].
    Returns the device's features: [n, frames, coeffs] or [n, window, channels].
    """
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from tinykeras.errors import ToolchainError

    if shutil.which(cc) is None:
        raise ToolchainError(f"{cc} not found: the host check of the C front end needs a C compiler "
                             "(`sudo apt-get install gcc`)")
    fe = settings["features"]
    with tempfile.TemporaryDirectory(prefix="tinykeras-fe-") as tmp:
        work = Path(tmp)
        for name, text in frontend_sources(settings).items():
            (work / name).write_text(text)
        (work / "main.c").write_text(_HOST_MAIN)
        exe = work / "fe"
        cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(work / "main.c"),
               str(work / "tk_frontend.c"), "-lm"]
        build = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if build.returncode != 0:
            raise ToolchainError(f"compiling the C front end failed: {build.stderr.strip()[:800]}")
        data = np.ascontiguousarray(inputs, dtype="<f4")
        run = subprocess.run([str(exe)], input=data.tobytes(), capture_output=True, check=False)
        if run.returncode != 0:
            raise ToolchainError(f"the C front end exited with {run.returncode}")
    out = np.frombuffer(run.stdout, dtype="<f4")
    if fe.get("kind") in ("mfcc", "log_mel"):
        p = AudioFeatures.from_dict(fe)
        return out.reshape(len(data), p.num_frames, p.num_coeffs)
    return out.reshape(data.shape)


def settings_beside(model_path: Any) -> dict[str, Any] | None:
    """The ``settings.json`` next to a model file (as in models/<recipe>/), or None if there is none."""
    import json
    from pathlib import Path

    path = Path(model_path).with_name("settings.json")
    if not path.is_file():
        return None
    def finite(text: str) -> float:
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"the number {text} is not finite")
        return value

    def no_constant(name: str) -> float:
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_float=finite, parse_constant=no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); regenerate it with scripts/train_models.py") from exc
