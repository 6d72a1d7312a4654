"""The consoles commands print tables on: the terminal's width, or a wide one when piped (no cut columns)."""

from __future__ import annotations

import os
import sys
from typing import Any

PIPED_WIDTH = 200  # rich assumes 80 columns when the output is not a terminal and cuts table cells to fit


def console(stderr: bool = False, **kwargs: Any) -> Any:
    """A rich Console for ``stdout`` (or ``stderr``): as wide as the terminal, or PIPED_WIDTH columns when the
    stream is a pipe or file (``COLUMNS`` still wins)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if "width" not in kwargs and not os.environ.get("COLUMNS") and not stream.isatty():
        kwargs["width"] = PIPED_WIDTH
    return Console(stderr=stderr, **kwargs)
