"""Soak of the serial path: many benchmark records and MLPerf exchanges through the real readers.

A local board (127.0.0.1 only) streams sessions of ``@tk`` records with noise lines mixed in, and an MLPerf
Tiny DUT answers ``infer`` commands; the readers are tinykeras' own (``bench.collect``, ``collect_mlperf``).
After every session the reader's resident memory and the session's wall time are recorded, and every record
sent is accounted for (runs kept, noise lines counted). Memory must stay flat and time must not grow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from tinykeras.fuzz.serial_server import HostileBoard, Scenario, _hello, _mlperf_dut, _rec


def rss_mb() -> float:
    """This process's resident memory (VmRSS), MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _tk_session(runs: int, noise_every: int, seed: int) -> Iterator[bytes]:
    yield b"boot noise \xff\xfe\r\n" + _hello(runs)
    batch = []
    for i in range(runs):
        batch.append(_rec(event="run", i=i, us=1000 + (i * 7919 + seed) % 500, cycles=120_000 + i % 97))
        if noise_every and i % noise_every == noise_every - 1:
            batch.append(b"I (%d) app: log line between records\n" % i)
        if len(batch) >= 512:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch) + _rec(event="done", runs=runs)


def soak_tk(records: int = 100_000, per_session: int = 10_000, noise_every: int = 97,
            timeout: float = 30.0) -> dict[str, Any]:
    """``records`` run records in sessions of ``per_session`` through ``tinykeras.device.port.collect``."""
    from tinykeras.device.port import collect

    sessions = max(1, records // per_session)
    rows = []
    for s in range(sessions):
        scenario = Scenario(f"soak_{s}", lambda s=s: _tk_session(per_session, noise_every, s), ("complete",),
                            close=True)
        with HostileBoard(scenario) as board:
            start = time.monotonic()
            report = collect(board.url, runs=None, timeout=timeout)
            seconds = time.monotonic() - start
        noise = per_session // noise_every if noise_every else 0
        rows.append({"session": s, "status": report.status, "runs": len(report.runs), "log_lines": report.log_lines,
                     "malformed": report.malformed, "seconds": round(seconds, 3), "rss_mb": round(rss_mb(), 1),
                     "accounted": report.status == "complete" and len(report.runs) == per_session
                     and report.log_lines >= noise and report.malformed == 0})
    return _summary(rows, records=sessions * per_session, unit="records")


class _DutBoard(HostileBoard):
    """A scripted MLPerf DUT that answers every command until the reader hangs up."""

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        self.connected_at = time.monotonic()
        with conn:
            try:
                self._dut(conn, _mlperf_dut(lap="1500", results="[0.25,0.75]"))
            except OSError:
                pass
            finally:
                self.ended_at = time.monotonic()


def soak_mlperf(exchanges: int = 100_000, per_session: int = 10_000, timeout: float = 30.0) -> dict[str, Any]:
    """``exchanges`` ``infer 1 0%`` command/reply exchanges through ``collect_mlperf``, in sessions."""
    from tinykeras.device.mlperf import collect_mlperf

    sessions = max(1, exchanges // per_session)
    rows = []
    for s in range(sessions):
        with _DutBoard(Scenario(f"mlperf_soak_{s}", lambda: iter(()), ("complete",), protocol="mlperf")) as board:
            start = time.monotonic()
            report = collect_mlperf(board.url, runs=per_session, iterations=1, warmup=0, timeout=timeout)
            seconds = time.monotonic() - start
        rows.append({"session": s, "status": report.status, "runs": len(report.runs),
                     "malformed": report.malformed, "seconds": round(seconds, 3), "rss_mb": round(rss_mb(), 1),
                     "accounted": report.status == "complete" and len(report.runs) == per_session})
    return _summary(rows, records=sessions * per_session, unit="exchanges")


def _summary(rows: list[dict[str, Any]], records: int, unit: str) -> dict[str, Any]:
    first, last = rows[0], rows[-1]
    growth = last["rss_mb"] - first["rss_mb"]
    slowdown = last["seconds"] / first["seconds"] if first["seconds"] > 0 else None
    return {
        unit: records, "sessions": len(rows), "accounted": all(r["accounted"] for r in rows),
        "rss_first_mb": first["rss_mb"], "rss_last_mb": last["rss_mb"], "rss_growth_mb": round(growth, 1),
        "seconds_first": first["seconds"], "seconds_last": last["seconds"],
        "slowdown": None if slowdown is None else round(slowdown, 2),
        "per_second": round(records / sum(r["seconds"] for r in rows), 1),
        "flat": growth < 16 and (slowdown is None or slowdown < 1.5), "rows": rows,
    }

