"""Fuzzing support that ships with tinykeras: a seeded flatbuffer-aware model mutator (``models``), a
hostile serial "board" on a local TCP socket (``serial_server``) and the campaign driver behind
``scripts/fuzz.py`` (``campaign``). The test suite runs a bounded slice of each."""

from __future__ import annotations

import os
from pathlib import Path


def child_env() -> dict[str, str]:
    """Environment for ``python -m tinykeras`` children: they import this very tinykeras."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, TERM="dumb", COLUMNS="120")
