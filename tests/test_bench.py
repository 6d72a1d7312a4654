"""tinykeras.device: the protocol parser, a fake device on a pty pair and on a local TCP socket, and the CLI.

The recorded device output in tests/data/bench/ (see its README) carries every fault the reader must survive.
Servers bind 127.0.0.1 only and live a few seconds at most.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import socket
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tinykeras.device as bench
from tinykeras.cli import cli
from tinykeras.errors import IncompleteRunError, SerialError

DATA = Path(__file__).resolve().parent / "data" / "bench"


def chunks(data: bytes, seed: int = 0, most: int = 23) -> list[bytes]:
    """Split ``data`` into random small pieces so lines arrive in parts."""
    rnd = random.Random(seed)
    out, k = [], 0
    while k < len(data):
        n = rnd.randint(1, most)
        out.append(data[k:k + n])
        k += n
    return out


def _stream(write: Callable[[bytes], None], data: bytes, seed: int) -> None:
    for piece in chunks(data, seed):
        try:
            write(piece)
        except OSError:  # the reader stopped early (a reset or an error record ends the session)
            return
        time.sleep(0.0005)


@contextlib.contextmanager
def pty_device(data: bytes, *, hang_up: bool = True, seed: int = 0) -> Iterator[str]:
    """Yield the slave path of a pty whose master writes ``data`` in pieces, then hangs up (or stays silent)."""
    master, slave = os.openpty()
    tty.setraw(slave)  # no CR/LF translation or echo before pyserial configures the port
    attrs = termios.tcgetattr(slave)
    attrs[4] = attrs[5] = termios.B1200  # pyserial sets its own speed when it opens the port: that is our cue
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    path = os.ttyname(slave)
    stop = threading.Event()

    def feed() -> None:
        deadline = time.monotonic() + 10
        while termios.tcgetattr(slave)[4] == termios.B1200 and time.monotonic() < deadline:
            time.sleep(0.002)  # wait until the reader has opened the port ...
        time.sleep(0.2)  # ... and flushed its input (pyserial does that right after setting the speed)
        _stream(lambda b: os.write(master, b), data, seed)
        if hang_up:
            time.sleep(0.2)  # let the reader drain before the hang-up discards buffered bytes
            os.close(slave)
            os.close(master)
        else:
            stop.wait(10)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(12)
        if not hang_up:
            for fd in (slave, master):
                with contextlib.suppress(OSError):
                    os.close(fd)


@contextlib.contextmanager
def socket_device(data: bytes, *, hang_up: bool = True, seed: int = 0,
                  responder: Callable[[socket.socket], None] | None = None) -> Iterator[str]:
    """Yield ``socket://127.0.0.1:PORT`` of a one-connection server that streams ``data`` (or runs
    ``responder`` on the connection), then closes it (or holds it open, silent)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            if responder is not None:
                responder(conn)
            else:
                _stream(conn.sendall, data, seed)
            if hang_up:
                time.sleep(0.05)
            else:
                stop.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        stop.set()
        server.close()
        thread.join(12)


