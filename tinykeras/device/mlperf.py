"""The MLPerf Tiny device-under-test protocol: drive ``name%``/``profile%``/``db``/``infer`` and parse the
replies (``m-lap-us-...``, ``m-results-[...]``) into a BenchReport. No TensorFlow."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinykeras.device.port import PortReader, RawLog, _open_log, open_port, read_some
from tinykeras.device.protocol import MAX_COUNT, MAX_RUNS, MAX_TEXT, BenchReport, ProtocolParser, Run, _num

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
        self.results: list[list[float]] = []  # every m-results-[...] line's values, in order

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
            hello["board"] = (_bracketed(line) or line[len("m-name-"):])[:MAX_TEXT]
        elif line.startswith("m-model-"):
            hello["model"] = (_bracketed(line) or "")[:MAX_TEXT] or None
        elif line.startswith("m-profile-"):
            hello["profile"] = (_bracketed(line) or "")[:MAX_TEXT] or None
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
            us = None
            if self._batch and len(self._laps) >= 2 and self._laps[-1] >= self._laps[0]:
                us = _num((self._laps[-1] - self._laps[0]) / self._batch)
            if us is not None and len(rep.runs) < (rep.expected_runs or MAX_RUNS):
                rep.runs.append(Run(i=len(rep.runs), us=us))
            else:
                rep.malformed += 1
            self._batch = None
        elif line.startswith("m-results-"):
            values = _float_list(_bracketed(line))
            self.results.append(values)
            if values and rep.runs and rep.runs[-1].top is None and all(math.isfinite(v) for v in values):
                top = max(range(len(values)), key=values.__getitem__)
                rep.runs[-1] = Run(i=rep.runs[-1].i, us=rep.runs[-1].us, top=top, score=values[top])
        elif line.startswith("e-["):
            rep.error = (_bracketed(line) or "")[:MAX_TEXT]
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
    """A non-negative integer up to MAX_COUNT, else None (a 300-digit lap time is noise)."""
    text = text.strip()
    if not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_COUNT else None


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


class MlperfStop(Exception):
    """The conversation ended: ``status`` "disconnected" | "timeout" | ..., ``detail`` why."""

    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class MlperfDut:
    """One conversation with an MLPerf Tiny device under test over an open port: the boot output, then commands
    and their replies, every byte into ``parser`` and the raw ``log``. The one MLPerf driver: ``collect_mlperf``
    (benchmark) and ``validate --board`` (outputs read back) both talk through it.

    ``timeout``: a reply must arrive within this many seconds (restarted when a command completes). Raises
    :class:`MlperfStop` when the device goes away or stays silent."""

    def __init__(self, port: Any, *, timeout: float, parser: MlperfParser | None = None, log: RawLog | None = None):
        self.port, self.timeout = port, timeout
        self.parser = parser or MlperfParser()
        self.log = log or RawLog(None)
        self.reader = PortReader(port, timeout)

    def boot(self, quiet: float = 0.2, limit: float = 2.0) -> None:
        """Swallow boot output (``m-init-done``, ``m-ready``) until the line is quiet, so replies stay in step."""
        _drain(self.port, self.parser, self.log, quiet=quiet, limit=limit)

    def command(self, cmd: str, expect: str) -> list[str]:
        """Send ``cmd%``; the reply's lines, up to the ``m-ready`` after a line starting with ``expect``."""
        return _command(self.port, self.reader, self.parser, self.log, cmd, expect)

    def load(self, data: bytes) -> None:
        """``db load N%`` then ``db HEX%`` in chunks the DUT's command buffer holds."""
        self.command(f"db load {len(data)}", "m-[")
        for k in range(0, len(data), MLPERF_CHUNK):
            self.command(f"db {data[k:k + MLPERF_CHUNK].hex()}", "")

    def infer(self, iterations: int = 1, warmup: int = 0) -> list[float] | None:
        """``infer N W%``; the values of the reply's ``m-results-[...]`` line (None when it has none)."""
        lines = self.command(f"infer {iterations} {warmup}", "m-infer-done")
        found = [_mlperf_message(line.strip()) for line in lines]
        results = [line for line in found if line.startswith("m-results-")]
        return _float_list(_bracketed(results[-1])) if results else None


