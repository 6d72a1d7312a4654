"""Open a page in headless Chromium as a person would (from disk, no network, a fresh profile): the DOM after
its scripts ran, every console message, and optionally a screenshot. For the tests and scripts/report_sample.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tinykeras.errors import ToolchainError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars")
CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)$")


@dataclass
class PageLoad:
    dom: str
    console: list[str]     # every console message (log, warning, error, uncaught exception, CSP violation)


def find_browser() -> str | None:
    """Path of a Chromium (``TINYKERAS_CHROMIUM`` first), or None."""
    candidates = [os.environ.get("TINYKERAS_CHROMIUM", "")] + list(BROWSERS)
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


def _run(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="tk-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ToolchainError(f"{browser} did not finish loading the page in {timeout:.0f} s") from exc


def load(page: Path, timeout: float = 90.0) -> PageLoad:
    """The DOM of ``page`` after its scripts ran, and the console messages it produced."""
    browser = find_browser()
    if browser is None:
        raise ToolchainError("no Chromium found (apt-get install chromium, or set TINYKERAS_CHROMIUM)")
    done = _run(browser, ["--dump-dom", Path(page).resolve().as_uri()], timeout)
    console = [m.group(1) for line in done.stderr.splitlines() if (m := CONSOLE.search(line))]
    if done.returncode != 0 or "<html" not in done.stdout:
        raise ToolchainError(f"{browser} could not load {page} (exit {done.returncode}): {done.stderr[-300:]}")
    return PageLoad(done.stdout, console)


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 1600, timeout: float = 90.0) -> Path:
    """A PNG of the top ``width`` x ``height`` pixels of ``page``."""
    browser = find_browser()
    if browser is None:
        raise ToolchainError("no Chromium found (apt-get install chromium, or set TINYKERAS_CHROMIUM)")
    png = Path(png).resolve()
    done = _run(browser, [f"--window-size={width},{height}", f"--screenshot={png}", Path(page).resolve().as_uri()],
                timeout)
    if done.returncode != 0 or not png.is_file():
        raise ToolchainError(f"{browser} wrote no screenshot of {page} (exit {done.returncode}): {done.stderr[-300:]}")
    return png