class MlperfDut:
    """A fake MLPerf Tiny device under test: answers the UART commands like mlcommons/tiny benchmark/api.

    Each inference takes ``infer_us`` fake microseconds; the output is a fixed 4-class vector.
    """

    def __init__(self, infer_us: int = 1500, fail_on: str | None = None):
        self.infer_us = infer_us
        self.clock = 1000
        self.received: list[str] = []
        self.loaded = b""
        self.fail_on = fail_on

    def __call__(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        conn.sendall(b"m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n")
        buf = b""
        while True:
            try:
                data = conn.recv(256)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"%" in buf:
                cmd, buf = buf.split(b"%", 1)
                text = cmd.decode()
                self.received.append(text)
                if self.fail_on and text.startswith(self.fail_on):
                    return  # the device dies: the host sees a disconnect
                conn.sendall(self.reply(text).encode() + b"m-ready\r\n")

    def reply(self, cmd: str) -> str:
        words = cmd.split()
        if words[0] == "name":
            return "m-name-dut-[fake]\r\n"
        if words[0] == "profile":
            return "m-profile-[ULPMark for tinyML Firmware V0.0.1]\r\nm-model-[ic01]\r\n"
        if words[:2] == ["db", "load"]:
            self.want = int(words[2])
            return f"m-[Expecting {self.want} bytes]\r\n"
        if words[0] == "db":
            self.loaded += bytes.fromhex(words[1])
            return "m-load-done\r\n" if len(self.loaded) >= self.want else ""
        if words[0] == "infer":
            n, w = int(words[1]), int(words[2])
            start = self.clock + w * self.infer_us
            end = start + n * self.infer_us
            self.clock = end + 100
            return (f"m-warmup-start-{w}\r\nm-warmup-done\r\nm-infer-start-{n}\r\nm-lap-us-{start}\r\n"
                    f"m-lap-us-{end}\r\nm-infer-done\r\nm-results-[0.01,0.02,0.9,0.07]\r\n")
        return f"e-[Unknown command: {cmd}]\r\n"


# ------------------------------------------------------------------------------------------------ helpers


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def tk_records(data: bytes) -> list[dict]:
    """An independent, simple reading of the records: every line holding `@tk {json}` that parses."""
    out = []
    for line in data.split(b"\n"):
        at = line.find(b"@tk ")
        if at < 0:
            continue
        try:
            value = json.loads(line[at + 4:].decode("utf-8", "replace"))
        except ValueError:
            continue
        out.append(value)
    return out


def expected_stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"min": a.min(), "mean": a.mean(), "p50": np.percentile(a, 50), "p90": np.percentile(a, 90),
            "p99": np.percentile(a, 99), "max": a.max(), "std": a.std(ddof=1) if len(a) > 1 else 0.0}


def assert_stats(got: dict[str, float] | None, values: list[float]) -> None:
    assert got is not None
    want = expected_stats(values)
    assert set(got) == set(bench.STAT_KEYS)
    for key in bench.STAT_KEYS:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-9), key


# Each recorded fault: (file, status, runs received, missing indices, complete)
FAULTS = [
    ("tk_esp32_clean.log", "complete", 10, [], True),
    ("tk_qemu_clean.log", "complete", 20, [], True),
    ("tk_boot_garbage.log", "complete", 10, [], True),
    ("tk_interleaved.log", "complete", 10, [], True),
    ("tk_reset.log", "reset", 4, list(range(4, 10)), False),
    ("tk_disconnect.log", "eof", 6, list(range(6, 10)), False),
    ("tk_silence.log", "eof", 3, list(range(3, 20)), False),
    ("tk_error.log", "error", 0, list(range(10)), False),
    ("tk_wrong_baud.log", "no_hello", 0, [], False),
]


# ------------------------------------------------------------------------------------------------ parser


@pytest.mark.parametrize("name,status,nruns,missing,complete", FAULTS)
def test_replay_each_recording(name: str, status: str, nruns: int, missing: list[int], complete: bool) -> None:
    data = load(name)
    whole = bench.parse_chunks([data])
    pieces = bench.parse_chunks(chunks(data, seed=3, most=5))  # lines arrive in many parts
    for report in (whole, pieces):
        assert report.status == status
        assert report.complete is complete
        assert len(report.runs) == nruns
        assert report.missing_runs == missing
    assert whole.to_json() == pieces.to_json()
    if nruns:
        first = [r for r in tk_records(data) if r.get("event") == "run"][:nruns]
        assert [r.i for r in whole.runs] == [r["i"] for r in first]
        assert_stats(whole.latency_us(), [r["us"] for r in first])


