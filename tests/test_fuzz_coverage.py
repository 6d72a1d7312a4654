"""Coverage-guided fuzzing (issue 23): a fixed-seed slice of every target, the regression corpus, the generated
C under libFuzzer + ASan + UBSan compared with TFLM, and a slice of the serial soak."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tinykeras.device.protocol import MAX_RUNS, parse_chunks
from tinykeras.fuzz.coverage import parse_libfuzzer, replay
from tinykeras.fuzz.serial_server import _hello, _rec
from tinykeras.fuzz.targets import TARGETS, dictionary_text

REGRESSIONS = Path(__file__).parent / "data" / "fuzz" / "regressions"
pytest.importorskip("atheris", reason="atheris (PyPI) is not installed: pip install -e '.[dev]'")


def test_every_target_has_seeds() -> None:
    for name, target in TARGETS.items():
        assert target.seeds(), f"target {name} has no seed corpus"


def test_dictionary_format_is_libfuzzer_s() -> None:
    text = dictionary_text(TARGETS["mlperf"])
    assert text.splitlines()[0] == 'kw0="m-ready"'
    assert '\\x00' in dictionary_text(TARGETS["inspect"])


def test_status_lines_are_parsed() -> None:
    log = (b"#2\tINITED cov: 10 ft: 12 corp: 2/10b exec/s: 0 rss: 30Mb\n"
           b"#64\tNEW    cov: 15 ft: 20 corp: 3/12b lim: 4 exec/s: 0 rss: 30Mb L: 2/2 MS: 1 ChangeBit-\n"
           b"Done 100 runs in 1 second(s)\n")
    stats = parse_libfuzzer(log)
    assert (stats["executions"], stats["cov_initial"], stats["cov_final"], stats["ft_final"]) == (100, 10, 15, 20)


@pytest.mark.parametrize("name", sorted(p.name for p in REGRESSIONS.iterdir()))
def test_regression_corpus_replays_cleanly(name: str) -> None:
    """Every input a campaign ever found (minimised) now ends in a result or a TinyKerasError."""
    files = sorted((REGRESSIONS / name).iterdir())
    assert files
    assert replay(name, files) == []


def test_a_session_of_exactly_max_runs_is_complete() -> None:
    """Found by the soak: a session announcing exactly MAX_RUNS and sending them all was reported 'short'."""
    body = _hello(MAX_RUNS) + b"".join(_rec(event="run", i=i, us=10) for i in range(MAX_RUNS)) + _rec(
        event="done", runs=MAX_RUNS)
    report = parse_chunks([body])
    assert report.status == "complete" and len(report.runs) == MAX_RUNS
    capped = parse_chunks([_hello(MAX_RUNS + 1) + b"".join(_rec(event="run", i=i, us=10) for i in range(MAX_RUNS))])
    assert capped.status == "short"


def test_fixed_seed_slice_of_every_target(tmp_path: Path) -> None:
    """Each target, coverage-guided, 150 executions with seed 7: no finding, coverage measured."""
    from tinykeras.fuzz.coverage import run_target

    def one(name: str) -> dict:
        return run_target(name, tmp_path / name, seconds=None, runs=150, seed=7, max_len=1 << 18)

    with ThreadPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(one, sorted(TARGETS)))
    for row in rows:
        assert row["exit_code"] == 0, (row["target"], row["log_tail"])
        assert row["findings"] == [], (row["target"], row["log_tail"])
        assert row["executions"] >= 150 and row["cov_final"] and row["cov_final"] > 0, row


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang (Debian clang + libclang-rt-14-dev) is not installed")
def test_generated_c_under_libfuzzer_and_sanitizers_matches_tflm(tmp_path: Path) -> None:
    from tinykeras.fuzz.cfuzz import fuzz_model
    from tinykeras.inspect import inspect_bytes
    from tinykeras.resources import models_dir

    data = (models_dir() / "gesture" / "model.tflite").read_bytes()
    # the same fuzzed inputs through the Cortex-M4 DSP and the Cortex-M55 Helium kernels
    qemu = ("qemu_m4", "qemu_m55") if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc") else ()
    row = fuzz_model(data, inspect_bytes(data), tmp_path, name="gesture", seconds=60, runs=400, seed=7, check=32,
                     qemu_boards=qemu)
    assert row["exit_code"] == 0 and row["sanitizer_findings"] == [], row["log_tail"]
    assert row["executions"] >= 400 and row["checked"] >= 2
    assert row["bit_exact"] is True and row["mismatches"] == 0, row
    for board, check in row.get("qemu", {}).items():
        assert check["samples"] == row["checked"] and check["bit_exact"], (board, check)


def test_soak_slice_keeps_memory_flat_and_accounts_for_every_record() -> None:
    from tinykeras.fuzz.soak import soak_mlperf, soak_tk

    tk = soak_tk(records=20_000, per_session=10_000)
    assert tk["accounted"], tk["rows"]
    assert tk["rss_growth_mb"] < 16, tk["rows"]
    ml = soak_mlperf(exchanges=1_000, per_session=500)
    assert ml["accounted"] and ml["rss_growth_mb"] < 16, ml["rows"]
