"""Feature extraction with ``tf.signal`` (MFCC, log-mel) and per-channel normalisation.

The tables (window, mel filterbank, DCT) come from ``tinykeras.recipes.frontend`` so that the C front end
shipped for the device uses exactly the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinykeras.keras_io import import_tf
from tinykeras.recipes.frontend import AudioFeatures, dct_matrix, hann_window, mel_weight_matrix


def audio_features_tf(audio: Any, p: AudioFeatures) -> Any:
    """A TensorFlow graph: float audio [..., clip_samples] in [-1, 1] -> [..., frames, coeffs]."""
    tf = import_tf()
    window = tf.constant(hann_window(p.frame_length))
    stft = tf.signal.stft(audio, frame_length=p.frame_length, frame_step=p.frame_step,
                          fft_length=p.fft_length, window_fn=lambda n, dtype: window, pad_end=False)
    spectrogram = tf.abs(stft)
    mel = tf.tensordot(spectrogram, tf.constant(mel_weight_matrix(p)), 1)
    log_mel = tf.math.log(mel + p.log_offset)
    if p.kind == "log_mel":
        return log_mel
    return tf.tensordot(log_mel, tf.constant(dct_matrix(p)), 1)


def audio_features(audio: np.ndarray, p: AudioFeatures, batch: int = 512) -> np.ndarray:
    """NumPy in, NumPy out: [n, clip_samples] float audio -> [n, frames, coeffs] float32."""
    tf = import_tf()
    audio = np.asarray(audio, dtype=np.float32)
    single = audio.ndim == 1
    if single:
        audio = audio[None]
    fn = tf.function(lambda a: audio_features_tf(a, p), reduce_retracing=True)
    out = [fn(tf.constant(audio[i:i + batch])).numpy() for i in range(0, len(audio), batch)]
    result = np.concatenate(out) if out else np.zeros((0,) + p.shape, np.float32)
    return result[0] if single else result


def fit_normalization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (last axis) mean and std over every other axis; std floored at 1e-6."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes).astype(np.float32)
    std = np.maximum(x.std(axis=axes), 1e-6).astype(np.float32)
    return mean, std


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) * (1 / std), channel-wise, as the C front end ``tk_fe_normalize`` computes it."""
    inv = (1.0 / np.asarray(std, np.float32)).astype(np.float32)
    return ((np.asarray(x, np.float32) - np.asarray(mean, np.float32)) * inv).astype(np.float32)
