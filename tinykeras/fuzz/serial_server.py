"""A hostile "board" on a local TCP socket (127.0.0.1) for ``tinykeras bench --port socket://...``.

Each :data:`SCENARIOS` entry plays one way a board or a port goes wrong: silence, garbage, endless lines,
huge numbers, deep JSON, resets, disconnects, absurd run counts, and MLPerf Tiny replies gone bad. Endless
scenarios write until the reader hangs up. :func:`run_scenario` runs the real CLI against one scenario in a
child process and checks that it ends in a clean, labelled status in time, with bounded memory.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinykeras.fuzz import child_env

Chunks = Iterator[bytes]


def _rec(**fields: Any) -> bytes:
    return b"@tk " + json.dumps({"v": 1, **fields}).encode() + b"\n"


def _hello(runs: Any = 3) -> bytes:
    return _rec(event="hello", board="hostile", runtime="aot", model="m", runs=runs, macs=1000)


def _runs(n: int, start: int = 0, **extra: Any) -> Chunks:
    for i in range(start, start + n):
        yield _rec(event="run", i=i, us=100 + i % 7, **extra)


def _forever(line: bytes) -> Chunks:
    block = line * max(1, 65536 // max(len(line), 1))
    while True:
        yield block


def _garbage(seed: int = 0) -> Chunks:
    rng = random.Random(seed)
    while True:
        yield rng.randbytes(65536)


def _session(n: int = 3) -> Chunks:
    yield _hello(n)
    yield from _runs(n)
    yield _rec(event="done", runs=n)


def _raw(text: str) -> Chunks:
    yield text.encode()


@dataclass(frozen=True)
class Scenario:
    """``play()`` yields what the board sends; ``protocol`` is the reader's; ``expect`` the allowed statuses."""

    name: str
    play: Callable[[], Chunks]
    expect: tuple[str, ...]
    protocol: str = "tk"
    close: bool = False  # hang up after the last chunk (else stay silent until the reader leaves)


def _deep(depth: int) -> Chunks:
    yield _hello(3)
    yield b"@tk " + b"[" * depth + b"]" * depth + b"\n"
    yield b'@tk {"v": 1, "event": "run", "i": 0, "us": ' + b"[" * depth + b"]" * depth + b"}\n"
    yield from _runs(3)
    yield _rec(event="done", runs=3)


def _chain(*parts: Chunks) -> Chunks:
    for part in parts:
        yield from part


def _drip(data: bytes, size: int = 7) -> Chunks:
    for k in range(0, len(data), size):
        yield data[k:k + size]


def _mlperf_dut(lap: str = "1000", results: str = "[0.1,0.9]", infer_done: bool = True) -> Callable[[str], bytes]:
    """A scripted MLPerf Tiny DUT: reply bytes for one ``cmd%`` command."""
    def reply(cmd: str) -> bytes:
        if cmd == "name":
            return b"m-name-[hostile]\r\nm-ready\r\n"
        if cmd == "profile":
            return b"m-profile-[ulp-mlperf]\r\nm-model-[x]\r\nm-ready\r\n"
        if cmd.startswith("infer"):
            body = f"m-infer-start-1\r\nm-lap-us-0\r\nm-lap-us-{lap}\r\n"
            if infer_done:
                body += f"m-infer-done\r\nm-results-{results}\r\nm-ready\r\n"
            return body.encode()
        return b"m-ready\r\n"
    return reply