def test_clean_report_json_has_the_contract_keys() -> None:
    data = load("tk_esp32_clean.log")
    out = bench.parse_chunks([data]).to_json()
    for key in ("board", "runtime", "model", "runs", "complete", "latency_us", "arena_bytes", "cycles"):
        assert key in out
    assert "instructions" not in out  # absent counters are left out, not zero
    hello = tk_records(data)[0]
    assert (out["board"], out["runtime"], out["model"], out["arena_bytes"]) == (
        hello["board"], hello["runtime"], hello["model"], hello["arena_bytes"])
    runs = [r for r in tk_records(data) if r.get("event") == "run"]
    assert_stats(out["cycles"], [r["cycles"] for r in runs])
    assert out["per_mac"]["ns"] == pytest.approx(np.mean([r["us"] for r in runs]) * 1000 / hello["macs"])
    assert out["per_mac"]["cycles"] == pytest.approx(np.mean([r["cycles"] for r in runs]) / hello["macs"])
    json.dumps(out, allow_nan=False)  # plain JSON


def test_qemu_report_has_instructions() -> None:
    data = load("tk_qemu_clean.log")
    out = bench.parse_chunks([data]).to_json()
    runs = [r for r in tk_records(data) if r.get("event") == "run"]
    assert_stats(out["instructions"], [r["instructions"] for r in runs])
    assert "cycles" not in out


def test_garbage_lines_are_counted_as_log() -> None:
    report = bench.parse_chunks([load("tk_interleaved.log")])
    assert report.log_lines == 11  # 10 "invoke ok" + the wifi warning with a non-UTF-8 byte
    assert report.malformed == 1  # the truncated record line


def test_reset_closes_the_first_session() -> None:
    report = bench.parse_chunks([load("tk_reset.log")])
    assert report.resets == 1
    assert "second hello after 4 runs" in report.message()
    with pytest.raises(IncompleteRunError, match="reset"):
        report.raise_if_incomplete()


def test_error_record_is_reported() -> None:
    report = bench.parse_chunks([load("tk_error.log")])
    assert "AllocateTensors() failed" in report.message()


def test_runs_limit_stops_early() -> None:
    report = bench.parse_chunks([load("tk_qemu_clean.log")], runs=5)
    assert report.complete and len(report.runs) == 5 and report.expected_runs == 5


def test_overlong_line_is_dropped_and_parser_resyncs() -> None:
    data = b"x" * (3 * bench.MAX_LINE) + load("tk_qemu_clean.log")  # noise runs straight into the hello
    report = bench.parse_chunks(chunks(data, seed=1, most=4096))
    assert report.complete and report.malformed >= 1


def test_two_records_on_one_line_are_split() -> None:
    lines = load("tk_qemu_clean.log").split(b"\n")
    at = next(k for k, line in enumerate(lines) if b'"i":2,' in line)
    lines[at:at + 2] = [lines[at][:30] + lines[at + 1]]  # record 2 cut short, record 3 on the same line
    report = bench.parse_chunks([b"\n".join(lines)])
    # the record cut short by the next one on the same line (i=2) is malformed; all others survive
    assert [r.i for r in report.runs] == [0, 1] + list(range(3, 20))
    assert report.missing_runs == [2] and report.status == "short"


def test_stats_edge_cases() -> None:
    assert bench.stats([]) is None
    one = bench.stats([5.0])
    assert one == {"min": 5.0, "mean": 5.0, "p50": 5.0, "p90": 5.0, "p99": 5.0, "max": 5.0, "std": 0.0}
    values = [float(v) for v in np.random.default_rng(0).normal(100, 10, 257)]
    assert_stats(bench.stats(values), values)


def test_mlperf_replay() -> None:
    data = load("mlperf_session.log")
    report = bench.parse_mlperf_chunks(chunks(data, seed=2, most=7))
    assert report.complete and report.protocol == "mlperf"
    assert report.board == "tinykeras" and report.model == "ic01"
    laps = [int(line.split(b"-")[-1]) for line in data.split(b"\r\n") if line.startswith(b"m-lap-us-")]
    per_run = [(laps[k + 1] - laps[k]) / 4 for k in range(0, len(laps), 2)]
    assert_stats(report.latency_us(), per_run)
    assert {r.top for r in report.runs} == {2}


