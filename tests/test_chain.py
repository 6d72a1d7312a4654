"""The README's tour as one chain: every command runs on the previous command's real output, as a user runs it.

    data synth -> train -> optimize -> quantize -> inspect --check --board B (every board) -> validate (host and
    --board qemu_m4) -> build (every board; PlatformIO boards: the project) -> build --board qemu_m4 --run ->
    bench --replay of the saved serial.log -> bench compare -> profile;  tune --board B -> build --board B

Every link must work, or stop with one line naming the fix (a board whose RAM is too small; a board that copies
TFLite-Micro from a tree without $TINYKERAS_THIRD_PARTY). Data is synthesised here (10 clips per keyword) and
trained for one epoch: the models are tiny and unseen, which is the point. `train` runs without --quick because
--quick keeps 4 test clips, fewer than `optimize` needs to split; the dataset is tiny either way.
``tune`` runs (--quick, 2 trials, 1 epoch) on one board per distinct build check (runtime + pinned library):
set TINYKERAS_CHAIN_ALL_BOARDS=1 to search every board.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import THIRD_PARTY_ENV, requires_tool
from tinykeras.boards import list_boards
from tinykeras.cli import cli
from tinykeras.errors import DoesNotFitError, ToolchainError

REPO = Path(__file__).resolve().parents[1]
BOARDS = [b.name for b in list_boards()]
PIO_BOARDS = [b.name for b in list_boards() if b.kind == "platformio"]
TREE_BOARDS = {b.name for b in list_boards() if b.tflm is not None and b.tflm.lib.delivery["kind"] == "tree"
               and b.kind == "platformio"}


def _one_board_per_check() -> list[str]:
    """One board per (default runtime, pinned library): what decides how tune quantizes and costs a trial."""
    if os.environ.get("TINYKERAS_CHAIN_ALL_BOARDS"):
        return BOARDS
    seen: dict[tuple[str, str | None], str] = {}
    for b in list_boards():
        key = (b.default_runtime, b.tflm.library if b.default_runtime == "tflm" and b.tflm else None)
        seen.setdefault(key, b.name)
    return sorted(seen.values())


TUNE_BOARDS = _one_board_per_check()
pytestmark = [pytest.mark.slow, requires_tool("espeak-ng", "sox", "arm-none-eabi-gcc", "qemu-system-arm")]


def tk(*args: object) -> Result:
    """``tinykeras ARGS`` in this process (click's runner): exit code, stdout and stderr apart."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: object) -> Result:
    result = tk(*args)
    assert result.exit_code == 0, f"tinykeras {' '.join(map(str, args))}:\n{result.output[-3000:]}"
    return result


def one_line(result: Result, code: int, *words: str) -> str:
    """The link stopped as promised: one `error:` line with ``code``, naming ``words`` (the fix)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert result.exit_code == code and len(lines) == 1, result.output[-3000:]
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def tflm_dir() -> Path | None:
    third_party = os.environ.get(THIRD_PARTY_ENV)
    return Path(third_party) / "tflite-micro-90b983c" if third_party else None


def build_or_stop(board: str, model: Path, out: Path, *extra: object) -> dict | None:
    """``build --board B --model M``: the project's report, or None after the one line a user can act on."""
    tree = ["--tflm-dir", tflm_dir()] if board in TREE_BOARDS and tflm_dir() else []
    result = tk("build", "--board", board, "--model", model, "-o", out, *tree, *extra)
    if board in TREE_BOARDS and not tree and result.exit_code != DoesNotFitError.exit_code:
        one_line(result, ToolchainError.exit_code, "--tflm-dir", "TINYKERAS_TFLM_DIR")
        return None
    if result.exit_code == DoesNotFitError.exit_code:  # checked before the tree is looked for
        one_line(result, DoesNotFitError.exit_code, board, "does not fit", "pick a larger board")
        return None
    assert result.exit_code == 0, f"build --board {board}:\n{result.output[-3000:]}"
    return json.loads((out / "tinykeras_build.json").read_text())


# --------------------------------------------------------------------------------------------- the chain

@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tour")


@pytest.fixture(scope="module")
def data(tour: Path) -> Path:
    ok("data", "synth", "kws", tour / "data" / "kws", "--per-word", "10", "--unknown", "12")
    return tour / "data" / "kws"


@pytest.fixture(scope="module")
def trained(tour: Path, data: Path) -> Path:
    result = ok("train", "kws", "--data", data, "--epochs", "1", "-o", tour / "out" / "kws")
    assert "tf_keras.models.load_model" in result.stdout  # how to load model.keras is said, not discovered
    return tour / "out" / "kws"


@pytest.fixture(scope="module")
def optimized(trained: Path) -> Path:
    ok("optimize", trained / "model.keras", "--data", trained / "test.npz", "--prune", "0.5", "--epochs", "1")
    return trained / "optimized"  # the default output: beside the model, never out/ itself


@pytest.fixture(scope="module")
def int8(trained: Path) -> Path:
    ok("quantize", trained / "model.keras", "--rep-data", trained / "rep.npz", "-o", trained / "int8",
       "--also", "float32", "--per-tensor-dense")
    return trained / "int8" / "model.tflite"


@pytest.fixture(scope="module")
def qemu_run(tour: Path, int8: Path) -> Path:
    ok("build", "--board", "qemu_m4", "--model", int8, "--run", "-o", tour / "fw" / "qemu_m4-run")
    return tour / "fw" / "qemu_m4-run"


def test_optimize_writes_beside_the_model_and_keeps_trains_output(trained: Path, optimized: Path) -> None:
    assert (optimized / "model.tflite").stat().st_size > 0 and (optimized / "optimize.json").exists()
    for name in ("model.keras", "test.npz", "rep.npz", "settings.json"):  # train's output is untouched
        assert (trained / name).exists(), name


@pytest.mark.parametrize("board", BOARDS)
def test_inspect_check_on_every_board(int8: Path, board: str) -> None:
    ok("inspect", int8, "--check", "--board", board)


def test_validate_on_the_host(trained: Path, int8: Path) -> None:
    result = ok("validate", int8, "--data", trained / "test.npz", "--keras", trained / "model.keras")
    assert "PASS" in result.stdout and "(all " in result.stdout


def test_validate_on_the_emulated_board_is_stratified(trained: Path, int8: Path) -> None:
    result = ok("validate", int8, "--data", trained / "test.npz", "--board", "qemu_m4", "--samples", "8", "--json")
    report = json.loads(result.stdout)
    assert report["samples"] == 8 and report["sampling"].startswith("stratified by class")
    assert report["board"]["matches_host_tflm"], report["board"]


@pytest.mark.parametrize("board", PIO_BOARDS)
def test_build_every_platformio_board(tour: Path, int8: Path, board: str) -> None:
    report = build_or_stop(board, int8, tour / "fw" / board)
    if report is not None:
        assert report["board"] == board and (tour / "fw" / board / "platformio.ini").exists()


def test_bench_replays_the_saved_serial_log_and_compares(tour: Path, qemu_run: Path) -> None:
    saved = json.loads((qemu_run / "bench.json").read_text())
    assert saved["complete"]
    ok("bench", "--replay", qemu_run / "serial.log", "-o", tour / "replay.json")
    replayed = json.loads((tour / "replay.json").read_text())
    assert replayed["complete"] and replayed["runs"] == saved["runs"]
    result = ok("bench", "compare", qemu_run / "bench.json", tour / "replay.json")
    assert "1.000x" in result.stdout and "…" not in result.stdout  # full width although not a terminal


def test_profile_names_the_model(tour: Path, int8: Path) -> None:
    ok("profile", int8, "--board", "qemu_m4", "-o", tour / "profile")
    assert json.loads((tour / "profile" / "profile.json").read_text())["model"] == "kws"  # not "model"


def test_example_tests_skip_the_float_copy_for_aot(int8: Path) -> None:
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from test_my_model import float_model_reason  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "examples"))
    assert float_model_reason(int8) is None
    assert "int8 models only" in float_model_reason(int8.with_name("model_float32.tflite"))


@pytest.mark.parametrize("board", TUNE_BOARDS)
def test_tune_then_build_its_best(tour: Path, data: Path, board: str) -> None:
    out = tour / f"tune-{board}"
    done = subprocess.run(
        [sys.executable, "-m", "tinykeras", "tune", "kws", "--board", board, "--data", str(data), "--quick",
         "--max-trials", "2", "--epochs", "1", "--algorithm", "random", "-o", str(out)],
        cwd=tour, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"next: tinykeras build --board {board} --model" in done.stdout
    tuned = json.loads((out / "tune.json").read_text())
    best = next(t for t in tuned["trials"] if t["trial_id"] == tuned["best"])
    report = build_or_stop(board, out / "best" / "model.tflite", tour / "fw" / f"tune-{board}")
    if report is not None:  # the search costed the trial exactly as the build checks it
        fit = report["fit"]
        assert (best["metrics"]["ram_bytes"], best["metrics"]["flash_bytes"]) == (fit["ram_needed"],
                                                                                  fit["flash_needed"])