SCENARIOS: list[Scenario] = [
    Scenario("control_complete", lambda: _session(5), ("complete",)),
    Scenario("silence", lambda: iter(()), ("no_hello", "timeout")),
    Scenario("random_garbage_forever", _garbage, ("timeout",)),
    Scenario("nul_bytes_forever", lambda: _forever(b"\x00" * 1024), ("timeout",)),
    Scenario("line_10mb_no_newline", lambda: iter([b"x" * (10 * 1024 * 1024)]), ("timeout",)),
    Scenario("line_10mb_then_session", lambda: _chain(iter([b"y" * (10 * 1024 * 1024) + b"\n"]), _session(3)),
             ("complete",)),
    Scenario("log_lines_forever", lambda: _chain(iter([_hello(3)]), _forever(b"I (123) boot: chatter\n")),
             ("timeout",)),
    Scenario("log_lines_forever_no_hello", lambda: _forever(b"ets Jun  8 2016 rst:0x1\n"), ("timeout",)),
    Scenario("unknown_records_forever", lambda: _chain(iter([_hello(3)]), _forever(_rec(event="telemetry", t=1))),
             ("timeout",)),
    Scenario("records_before_hello_forever", lambda: _forever(_rec(event="run", i=0, us=1)), ("timeout",)),
    Scenario("duplicate_run_ids_forever", lambda: _chain(iter([_hello(3)]), _forever(_rec(event="run", i=0, us=5))),
             ("timeout",)),
    Scenario("wrong_version_forever", lambda: _forever(b'@tk {"v": 2, "event": "hello"}\n'), ("timeout",)),
    Scenario("marker_without_json_forever", lambda: _forever(b"@tk @tk @tk\n"), ("timeout",)),
    Scenario("runs_200000", lambda: _chain(iter([_hello(200_000)]), _runs(200_000)), ("short", "timeout")),
    Scenario("runs_20000_announced_honestly", lambda: _chain(iter([_hello(20_000)]), _runs(20_000)),
             ("short", "timeout")),
    Scenario("hello_runs_1e12", lambda: _chain(iter([_hello(10**12)]), _runs(3), iter([_rec(event="done", runs=3)])),
             ("complete", "short", "timeout")),
    Scenario("hello_runs_negative", lambda: _chain(iter([_hello(-5)]), _runs(3), iter([_rec(event="done", runs=3)])),
             ("complete",)),
    Scenario("us_1e308", lambda: _chain(iter([_hello(3)]), _raw('@tk {"v":1,"event":"run","i":0,"us":1e308}\n'
                                                                  '@tk {"v":1,"event":"run","i":1,"us":1e308}\n'),
                                        _runs(3), iter([_rec(event="done", runs=3)])), ("complete",)),
    Scenario("us_400_digits", lambda: _chain(iter([_hello(3)]), _raw('@tk {"v":1,"event":"run","i":0,"us":'
                                                                       + "9" * 400 + "}\n"), _runs(3),
                                             iter([_rec(event="done", runs=3)])), ("complete",)),
    Scenario("int_5000_digits", lambda: _chain(iter([_hello(3)]), _raw('@tk {"v":1,"event":"run","i":0,"us":'
                                                                         + "9" * 5000 + "}\n"), _session(3)),
             ("complete", "reset")),
    Scenario("macs_infinity", lambda: _chain(_raw('@tk {"v":1,"event":"hello","runs":3,"macs":Infinity}\n'),
                                             _runs(3), iter([_rec(event="done", runs=3)])), ("no_hello", "timeout")),
    Scenario("macs_huge", lambda: _chain(_raw('@tk {"v":1,"event":"hello","runs":3,"macs":' + "7" * 300 + "}\n"),
                                         _runs(3), iter([_rec(event="done", runs=3)])), ("complete",)),
    Scenario("us_nan", lambda: _chain(iter([_hello(3)]), _raw('@tk {"v":1,"event":"run","i":0,"us":NaN}\n'),
                                      _runs(3), iter([_rec(event="done", runs=3)])), ("complete",)),
    Scenario("us_negative", lambda: _chain(iter([_hello(2)]), _raw('@tk {"v":1,"event":"run","i":0,"us":-4}\n'),
                                           _runs(2), iter([_rec(event="done", runs=2)])), ("complete",)),
    Scenario("json_array_30000_deep", lambda: _deep(30_000), ("complete",)),
    Scenario("hello_field_30000_deep", lambda: _chain(
        _raw('@tk {"v":1,"event":"hello","runs":2,"board":' + "[" * 30_000 + "]" * 30_000 + "}\n"),
        _runs(2), iter([_rec(event="done", runs=2)])), ("no_hello", "timeout")),
    Scenario("hello_nested_fields", lambda: _chain(
        _raw('@tk {"v":1,"event":"hello","runs":2,"board":{"a":[1,2,{"b":3}]},"cpu_hz":[1]}\n'),
        _runs(2), iter([_rec(event="done", runs=2)])), ("complete",)),
    Scenario("error_message_60kb", lambda: _chain(iter([_hello(3)]), iter([_rec(event="error", msg="E" * 60_000)])),
             ("error",)),
    Scenario("error_message_nested", lambda: _chain(iter([_hello(3)]), _raw(
        '@tk {"v":1,"event":"error","msg":' + "[" * 1000 + "]" * 1000 + "}\n")), ("error", "timeout")),
    Scenario("error_before_hello", lambda: iter([_rec(event="error", msg="model did not load")]), ("error",)),
    Scenario("non_utf8_bytes", lambda: _chain(iter([b"\xff\xfe\xfd garbage \xc3\x28\n"]), _session(3)),
              ("complete",)),
    Scenario("binary_then_session", lambda: _chain(iter([random.Random(5).randbytes(100_000)]), _session(3)),
             ("complete", "reset")),
    Scenario("cr_only_line_endings", lambda: iter([b"".join(_session(3)).replace(b"\n", b"\r")]),
             ("timeout", "no_hello", "complete")),
    Scenario("records_glued_without_newlines", lambda: iter([b"".join(_session(3)).replace(b"\n", b"")]),
             ("timeout", "complete", "no_hello", "short", "reset")),
    Scenario("reset_mid_run", lambda: _chain(iter([_hello(5)]), _runs(2), iter([_hello(5)]), _runs(5)), ("reset",)),
    Scenario("reset_storm", lambda: _forever(_hello(5)), ("reset",)),
    Scenario("disconnect_mid_run", lambda: _chain(iter([_hello(5)]), _runs(2)), ("eof", "disconnected"), close=True),
    Scenario("truncated_record_then_disconnect", lambda: _chain(iter([_hello(5)]), _raw('@tk {"v":1,"event":"ru')),
             ("eof", "disconnected"), close=True),
    Scenario("hello_then_silence", lambda: iter([_hello(5)]), ("timeout",)),
    Scenario("run_index_out_of_range", lambda: _chain(iter([_hello(2)]), _runs(1, start=10**6), _runs(2),
                                                     iter([_rec(event="done", runs=2)])), ("complete",)),
    Scenario("done_short", lambda: _chain(iter([_hello(5)]), _runs(2), iter([_rec(event="done", runs=5)])),
             ("short",)),
    Scenario("done_runs_1e18", lambda: _chain(_raw('@tk {"v":1,"event":"hello"}\n'), _runs(2),
                                              iter([_rec(event="done", runs=10**18)])), ("short",)),
    Scenario("bool_and_string_numbers", lambda: _chain(
        iter([_hello(2)]), _raw('@tk {"v":1,"event":"run","i":true,"us":"12"}\n'), _runs(2),
        iter([_rec(event="done", runs=2)])), ("complete",)),
    Scenario("slow_drip_session", lambda: _drip(b"".join(_session(3))), ("complete",)),
    Scenario("mlperf_garbage_forever", _garbage, ("timeout",), protocol="mlperf"),
    Scenario("mlperf_m_lines_forever", lambda: _forever(b"m-lap-us-5\r\n"), ("timeout",), protocol="mlperf"),
    Scenario("mlperf_silent", lambda: iter(()), ("timeout",), protocol="mlperf"),
    Scenario("mlperf_lap_300_digits", lambda: iter(()), ("short",), protocol="mlperf"),
    Scenario("mlperf_results_non_finite", lambda: iter(()), ("complete",), protocol="mlperf"),
    Scenario("mlperf_control", lambda: iter(()), ("complete",), protocol="mlperf"),
    Scenario("mlperf_disconnect_mid_infer", lambda: iter(()), ("disconnected", "eof", "timeout"), protocol="mlperf"),
]

