"""A hostile board on a local TCP socket: every scenario ends in a clean, labelled status, in time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import tinykeras.device as bench
from tinykeras.fuzz.serial_server import SCENARIOS, HostileBoard, run_scenario

TIMEOUT = 1.0
BY_NAME = {s.name: s for s in SCENARIOS}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_ends_cleanly_in_time(scenario, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "raw.log"
    with HostileBoard(scenario) as board:
        start = time.monotonic()
        if scenario.protocol == "mlperf":
            report = bench.collect_mlperf(board.url, runs=2, timeout=TIMEOUT, raw_log=log)
        else:
            report = bench.collect(board.url, timeout=TIMEOUT, raw_log=log)
        seconds = time.monotonic() - start
    assert report.status in scenario.expect, report.message()
    assert seconds <= TIMEOUT + 1.0
    data = report.to_json()
    json.dumps(data, allow_nan=False)  # the report is plain, finite JSON whatever arrived
    assert log.stat().st_size <= 64 * 1024 * 1024 + 100
    assert len(report.runs) <= bench.MAX_RUNS


def test_absurd_numbers_are_counted_as_noise() -> None:
    with HostileBoard(BY_NAME["us_1e308"]) as board:
        report = bench.collect(board.url, timeout=TIMEOUT)
    assert report.complete and report.malformed == 2
    assert report.latency_us()["max"] < 1e6


def test_announced_run_count_is_capped() -> None:
    with HostileBoard(BY_NAME["hello_runs_1e12"]) as board:
        report = bench.collect(board.url, timeout=TIMEOUT)
    assert report.expected_runs == bench.MAX_RUNS and report.malformed >= 1


@pytest.mark.parametrize("name", ["control_complete", "random_garbage_forever", "disconnect_mid_run",
                                  "mlperf_lap_300_digits"])
def test_cli_exit_codes_and_reports(name: str, tmp_path: Path) -> None:
    """Through the real CLI in a child process: report on disk, one line, exit 0 only when complete."""
    result = run_scenario(BY_NAME[name], tmp_path, timeout=TIMEOUT)
    assert result["ok"], result
    assert result["in_time"], result
    assert result["peak_rss_mb"] is not None and result["peak_rss_mb"] < 200, result
