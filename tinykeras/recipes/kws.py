"""Keyword spotting on the Speech Commands v2 layout: 12 classes, 49x10 MFCC, DS-CNN (MLPerf Tiny style).

Data: one folder per word, ``_background_noise_``, ``validation_list.txt`` and ``testing_list.txt``; clips are
1 s at 16 kHz. The ten keywords keep their labels, every other word is ``unknown`` (capped at twice the mean
keyword count per split), and ``silence`` clips are cut from the background noise. Training batches are
augmented on the fly: speed perturbation (resampling by 0.88-1.12, one factor per batch), a time shift of up
to +-100 ms, background noise mixed in 80 % of clips at a volume of up to 0.1 (as the TensorFlow
speech-commands trainer does), and SpecAugment on the log-mel before the DCT (one band of up to 6 mel bins
and one span of up to 5 frames set to the clip's mean).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.datasets import note, read_wav
from tinykeras.errors import DataError
from tinykeras.recipes.base import Recipe, RecipeData, pair, read_list, stratified_subset
from tinykeras.recipes.frontend import AudioFeatures, dct_matrix

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
CLASSES = list(KEYWORDS) + ["silence", "unknown"]
FEATURES = AudioFeatures(kind="mfcc", sample_rate=16000, clip_samples=16000, frame_length=480, frame_step=320,
                         num_mel_bins=40, lower_hz=20.0, upper_hz=4000.0, num_mfcc=10, log_offset=1e-6)
BACKGROUND = "_background_noise_"
SHIFT_SAMPLES = 1600
NOISE_PROBABILITY = 0.8
NOISE_VOLUME = 0.1
SPEED_RANGE = (0.88, 1.12)  # speed perturbation (resampling), one factor per batch
FREQ_MASK = 6  # SpecAugment: widest masked run of mel bands
TIME_MASK = 5  # SpecAugment: widest masked run of frames
BN_MOMENTUM = 0.9  # small datasets: moving statistics must settle within a few hundred steps


def _fit_clip(audio: np.ndarray, n: int) -> np.ndarray:
    if len(audio) >= n:
        return audio[:n]
    return np.pad(audio, (0, n - len(audio)))


def load_layout(root: Path) -> tuple[dict[str, list[tuple[str, np.ndarray]]], np.ndarray]:
    """Read a Speech Commands tree: {split: [(label, audio)]} and the concatenated background noise."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset directory (Speech Commands layout: one folder per word)")
    val, test = read_list(root / "validation_list.txt"), read_list(root / "testing_list.txt")
    if not val or not test:
        raise DataError(f"{root}: validation_list.txt and testing_list.txt are missing or empty; "
                        "the Speech Commands layout needs both (see `tinykeras data synth kws --help`)")
    words = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != BACKGROUND and not p.name.startswith("."))
    if not any(w in KEYWORDS for w in words):
        raise DataError(f"{root}: no keyword folders ({', '.join(KEYWORDS)}) found")
    splits: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "val": [], "test": []}
    for word in words:
        label = word if word in KEYWORDS else "unknown"
        for wav in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{wav.name}"
            audio, rate = read_wav(wav)
            if rate != FEATURES.sample_rate:
                raise DataError(f"{wav}: {rate} Hz; the kws recipe needs 16 kHz clips "
                                f"(resample with `sox in.wav -r 16000 out.wav`)")
            split = "test" if rel in test else "val" if rel in val else "train"
            splits[split].append((label, _fit_clip(audio, FEATURES.clip_samples)))
    noise_files = sorted((root / BACKGROUND).glob("*.wav")) if (root / BACKGROUND).is_dir() else []
    if not noise_files:
        raise DataError(f"{root}/{BACKGROUND}: no background noise WAVs; they make the silence class and "
                        "the noise augmentation")
    noises = []
    for wav in noise_files:
        audio, rate = read_wav(wav)
        if rate != FEATURES.sample_rate:
            raise DataError(f"{wav}: {rate} Hz; background noise must be 16 kHz")
        noises.append(audio)
    noise = np.concatenate(noises)
    if len(noise) <= FEATURES.clip_samples:
        raise DataError(f"{root}/{BACKGROUND}: less than 1 s of background noise in total")
    return splits, noise