_MLPERF_REPLIES: dict[str, Callable[[str], bytes]] = {
    "mlperf_lap_300_digits": _mlperf_dut(lap="9" * 300),
    "mlperf_results_non_finite": _mlperf_dut(results="[nan,1e400,-inf]"),
    "mlperf_control": _mlperf_dut(),
    "mlperf_disconnect_mid_infer": _mlperf_dut(infer_done=False),
}


class HostileBoard:
    """Serve one scenario to the first client on 127.0.0.1:``port``; runs in a daemon thread."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = int(self.server.getsockname()[1])
        self.url = f"socket://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.stop = threading.Event()
        self.connected_at: float | None = None
        self.ended_at: float | None = None  # the reader hung up (or the scenario closed the connection)

    def __enter__(self) -> HostileBoard:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.close()
        self.thread.join(timeout=5)

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        self.connected_at = time.monotonic()
        with conn:
            try:
                if self.scenario.name in _MLPERF_REPLIES:
                    self._dut(conn, _MLPERF_REPLIES[self.scenario.name])
                else:
                    for chunk in self.scenario.play():
                        if self.stop.is_set():
                            return
                        conn.sendall(chunk)
                        if self.scenario.name == "slow_drip_session":
                            time.sleep(0.002)
                    if not self.scenario.close:
                        while not self.stop.is_set() and conn.recv(4096):
                            pass
            except OSError:
                pass  # the reader hung up: the scenario is over
            finally:
                self.ended_at = time.monotonic()

    def _dut(self, conn: socket.socket, reply: Callable[[str], bytes]) -> None:
        conn.sendall(b"m-init-done\r\nm-ready\r\n")
        buffer = b""
        while not self.stop.is_set():
            data = conn.recv(4096)
            if not data:
                return
            buffer += data
            while b"%" in buffer:
                cmd, buffer = buffer.split(b"%", 1)
                text = cmd.decode("ascii", "replace").strip()
                conn.sendall(reply(text))
                if self.scenario.name == "mlperf_disconnect_mid_infer" and text.startswith("infer"):
                    return


def run_scenario(scenario: Scenario, work: Path, timeout: float = 2.0) -> dict[str, Any]:
    """Run ``tinykeras bench`` against ``scenario`` in a child process; return what happened.

    The result holds ``status`` (from the report JSON), ``exit_code``, ``seconds``, ``peak_rss_mb`` (of the
    child), ``stderr`` and ``ok``: a clean labelled status among the expected ones, a report on disk, one
    line on stderr when failing, exit 0 only when complete, within ``timeout`` + 1 s (+ start-up).
    """
    out = work / scenario.name / "report.json"
    peak_file = work / f"{scenario.name}.peak"
    cmd = [sys.executable, "-c", _PEAK_WRAPPER, str(peak_file), "bench", "--port", "", "--timeout", str(timeout),
           "-o", str(out), "--protocol", scenario.protocol, "--json"]
    if scenario.protocol == "mlperf":
        cmd += ["--runs", "2"]
    import tempfile

    with HostileBoard(scenario) as board, tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        cmd[cmd.index("--port") + 1] = board.url
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=child_env())
        code = _wait(proc.pid, timeout + 60)
        seconds = time.monotonic() - start
        board.thread.join(timeout=5)
        session = (board.ended_at - board.connected_at
                   if board.ended_at is not None and board.connected_at is not None else None)
        err_f.seek(0)
        stderr = err_f.read()
    peak = round(int(peak_file.read_text()) / 1024, 1) if peak_file.exists() else None
    status = None
    if out.exists():
        try:
            status = json.loads(out.read_text()).get("status")
        except ValueError:
            status = "unreadable"
    err = stderr.decode("utf-8", "replace").strip()
    clean_exit = (code == 0) == (status == "complete") and code in (0, 8, 9)
    one_line = code == 0 or (err.count("\n") == 0 and err.startswith("error:"))
    return {
        "scenario": scenario.name, "protocol": scenario.protocol, "status": status, "expected": list(scenario.expect),
        "exit_code": code, "seconds": round(seconds, 2),
        "session_s": None if session is None else round(session, 2), "peak_rss_mb": peak, "stderr": err[-300:],
        "in_time": session is not None and session <= timeout + 1.0,
        "ok": bool(status in scenario.expect and clean_exit and one_line and "internal error" not in err),
    }


# Runs `tinykeras ARGS...` and writes its peak RSS (VmHWM, KiB) at exit: unlike ru_maxrss, VmHWM does not
# carry over the memory of the (large) parent it was forked from.
_PEAK_WRAPPER = """
import atexit, runpy, sys
peak_file = sys.argv[1]
def _peak():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                with open(peak_file, 'w') as out:
                    out.write(line.split()[1])
atexit.register(_peak)
sys.argv = ['tinykeras'] + sys.argv[2:]
runpy.run_module('tinykeras', run_name='__main__', alter_sys=True)
"""


def _wait(pid: int, limit: float) -> int:
    """Wait for ``pid`` (killing it after ``limit`` s); return its exit code (or -signal)."""
    deadline = time.monotonic() + limit
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
        time.sleep(0.02)
