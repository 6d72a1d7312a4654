"""Synthesise a keyword-spotting dataset in the Speech Commands v2 layout with espeak-ng and sox.

Layout written (the one ``tinykeras.recipes.kws`` reads)::

    DIR/<word>/<speaker>_nohash_<k>.wav   1 s, 16 kHz, 16-bit mono
    DIR/_background_noise_/*.wav          synthesised noise tracks
    DIR/validation_list.txt               every clip of the validation accents
    DIR/testing_list.txt                  every clip of the held-out test accents

Speakers are espeak-ng accent + voice variant pairs; speed, pitch and level vary per clip. Whole accents are held
out for validation and testing (a held-out voice of a seen accent is far too easy).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinykeras.datasets import note, write_wav
from tinykeras.datasets.noise import background_noises
from tinykeras.errors import DataError, ToolchainError

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "zero",
                 "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "backward",
                 "forward", "follow", "learn", "visual")
# English accents, plus English words read by other languages' voices (foreign-accented English: more vowel
# and consonant variety to learn from). The test accents are never used for training or validation.
TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "de", "nl", "it", "pl", "af",
                 "es")
VALIDATION_ACCENTS = ("en-us-nyc",)
TEST_ACCENTS = ("en-gb-scotland", "en-029")
VOICES = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
          "klatt", "klatt3", "Andy", "Annie", "Michael", "belinda", "david", "iven3")
RATE = 16000


@dataclass(frozen=True)
class KwsSynthConfig:
    per_word: int = 200  # clips per keyword
    unknown_total: int = 400  # clips over all unknown words together
    seed: int = 0
    noise_seconds: float = 20.0


def require_tools() -> None:
    """Raise ToolchainError naming the Debian package if espeak-ng or sox is missing."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"{tool} not found: it synthesises the keyword dataset; install the Debian "
                                 f"package with `sudo apt-get install {tool}` (or pass --data with real clips)")


def speaker_id(accent: str, voice: str) -> str:
    return re.sub(r"[^0-9a-z]", "", f"{accent}{voice}".lower())


def _speak(word: str, accent: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """espeak-ng -> sox (16 kHz mono, no dither so reruns are byte-identical, silence trimmed) -> float32."""
    espeak = subprocess.run(["espeak-ng", "-v", f"{accent}+{voice}", "-s", str(speed), "-p", str(pitch),
                             "--stdout", word], capture_output=True, check=False)
    if espeak.returncode != 0 or not espeak.stdout:
        raise ToolchainError(f"espeak-ng failed for '{word}' with voice {accent}+{voice}: "
                             f"{espeak.stderr.decode(errors='replace').strip()[:200]}")
    sox = subprocess.run(["sox", "-D", "-t", "wav", "-", "-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16",
                          "-c", "1", "-", "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02",
                          "0.5%", "reverse"], input=espeak.stdout, capture_output=True, check=False)
    if sox.returncode != 0:
        raise ToolchainError(f"sox failed: {sox.stderr.decode(errors='replace').strip()[:200]}")
    return np.frombuffer(sox.stdout, dtype="<i2").astype(np.float32) / 32768.0


def _place(clip: np.ndarray, rng: np.random.Generator, noise: np.ndarray) -> np.ndarray:
    """Put the word at a random position in 1 s, scale its level, add a little noise."""
    clip = clip[:RATE]
    peak = float(np.max(np.abs(clip))) or 1.0
    clip = clip / peak * rng.uniform(0.3, 0.9)
    out = np.zeros(RATE, np.float32)
    start = int(rng.integers(0, RATE - len(clip) + 1))
    out[start:start + len(clip)] = clip
    at = int(rng.integers(0, len(noise) - RATE))
    out += noise[at:at + RATE] * rng.uniform(0.0, 0.15)
    return np.clip(out, -1.0, 1.0)


def synthesize(dest: Path, config: KwsSynthConfig = KwsSynthConfig()) -> dict[str, int]:
    """Write the dataset into ``dest`` (which must be empty or absent). Returns clip counts per folder."""
    require_tools()
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DataError(f"{dest}: not empty; pick a new directory for the synthesised dataset")
    if config.per_word < 1:
        raise DataError("--per-word must be at least 1")
    rng = np.random.default_rng(config.seed)
    noises = background_noises(config.noise_seconds, RATE, config.seed)
    for name, track in noises.items():
        write_wav(dest / "_background_noise_" / f"{name}.wav", track, RATE)
    noise_mix = np.concatenate(list(noises.values()))
    accents = TRAIN_ACCENTS + VALIDATION_ACCENTS + TEST_ACCENTS
    plan: list[str] = []
    for word in KEYWORDS:
        plan += [word] * config.per_word
    n_unknown = max(len(UNKNOWN_WORDS), config.unknown_total) if config.unknown_total else 0
    plan += [UNKNOWN_WORDS[i % len(UNKNOWN_WORDS)] for i in range(n_unknown)]
    counts: dict[str, int] = {}
    per_speaker: dict[tuple[str, str], int] = {}
    val, test = [], []
    word_index: dict[str, int] = {}
    for k, word in enumerate(plan):
        i = word_index.get(word, 0)
        word_index[word] = i + 1
        # the accent changes every clip (even tiny sets cover them all); the voice steps through the variants
        offset = KEYWORDS.index(word) if word in KEYWORDS else UNKNOWN_WORDS.index(word)
        accent = accents[(i + offset) % len(accents)]
        voice = VOICES[(i * 7 + offset) % len(VOICES)]
        speed = int(rng.integers(110, 210))
        pitch = int(rng.integers(20, 80))
        clip = _place(_speak(word, accent, voice, speed, pitch), rng, noise_mix)
        spk = speaker_id(accent, voice)
        n = per_speaker.get((word, spk), 0)
        per_speaker[(word, spk)] = n + 1
        rel = f"{word}/{spk}_nohash_{n}.wav"
        write_wav(dest / rel, clip, RATE)
        counts[word] = counts.get(word, 0) + 1
        if accent in VALIDATION_ACCENTS:
            val.append(rel)
        elif accent in TEST_ACCENTS:
            test.append(rel)
        if (k + 1) % 200 == 0 or k + 1 == len(plan):
            note(f"  synthesised {k + 1}/{len(plan)} clips")
    (dest / "validation_list.txt").write_text("".join(f"{p}\n" for p in sorted(val)))
    (dest / "testing_list.txt").write_text("".join(f"{p}\n" for p in sorted(test)))
    (dest / "README.txt").write_text(
        "Synthesised by `tinykeras data synth kws` with espeak-ng and sox.\n"
        f"train accents: {', '.join(TRAIN_ACCENTS)}\nvalidation accents: {', '.join(VALIDATION_ACCENTS)}\n"
        f"test accents (held out): {', '.join(TEST_ACCENTS)}\nvoices: {', '.join(VOICES)}\n"
        f"per_word={config.per_word} unknown_total={config.unknown_total} seed={config.seed}\n")
    return dict(sorted(counts.items()))
