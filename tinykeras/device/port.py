"""Where benchmark bytes come from: a pyserial port (``/dev/tty*``, ``COM3``, ``socket://``, ``rfc2217://``)
or a replay file. Reads in blocks with a wall-clock deadline that holds whatever arrives. No TensorFlow."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tinykeras.device.protocol import BenchReport, Event, ProtocolParser, SessionBuilder, parse_chunks
from tinykeras.errors import InputFileError, SerialError


def replay(path: Path | str, *, runs: int | None = None, macs: int | None = None) -> BenchReport:
    """Parse a raw log saved by :func:`collect` (or captured any other way)."""
    path = Path(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; read in blocks, so any size is fine
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the log ({exc.strerror or exc})") from exc
    with handle:
        try:
            return parse_chunks(iter(lambda: handle.read(1 << 20), b""), runs=runs, source=f"replay:{path.name}",
                                macs=macs)
        except OSError as exc:
            raise InputFileError(f"{path}: cannot read the log ({exc.strerror or exc})") from exc


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


READ_BLOCK = 1 << 16  # at most this many bytes per read
POLL_S = 0.05  # a read returns after this long at the latest, so the deadline is checked


def read_some(port: Any) -> bytes:
    """What the port has now, in one block (up to READ_BLOCK bytes), or b"" after POLL_S s of nothing.

    pyserial's ``read(n)`` waits for all ``n`` bytes and drops what it got when the connection closes
    meanwhile, and over ``socket://`` its ``in_waiting`` says at most 1; so a plain TCP port is read from its
    socket directly, and other ports for what ``in_waiting`` reports (or one byte, waiting up to the port's
    timeout). Raises serial.SerialException or OSError when the device is gone.
    """
    import select

    import serial

    sock = getattr(port, "_socket", None)
    if sock is not None and type(port).__module__.endswith("protocol_socket"):
        ready, _, _ = select.select([sock], [], [], POLL_S)
        if not ready:
            return b""
        data = sock.recv(READ_BLOCK)
        if not data:
            raise serial.SerialException("socket disconnected")
        return bytes(data)
    waiting = int(getattr(port, "in_waiting", 0) or 0)
    return bytes(port.read(min(waiting, READ_BLOCK) if waiting > 0 else 1))
MAX_RAW_LOG = 64 * 1024 * 1024  # raw log bytes kept; a babbling port cannot fill the disk


class PortReader:
    """Byte chunks from an open pyserial port until it disconnects or ``timeout`` s pass without progress.

    Reads in blocks (never byte by byte), and checks the wall clock after every read, whatever arrived: the
    caller calls :meth:`heard` only when the session moved forward (a new record; device log lines, garbage,
    unknown or repeated records do not keep the reader alive). Afterwards ``end`` is "disconnected" or
    "timeout" and ``detail`` says more.
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
            if time.monotonic() - self.last > self.timeout:
                self.end, self.detail = "timeout", f"no progress for {self.timeout:g} s"
                return
            try:
                chunk = read_some(self.port)
            except (serial.SerialException, OSError) as exc:
                text = str(exc).strip()
                self.end, self.detail = "disconnected", text.splitlines()[0] if text else type(exc).__name__
                return
            if chunk:
                yield chunk


class RawLog:
    """Every byte received, appended to a file up to MAX_RAW_LOG bytes (then a note, and no more)."""

    def __init__(self, handle: IO[bytes] | None):
        self.handle, self.written = handle, 0

    def write(self, chunk: bytes) -> None:
        if self.handle is None or self.written >= MAX_RAW_LOG:
            return
        part = chunk[:MAX_RAW_LOG - self.written]
        self.handle.write(part)
        self.written += len(part)
        if self.written >= MAX_RAW_LOG:
            self.handle.write(b"\n[tinykeras: raw log truncated at 64 MiB]\n")
        self.handle.flush()


def _open_log(raw_log: Path) -> IO[bytes]:
    try:
        Path(raw_log).parent.mkdir(parents=True, exist_ok=True)
        return open(raw_log, "wb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise InputFileError(f"{raw_log}: cannot write the raw log ({exc.strerror or exc})") from exc


def read_until(url: str, done: Callable[[bytes], bool], *, timeout: float, baud: int = 115200) -> bytes:
    """Everything a device sends on ``url`` until ``done(received)``, it disconnects (the firmware ended QEMU)
    or ``timeout`` s pass; for the firmware mains that print one result and stop (profile, check)."""
    port = open_port(url, baud)
    buf = b""
    try:
        for chunk in PortReader(port, timeout):
            buf += chunk
            if done(buf):
                break
    finally:
        try:
            port.close()
        except Exception:  # closing a vanished device can fail; nothing left to do
            pass
    return buf


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


DONE_GRACE_S = 5.0  # after the last wanted run: how long to wait for the firmware's `done` record


def _done_follows(report: BenchReport) -> bool:
    """The session closed on its last announced run, and the firmware's `done` record is still on its way."""
    announced = report.hello.get("runs") if report.hello else None
    return report.status == "complete" and not report.done and announced == len(report.runs)


def _drain_until_done(reader: PortReader, parser: ProtocolParser, raw: RawLog) -> None:
    """Keep logging until the `done` record arrives (at most DONE_GRACE_S s), so the raw log is a complete
    session that ``bench --replay`` accepts; the report is already final."""
    reader.timeout, reader.end = min(reader.timeout, DONE_GRACE_S), "eof"
    reader.heard()
    for chunk in reader:
        raw.write(chunk)
        if any(_is_done(e) for e in parser.feed(chunk)):
            return


def _is_done(event: Event) -> bool:
    return (event.record or {}).get("event") == "done"


def _collect_from(port: Any, source: str, runs: int | None, timeout: float, log: IO[bytes] | None,
                  macs: int | None, on_event: Callable[[Event], None] | None) -> BenchReport:
    parser = ProtocolParser()
    builder = SessionBuilder(runs=runs, source=source, macs=macs, on_event=on_event)
    reader = PortReader(port, timeout)
    raw = RawLog(log)
    try:
        for chunk in reader:
            raw.write(chunk)
            events = parser.feed(chunk)
            for event in events:
                if builder.add(event):
                    reader.heard()
            if builder.finished:
                if _done_follows(builder.report) and not any(_is_done(e) for e in events):
                    _drain_until_done(reader, parser, raw)
                return builder.report
    except KeyboardInterrupt:  # the user stopped a benchmark that never ends: report what arrived
        reader.end, reader.detail = "interrupted", ""
    for event in parser.finish():
        builder.add(event)
    return builder.end(reader.end, reader.detail)


