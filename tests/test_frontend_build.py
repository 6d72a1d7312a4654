"""`tinykeras build` ships the model's feature front end (issue 6, part 5): tk_frontend.c/.h and the generated
tk_frontend_tables.h in src/, the TK_FE_* macros in model_settings.h, the front end compiled into the qemu_m4
firmware, and nothing of it for a model without a settings.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import requires_tool
from mirrors import numpy_features

from tinykeras.cli import cli
from tinykeras.recipes.frontend import AudioFeatures, feature_defines, settings_beside
from tinykeras.resources import models_dir

FRONTEND_FILES = ["src/tk_frontend.c", "src/tk_frontend.h", "src/tk_frontend_tables.h"]
KWS_MODEL = models_dir() / "kws" / "model.tflite"

pytestmark = pytest.mark.skipif(settings_beside(KWS_MODEL) is None, reason="models/kws/settings.json not shipped")


def _build(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["build", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def esp32_kws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fe") / "esp32"
    return out, _build("--board", "esp32", "--recipe", "kws", "-o", str(out))


def test_esp32_project_has_the_front_end(esp32_kws: tuple[Path, dict]) -> None:
    out, data = esp32_kws
    settings = settings_beside(KWS_MODEL)
    assert set(FRONTEND_FILES) <= set(data["files"])
    header = (out / "src" / "model_settings.h").read_text()
    defines = feature_defines(settings)
    assert defines["TK_FE_KIND_MFCC"] == "1"
    for name, value in defines.items():
        assert f"#define {name} {value}\n" in header
    assert f"#define TK_NUM_LABELS {len(settings['labels'])}" in header
    tables = (out / "src" / "tk_frontend_tables.h").read_text()
    assert "SHA-256: " + data["model_sha256"] in tables and "tk_fe_mel_weights" in tables
    assert (out / "src" / "tk_frontend.c").read_text().endswith(
        (Path(__file__).resolve().parents[1] / "firmware_templates/runtime/frontend/tk_frontend.c").read_text())
    saved = json.loads((out / "tinykeras_build.json").read_text())
    assert saved["frontend"] == data["frontend"]
    assert data["frontend"]["kind"] == "mfcc"
    assert data["frontend"]["parameters"]["num_frames"] == settings["features"]["num_frames"]
    assert data["frontend"]["files"] == FRONTEND_FILES


_APP = r"""
#include <stdio.h>
#include "model_settings.h"
#include "tk_frontend.h"
typedef char input_matches_features[(TK_FE_NUM_FRAMES * TK_FE_NUM_COEFFS == TK_INPUT0_ELEMENTS) ? 1 : -1];
static float audio[TK_FE_CLIP_SAMPLES], features[TK_INPUT0_ELEMENTS];
static int8_t input[TK_INPUT0_ELEMENTS];
int main(void) {
  if (fread(audio, sizeof(float), TK_FE_CLIP_SAMPLES, stdin) != TK_FE_CLIP_SAMPLES) return 1;
  tk_fe_audio_clip(audio, features);
  tk_fe_quantize(features, input, TK_INPUT0_ELEMENTS, TK_INPUT0_SCALE, TK_INPUT0_ZERO_POINT);
  fwrite(features, sizeof(float), TK_INPUT0_ELEMENTS, stdout);
  fwrite(input, 1, TK_INPUT0_ELEMENTS, stdout);
  return 0;
}
"""


@requires_tool("gcc")
def test_application_calls_the_rendered_front_end(esp32_kws: tuple[Path, dict], tmp_path: Path) -> None:
    """An application including model_settings.h and tk_frontend.h (as the README tells users) compiles
    warning-free against the rendered src/ and computes the features the model was trained on."""
    out, _ = esp32_kws
    (tmp_path / "app.c").write_text(_APP)
    exe = tmp_path / "app"
    cmd = ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{out / 'src'}", "-o", str(exe),
           str(tmp_path / "app.c"), str(out / "src" / "tk_frontend.c"), "-lm"]
    build = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    t = np.arange(16000) / 16000.0
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(1).normal(size=t.size))
    run = subprocess.run([str(exe)], input=audio.astype("<f4").tobytes(), capture_output=True, check=True)
    p = AudioFeatures.from_dict(settings_beside(KWS_MODEL)["features"])
    n = p.num_frames * p.num_coeffs
    device = np.frombuffer(run.stdout[:4 * n], dtype="<f4")
    np.testing.assert_allclose(device, numpy_features(audio, p).ravel(), atol=1e-3)
    header = (out / "src" / "model_settings.h").read_text()
    scale = float(header.split("#define TK_INPUT0_SCALE ")[1].split("f\n")[0])
    zero = int(header.split("#define TK_INPUT0_ZERO_POINT (")[1].split(")")[0])
    expected = np.clip(np.sign(device / scale) * np.floor(np.abs(device / scale) + 0.5) + zero, -128, 127)
    quantized = np.frombuffer(run.stdout[4 * n:], dtype=np.int8)
    assert np.abs(quantized.astype(int) - expected.astype(int)).max() <= 1  # float32 vs float64 rounding


@requires_tool("arm-none-eabi-gcc", "arm-none-eabi-nm", "make")
def test_qemu_firmware_links_with_the_front_end(tmp_path: Path) -> None:
    pytest.importorskip("tinykeras.aot")
    out = tmp_path / "q"
    data = _build("--board", "qemu_m4", "--recipe", "kws", "-o", str(out), "--compile")
    assert data["actions"] == ["compile"] and data["frontend"]["kind"] == "mfcc"
    assert set(FRONTEND_FILES) <= set(data["files"])
    assert "TK_FE_KIND_MFCC 1" in (out / "src" / "tk_frontend_tables.h").read_text()
    sources = next(line for line in (out / "Makefile").read_text().splitlines() if line.startswith("SRCS"))
    assert "src/tk_frontend.c" in sources.split()
    assert (out / "build" / "firmware.elf").is_file()
    symbols = subprocess.run(["arm-none-eabi-nm", str(out / "build" / "tk_frontend.o")], capture_output=True,
                             text=True, check=True).stdout
    assert " T tk_fe_audio_clip" in symbols and " T tk_fe_quantize" in symbols


@pytest.mark.parametrize("board", ["esp32", "qemu_m4"])
def test_model_without_settings_has_no_front_end(board: str, reference_models: dict[str, Path],
                                                 tmp_path: Path) -> None:
    if board == "qemu_m4":
        pytest.importorskip("tinykeras.aot")
    out = tmp_path / "p"
    data = _build("--board", board, "--model", str(reference_models["ad01_int8"]), "-o", str(out))
    assert data["frontend"] is None
    assert not any("tk_frontend" in f for f in data["files"])
    assert "frontend" not in json.loads((out / "tinykeras_build.json").read_text())
    for header in (out / "src").glob("*.h"):
        assert "TK_FE_" not in header.read_text(), header.name


def test_settings_with_labels_only_has_no_front_end(reference_models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "m" / "ad01.tflite"
    model.parent.mkdir()
    model.write_bytes(reference_models["ad01_int8"].read_bytes())
    (model.parent / "settings.json").write_text(json.dumps({"labels": ["normal", "anomaly"]}))
    out = tmp_path / "p"
    data = _build("--board", "nano33ble", "--model", str(model), "-o", str(out))
    assert data["frontend"] is None
    header = (out / "src" / "model_settings.h").read_text()
    assert '#define TK_LABELS { "normal", "anomaly" }' in header and "TK_FE_" not in header
