"""The ``@tk`` serial benchmark protocol (``docs/protocol.md``): bytes -> events -> one BenchReport. Pure.

No I/O and no clock here: :class:`ProtocolParser` turns byte chunks into events, :class:`SessionBuilder`
folds events into a :class:`BenchReport`. Where bytes come from is ``bench_source`` (ports, sockets,
replay files) and ``mlperf`` (the MLPerf Tiny DUT driver); how results are written is ``report``.

Every value a device sends is untrusted: numbers outside physical bounds, non-finite numbers, deeply nested
JSON, over-long lines and absurd announced run counts are counted as malformed noise, never raised.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tinykeras.errors import IncompleteRunError
from tinykeras.metrics import stats

PROTOCOL_VERSION = 1
MARKER = b"@tk "
STAT_KEYS = ("min", "mean", "p50", "p90", "p99", "max", "std")
COUNTERS = ("cycles", "instructions")
MAX_LINE = 64 * 1024  # a longer line without a newline is noise: it is dropped, not buffered forever
MAX_RUNS = 10_000  # announced run counts above this are capped (memory stays bounded)
MAX_US = 1e12  # ~11.6 days per inference: a larger (or negative) time is noise
MAX_COUNT = 2**63 - 1  # cycles, instructions, MACs, indices: a larger integer is noise
MAX_TEXT = 200  # characters kept of any string a device sends (board, model, error message)

# Status values of a BenchReport, from best to worst.
STATUS_TEXT = {
    "complete": "all runs reported",
    "no_hello": "no benchmark started (no `@tk` hello record)",
    "reset": "the board reset mid-run (a second hello)",
    "error": "the firmware reported an error",
    "disconnected": "the device disconnected",
    "timeout": "no record arrived before the timeout",
    "short": "the benchmark ended with fewer runs than announced",
    "eof": "the stream ended before the benchmark finished",
    "interrupted": "interrupted (Ctrl-C)",
}


@dataclass(frozen=True)
class Event:
    """One thing the parser saw: a protocol ``record`` (a dict), a device ``log`` line, or ``malformed``."""

    kind: str  # "record" | "log" | "malformed"
    record: dict[str, Any] | None = None
    text: str = ""


@dataclass(frozen=True)
class Run:
    """One timed inference reported by a ``run`` record."""

    i: int
    us: float
    cycles: int | None = None
    instructions: int | None = None
    top: int | None = None
    score: float | None = None  # int8 output value (tk protocol) or the top float result (mlperf)


@dataclass
class BenchReport:
    """What one benchmark session reported. ``complete`` is true only when every announced run arrived."""

    hello: dict[str, Any] | None = None
    runs: list[Run] = field(default_factory=list)
    expected_runs: int | None = None
    done: bool = False
    status: str = "no_hello"
    error: str | None = None
    detail: str = ""
    log_lines: int = 0
    malformed: int = 0
    ignored_records: int = 0  # records outside a session (before the first hello)
    resets: int = 0
    macs: int | None = None
    source: str = ""
    protocol: str = "tk"

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def board(self) -> str | None:
        return (self.hello or {}).get("board")

    @property
    def runtime(self) -> str | None:
        return (self.hello or {}).get("runtime")

    @property
    def model(self) -> str | None:
        return (self.hello or {}).get("model")

    @property
    def missing_runs(self) -> list[int]:
        """Indices announced but not reported (the unfinished runs)."""
        if self.expected_runs is None:
            return []
        got = {r.i for r in self.runs}
        return [i for i in range(self.expected_runs) if i not in got]

    def latency_us(self) -> dict[str, float] | None:
        return stats(r.us for r in self.runs)

    def counter(self, name: str) -> dict[str, float] | None:
        """Statistics of ``cycles`` or ``instructions`` over the runs that carry it."""
        return stats(getattr(r, name) for r in self.runs if getattr(r, name) is not None)

    def effective_macs(self) -> int | None:
        if self.macs:
            return self.macs
        value = _int((self.hello or {}).get("macs"))
        return value if value else None

    def message(self) -> str:
        """One line: what happened and what to do."""
        got = len(self.runs)
        want = "?" if self.expected_runs is None else str(self.expected_runs)
        text = f"{STATUS_TEXT.get(self.status, self.status)}: {got} of {want} runs"
        if self.error:
            text += f"; firmware error: {self.error}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON types; same input -> same dict (no timestamps)."""
        hello = self.hello or {}
        out: dict[str, Any] = {
            "protocol_version": PROTOCOL_VERSION,
            "protocol": self.protocol,
            "board": hello.get("board"),
            "runtime": hello.get("runtime"),
            "model": hello.get("model"),
            "model_sha256": hello.get("model_sha256"),
            "model_bytes": hello.get("model_bytes"),
            "arena_bytes": hello.get("arena_bytes"),
            "arena_used": hello.get("arena_used"),
            "cpu_hz": hello.get("cpu_hz"),
            "timer": hello.get("timer"),
            "warmup": hello.get("warmup"),
            "expected_runs": self.expected_runs,
            "runs": len(self.runs),
            "complete": self.complete,
            "status": self.status,
            "message": self.message(),
            "missing_runs": self.missing_runs,
            "error": self.error,
            "latency_us": self.latency_us(),
        }
        for name in COUNTERS:
            value = self.counter(name)
            if value is not None:
                out[name] = value
        macs = self.effective_macs()
        out["macs"] = macs
        out["per_mac"] = _per_mac(out, macs)
        tops: dict[str, int] = {}
        for r in self.runs:
            if r.top is not None:
                tops[str(r.top)] = tops.get(str(r.top), 0) + 1
        out["top_counts"] = dict(sorted(tops.items(), key=lambda kv: int(kv[0])))
        out["log_lines"] = self.log_lines
        out["malformed_records"] = self.malformed
        out["ignored_records"] = self.ignored_records
        out["resets"] = self.resets
        out["source"] = self.source
        out["samples"] = [_run_json(r) for r in self.runs]
        return out

    def raise_if_incomplete(self, saved: str = "") -> None:
        """Raise IncompleteRunError with the one-line message; ``saved`` names where the partial report is."""
        if not self.complete:
            where = self.source or "the device"
            raise IncompleteRunError(f"incomplete benchmark from {where}: {self.message()}"
                                     + (f"; partial report and raw log saved in {saved}" if saved else ""))


