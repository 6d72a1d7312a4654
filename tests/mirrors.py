"""Host-side mirrors of firmware arithmetic that only the tests use: the benchmark's input pattern and its
``results%`` line (tk_bench.c), and a float64 NumPy reference of the feature front end (tk_frontend.c)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinykeras.recipes.frontend import AudioFeatures, dct_matrix, hann_window, mel_weight_matrix

PATTERN_SEED = 0x2545F491  # TK_BENCH_PATTERN_SEED in firmware_templates/runtime/bench/tk_bench.h


def bench_input(nbytes: int, id_limit: int | None = None) -> bytes:
    """The deterministic input of the timed runs (``tk_bench_fill_pattern`` in tk_bench.c); ``id_limit``: an
    int32 token-id input (``types.index_limit``), each little-endian word folded into 0..id_limit-1."""
    x = PATTERN_SEED
    out = bytearray(nbytes)
    for k in range(nbytes):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[k] = x >> 24
    if id_limit:
        words = len(out) // 4
        folded = [int.from_bytes(out[4 * w:4 * w + 4], "little") % id_limit for w in range(words)]
        out[:4 * words] = b"".join(v.to_bytes(4, "little") for v in folded)
    return bytes(out)


def mlperf_results(values: Any, scale: float, zero_point: int) -> str:
    """What the firmware prints for ``results%``: the output dequantized, rounded half away from zero to
    three decimals, computed in float32 exactly as ``out_milli`` in tk_bench.c does."""
    parts = []
    for q in np.asarray(values, dtype=np.int64).ravel():
        m = np.float32(np.float32(int(q) - zero_point) * np.float32(scale)) * np.float32(1000.0)
        r = int(m)  # truncates toward zero, like the C cast
        frac = np.float32(m - np.float32(r))
        if frac >= np.float32(0.5):
            r += 1
        elif frac <= np.float32(-0.5):
            r -= 1
        sign = "-" if r < 0 else ""
        parts.append(f"{sign}{abs(r) // 1000}.{abs(r) % 1000:03d}")
    return "m-results-[" + ",".join(parts) + "]"


def numpy_features(audio: np.ndarray, p: AudioFeatures) -> np.ndarray:
    """A float64 NumPy reference of the front end (for tests): [clip_samples] -> [frames, coeffs]."""
    audio = np.asarray(audio, dtype=np.float64)
    idx = np.arange(p.frame_length)[None, :] + p.frame_step * np.arange(p.num_frames)[:, None]
    frames = audio[idx] * hann_window(p.frame_length).astype(np.float64)
    spec = np.abs(np.fft.rfft(frames, n=p.fft_length))
    mel = spec @ mel_weight_matrix(p).astype(np.float64)
    log_mel = np.log(mel + p.log_offset)
    if p.kind == "log_mel":
        return log_mel
    return log_mel @ dct_matrix(p).astype(np.float64)
