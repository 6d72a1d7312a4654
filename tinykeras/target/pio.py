"""PlatformIO calls for the PlatformIO boards: ``pio run``, ``pio run -t upload``, ``pio device monitor``.

Offline, PlatformIO retries its registry for about a minute before it fails. So before calling it we check,
quickly, whether it can work: is the board's platform installed under the PlatformIO core directory, are the
project's libraries already fetched, and if not, does a 2.5 s TCP connect to the registry succeed. When
something is missing and the registry is unreachable, a one-line ToolchainError says so and how to fix it;
the rendered project stays where it is.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tinykeras.boards import Board
from tinykeras.errors import ToolchainError

REGISTRY = ("api.registry.platformio.org", 443)
CONNECT_TIMEOUT_S = 2.5


def core_dir() -> Path:
    """PlatformIO's core directory (``PLATFORMIO_CORE_DIR``, default ``~/.platformio``)."""
    return Path(os.environ.get("PLATFORMIO_CORE_DIR", Path.home() / ".platformio"))


def platform_name(spec: str) -> str:
    """The directory name PlatformIO installs a platform spec under.

    >>> platform_name("espressif32")
    'espressif32'
    >>> platform_name("platformio/ststm32@17.0.0")
    'ststm32'
    >>> platform_name("https://github.com/maxgerhardt/platform-raspberrypi.git")
    'raspberrypi'
    """
    name = spec.split("#")[0].rstrip("/").split("/")[-1]
    name = name.split("@")[0]
    name = name.removesuffix(".git").removesuffix(".zip")
    return name.removeprefix("platform-")


def find_pio() -> str:
    """The ``pio`` executable: on PATH, or beside the running Python (a virtualenv). ToolchainError if absent."""
    for exe in ("pio", "platformio"):
        found = shutil.which(exe)
        if found:
            return found
    beside = Path(sys.executable).parent / "pio"
    if beside.exists():
        return str(beside)
    raise ToolchainError("PlatformIO (`pio`) not found; install it with `pip install platformio` "
                         "(or `pip install 'tinykeras[platformio]'`)")


def registry_reachable(address: tuple[str, int] | None = None, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """True when a TCP connection to the PlatformIO registry opens within ``timeout`` seconds."""
    try:
        with socket.create_connection(address or REGISTRY, timeout=timeout):
            return True
    except OSError:
        return False


def missing_offline(board: Board, project_dir: Path) -> list[str]:
    """What PlatformIO would have to download for this project: the platform and/or the libraries."""
    assert board.platformio is not None
    missing = []
    platform = platform_name(board.platformio.platform)
    if not (core_dir() / "platforms" / platform).is_dir():
        missing.append(f"platform '{platform}'")
    if _needs_libraries(project_dir):
        libdeps = Path(project_dir) / ".pio" / "libdeps" / board.name
        if not libdeps.is_dir() or not any(libdeps.iterdir()):
            missing.append("the project's lib_deps (TFLite-Micro library)")
    return missing


def _needs_libraries(project_dir: Path) -> bool:
    ini = Path(project_dir) / "platformio.ini"
    return ini.exists() and "\nlib_deps =" in ini.read_text(encoding="utf-8")


def check_platformio(board: Board, project_dir: Path) -> str:
    """Return the ``pio`` path, or raise ToolchainError at once when PlatformIO would hang offline."""
    if board.kind != "platformio" or board.platformio is None:
        raise ToolchainError(f"board '{board.name}' is not built with PlatformIO (kind = '{board.kind}')")
    pio = find_pio()
    missing = missing_offline(board, project_dir)
    if missing and not registry_reachable():
        host = REGISTRY[0]
        raise ToolchainError(
            f"PlatformIO needs to download {' and '.join(missing)} but {host} is unreachable (offline?); "
            f"connect to the internet once and run `pio run -d {project_dir}` (later builds work offline), "
            f"or copy ~/.platformio from a machine that has it. The project is kept in {project_dir}")
    return pio


def _run(cmd: list[str], what: str, project_dir: Path) -> None:
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        raise ToolchainError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode} ({what}); "
                             f"see the PlatformIO output above. The project is kept in {project_dir}")


def compile_project(board: Board, project_dir: Path) -> list[str]:
    """``pio run -d DIR``: compile the project. Returns the command that ran."""
    cmd = [check_platformio(board, project_dir), "run", "-d", str(project_dir)]
    _run(cmd, "compile", project_dir)
    return cmd


def upload(board: Board, project_dir: Path, port: str | None = None) -> list[str]:
    """``pio run -d DIR -t upload [--upload-port PORT]``: compile (if needed) and flash."""
    cmd = [check_platformio(board, project_dir), "run", "-d", str(project_dir), "-t", "upload"]
    if port:
        cmd += ["--upload-port", port]
    _run(cmd, "upload", project_dir)
    return cmd


def monitor(board: Board, project_dir: Path, port: str | None = None) -> list[str]:
    """``pio device monitor -b BAUD [-p PORT]``: show the board's serial output (interactive, Ctrl-C ends)."""
    cmd = [find_pio(), "device", "monitor", "-b", str(board.baud), "-d", str(project_dir)]
    if port:
        cmd += ["-p", port]
    _run(cmd, "serial monitor", project_dir)
    return cmd
