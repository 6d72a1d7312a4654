"""Host-side mirrors of firmware arithmetic that only the tests use: the benchmark's input pattern and its
``results%`` line (tk_bench.c), a float64 NumPy reference of the feature front end (tk_frontend.c), and the
aot memory plan's overlap check."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinykeras import mlperf_models
from tinykeras.aot.planner import Buffer, _forbidden
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
    """What the firmware prints for ``results%`` of a model of no MLPerf benchmark (or a classifier): every
    output dequantized in float32 and printed as ``%0.3f`` (tinykeras.mlperf_models.results_line)."""
    return mlperf_models.results_line(mlperf_models.Conventions(None), values, scale, zero_point)


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


def check_plan(buffers: list[Buffer], offsets: dict[str, int],
               streams: dict[tuple[str, str], int] | None = None) -> None:
    """Raise AssertionError if two live-at-once buffers overlap , streams allowed."""
    streams = streams or {}
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            live_together = not (a.last < b.first or b.last < a.first)
            if not live_together or not a.size or not b.size:
                continue
            lo, hi = _forbidden(b, a, offsets[a.key], streams)
            if lo < offsets[b.key] < hi:
                raise AssertionError(f"buffers {a.key} and {b.key} overlap while both are live")