def test_mlperf_replay_cut_short() -> None:
    data = load("mlperf_session.log")
    cut = data[:data.rfind(b"m-lap-us-")]  # the last infer never finishes
    report = bench.parse_mlperf_chunks([cut])
    assert not report.complete and report.status == "short" and report.missing_runs == [4]


# ------------------------------------------------------------------------------------- fake devices


@pytest.mark.parametrize("name,status,nruns,missing,complete", FAULTS)
def test_pty_device(name: str, status: str, nruns: int, missing: list[int], complete: bool, tmp_path: Path) -> None:
    data = load(name)
    silent = name == "tk_silence.log"
    log = tmp_path / "raw.log"
    with pty_device(data, hang_up=not silent, seed=len(name)) as path:
        report = bench.collect(path, timeout=0.6 if silent else 5, raw_log=log)
    want = {"eof": "timeout" if silent else "disconnected"}.get(status, status)
    if status == "no_hello":
        want = "disconnected"
    assert report.status == want, report.message()
    assert len(report.runs) == nruns and report.missing_runs == missing
    raw = log.read_bytes()
    if complete or status in ("reset", "error"):
        assert raw and raw in data  # stopped at the session's end
    else:
        assert raw and data.endswith(raw)  # every byte kept since the port opened


@pytest.mark.parametrize("name", ["tk_esp32_clean.log", "tk_reset.log", "tk_disconnect.log", "tk_silence.log",
                                  "tk_boot_garbage.log"])
def test_socket_device(name: str, tmp_path: Path) -> None:
    data = load(name)
    silent = name == "tk_silence.log"
    log = tmp_path / "raw.log"
    start = time.monotonic()
    with socket_device(data, hang_up=not silent, seed=7) as url:
        report = bench.collect(url, timeout=0.6 if silent else 5, raw_log=log)
    replayed = bench.parse_chunks([data])
    assert [r.i for r in report.runs] == [r.i for r in replayed.runs]
    if replayed.status == "eof":
        assert report.status == ("timeout" if silent else "disconnected")
        assert log.read_bytes() == data
    else:
        assert report.status == replayed.status
    assert time.monotonic() - start < 5


def test_log_lines_do_not_keep_a_silent_benchmark_alive() -> None:
    chatter = b"".join(b"I (%d) idle\n" % i for i in range(400))
    with socket_device(load("tk_silence.log") + chatter, hang_up=False, seed=1) as url:
        start = time.monotonic()
        report = bench.collect(url, timeout=0.5)
    assert report.status == "timeout" and len(report.runs) == 3
    assert time.monotonic() - start < 3


def test_nonexistent_port_is_one_line_serial_error(tmp_path: Path) -> None:
    with pytest.raises(SerialError) as info:
        bench.collect(str(tmp_path / "ttyUSB9"))
    assert "\n" not in str(info.value) and "ttyUSB9" in str(info.value)
    with pytest.raises(SerialError, match="Connection refused|cannot open"):
        bench.collect(f"socket://127.0.0.1:{_free_port()}")


def test_auto_port_picks_a_known_board() -> None:
    class P:
        def __init__(self, device: str, vid: int | None, pid: int | None, description: str = "n/a"):
            self.device, self.vid, self.pid, self.description, self.hwid = device, vid, pid, description, "n/a"

    ports = [P("/dev/ttyS0", None, None), P("/dev/ttyACM0", 0x1234, 0x1), P("/dev/ttyUSB0", 0x10C4, 0xEA60)]
    assert bench.auto_port(ports) == "/dev/ttyUSB0"
    assert bench.auto_port(ports[:2]) == "/dev/ttyACM0"
    with pytest.raises(SerialError, match="no likely board.*ttyS0"):
        bench.auto_port(ports[:1])


