"""One error hierarchy. Every message names the thing at fault and what to do about it.

The CLI prints ``str(error)`` on one line to stderr and exits with ``error.exit_code``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TinyKerasError(Exception):
    """Base of every error tinykeras raises on purpose."""

    exit_code = 1


class InputFileError(TinyKerasError):
    """A file the user named is missing or unreadable."""

    exit_code = 2


class ModelError(TinyKerasError):
    """A model (Keras or .tflite) is corrupt, of the wrong kind, or cannot be converted."""

    exit_code = 3


class UnsupportedOpError(ModelError):
    """The model uses operators the chosen runtime does not provide."""

    def __init__(self, ops: list[tuple[int, str]], runtime: str, hint: str = "", message: str | None = None):
        self.ops = ops
        self.runtime = runtime
        if message is None:
            listed = ", ".join(f"{name} (operator #{index})" for index, name in ops)
            message = f"{runtime} does not support: {listed}"
            if hint:
                message += f". {hint}"
        super().__init__(message)


class DataError(TinyKerasError):
    """Input data (npz/npy/CSV/WAV) is missing, malformed or does not match the model."""

    exit_code = 4


class BoardError(TinyKerasError):
    """An unknown board or an invalid board file."""

    exit_code = 5


class DoesNotFitError(TinyKerasError):
    """The model or its arena is larger than the board's flash or RAM."""

    exit_code = 6


class ToolchainError(TinyKerasError):
    """An external tool (PlatformIO, arm-none-eabi-gcc, qemu-system-arm, gcc) is missing or failed."""

    exit_code = 7


class SerialError(TinyKerasError):
    """A serial port could not be opened, or the device stopped talking."""

    exit_code = 8


class IncompleteRunError(SerialError):
    """The benchmark ended before all runs were reported; a partial report was saved."""

    exit_code = 9


class OutputError(TinyKerasError):
    """An output cannot be written: read-only or forbidden location, or a directory tinykeras did not make."""

    exit_code = 10


class DiskFullError(OutputError):
    """The disk (or quota) filled up while writing an output; nothing half-written was left behind."""

    exit_code = 11


class ThresholdError(TinyKerasError):
    """A measured figure missed the threshold the user set (``validate --min-top1``, ``--max-rmse``, ...)."""

    exit_code = 12


class TuneError(TinyKerasError):
    """A model search could not run, or no trial completed."""

    exit_code = 13


def did_you_mean(word: str, known: Iterable[str], prefix: str = "") -> str:
    """``"; did you mean 'PREFIX+closest'?"`` for the known name closest to ``word``, or "" when none is close.
    The one "did you mean" of tinykeras' messages."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{prefix}{close[0]}'?" if close else ""