def _run_json(r: Run) -> dict[str, Any]:
    pairs = (("i", r.i), ("us", r.us), ("cycles", r.cycles), ("instructions", r.instructions), ("top", r.top),
             ("score", r.score))
    return {k: v for k, v in pairs if v is not None}


def _per_mac(out: dict[str, Any], macs: int | None) -> dict[str, float] | None:
    if not macs or not out.get("latency_us"):
        return None
    per = {"ns": out["latency_us"]["mean"] * 1000.0 / macs}
    for name in COUNTERS:
        if name in out:
            per[name] = out[name]["mean"] / macs
    return per


class ProtocolParser:
    """Split a byte stream into lines and lines into events. Pure: no I/O, no clock.

    Resynchronises at ``@tk `` anywhere in a line (boot noise may precede it without a newline); non-UTF-8
    bytes are replaced; an over-long line without a newline is dropped.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        events: list[Event] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self._buf[:nl])
            del self._buf[:nl + 1]
            events.extend(self._line(line))
        if len(self._buf) > MAX_LINE:  # noise without newlines: drop it, keeping a record that may have begun
            keep = self._buf.rfind(MARKER)
            keep = keep if 0 <= keep and len(self._buf) - keep <= MAX_LINE else len(self._buf)
            events.append(Event("malformed", text=f"dropped {keep} bytes without a newline"))
            del self._buf[:keep]
        return events

    def finish(self) -> list[Event]:
        """The stream ended: a trailing partial line is a log line, or a malformed (truncated) record."""
        line, self._buf = bytes(self._buf), bytearray()
        if not line:
            return []
        return self._line(line)

    @staticmethod
    def _line(line: bytes) -> list[Event]:
        line = line.rstrip(b"\r")
        at = line.find(MARKER)
        if at < 0:
            text = line.decode("utf-8", errors="replace")
            return [Event("log", text=text)] if text.strip() else []
        events = []
        if at > 0:
            noise = line[:at].decode("utf-8", errors="replace")
            if noise.strip():
                events.append(Event("log", text=noise))
        body = line[at + len(MARKER):]
        # A record cut by a reset may be followed, on the same line, by the next record: split there.
        nxt = body.find(MARKER)
        rest = b""
        if nxt >= 0:
            body, rest = body[:nxt], body[nxt:]
        events.append(_record(body))
        if rest:
            events.extend(ProtocolParser._line(rest))
        return events


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number the protocol allows")


def _record(body: bytes) -> Event:
    text = body.decode("utf-8", errors="replace").strip()
    try:  # NaN/Infinity, > 4300-digit integers and deep nesting are malformed records, not crashes
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return Event("malformed", text=text[:MAX_TEXT])
    if not isinstance(value, dict) or not isinstance(value.get("event"), str):
        return Event("malformed", text=text)
    return Event("record", record=value)


class SessionBuilder:
    """Fold events into one BenchReport (one session: hello -> runs -> done); ``finished``: stop reading."""

    def __init__(self, runs: int | None = None, source: str = "", macs: int | None = None,
                 on_event: Callable[[Event], None] | None = None):
        self.report = BenchReport(source=source, macs=macs)
        self._want = runs
        self.finished = False
        self._on_event = on_event
        self._seen: set[int] = set()
        self._capped = False  # the hello announced more runs than MAX_RUNS

    def add(self, event: Event) -> bool:
        """Fold one event in; True when it moved the session forward (hello, a new run, done, error).

        Readers reset their no-progress timeout only on True, so a stream of log lines, unknown records or
        repeated runs cannot keep a session open forever.
        """
        if self._on_event is not None:
            self._on_event(event)
        if self.finished:
            return False
        rep = self.report
        if event.kind == "log":
            rep.log_lines += 1
            return False
        if event.kind == "malformed":
            rep.malformed += 1
            return False
        rec = event.record or {}
        kind = rec.get("event")
        if rec.get("v", PROTOCOL_VERSION) != PROTOCOL_VERSION:
            rep.malformed += 1
            return False
        if kind == "hello":
            if rep.hello is not None:
                rep.resets += 1
                self._close("reset", f"second hello after {len(rep.runs)} runs")
                return True
            rep.hello = _clean_hello(rec)
            announced = _int(rec.get("runs"))
            if announced is not None and announced > MAX_RUNS:
                rep.malformed += 1
                announced = MAX_RUNS  # absurd announcements cannot make the host allocate for them
                self._capped = True
            rep.expected_runs = self._want if self._want is not None else announced
            rep.status = "eof"
            return True
        if rep.hello is None:
            if kind == "error":  # a failure before the benchmark even started
                rep.error = _text(rec.get("msg", ""))
                self._close("error")
                return True
            rep.ignored_records += 1
            return False
        if kind == "run":
            run = _run(rec)
            if run is None:
                rep.malformed += 1
                return False
            if run.i in self._seen or (rep.expected_runs is not None and run.i >= rep.expected_runs):
                rep.malformed += 1  # a repeated or out-of-range index: keep the first
                return False
            self._seen.add(run.i)
            rep.runs.append(run)
            want = self._want if self._want is not None else MAX_RUNS
            if len(rep.runs) >= want:
                # a session that announced exactly MAX_RUNS and sent them all is complete, not cut short
                whole = self._want is not None or (not self._capped and rep.expected_runs is not None
                                                   and not rep.missing_runs)
                self._close("complete" if whole else "short", "" if whole else f"stopped at the {MAX_RUNS:,}-run cap")
        elif kind == "done":
            rep.done = True
            if rep.expected_runs is None:
                done_runs = _int(rec.get("runs"))
                rep.expected_runs = None if done_runs is None else min(done_runs, MAX_RUNS)
            ok = rep.expected_runs is not None and not rep.missing_runs
            self._close("complete" if ok else "short",
                        "" if ok else f"done after {len(rep.runs)} runs; missing {_span(rep.missing_runs)}")
        elif kind == "error":
            rep.error = _text(rec.get("msg", ""))
            self._close("error")
        else:
            rep.ignored_records += 1
            return False
        return True

    def end(self, status: str, detail: str = "") -> BenchReport:
        """The source stopped (``eof``, ``timeout``, ``disconnected``); close the session if still open."""
        if not self.finished:
            if self.report.hello is None:
                self._close("no_hello" if status == "eof" else status,
                            detail or "is the firmware a tinykeras benchmark, and the baud rate right?")
            else:
                self._close(status, detail)
        return self.report

    def _close(self, status: str, detail: str = "") -> None:
        self.report.status = status
        self.report.detail = detail
        self.finished = True


def _int(value: Any) -> int | None:
    """A non-negative integer up to MAX_COUNT (an integral float is accepted), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_COUNT else None
    if isinstance(value, float) and math.isfinite(value) and 0 <= value <= MAX_COUNT:
        return int(value)
    return None


