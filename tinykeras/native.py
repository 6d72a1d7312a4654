"""Native code in a child process: a crash or hang there becomes an error here, never a dead tinykeras.

A :class:`Child` runs ``python -m MODULE`` whose ``serve()`` answers length-prefixed pickled requests on
stdin/stdout (see :func:`serve`). The parent waits with a wall-clock deadline per request; when the child
dies (SIGSEGV, SIGABRT, SIGFPE, killed for memory) or overruns the deadline, :meth:`Child.call` raises
:class:`ChildFailed` saying how, with the tail of what the child wrote to its stderr. The TFLite-Micro
host interpreter (``tflm_host``) and the arena probes (``arena``) both run this way: one child per runner
(per batch of samples), not per sample.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

DEFAULT_TIMEOUT_S = float(os.environ.get("TINYKERAS_NATIVE_TIMEOUT", "300"))
_HEADER = struct.Struct("<Q")


class ChildFailed(Exception):
    """The child died or overran its deadline. ``reason``: 'crashed', 'killed', 'timeout' or 'exited'."""

    def __init__(self, reason: str, detail: str, log: str = ""):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.log = log


def die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to SIGKILL this process when its parent dies, even by SIGKILL (PR_SET_PDEATHSIG); exit at
    once if ``parent`` is already gone. Elsewhere a no-op. Called first thing in children (never as a
    ``preexec_fn``, which is unsafe when the parent has threads, as TensorFlow's do)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent is not None and os.getppid() != parent:
        os._exit(1)


_LAUNCHER = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 9); "
             "os.getppid() == int(sys.argv[1]) or os._exit(1); os.execvp(sys.argv[2], sys.argv[2:])")


def tied_to_us(cmd: list[str]) -> list[str]:
    """``cmd`` wrapped so that the program dies with tinykeras (Linux): a short Python launcher sets
    PR_SET_PDEATHSIG, then execs it. Elsewhere ``cmd`` unchanged."""
    if not sys.platform.startswith("linux"):
        return list(cmd)
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *cmd]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Child:
    """One child process serving requests; started lazily, restarted after a failure."""

    def __init__(self, module: str):
        self.module = module
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._log_mark = 0  # where the current request's log starts

    def start(self) -> None:
        self._log = tempfile.TemporaryFile(prefix="tinykeras-native-")
        package_root = str(Path(__file__).resolve().parents[1])  # the child imports this very tinykeras
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", self.module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, env=dict(env, TINYKERAS_PARENT_PID=str(os.getpid())),
        )

    def call(self, request: Any, timeout: float | None = None) -> Any:
        """Send ``request``; return the child's reply. Raises ChildFailed; re-raises the child's exception."""
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        self._log_mark = self._log.seek(0, os.SEEK_END) if self._log is not None else 0
        deadline = time.monotonic() + (DEFAULT_TIMEOUT_S if timeout is None else timeout)
        try:
            proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            proc.stdin.flush()
            header = self._read(_HEADER.size, deadline)
            (size,) = _HEADER.unpack(header)
            status, value = pickle.loads(self._read(size, deadline))
        except ChildFailed:
            self.close()
            raise
        except (BrokenPipeError, ConnectionResetError, EOFError):
            failure = self._failure()
            self.close()
            raise failure from None
        if status == "error":
            raise value
        return value

    def _read(self, n: int, deadline: float) -> bytes:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed("timeout", "no answer within the deadline; the child was stopped",
                                  self._kill_and_log())
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise self._failure()
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _failure(self) -> ChildFailed:
        proc = self._proc
        assert proc is not None
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return ChildFailed("timeout", "the child stopped answering", self._kill_and_log())
        log = self._log_text()
        if code < 0:
            reason = "killed" if code in (-signal.SIGKILL, -signal.SIGTERM) else "crashed"
            return ChildFailed(reason, f"crashed with {_signal_name(-code)}" if reason == "crashed"
                               else f"was killed ({_signal_name(-code)}; out of memory?)", log)
        return ChildFailed("exited", f"exited with status {code}", log)

    def _kill_and_log(self) -> str:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=5)
        return self._log_text()

    def _log_text(self) -> str:
        if self._log is None:
            return ""
        with contextlib.suppress(Exception):
            self._log.seek(self._log_mark)
            return self._log.read()[-2000:].decode("utf-8", "replace")
        return ""

    def close(self) -> None:
        """Stop the child (if running) and drop its log."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(Exception):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(Exception):
                    proc.wait(timeout=5)
            with contextlib.suppress(Exception):
                if proc.stdout is not None:
                    proc.stdout.close()
        if self._log is not None:
            with contextlib.suppress(Exception):
                self._log.close()
            self._log = None

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Never wait here: Python swallows an exception raised in __del__, so a Ctrl-C landing while a collected
        # runner waited for its child to exit was lost (tune then went on). Kill it; subprocess reaps it.
        proc, self._proc = self._proc, None
        with contextlib.suppress(Exception):
            if proc is not None and proc.poll() is None:
                proc.kill()
        with contextlib.suppress(Exception):
            if self._log is not None:
                self._log.close()


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(handle: Callable[[Any], Any]) -> None:
    """The child's loop: answer each request with ('ok', handle(request)) or ('error', exception)."""
    parent = os.environ.get("TINYKERAS_PARENT_PID")
    die_with_parent(int(parent) if parent and parent.isdigit() else None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the parent's to handle: it stops us
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the channel
    while True:
        header = _read_exact(stdin, _HEADER.size)
        if header is None:
            return
        body = _read_exact(stdin, _HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            reply: tuple[str, Any] = ("ok", handle(pickle.loads(body)))
        except Exception as exc:  # sent back and re-raised in the parent
            try:
                pickle.dumps(exc)
                reply = ("error", exc)
            except Exception:
                reply = ("error", RuntimeError(f"{type(exc).__name__}: {exc}"))
        payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.write(_HEADER.pack(len(payload)) + payload)
        stdout.flush()