def _arrays(items: list[tuple[str, np.ndarray]], noise: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Map labels to indices, cap 'unknown', add 'silence' clips cut from the noise."""
    labels = np.array([CLASSES.index(label) for label, _ in items], np.int64)
    audio = np.stack([a for _, a in items]).astype(np.float32) if items else np.zeros((0, 16000), np.float32)
    unknown = CLASSES.index("unknown")
    keyword_counts = [int(np.sum(labels == CLASSES.index(k))) for k in KEYWORDS]
    mean_kw = max(1, int(np.mean(keyword_counts)))
    unk_idx = np.nonzero(labels == unknown)[0]
    drop = rng.permutation(unk_idx)[2 * mean_kw:]
    keep = np.setdiff1d(np.arange(len(labels)), drop)
    audio, labels = audio[keep], labels[keep]
    n = FEATURES.clip_samples
    starts = rng.integers(0, len(noise) - n, mean_kw)
    volume = rng.uniform(0.0, 1.0, mean_kw).astype(np.float32)
    silence = np.stack([noise[s:s + n] * v for s, v in zip(starts, volume, strict=True)]).astype(np.float32)
    audio = np.concatenate([audio, silence])
    labels = np.concatenate([labels, np.full(mean_kw, CLASSES.index("silence"), np.int64)])
    return audio, labels


def augmented_dataset(audio: np.ndarray, labels: np.ndarray, noise: np.ndarray, batch_size: int, seed: int,
                      feats: AudioFeatures = FEATURES) -> Any:
    """tf.data: shuffled batches, time-shifted and noise-mixed on the fly, as MFCC [b, frames, coeffs, 1]."""
    from tinykeras.features import audio_features_tf
    from tinykeras.keras_io import import_tf

    tf = import_tf()
    n = feats.clip_samples
    log_mel_params = dataclasses.replace(feats, kind="log_mel")
    noise_t = tf.constant(noise.astype(np.float32))

    def speed(x: Any) -> Any:
        """Resample the batch by one random factor (speed and pitch together), back to n samples."""
        factor = tf.random.uniform([], SPEED_RANGE[0], SPEED_RANGE[1], seed=seed + 5)
        length = tf.cast(tf.round(n / factor), tf.int32)
        x = tf.image.resize(x[:, :, None, None], tf.stack([length, 1]))[:, :, 0, 0]
        excess = length - n
        return tf.cond(excess > 0, lambda: x[:, excess // 2:excess // 2 + n],
                       lambda: tf.pad(x, [[0, 0], [(-excess) // 2, -excess - (-excess) // 2]]))

    def augment(x: Any, y: Any) -> Any:
        b = tf.shape(x)[0]
        x = tf.ensure_shape(speed(x), [None, n])
        shift = tf.random.uniform([b, 1], -SHIFT_SAMPLES, SHIFT_SAMPLES + 1, dtype=tf.int32, seed=seed + 1)
        idx = tf.range(n)[None, :] - shift
        valid = tf.cast((idx >= 0) & (idx < n), tf.float32)
        x = tf.gather(x, tf.clip_by_value(idx, 0, n - 1), batch_dims=1) * valid
        start = tf.random.uniform([b, 1], 0, len(noise) - n, dtype=tf.int32, seed=seed + 2)
        segment = tf.gather(noise_t, start + tf.range(n)[None, :])
        volume = tf.random.uniform([b, 1], 0.0, NOISE_VOLUME, seed=seed + 3)
        use = tf.cast(tf.random.uniform([b, 1], seed=seed + 4) < NOISE_PROBABILITY, tf.float32)
        x = tf.clip_by_value(x + segment * volume * use, -1.0, 1.0)
        return spec_augment(audio_features_tf(x, log_mel_params), b), y

    def band(b: Any, size: int, widest: int, op_seed: int) -> Any:
        """[b, size] masks of one random run of 0..widest positions per example."""
        width = tf.random.uniform([b, 1], 0, widest + 1, dtype=tf.int32, seed=op_seed)
        first = tf.random.uniform([b, 1], 0, size - widest, dtype=tf.int32, seed=op_seed + 1)
        at = tf.range(size)[None, :]
        return (at >= first) & (at < first + width)

    def spec_augment(log_mel: Any, b: Any) -> Any:
        """SpecAugment on the log-mel (before the DCT): one frequency band and one time span set to the mean."""
        frames, bins = feats.num_frames, feats.num_mel_bins
        mask = band(b, bins, FREQ_MASK, seed + 6)[:, None, :] | band(b, frames, TIME_MASK, seed + 8)[:, :, None]
        fill = tf.reduce_mean(log_mel, axis=[1, 2], keepdims=True)
        log_mel = tf.where(mask, fill, log_mel)
        return tf.tensordot(log_mel, tf.constant(dct_matrix(feats)), 1)[..., None]

    ds = tf.data.Dataset.from_tensor_slices((audio, labels))
    ds = ds.shuffle(len(audio), seed=seed, reshuffle_each_iteration=True).batch(batch_size).map(augment)
    return ds.prefetch(2)


def features(audio: np.ndarray, feats: AudioFeatures = FEATURES) -> np.ndarray:
    from tinykeras.features import audio_features

    return audio_features(audio, feats)[..., None]


def ds_cnn(input_shape: tuple[int, ...], classes: int, filters: int = 64, blocks: int = 4,
           first_kernel: tuple[int, int] = (10, 4), first_strides: tuple[int, int] = (2, 2),
           dw_kernel: tuple[int, int] = (3, 3)) -> Any:
    """DS-CNN as in the MLPerf Tiny KWS reference: conv 10x4/2, then depthwise-separable blocks, avg pool.
    The keyword arguments are what ``tinykeras tune kws`` searches (kws_space.toml)."""
    from tinykeras.keras_io import tf_keras

    keras = tf_keras()
    layers = keras.layers
    reg = keras.regularizers.l2(1e-4)
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(filters, first_kernel, strides=first_strides, padding="same", kernel_regularizer=reg)(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.2)(x)
    for _ in range(blocks):
        x = layers.DepthwiseConv2D(dw_kernel, padding="same", kernel_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    x = layers.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"ds_cnn_{filters}x{blocks}")


class KwsRecipe(Recipe):
    name = "kws"
    epochs = 60
    quick_epochs = 2
    batch_size = 64
    learning_rate = 2e-3
    patience = 15
    variants = ("dscnn", "dscnn-small")
    search_keys = ("width", "blocks", "first_kernel", "first_stride", "dw_kernel", "frame_step", "num_mfcc")
    search_feature_keys = ("frame_step", "num_mfcc")

    def synthesize(self, dest: Path, quick: bool, seed: int) -> dict[str, int]:
        from tinykeras.datasets.kws_synth import KwsSynthConfig, synthesize

        cfg = KwsSynthConfig(per_word=10, unknown_total=25, seed=seed, noise_seconds=5.0) if quick \
            else KwsSynthConfig(seed=seed)
        return synthesize(dest, cfg)

    def load(self, path: Path, quick: bool, seed: int) -> RecipeData:
        return self.features_data(self.load_audio(path, quick, seed), FEATURES)

    def load_audio(self, path: Path, quick: bool, seed: int) -> dict[str, Any]:
        """The clips of every split (labels mapped, silence added) and the background noise."""
        splits, noise = load_layout(path)
        rng = np.random.default_rng(seed)
        arrays = {name: _arrays(items, noise, rng) for name, items in splits.items()}
        for name in ("train", "val", "test"):
            if len(arrays[name][0]) == 0:
                raise DataError(f"{path}: the {name} split is empty")
        if quick:
            caps = {"train": 12, "val": 4, "test": 4}
            for name, cap in caps.items():
                a, y = arrays[name]
                keep = stratified_subset(y, cap, seed)
                arrays[name] = (a[keep], y[keep])
        return {"arrays": arrays, "noise": noise, "source": str(path)}

    def features_data(self, audio: dict[str, Any], feats: AudioFeatures) -> RecipeData:
        """Model inputs for the clips of :meth:`load_audio` under front end ``feats``."""
        arrays, noise = audio["arrays"], audio["noise"]
        note(f"computing MFCC features ({', '.join(f'{k}: {len(v[1])}' for k, v in arrays.items())} clips)")
        train_audio, y_train = arrays["train"]
        batch_noise = noise

        def train_dataset(batch_size: int, ds_seed: int) -> Any:
            return augmented_dataset(train_audio, y_train, batch_noise, batch_size, ds_seed, feats)

        settings = {"recipe": "kws", "labels": CLASSES, "input": f"mfcc [{feats.num_frames}, {feats.num_coeffs}, 1]",
                    "features": feats.to_dict(),
                    "augmentation": {"speed_range": list(SPEED_RANGE), "time_shift_samples": SHIFT_SAMPLES,
                                     "freq_mask_bins": FREQ_MASK, "time_mask_frames": TIME_MASK,
                                     "noise_probability": NOISE_PROBABILITY, "noise_volume": NOISE_VOLUME}}
        return RecipeData(
            x_train=features(train_audio, feats), y_train=y_train,
            x_val=features(arrays["val"][0], feats), y_val=arrays["val"][1],
            x_test=features(arrays["test"][0], feats), y_test=arrays["test"][1],
            classes=CLASSES, settings=settings, source=audio["source"], train_dataset=train_dataset,
            extra={"test_audio": arrays["test"][0]})

    def build_model(self, data: RecipeData, variant: str) -> Any:
        shape = tuple(data.x_train.shape[1:])
        if variant == "dscnn-small":
            return ds_cnn(shape, len(data.classes), filters=32, blocks=3)
        return ds_cnn(shape, len(data.classes))

    def search_source(self, path: Path, quick: bool, seed: int) -> Any:
        return self.load_audio(path, quick, seed)

    def search_data(self, source: Any, values: dict[str, Any]) -> RecipeData:
        feats = dataclasses.replace(FEATURES, frame_step=int(values.get("frame_step", FEATURES.frame_step)),
                                    num_mfcc=int(values.get("num_mfcc", FEATURES.num_mfcc)))
        return self.features_data(source, feats)

    def search_model(self, data: RecipeData, values: dict[str, Any]) -> Any:
        filters = max(4, int(round(64 * float(values.get("width", 1.0)))))
        return ds_cnn(tuple(data.x_train.shape[1:]), len(data.classes), filters=filters,
                      blocks=int(values.get("blocks", 4)), first_kernel=pair(values.get("first_kernel", "10x4")),
                      first_strides=pair(values.get("first_stride", "2x2")),
                      dw_kernel=pair(values.get("dw_kernel", 3)))


RECIPE = KwsRecipe()