def collect_mlperf(url: str, *, baud: int = 115200, runs: int = 10, iterations: int = 1, warmup: int = 1,
                   timeout: float = 30.0, raw_log: Path | None = None, input_bytes: bytes | None = None,
                   macs: int | None = None) -> BenchReport:
    """Drive an MLPerf Tiny device under test: ``name%``, ``profile%``, ``db load``/``db HEX%`` (when
    ``input_bytes`` is given), then ``runs`` times ``infer ITERATIONS W%`` (W = ``warmup`` the first time).

    Every byte received is appended to ``raw_log``. Always returns a report; check ``report.complete``.
    """
    port = open_port(url, baud)
    parser = MlperfParser(runs=runs, source=url, macs=macs)
    handle = None
    try:
        if raw_log is not None:
            handle = _open_log(raw_log)
        dut = MlperfDut(port, timeout=timeout, parser=parser, log=RawLog(handle))
        status, detail = "complete", ""
        try:
            dut.boot(limit=min(2.0, timeout / 2))  # counts against the first reply's timeout
            dut.command("name", "m-name-")
            dut.command("profile", "m-profile-")
            if input_bytes:
                dut.load(input_bytes)
            for r in range(runs):
                dut.infer(iterations, warmup if r == 0 else 0)
                if parser.report.status == "error":
                    break
        except MlperfStop as stop:
            status, detail = stop.status, stop.detail
        except KeyboardInterrupt:  # report what arrived
            status, detail = "interrupted", ""
        parser.finish()
        return parser.end(status, detail)
    finally:
        if handle is not None:
            handle.close()
        try:
            port.close()
        except Exception:  # closing a vanished device can fail; nothing left to do
            pass


def _drain(port: Any, parser: MlperfParser, log: RawLog, quiet: float = 0.2, limit: float = 2.0) -> None:
    import serial

    deadline = time.monotonic() + limit
    last = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last < quiet:
        try:
            chunk = read_some(port)
        except (serial.SerialException, OSError) as exc:
            raise MlperfStop("disconnected", str(exc).strip().splitlines()[0] if str(exc).strip() else "") from exc
        if chunk:
            last = time.monotonic()
            log.write(chunk)
            parser.feed(chunk)


def _command(port: Any, reader: PortReader, parser: MlperfParser, log: RawLog, cmd: str,
             expect: str) -> list[str]:
    """Send ``cmd%`` and read until ``m-ready`` follows a line starting with ``expect`` (or an ``e-`` line);
    return the lines read.

    The whole reply must arrive within the reader's timeout, which restarts only when a command completes;
    other bytes (log lines, garbage, unrelated ``m-`` lines) do not extend it.
    """
    import serial

    try:
        port.write(f"{cmd}%".encode("ascii"))
        port.flush()
    except (serial.SerialException, OSError) as exc:
        raise MlperfStop("disconnected", str(exc).strip().splitlines()[0] if str(exc).strip() else "") from exc
    seen = expect == ""
    got: list[str] = []
    for chunk in reader:
        log.write(chunk)
        for line in parser.feed(chunk):
            got.append(line)
            text = _mlperf_message(line.strip())
            if text == "m-ready":
                if seen:
                    reader.heard()
                    return got
            elif not seen and (text.startswith("e-[") or (expect and text.startswith(expect))):
                seen = True
    raise MlperfStop(reader.end, f"{reader.detail} waiting for the reply to `{cmd}%`")


def collect_mlperf_dataset(url: str, dataset: Path, *, baud: int = 115200, timeout: float = 30.0,
                           raw_log: Path | None = None) -> dict[str, Any]:
    """Run an MLPerf Tiny dataset (``dataset``/y_labels.csv, the runner's format) through a DUT as the runner's
    accuracy mode does: for every input, ``db load`` + ``db HEX%`` chunks, then ``infer 1 0``; score the printed
    results with the runner's accuracy and AUC (tinykeras.mlperf_data.score).

    Returns {"model", "board", "files": [{"file", "class", "results": [[...], ...]}], "accuracy", "auc"}; raises
    IncompleteRunError when the board reports an error or stops answering.
    """
    from tinykeras.errors import IncompleteRunError
    from tinykeras.mlperf_data import read_dataset, score

    files = read_dataset(dataset)
    port = open_port(url, baud)
    parser = MlperfParser(source=url)
    handle = _open_log(raw_log) if raw_log is not None else None
    out: list[dict[str, Any]] = []
    try:
        dut = MlperfDut(port, timeout=timeout, parser=parser, log=RawLog(handle))
        try:
            dut.boot(limit=min(2.0, timeout / 2))
            dut.command("name", "m-name-")
            dut.command("profile", "m-profile-")
            for item in files:
                got: list[list[float]] = []
                for segment in item.segments:
                    dut.load(segment)
                    before = len(parser.results)
                    dut.command("infer 1 0", "m-infer-done")
                    if parser.report.status == "error" or len(parser.results) == before:
                        raise MlperfStop("error", f"{item.file}: {parser.report.error or 'no m-results line'}")
                    got.append(parser.results[-1])
                out.append({"file": item.file, "class": item.label, "results": got})
        except MlperfStop as stop:
            raise IncompleteRunError(f"MLPerf dataset run on {url} stopped after {len(out)} of {len(files)} files: "
                                     f"{stop.detail or stop.status}") from None
    finally:
        if handle is not None:
            handle.close()
        try:
            port.close()
        except Exception:  # closing a vanished device can fail; nothing left to do
            pass
    hello = parser.report.hello or {}
    return {"model": hello.get("model"), "board": hello.get("board"), "dataset": str(dataset), "files": out,
            **score([f["results"] for f in out], [f["class"] for f in out])}