def test_mlperf_live_over_socket(tmp_path: Path) -> None:
    dut = MlperfDut(infer_us=1500)
    sample = bytes(range(40))
    log = tmp_path / "mlperf.log"
    with socket_device(b"", responder=dut) as url:
        report = bench.collect_mlperf(url, runs=3, iterations=4, warmup=2, timeout=2, raw_log=log,
                                      input_bytes=sample)
    assert report.complete, report.message()
    assert dut.received == ["name", "profile", "db load 40", "db " + sample[:32].hex(), "db " + sample[32:].hex(),
                            "infer 4 2", "infer 4 0", "infer 4 0"]
    assert dut.loaded == sample
    assert [r.us for r in report.runs] == [1500.0] * 3 and report.board == "fake" and report.model == "ic01"
    assert bench.parse_mlperf_chunks([log.read_bytes()]).to_json()["latency_us"] == report.to_json()["latency_us"]


def test_mlperf_device_dies(tmp_path: Path) -> None:
    with socket_device(b"", responder=MlperfDut(fail_on="infer")) as url:
        report = bench.collect_mlperf(url, runs=2, timeout=1)
    assert not report.complete and report.status == "disconnected" and "infer 1 1%" in report.message()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_replay_writes_all_outputs(tmp_path: Path) -> None:
    out = tmp_path / "r" / "esp32.json"
    log = DATA / "tk_esp32_clean.log"
    result = CliRunner().invoke(cli, ["bench", "--replay", str(log), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "latency (us)" in result.output and "cycles" in result.output
    data = json.loads(out.read_text())
    assert data["complete"] and data["runs"] == 10
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r" / "esp32.csv").read_text())))
    runs = [r for r in tk_records(log.read_bytes()) if r.get("event") == "run"]
    assert [float(r["us"]) for r in rows] == [r["us"] for r in runs]
    assert (tmp_path / "r" / "esp32_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "r" / "esp32.log").read_bytes() == log.read_bytes()
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    again = CliRunner().invoke(cli, ["bench", "--replay", str(log), "-o", str(out)])
    assert again.exit_code == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before  # deterministic


def test_cli_incomplete_exits_nonzero_and_keeps_partial_report(tmp_path: Path) -> None:
    out = tmp_path / "partial.json"
    with socket_device(load("tk_disconnect.log"), seed=4) as url:
        result = CliRunner().invoke(cli, ["bench", "--port", url, "--timeout", "2", "-o", str(out)])
    assert result.exit_code == IncompleteRunError.exit_code
    assert "incomplete benchmark" in result.output and "disconnected" in result.output
    assert "Traceback" not in result.output
    data = json.loads(out.read_text())
    assert not data["complete"] and data["runs"] == 6 and data["missing_runs"] == [6, 7, 8, 9]
    assert (tmp_path / "partial.log").read_bytes() == load("tk_disconnect.log")
    assert (tmp_path / "partial.csv").exists() and (tmp_path / "partial_latency.png").exists()


def test_cli_live_pty_json(tmp_path: Path) -> None:
    with pty_device(load("tk_qemu_clean.log"), seed=9) as path:
        result = CliRunner().invoke(cli, ["bench", "--port", path, "--json", "--runs", "12",
                                          "-o", str(tmp_path / "q.json")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["runs"] == 12 and data["complete"] and data["board"] == "qemu_m4"


def test_cli_model_gives_per_mac(tmp_path: Path, reference_models: dict[str, Path]) -> None:
    from tinykeras.inspect import load_model_info

    model = reference_models["ad01_int8"]
    data = load("tk_esp32_clean.log").replace(b',"macs":2656768', b"")
    log = tmp_path / "nomacs.log"
    log.write_bytes(data)
    result = CliRunner().invoke(cli, ["bench", "--replay", str(log), "--model", str(model), "--json",
                                      "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["macs"] == load_model_info(model).macs > 0
    assert out["per_mac"]["ns"] == pytest.approx(out["latency_us"]["mean"] * 1000 / out["macs"])


def test_cli_mlperf_replay(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", "--protocol", "mlperf", "--replay", str(DATA / "mlperf_session.log"),
                                      "-o", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m.json").read_text())["protocol"] == "mlperf"


def test_cli_bad_port_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", "--port", str(tmp_path / "ttyNOPE"), "-o", str(tmp_path / "x.json")])
    assert result.exit_code == SerialError.exit_code
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "ttyNOPE" in lines[0]


def test_cli_compare(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path, log in ((a, "tk_esp32_clean.log"), (b, "tk_qemu_clean.log")):
        assert CliRunner().invoke(cli, ["bench", "--replay", str(DATA / log), "-o", str(path)]).exit_code == 0
    result = CliRunner().invoke(cli, ["bench", "compare", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["metric"]: r for r in json.loads(result.output)["rows"]}
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    assert rows["latency_us.p50"]["ratio"] == pytest.approx(db["latency_us"]["p50"] / da["latency_us"]["p50"])
    assert rows["arena_bytes"]["ratio"] == pytest.approx(db["arena_bytes"] / da["arena_bytes"])
    table = CliRunner().invoke(cli, ["bench", "compare", str(a), str(b)])
    assert table.exit_code == 0 and "latency_us.p99" in table.output and "x" in table.output
    bad = CliRunner().invoke(cli, ["bench", "compare", str(a), str(tmp_path / "missing.json")])
    assert bad.exit_code != 0 and "missing.json" in bad.output


def test_bench_does_not_import_tensorflow() -> None:
    code = ("import sys, tinykeras.device, tinykeras.report, tinykeras.commands.bench; "
            "from tinykeras.report import latency_histogram_png; latency_histogram_png([1.0, 2.0], 't'); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------- real recordings (qemu_m4)


def test_real_qemu_recordings_replay(tmp_path: Path) -> None:
    tk = load("qemu_m4_aot_ad01.log")
    report = bench.parse_chunks(chunks(tk, seed=8))
    assert report.complete and report.board == "qemu_m4" and report.runtime == "aot"
    runs = [r for r in tk_records(tk) if r.get("event") == "run"]
    assert len(report.runs) == len(runs) == tk_records(tk)[0]["runs"]
    assert_stats(report.latency_us(), [r["us"] for r in runs])
    assert_stats(report.counter("instructions"), [r["instructions"] for r in runs])
    with socket_device(tk, seed=2) as url:
        live = bench.collect(url, timeout=2)
    assert live.to_json() | {"source": ""} == report.to_json() | {"source": ""}

    ml = load("qemu_m4_aot_ad01_mlperf.log")
    mreport = bench.parse_mlperf_chunks(chunks(ml, seed=9))
    assert mreport.complete and mreport.board == "tinykeras" and mreport.model == "ad01_int8"
    text = ml.decode("utf-8", "replace").splitlines()
    laps = [int(line.rsplit("-", 1)[1]) for line in text if line.startswith("m-lap-us-")]
    batch = [int(line.rsplit("-", 1)[1]) for line in text if line.startswith("m-infer-start-")]
    assert_stats(mreport.latency_us(), [(laps[2 * k + 1] - laps[2 * k]) / n for k, n in enumerate(batch)])
    # the same firmware timed both ways: per-inference time agrees within the 1 us timer resolution
    assert abs(mreport.latency_us()["p50"] - report.latency_us()["p50"]) <= 1.0


def test_ctrl_c_during_an_emulated_benchmark_stops_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """collect keeps a Ctrl-C's partial report (bench on a device that never ends); run_benchmark, used by build,
    tune and validate, turns it back into KeyboardInterrupt, so tune stops (exit 130) instead of recording a
    failed trial and going on."""
    import contextlib
    import types

    from tinykeras.boards import load_board
    from tinykeras.target import qemu

    monkeypatch.setattr(qemu, "qemu_session", lambda *_a, **_k: contextlib.nullcontext("socket://x"))
    monkeypatch.setattr(qemu, "collect", lambda *_a, **_k: types.SimpleNamespace(status="interrupted", hello=None,
                                                                                   error=None))
    with pytest.raises(KeyboardInterrupt):
        qemu.run_benchmark(Path("fw.elf"), load_board("qemu_m4"), runs=2)
