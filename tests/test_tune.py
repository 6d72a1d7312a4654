"""`tinykeras tune`: search spaces as data, limits, the tiny end-to-end search, resume, distributed mode."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import requires_tool
from tinykeras.boards import load_board
from tinykeras.cli import cli
from tinykeras.errors import DataError
from tinykeras.tune import (
    describe_violations,
    load_space,
    pareto_front,
    search_limits,
    space_path,
    violations,
)

REPO = Path(__file__).resolve().parents[1]
# the tiny search every test below runs: gesture --quick data (24 training windows per class), 3 epochs
TINY = ["tune", "gesture", "--board", "qemu_m4", "--quick", "--algorithm", "random", "--epochs", "2", "--seed", "0"]
needs_qemu = requires_tool("arm-none-eabi-gcc", "qemu-system-arm")


def tinykeras(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tinykeras", *args], cwd=REPO, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}, **kwargs)  # type: ignore


def run_tinykeras(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinykeras", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------------------------------- no TensorFlow

@pytest.mark.parametrize("recipe", ["kws", "gesture"])
def test_packaged_spaces_load_and_match_the_recipe(recipe: str) -> None:
    from tinykeras.recipes import get_recipe

    space = load_space(recipe)
    assert set(space) <= set(get_recipe(recipe).search_keys)
    assert space_path(recipe).exists()


def test_unknown_space_key_says_did_you_mean(tmp_path: Path) -> None:
    bad = tmp_path / "space.toml"
    bad.write_text("[widht]\nvalues = [0.5, 1.0]\n")
    with pytest.raises(DataError, match=r"unknown search-space key 'widht'.*did you mean 'width'"):
        load_space("kws", bad)
    bad.write_text("[width]\nvalus = [0.5, 1.0]\n")
    with pytest.raises(DataError, match=r"unknown field 'valus'.*did you mean 'values'"):
        load_space("kws", bad)
    bad.write_text("[width]\nvalues = [0.5, 1.0]\ndefault = 2.0\n")
    with pytest.raises(DataError, match="default 2.0 is not one of its values"):
        load_space("kws", bad)


@pytest.mark.parametrize("args, needle", [
    (["tune", "kwz", "--board", "nano33ble"], "did you mean 'kws'"),
    (["tune", "kws", "--board", "nano33bel"], "did you mean 'nano33ble'"),
    (["tune", "kws", "--board", "nano33ble", "--worker"], "--worker needs --oracle HOST:PORT"),
    (["tune", "sensor", "--board", "nano33ble"], "has no search space"),
])
def test_bad_input_is_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    result = CliRunner(env=env).invoke(cli, [*args, "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.output


def test_limits_come_from_the_board_minus_reserved() -> None:
    board = load_board("nano33ble")
    limits = search_limits(board)
    assert limits.ram_bytes == board.limits.ram_bytes - board.limits.reserved_ram_bytes
    assert limits.flash_bytes == board.limits.flash_bytes - board.limits.reserved_flash_bytes
    tighter = search_limits(board, max_ram=50_000, max_latency_ms=100)
    assert tighter.ram_bytes == 50_000 and tighter.clock_hz == board.mcu.clock_hz
    costs = {"ram_bytes": 60_000, "flash_bytes": 10_000, "latency_ms": 150.0}
    broken = violations(costs, tighter)
    assert [v["what"] for v in broken] == ["ram", "latency"]
    assert "ram 60,000 B > 50,000 B" in describe_violations(broken)


@pytest.mark.parametrize("board", ["qemu_m4", "nano33ble"])
def test_trial_costs_are_the_builds_own_figures(board: str, tmp_path: Path) -> None:
    """tune keeps no fit formula: a trial's RAM and flash are what `build --board B` checks, for B's runtime."""
    from tinykeras.pipeline import plan_build
    from tinykeras.tune import model_costs

    tflite = (REPO / "models" / "kws" / "model.tflite").read_bytes()
    b = load_board(board)
    limits = search_limits(b)
    assert limits.runtime == b.default_runtime and limits.per_tensor_dense == (board == "nano33ble")
    costs = model_costs(tflite, limits, instructions=False, work=tmp_path)
    fit = plan_build(b, tflite).fit
    assert (costs["ram_bytes"], costs["flash_bytes"]) == (fit["ram_needed"], fit["flash_needed"])


def test_pareto_front_keeps_only_undominated_trials() -> None:
    trials = [{"trial_id": i, "metrics": {"acc": a, "cost": c}}
              for i, a, c in (("0", 0.80, 10), ("1", 0.85, 20), ("2", 0.82, 30), ("3", 0.90, 40), ("4", 0.70, 5))]
    assert pareto_front(trials, "acc", "cost") == ["4", "0", "1", "3"]


# ------------------------------------------------------------------------------------------- real searches

@needs_qemu
@pytest.mark.slow
def test_tiny_search_records_every_trial_resumes_and_best_builds(tmp_path: Path) -> None:
    out = tmp_path / "search"
    first = run_tinykeras(*TINY, "--max-trials", "2", "-o", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads((out / "tune.json").read_text())
    assert [t["trial_id"] for t in report["trials"]] == ["0", "1"]
    for trial in report["trials"]:
        assert trial["status"] == "completed" and trial["feasible"]
        m = trial["metrics"]
        assert m["instructions_measured"] == 1 and m["instructions"] > 0 and m["arena_bytes"] > 0
        assert 0.0 <= m["val_accuracy"] <= 1.0 and set(trial["hyperparameters"]) == set(load_space("gesture"))
    assert report["best"] in ("0", "1") and (out / "pareto.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "best").iterdir()) == [".tinykeras-output", "metrics.json", "model.keras",
                                                               "model.tflite", "rep.npz", "settings.json"]
    # rerun with a larger budget: Keras Tuner's state is reloaded and only the new trial runs
    second = run_tinykeras(*TINY, "--max-trials", "3", "-o", str(out))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "trial 2 " in second.stderr and "trial 0 " not in second.stderr and "trial 1 " not in second.stderr
    assert [t["trial_id"] for t in json.loads((out / "tune.json").read_text())["trials"]] == ["0", "1", "2"]
    # the best model builds and runs on the emulated board, with the front end from its settings.json
    from tinykeras.pipeline import BuildOptions, build

    result = build(BuildOptions(board="qemu_m4", model=out / "best" / "model.tflite", out=tmp_path / "fw", run=True,
                                runs=2, warmup=0), log=lambda msg: None)
    assert result.qemu["instructions_per_inference"] > 0 and result.frontend is not None


@pytest.mark.slow
def test_limits_no_trial_meets_exit_with_the_closest_figures(tmp_path: Path) -> None:
    model_fn = tmp_path / "my_models.py"
    model_fn.write_text(
        "import tf_keras as keras\n\n"
        "def build(hp, input_shape, classes):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = keras.layers.Flatten()(inputs)\n"
        "    x = keras.layers.Dense(hp.Int('units', 8, 32, step=8), activation='relu')(x)\n"
        "    return keras.Model(inputs, keras.layers.Dense(classes, activation='softmax')(x))\n")
    result = run_tinykeras(*TINY, "--max-trials", "2", "--model-fn", f"{model_fn}:build", "--max-ram", "600",
                           "-o", str(tmp_path / "o"))
    assert result.returncode == 6, result.stderr[-2000:]
    error = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(error) == 1 and "no trial fits board 'qemu_m4'" in error[0] and "the closest, trial" in error[0]
    assert "ram " in error[0] and "> 600 B" in error[0]
    report = json.loads((tmp_path / "o" / "tune.json").read_text())
    assert len(report["trials"]) == 2 and not any(t["feasible"] for t in report["trials"])
    assert all(t["violations"][0]["what"] == "ram" and not t["trained"] for t in report["trials"])
    assert not (tmp_path / "o" / "best").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(path: Path, text: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.5)
    tail = path.read_text()[-2000:] if path.exists() else ""
    raise AssertionError(f"'{text}' not in {path} after {timeout} s:\n{tail}")


def _start(args: list[str], log: Path, tuner_id: str | None = None) -> subprocess.Popen:
    env = {"KERASTUNER_TUNER_ID": tuner_id} if tuner_id else {}
    env["PYTHONUNBUFFERED"] = "1"   # progress lines reach the log as they happen (the tests signal on them)
    return tinykeras(*args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


@needs_qemu
@pytest.mark.slow
def test_chief_and_two_workers_run_every_trial_once(tmp_path: Path) -> None:
    oracle = f"127.0.0.1:{_free_port()}"
    args = [*TINY, "--max-trials", "3", "-o", str(tmp_path / "o"), "--oracle", oracle]
    chief = _start([*args, "--chief"], tmp_path / "chief.log")
    workers = [_start([*args, "--worker"], tmp_path / f"w{k}.log", f"tuner{k}") for k in (1, 2)]
    try:
        assert [w.wait(timeout=300) for w in workers] == [0, 0]
        assert chief.wait(timeout=120) == 0, (tmp_path / "chief.log").read_text()[-2000:]
    finally:
        for p in (chief, *workers):
            if p.poll() is None:
                p.kill()
    report = json.loads((tmp_path / "o" / "tune.json").read_text())
    assert [t["trial_id"] for t in report["trials"]] == ["0", "1", "2"]
    assert all(t["status"] == "completed" for t in report["trials"])
    chief_log = (tmp_path / "chief.log").read_text()
    assigned = [ln.split("->")[1].strip() for ln in chief_log.splitlines() if ln.startswith("chief: trial ")
                and "->" in ln]
    assert len(assigned) == 3 and set(assigned) == {"tuner1", "tuner2"}  # no trial twice, both workers busy
    assert (tmp_path / "o" / "best" / "model.tflite").exists()


@needs_qemu
@pytest.mark.slow
def test_worker_dying_mid_trial_is_recorded_as_failed(tmp_path: Path) -> None:
    oracle = f"127.0.0.1:{_free_port()}"
    args = [*TINY, "--max-trials", "3", "-o", str(tmp_path / "o"), "--oracle", oracle]
    chief = _start([*args, "--chief", "--worker-timeout", "20"], tmp_path / "chief.log")
    doomed = _start([*args, "--worker"], tmp_path / "doomed.log", "doomed")
    survivor = None
    try:
        _wait_for(tmp_path / "chief.log", "-> doomed", 180)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        survivor = _start([*args, "--worker"], tmp_path / "survivor.log", "survivor")
        assert survivor.wait(timeout=300) == 0, (tmp_path / "survivor.log").read_text()[-2000:]
        assert chief.wait(timeout=120) == 0, (tmp_path / "chief.log").read_text()[-2000:]
    finally:
        for p in (chief, doomed, survivor):
            if p is not None and p.poll() is None:
                p.kill()
    report = json.loads((tmp_path / "o" / "tune.json").read_text())
    status = {t["trial_id"]: t["status"] for t in report["trials"]}
    assert status == {"0": "failed", "1": "completed", "2": "completed"}
    failed = report["trials"][0]
    assert "worker doomed stopped responding" in failed["message"]
    assert report["trials_failed"] == 1 and report["best"] in ("1", "2")


@needs_qemu
@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="known defect, open: in the full suite a SIGINT during trial 1 was "
                   "sometimes recorded as a failed trial and the search finished (exit 0); passes alone. Likely "
                   "cause fixed (native.Child.__del__ waited for its child: a Ctrl-C raised there is swallowed), "
                   "not yet proven over repeated full runs")
def test_interrupted_search_resumes_the_interrupted_trial(tmp_path: Path) -> None:
    args = [*TINY, "--max-trials", "3", "-o", str(tmp_path / "o")]
    first = _start(args, tmp_path / "first.log")
    try:
        _wait_for(tmp_path / "first.log", "trial 1 ", 180)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
    finally:
        if first.poll() is None:
            first.kill()
    assert "interrupted" in (tmp_path / "first.log").read_text()
    second = run_tinykeras(*args)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "trial 1 " in second.stderr and "trial 2 " in second.stderr and "trial 0 " not in second.stderr
    report = json.loads((tmp_path / "o" / "tune.json").read_text())
    assert [(t["trial_id"], t["status"]) for t in report["trials"]] == [("0", "completed"), ("1", "completed"),
                                                                      ("2", "completed")]


def test_bayesian_oracle_never_repeats_a_trial(tmp_path: Path) -> None:
    from tinykeras.tune.search import _bayesian_class, import_keras_tuner

    kt = import_keras_tuner()
    oracle = _bayesian_class(kt)(objective=kt.Objective("score", "max"), max_trials=8, num_initial_points=1,
                                 seed=1)
    oracle._set_project_dir(str(tmp_path), "p")
    hp = kt.HyperParameters()
    hp.Choice("width", [0.5, 1.0, 1.5])
    hp.Choice("blocks", [3, 4])
    oracle.update_space(hp)
    seen = []
    for _ in range(8):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        seen.append(tuple(sorted(trial.hyperparameters.values.items())))
        oracle.update_trial(trial.trial_id, {"score": float(trial.hyperparameters.values["width"])})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert len(seen) == len(set(seen)) and len(seen) == 6  # all 3 x 2 points, each once, then stop
