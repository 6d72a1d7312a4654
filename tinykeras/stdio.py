"""Capture what native code (TensorFlow, TFLite-Micro) writes straight to file descriptor 2."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class CapturedText:
    """Filled with the captured text when the ``capture_native_stderr`` block ends."""

    text: str = ""


@contextlib.contextmanager
def capture_native_stderr() -> Iterator[CapturedText]:
    """Redirect fd 2 into a temporary file for the block; the text is in ``.text`` afterwards.

    With ``TINYKERAS_DEBUG`` set nothing is hidden: the text is also echoed to the real stderr.
    """
    captured = CapturedText()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
            if os.environ.get("TINYKERAS_DEBUG"):
                sys.stderr.write(captured.text)