def _num(value: Any, bound: float = MAX_US) -> float | None:
    """A finite number with |value| <= bound, as float, else None (never OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and abs(value) > bound:
        return None
    number = float(value)
    return number if math.isfinite(number) and abs(number) <= bound else None


def _text(value: Any) -> str:
    """A device string, cut to MAX_TEXT characters; anything else is described, not rendered."""
    if isinstance(value, str):
        return value[:MAX_TEXT]
    return f"<{type(value).__name__}>"


def _clean_hello(rec: dict[str, Any]) -> dict[str, Any]:
    """The hello fields as flat, bounded JSON values: strings cut, numbers bounded, nesting dropped."""
    out: dict[str, Any] = {}
    for key, value in list(rec.items())[:64]:
        if not isinstance(key, str):
            continue
        if value is None or isinstance(value, bool):
            out[key[:MAX_TEXT]] = value
        elif isinstance(value, str):
            out[key[:MAX_TEXT]] = value[:MAX_TEXT]
        elif isinstance(value, (int, float)):
            number = _int(value) if isinstance(value, int) else _num(value, float(MAX_COUNT))
            if number is not None:
                out[key[:MAX_TEXT]] = number
    return out


def _run(rec: dict[str, Any]) -> Run | None:
    i, us = _int(rec.get("i")), _num(rec.get("us"))
    if i is None or us is None or us < 0:
        return None
    top = rec.get("top")
    return Run(i=i, us=us, cycles=_int(rec.get("cycles")), instructions=_int(rec.get("instructions")),
               top=top if isinstance(top, int) and not isinstance(top, bool) and abs(top) <= MAX_COUNT else None,
               score=_num(rec.get("score"), 1e30))


def _span(indices: list[int]) -> str:
    if not indices:
        return "none"
    if len(indices) > 6:
        return f"{indices[0]}..{indices[-1]} ({len(indices)} runs)"
    return ", ".join(map(str, indices))


def parse_chunks(chunks: Iterable[bytes], *, runs: int | None = None, source: str = "",
                 macs: int | None = None) -> BenchReport:
    """Parse recorded device output (an iterable of byte chunks) into a report. Pure; used for replay."""
    parser = ProtocolParser()
    builder = SessionBuilder(runs=runs, source=source, macs=macs)
    for chunk in chunks:
        for event in parser.feed(chunk):
            builder.add(event)
        if builder.finished:
            break
    if not builder.finished:
        for event in parser.finish():
            builder.add(event)
    return builder.end("eof")


