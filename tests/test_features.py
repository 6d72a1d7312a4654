"""Feature front end: tables vs tf.signal, tf.signal pipeline vs NumPy, and the C front end vs Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import requires_tool
from mirrors import numpy_features

from tinykeras.recipes.frontend import (
    AudioFeatures,
    dct_matrix,
    feature_defines,
    frontend_tables,
    hann_window,
    mel_weight_matrix,
)

KWS = AudioFeatures()  # the kws recipe's MFCC parameters
SENSOR = AudioFeatures(kind="log_mel", clip_samples=8192, frame_length=1024, frame_step=512, num_mel_bins=64,
                       lower_hz=50.0, upper_hz=8000.0)
C_TOLERANCE = 1e-3  # max |C - Python| allowed for features (measured: about 3e-5 for MFCC up to ~120)


def _audio(n: int, samples: int, seed: int = 0) -> np.ndarray:
    """Tones, chirps, noise and silence: enough spectral variety to exercise every mel band."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000.0
    clips = []
    for k in range(n):
        f = rng.uniform(100, 3500)
        x = 0.3 * np.sin(2 * np.pi * (f + 500 * t) * t) + 0.05 * rng.standard_normal(samples)
        x *= (np.arange(samples) > rng.integers(0, samples // 2))  # leading silence
        clips.append(x if k else np.zeros(samples))  # one clip of exact silence
    return np.asarray(clips, np.float32)


def test_shapes_match_the_recipe_contract() -> None:
    assert KWS.shape == (49, 10)
    assert KWS.fft_length == 512 and KWS.num_bins == 257


def test_tables_match_tf_signal() -> None:
    from tinykeras.keras_io import import_tf

    tf = import_tf()
    ref = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 4000.0).numpy()
    np.testing.assert_allclose(mel_weight_matrix(KWS), ref, atol=2e-5)
    np.testing.assert_allclose(hann_window(480), tf.signal.hann_window(480).numpy(), atol=1e-6)
    log_mel = np.random.default_rng(1).normal(size=(7, 40)).astype(np.float32)
    mfcc = tf.signal.mfccs_from_log_mel_spectrograms(log_mel).numpy()[:, :10]
    np.testing.assert_allclose(log_mel @ dct_matrix(KWS), mfcc, atol=1e-5)
    # TensorFlow scales every coefficient by sqrt(2/N): coefficient 0 is NOT the orthonormal sqrt(1/N)
    assert dct_matrix(KWS)[0, 0] == pytest.approx(np.sqrt(2 / 40), rel=1e-6)


def test_tf_features_match_the_standard_pipeline_and_numpy() -> None:
    from tinykeras.features import audio_features
    from tinykeras.keras_io import import_tf

    tf = import_tf()
    audio = _audio(4, 16000)
    ours = audio_features(audio, KWS)
    stft = tf.signal.stft(audio, 480, 320, 512)  # default window: periodic Hann
    mel = tf.tensordot(tf.abs(stft), tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 4000.0), 1)
    ref = tf.signal.mfccs_from_log_mel_spectrograms(tf.math.log(mel + 1e-6))[..., :10].numpy()
    assert ours.shape == (4, 49, 10)
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    np.testing.assert_allclose(ours[1], numpy_features(audio[1], KWS), atol=1e-3)


def test_defines_and_tables_describe_the_front_end() -> None:
    from tinykeras.cgen import model_settings
    from tinykeras.inspect import inspect_bytes

    settings = {"features": KWS.to_dict()}
    defines = feature_defines(settings)
    assert defines["TK_FE_NUM_FRAMES"] == "49" and defines["TK_FE_FFT_LENGTH"] == "512"
    assert defines["TK_FE_KIND_MFCC"] == "1"
    tables = frontend_tables(settings)
    assert "tk_fe_dct[400]" in tables and "tk_fe_window[480]" in tables
    assert frontend_tables(settings) == tables  # deterministic
    ref = Path(__file__).resolve().parents[2] / "shared" / "reference_models" / "ad01_int8.tflite"
    if ref.exists():
        header = model_settings(inspect_bytes(ref.read_bytes()), extra=defines)
        assert "#define TK_FE_NUM_COEFFS 10" in header


@requires_tool("gcc")
@pytest.mark.parametrize("params", [KWS, SENSOR], ids=["mfcc", "log_mel"])
def test_c_front_end_matches_python(params: AudioFeatures) -> None:
    from tinykeras.features import audio_features, normalize
    from tinykeras.recipes.frontend import host_features

    audio = _audio(6, params.clip_samples, seed=2)
    python = audio_features(audio, params)
    settings = {"features": params.to_dict()}
    if params.kind == "log_mel":
        mean = python.mean(axis=(0, 1))
        std = python.std(axis=(0, 1)) + 0.5
        settings["features"]["normalize"] = {"mean": mean.tolist(), "std": std.tolist()}
        python = normalize(python, mean, std)
    device = host_features(settings, audio)
    err = float(np.max(np.abs(device - python)))
    print(f"C front end ({params.kind}) max |C - Python| = {err:.3g}")
    assert err < C_TOLERANCE


@requires_tool("gcc")
def test_c_normalisation_matches_python() -> None:
    from tinykeras.features import fit_normalization, normalize
    from tinykeras.recipes.frontend import host_features

    x = np.random.default_rng(3).normal(0.2, 0.7, (5, 128, 3)).astype(np.float32)
    mean, std = fit_normalization(x)
    settings = {"features": {"kind": "imu", "window": 128, "channels": 3, "sample_rate": 25,
                             "normalize": {"mean": mean.tolist(), "std": std.tolist()}}}
    device = host_features(settings, x)
    np.testing.assert_allclose(device, normalize(x, mean, std), atol=1e-6)


@requires_tool("arm-none-eabi-gcc")
@pytest.mark.parametrize("recipe", ["kws", "gesture", "sensor"])
def test_c_front_end_builds_for_cortex_m4(recipe: str, tmp_path: Path) -> None:
    """The shipped models' front ends compile warning-free as C99 for a Cortex-M4F."""
    import subprocess

    from tinykeras.recipes.frontend import frontend_sources, settings_beside
    from tinykeras.resources import models_dir

    settings = settings_beside(models_dir() / recipe / "model.tflite")
    if settings is None:
        pytest.skip(f"models/{recipe}/settings.json not shipped yet")
    for name, text in frontend_sources(settings).items():
        (tmp_path / name).write_text(text)
    cmd = ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
           "-std=c99", "-O2", "-Wall", "-Wextra", "-Wdouble-promotion", "-Werror", "-c",
           str(tmp_path / "tk_frontend.c"), "-o", str(tmp_path / "tk_frontend.o")]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
