"""Read a serial benchmark (``docs/protocol.md``) from a board and compute the statistics on the host.

Where the bytes come from (a pyserial URL, a socket, a replay file) is kept apart from how they are parsed
(:class:`ProtocolParser`, pure: byte chunks in, events out) and from how the result is written
(:mod:`tinykeras.report`). Never imports TensorFlow.

The reader survives boot garbage, non-UTF-8 bytes, partial lines, device log lines between records, a reset
mid-run (a second ``hello``), a disconnect and silence past the timeout: it always returns a
:class:`BenchReport` of what it got, with ``complete`` false and ``status`` saying why.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tinykeras.errors import IncompleteRunError, SerialError

PROTOCOL_VERSION = 1
MARKER = b"@tk "
STAT_KEYS = ("min", "mean", "p50", "p90", "p99", "max", "std")
COUNTERS = ("cycles", "instructions")
MAX_LINE = 64 * 1024  # a longer line without a newline is noise: it is dropped, not buffered forever

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


def stats(values: Iterable[float]) -> dict[str, float] | None:
    """min, mean, p50, p90, p99, max and sample std (ddof=1; 0 for one value). None for no values.

    Percentiles interpolate linearly between order statistics (numpy's default method).
    """
    data = sorted(float(v) for v in values)
    n = len(data)
    if n == 0:
        return None

    def pct(p: float) -> float:
        pos = (n - 1) * p / 100.0
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return data[lo] + (data[hi] - data[lo]) * (pos - lo)

    mean = math.fsum(data) / n
    var = math.fsum((v - mean) ** 2 for v in data) / (n - 1) if n > 1 else 0.0
    return {"min": data[0], "mean": mean, "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": data[-1],
            "std": math.sqrt(var)}


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
        value = (self.hello or {}).get("macs")
        return int(value) if isinstance(value, (int, float)) and value > 0 else None

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


def _record(body: bytes) -> Event:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        value = json.loads(text)
    except ValueError:
        return Event("malformed", text=text)
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

    def add(self, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(event)
        if self.finished:
            return
        rep = self.report
        if event.kind == "log":
            rep.log_lines += 1
            return
        if event.kind == "malformed":
            rep.malformed += 1
            return
        rec = event.record or {}
        kind = rec.get("event")
        if rec.get("v", PROTOCOL_VERSION) != PROTOCOL_VERSION:
            rep.malformed += 1
            return
        if kind == "hello":
            if rep.hello is not None:
                rep.resets += 1
                self._close("reset", f"second hello after {len(rep.runs)} runs")
                return
            rep.hello = rec
            announced = _int(rec.get("runs"))
            rep.expected_runs = self._want if self._want is not None else announced
            rep.status = "eof"
            return
        if rep.hello is None:
            if kind == "error":  # a failure before the benchmark even started
                rep.error = str(rec.get("msg", ""))
                self._close("error")
            else:
                rep.ignored_records += 1
            return
        if kind == "run":
            run = _run(rec)
            if run is None:
                rep.malformed += 1
                return
            if any(r.i == run.i for r in rep.runs):
                rep.malformed += 1  # a repeated index: keep the first
                return
            rep.runs.append(run)
            if self._want is not None and len(rep.runs) >= self._want:
                self._close("complete")
        elif kind == "done":
            rep.done = True
            if rep.expected_runs is None:
                rep.expected_runs = _int(rec.get("runs"))
            ok = rep.expected_runs is not None and not rep.missing_runs
            self._close("complete" if ok else "short",
                        "" if ok else f"done after {len(rep.runs)} runs; missing {_span(rep.missing_runs)}")
        elif kind == "error":
            rep.error = str(rec.get("msg", ""))
            self._close("error")
        else:
            rep.ignored_records += 1

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
    number = _num(value)
    return int(number) if number is not None and number >= 0 else None


def _num(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _run(rec: dict[str, Any]) -> Run | None:
    i, us = _int(rec.get("i")), _num(rec.get("us"))
    if i is None or us is None or us < 0:
        return None
    top = rec.get("top")
    return Run(i=i, us=us, cycles=_int(rec.get("cycles")), instructions=_int(rec.get("instructions")),
               top=top if isinstance(top, int) and not isinstance(top, bool) else None,
               score=_num(rec.get("score")))


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


def replay(path: Path | str, *, runs: int | None = None, macs: int | None = None) -> BenchReport:
    """Parse a raw log saved by :func:`collect` (or captured any other way)."""
    from tinykeras.errors import InputFileError

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the log ({exc.strerror or exc})") from exc
    return parse_chunks([data], runs=runs, source=f"replay:{path.name}", macs=macs)


# --------------------------------------------------------------------------------------------- serial


def open_port(url: str, baud: int = 115200, read_timeout: float = 0.05) -> Any:
    """Open a pyserial URL (``/dev/ttyUSB0``, ``COM3``, ``socket://host:port``, ``rfc2217://...``, ``auto``).

    Raises SerialError with one line naming the port and the fix.
    """
    import serial

    if url == "auto":
        url = auto_port()
    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=read_timeout, do_not_open=True)
        if url.startswith(("socket://", "rfc2217://")):
            # A network stream holds only this connection's bytes (QEMU may send its hello as soon as we
            # connect): keep them instead of letting open() discard what already arrived.
            port.reset_input_buffer = lambda: None
        port.open()
        return port
    except (serial.SerialException, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SerialError(f"{url}: cannot open ({reason}). Check the cable and the port name; "
                          "`python -m serial.tools.list_ports -v` lists the ports") from exc


# USB VID:PID of common development boards and their USB-serial bridges (public USB ID lists).
KNOWN_USB_IDS: dict[tuple[int, int], str] = {
    (0x10C4, 0xEA60): "CP210x (ESP32 DevKit)",
    (0x1A86, 0x7523): "CH340 (ESP32 clones)",
    (0x1A86, 0x55D4): "CH9102 (ESP32 DevKit)",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x0403, 0x6010): "FTDI FT2232",
    (0x303A, 0x1001): "ESP32-S3 USB-Serial/JTAG",
    (0x2E8A, 0x000A): "Raspberry Pi Pico (Arduino/SDK CDC)",
    (0x2E8A, 0x00C0): "Raspberry Pi Pico (earlephilhower core)",
    (0x2341, 0x805A): "Arduino Nano 33 BLE",
    (0x2341, 0x005A): "Arduino Nano 33 BLE (bootloader)",
    (0x0483, 0x374B): "ST-LINK/V2-1 (NUCLEO)",
    (0x0483, 0x374E): "STLINK-V3 (NUCLEO)",
    (0x0483, 0x3752): "STLINK-V3 (NUCLEO)",
}
_LIKELY_WORDS = ("esp32", "cp210", "ch340", "ch910", "uart", "usb serial", "stlink", "st-link", "arduino",
                 "pico", "jtag", "ftdi", "acm")


def auto_port(ports: list[Any] | None = None) -> str:
    """The device path of the most likely board among ``serial.tools.list_ports.comports()``."""
    if ports is None:
        from serial.tools import list_ports

        ports = list(list_ports.comports())
    scored = []
    for p in ports:
        score = 0
        if p.vid is not None and (p.vid, p.pid) in KNOWN_USB_IDS:
            score = 3
        elif p.vid is not None:
            score = 2
        elif any(w in f"{p.description} {p.hwid}".lower() for w in _LIKELY_WORDS):
            score = 1
        if score:
            scored.append((-score, p.device))
    if not scored:
        seen = ", ".join(sorted(p.device for p in ports)) or "none"
        raise SerialError(f"--port auto: no likely board among the serial ports (found: {seen}). Plug the "
                          "board in, or name the port: --port /dev/ttyUSB0 (Linux), COM3 (Windows), "
                          "socket://HOST:PORT")
    scored.sort()
    return scored[0][1]


class PortReader:
    """Byte chunks from an open pyserial port until it disconnects or ``timeout`` s pass without a record.

    The caller calls :meth:`heard` when a record arrives (device log lines do not keep the reader alive).
    Afterwards ``end`` is "disconnected" or "timeout" and ``detail`` says more.
    """

    def __init__(self, port: Any, timeout: float):
        self.port, self.timeout = port, timeout
        self.last = time.monotonic()
        self.end, self.detail = "eof", ""

    def heard(self) -> None:
        self.last = time.monotonic()

    def __iter__(self) -> Iterator[bytes]:
        import serial

        while True:
            try:
                waiting = getattr(self.port, "in_waiting", 0) or 1
                chunk = self.port.read(min(waiting, 4096))
            except (serial.SerialException, OSError) as exc:
                text = str(exc).strip()
                self.end, self.detail = "disconnected", text.splitlines()[0] if text else type(exc).__name__
                return
            if chunk:
                yield chunk
            elif time.monotonic() - self.last > self.timeout:
                self.end, self.detail = "timeout", f"silent for {self.timeout:g} s"
                return


def _open_log(raw_log: Path) -> IO[bytes]:
    from tinykeras.errors import InputFileError

    try:
        Path(raw_log).parent.mkdir(parents=True, exist_ok=True)
        return open(raw_log, "wb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise InputFileError(f"{raw_log}: cannot write the raw log ({exc.strerror or exc})") from exc


def collect(url: str, *, baud: int = 115200, runs: int | None = None, timeout: float = 30.0,
            raw_log: Path | None = None, macs: int | None = None,
            on_event: Callable[[Event], None] | None = None) -> BenchReport:
    """Read one benchmark session (hello -> runs -> done) from a pyserial URL.

    ``runs``: stop after this many runs (default: as many as the hello announces). ``timeout``: give up
    after this many seconds without a protocol record. ``raw_log``: every byte received is appended there as
    it arrives. Always returns a report; check ``report.complete``. Raises SerialError if the port cannot
    be opened.
    """
    port = open_port(url, baud)
    log: IO[bytes] | None = None
    try:
        if raw_log is not None:
            log = _open_log(raw_log)
        return _collect_from(port, url, runs, timeout, log, macs, on_event)
    finally:
        if log is not None:
            log.close()
        try:
            port.close()
        except Exception:  # closing a vanished device can fail; nothing left to do
            pass


def _collect_from(port: Any, source: str, runs: int | None, timeout: float, log: IO[bytes] | None,
                  macs: int | None, on_event: Callable[[Event], None] | None) -> BenchReport:
    parser = ProtocolParser()
    builder = SessionBuilder(runs=runs, source=source, macs=macs, on_event=on_event)
    reader = PortReader(port, timeout)
    try:
        for chunk in reader:
            if log is not None:
                log.write(chunk)
                log.flush()
            for event in parser.feed(chunk):
                builder.add(event)
                if event.kind == "record":
                    reader.heard()
            if builder.finished:
                return builder.report
    except KeyboardInterrupt:  # the user stopped a benchmark that never ends: report what arrived
        reader.end, reader.detail = "interrupted", ""
    for event in parser.finish():
        builder.add(event)
    return builder.end(reader.end, reader.detail)


# -------------------------------------------------------------------------------------- MLPerf Tiny

MLPERF_CHUNK = 32  # input bytes per `db HEX%` command: 64 hex digits fit the DUT's 80-byte command buffer


class MlperfParser:
    """Fold the MLPerf Tiny DUT's reply lines (``m-name-...``, ``m-lap-us-...``, ``m-results-[...]``) into a report.

    Each ``infer N W%`` reply becomes one run: (second ``m-lap-us`` - first) / N microseconds.
    """

    def __init__(self, runs: int | None = None, source: str = "", macs: int | None = None):
        self.report = BenchReport(source=source, macs=macs, protocol="mlperf", expected_runs=runs, status="eof")
        self.report.hello = {"board": None, "runtime": None, "model": None}
        self._lines = ProtocolParser()
        self._batch: int | None = None
        self._laps: list[int] = []
        self.ready = 0  # m-ready lines seen
        self.batches = 0  # m-infer-start lines seen

    def feed(self, chunk: bytes) -> list[str]:
        """Parse bytes; return the text lines seen (for the driver's wait-for-reply logic)."""
        lines = []
        for event in self._lines.feed(chunk):
            lines.append(event.text if event.kind != "record" else "")
            self._line(event.text.strip() if event.kind != "record" else "")
        return lines

    def finish(self) -> None:
        for event in self._lines.finish():
            self._line(event.text.strip())

    def _line(self, line: str) -> None:
        rep, hello = self.report, self.report.hello or {}
        if not line:
            return
        line = _mlperf_message(line)
        if line == "m-ready":
            self.ready += 1
        elif line.startswith("m-name-"):
            hello["board"] = _bracketed(line) or line[len("m-name-"):]
        elif line.startswith("m-model-"):
            hello["model"] = _bracketed(line)
        elif line.startswith("m-profile-"):
            hello["profile"] = _bracketed(line)
        elif line.startswith("m-infer-start-"):
            self.batches += 1
            self._batch = _int_or_none(line[len("m-infer-start-"):])
            self._laps = []
        elif line.startswith("m-lap-us-"):
            lap = _int_or_none(line[len("m-lap-us-"):])
            if lap is None:
                rep.malformed += 1
            elif self._batch is not None:
                self._laps.append(lap)
        elif line == "m-infer-done":
            if self._batch and len(self._laps) >= 2 and self._laps[-1] >= self._laps[0]:
                us = (self._laps[-1] - self._laps[0]) / self._batch
                rep.runs.append(Run(i=len(rep.runs), us=us))
            else:
                rep.malformed += 1
            self._batch = None
        elif line.startswith("m-results-"):
            values = _float_list(_bracketed(line))
            if values and rep.runs and rep.runs[-1].top is None:
                top = max(range(len(values)), key=values.__getitem__)
                rep.runs[-1] = Run(i=rep.runs[-1].i, us=rep.runs[-1].us, top=top, score=values[top])
        elif line.startswith("e-["):
            rep.error = _bracketed(line)
            rep.status = "error"
        elif line.startswith("m-"):
            pass  # m-warmup-start, m-init-done, m-[Expecting N bytes], m-load-done, vendor extras
        else:
            rep.log_lines += 1

    def end(self, status: str, detail: str = "") -> BenchReport:
        rep = self.report
        if rep.expected_runs is None:
            rep.expected_runs = self.batches
        if rep.status == "error" and status in ("eof", "complete"):
            status = "error"
        if status in ("eof", "complete"):
            ok = bool(rep.runs) and not rep.missing_runs
            status = "complete" if ok else ("no_hello" if not self.batches else "short")
            if status == "no_hello":
                detail = detail or "no `m-infer-start` seen: is the firmware an MLPerf Tiny DUT?"
        rep.status, rep.detail = status, detail
        return rep


_MLPERF_MESSAGE = re.compile(r"m-(?:ready|name-|model-|profile-|infer-|lap-us-|results-|warmup-|init-done|load-done"
                             r"|\[)|e-\[")


def _mlperf_message(line: str) -> str:
    """Drop boot noise before a DUT message on the same line (resynchronise at a known ``m-``/``e-[`` prefix)."""
    found = _MLPERF_MESSAGE.search(line)
    return line[found.start():] if found else line


def _bracketed(line: str) -> str | None:
    a, b = line.find("["), line.rfind("]")
    return line[a + 1:b] if 0 <= a < b else None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _float_list(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        return []


def parse_mlperf_chunks(chunks: Iterable[bytes], *, runs: int | None = None, source: str = "",
                        macs: int | None = None) -> BenchReport:
    """Parse a recorded MLPerf Tiny DUT session (the bytes it sent) into a report. Pure; used for replay."""
    parser = MlperfParser(runs=runs, source=source, macs=macs)
    for chunk in chunks:
        parser.feed(chunk)
    parser.finish()
    return parser.end("eof")


class _Stop(Exception):
    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def collect_mlperf(url: str, *, baud: int = 115200, runs: int = 10, iterations: int = 1, warmup: int = 1,
                   timeout: float = 30.0, raw_log: Path | None = None, input_bytes: bytes | None = None,
                   macs: int | None = None) -> BenchReport:
    """Drive an MLPerf Tiny device under test: ``name%``, ``profile%``, ``db load``/``db HEX%`` (when
    ``input_bytes`` is given), then ``runs`` times ``infer ITERATIONS W%`` (W = ``warmup`` the first time).

    Every byte received is appended to ``raw_log``. Always returns a report; check ``report.complete``.
    """
    port = open_port(url, baud)
    parser = MlperfParser(runs=runs, source=url, macs=macs)
    log = None
    try:
        if raw_log is not None:
            log = _open_log(raw_log)
        reader = PortReader(port, timeout)
        status, detail = "complete", ""
        try:
            _drain(port, parser, log)
            _command(port, reader, parser, log, "name", "m-name-")
            _command(port, reader, parser, log, "profile", "m-profile-")
            if input_bytes:
                _command(port, reader, parser, log, f"db load {len(input_bytes)}", "m-[")
                for k in range(0, len(input_bytes), MLPERF_CHUNK):
                    _command(port, reader, parser, log, f"db {input_bytes[k:k + MLPERF_CHUNK].hex()}", "")
            for r in range(runs):
                _command(port, reader, parser, log, f"infer {iterations} {warmup if r == 0 else 0}",
                         "m-infer-done")
                if parser.report.status == "error":
                    break
        except _Stop as stop:
            status, detail = stop.status, stop.detail
        except KeyboardInterrupt:  # report what arrived
            status, detail = "interrupted", ""
        parser.finish()
        return parser.end(status, detail)
    finally:
        if log is not None:
            log.close()
        try:
            port.close()
        except Exception:  # closing a vanished device can fail; nothing left to do
            pass


def _drain(port: Any, parser: MlperfParser, log: IO[bytes] | None, quiet: float = 0.2) -> None:
    """Swallow boot output (``m-init-done``, ``m-ready``) until the line is quiet, so replies stay in step."""
    import serial

    deadline = time.monotonic() + 2.0
    last = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last < quiet:
        try:
            chunk = port.read(4096)
        except (serial.SerialException, OSError) as exc:
            raise _Stop("disconnected", str(exc).strip().splitlines()[0] if str(exc).strip() else "") from exc
        if chunk:
            last = time.monotonic()
            if log is not None:
                log.write(chunk)
                log.flush()
            parser.feed(chunk)


def _command(port: Any, reader: PortReader, parser: MlperfParser, log: IO[bytes] | None, cmd: str,
             expect: str) -> None:
    """Send ``cmd%`` and read until ``m-ready`` follows a line starting with ``expect`` (or an ``e-`` line)."""
    import serial

    try:
        port.write(f"{cmd}%".encode("ascii"))
        port.flush()
    except (serial.SerialException, OSError) as exc:
        raise _Stop("disconnected", str(exc).strip().splitlines()[0] if str(exc).strip() else "") from exc
    reader.heard()
    seen = expect == ""
    for chunk in reader:
        if log is not None:
            log.write(chunk)
            log.flush()
        for line in parser.feed(chunk):
            text = _mlperf_message(line.strip())
            if text == "m-ready":
                if seen:
                    return
            elif text.startswith("e-[") or (expect and text.startswith(expect)):
                seen = True
        reader.heard()  # any reply byte keeps the command alive
    raise _Stop(reader.end, f"{reader.detail} waiting for the reply to `{cmd}%`")
