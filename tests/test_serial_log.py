"""The raw serial.log a benchmark saves is a complete session that ``bench --replay`` accepts, even when the
firmware's `done` record arrives after the last wanted run (kws-sized models on qemu_m4)."""

from __future__ import annotations

import time
from pathlib import Path

from tinykeras.device import port as bench_source

HELLO = b'@tk {"v":1,"event":"hello","board":"qemu_m4","runtime":"aot","model":"m","runs":3,"macs":10}\n'
RUNS = b"".join(b'@tk {"v":1,"event":"run","i":%d,"us":5.0,"instructions":5}\n' % i for i in range(3))
DONE = b'@tk {"v":1,"event":"done","runs":3}\n'


class SlowPort:
    """A port that hands out its chunks one read at a time, ``gap`` seconds apart (pyserial's read API)."""

    def __init__(self, chunks: list[bytes], gap: float):
        self.chunks, self.gap, self.next_at = list(chunks), gap, 0.0

    @property
    def in_waiting(self) -> int:
        ready = self.chunks and time.monotonic() >= self.next_at
        return len(self.chunks[0]) if ready else 0

    def read(self, n: int) -> bytes:
        if not self.chunks or time.monotonic() < self.next_at:
            time.sleep(0.01)
            return b""
        self.next_at = time.monotonic() + self.gap
        return self.chunks.pop(0)


def collect(chunks: list[bytes], log: Path, gap: float = 0.3) -> bench_source.BenchReport:
    with open(log, "wb") as handle:
        return bench_source._collect_from(SlowPort(chunks, gap), "test", 3, 10.0, handle, None, None)


def test_done_arriving_after_the_last_run_reaches_the_log(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    report = collect([HELLO + RUNS, DONE], log)
    assert report.complete and len(report.runs) == 3
    assert log.read_bytes().endswith(DONE)
    replayed = bench_source.replay(log)
    assert replayed.complete and replayed.done, replayed.message()


def test_done_in_the_same_chunk_does_not_wait(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    start = time.monotonic()
    report = collect([HELLO + RUNS + DONE, b"never read\n"], log, gap=30.0)
    assert report.complete and time.monotonic() - start < 5
    assert bench_source.replay(log).complete


def test_fewer_runs_than_announced_do_not_wait_for_done(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    with open(log, "wb") as handle:
        start = time.monotonic()
        report = bench_source._collect_from(SlowPort([HELLO + RUNS, DONE], 30.0), "t", 2, 10.0, handle, None, None)
    assert report.complete and len(report.runs) == 2 and time.monotonic() - start < 5
