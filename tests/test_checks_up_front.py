"""Every path, option and input is checked before any heavy work: a bad one fails in a second with one line
and its exit code, before TensorFlow is even imported; default output folders never swallow other outputs;
tables keep their full width when piped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinykeras.errors import ModelError, OutputError

REPO = Path(__file__).resolve().parents[1]
KWS = REPO / "models" / "kws" / "model.tflite"
PROBE = """
import json, sys
from click.testing import CliRunner
from tinykeras.cli import cli
result = CliRunner().invoke(cli, sys.argv[1:])
print(json.dumps({"code": result.exit_code, "stderr": result.stderr, "stdout": result.stdout,
                  "tensorflow": "tensorflow" in sys.modules}))
"""


def run_cli(cwd: Path, *args: str) -> dict:
    """The command in a fresh interpreter: exit code, output, and whether it imported TensorFlow."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_line_error(result: dict, code: int, *words: str) -> None:
    lines = [ln for ln in result["stderr"].splitlines() if ln.strip()]
    assert result["code"] == code and len(lines) == 1 and lines[0].startswith("error: "), result
    assert all(w in lines[0] for w in words), lines
    assert not result["tensorflow"], "TensorFlow was imported before the check"


MODELS = REPO / "models" / "kws"


@pytest.mark.parametrize("args", [
    ["quantize", f"{MODELS}/model.keras", "--rep-data", f"{MODELS}/rep.npz", "-o", "afile"],
    ["train", "kws", "--quick", "-o", "afile"],
    ["tune", "kws", "--board", "qemu_m4", "--quick", "-o", "afile"],
    ["validate", str(KWS), "--data", f"{MODELS}/test.npz", "-o", "adir"],
    ["validate", str(KWS), "--data", f"{MODELS}/test.npz", "-o", "afile/report.json"],
    ["emulate", str(KWS), "-o", "adir"],
], ids=["quantize", "train", "tune", "validate-dir", "validate-under-file", "emulate"])
def test_a_bad_output_fails_before_any_work(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    one_line_error(run_cli(tmp_path, *args), OutputError.exit_code)


def test_synth_into_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    one_line_error(run_cli(tmp_path, "data", "synth", "kws", "afile", "--per-word", "1"),
                   OutputError.exit_code, "afile", "not a directory")


def test_build_names_an_unknown_model_format_first(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    result = run_cli(tmp_path, "build", "--board", "qemu_m4", "--model", "notes.txt")
    one_line_error(result, ModelError.exit_code, "notes.txt", "unknown model format")
    assert "--rep-data" not in result["stderr"]


def test_emulate_refuses_plots_into_a_file_before_running(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    one_line_error(run_cli(tmp_path, "emulate", str(KWS), "--plots", "afile"), OutputError.exit_code, "afile")


def test_profile_refuses_its_output_before_building(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    one_line_error(run_cli(tmp_path, "profile", str(KWS), "-o", "afile"), OutputError.exit_code, "afile")


def test_optimize_refuses_a_foreign_output_folder_before_training(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("my own notes")
    result = run_cli(tmp_path, "optimize", "model.keras", "--data", "train.npz", "--prune", "0.5", "-o", "mine")
    one_line_error(result, OutputError.exit_code, "mine", "not a tinykeras output")
    assert (tmp_path / "mine" / "notes.md").read_text() == "my own notes"


def test_optimize_default_output_is_beside_the_model_not_out(tmp_path: Path) -> None:
    from tinykeras.commands.optimize import default_out

    assert default_out(Path("out/kws/model.keras")) == Path("out/kws/optimized")
    (tmp_path / "saved").mkdir()
    assert default_out(tmp_path / "saved") == tmp_path / "saved.optimized"


def test_tables_keep_their_width_when_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.table import Table

    from tinykeras.commands.console import PIPED_WIDTH, console

    monkeypatch.delenv("COLUMNS", raising=False)
    out = console()  # pytest captures stdout: not a terminal
    assert out.width == PIPED_WIDTH
    table = Table()
    for name in ("stage", "sparsity per layer", "instructions per MAC", "arena bytes", "gzip bytes", "notes"):
        table.add_column(name)
    table.add_row("pruned", "0.75 " * 6, "3.04", "9,216", "40,000", "structured channels removed")
    with out.capture() as captured:
        out.print(table)
    assert "…" not in captured.get() and "instructions per MAC" in captured.get()


def test_emulate_plots_take_the_labels_beside_the_model(tmp_path: Path) -> None:
    from tinykeras.commands.emulate import labels_beside

    model = tmp_path / "int8" / "model.tflite"
    model.parent.mkdir()
    model.write_bytes(KWS.read_bytes())
    assert labels_beside(model) is None
    (model.parent / "settings.json").write_text(json.dumps({"labels": ["yes", "no", "_silence_"]}))
    assert labels_beside(model) == ["yes", "no", "_silence_"]


def test_bench_compare_labels_with_absolute_paths_are_text() -> None:
    """Two reports of the same board/runtime/model are told apart by their paths, '[/abs/a.json]', which rich
    read as a closing markup tag (an internal error the chain test found)."""
    from rich.console import Console

    from tinykeras.report import compare_table

    report = {"board": "qemu_m4", "runtime": "aot", "model": "kws", "runs": 2, "complete": True}
    out = Console(width=200)
    with out.capture() as captured:
        out.print(compare_table(report, report, "kws [/tmp/a/bench.json]", "kws [/tmp/b.json]"))
    assert "[/tmp/a/bench.json]" in captured.get()
