"""Signals and dead boards: QEMU never outlives tinykeras, and a dead board fails `build --run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import requires_tool

REPO = Path(__file__).resolve().parents[1]


def _children(pid: int, comm: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == pid and name.startswith(comm):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _start_long_run(tmp_path: Path) -> tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    proc = subprocess.Popen([sys.executable, "-m", "tinykeras", "build", "--board", "qemu_m4", "--runtime", "aot",
                             "--recipe", "kws", "--run", "--runs", "10000", "-o", str(tmp_path / "p")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        qemu = _children(proc.pid, "qemu-system")
        if qemu:
            time.sleep(1.0)  # let it run a little
            return proc, qemu[0]
        if proc.poll() is not None:
            pytest.fail(f"build ended early: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("QEMU did not start")


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@requires_tool("qemu-system-arm", "arm-none-eabi-gcc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_qemu_dies_with_tinykeras(tmp_path: Path, sig: int) -> None:
    proc, qemu = _start_long_run(tmp_path)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert _gone(qemu), f"QEMU {qemu} still running after {signal.Signals(sig).name} to tinykeras"
    assert proc.returncode == (128 + sig if sig == signal.SIGTERM else -sig)


@requires_tool("qemu-system-arm", "arm-none-eabi-gcc")
def test_dead_board_fails_build_run(tmp_path: Path) -> None:
    proc, qemu = _start_long_run(tmp_path)
    os.kill(qemu, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 9, err.decode()
    assert "incomplete benchmark" in err.decode()
