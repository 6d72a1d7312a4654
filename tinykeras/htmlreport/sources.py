"""Read the JSON files other commands write (from ``--from`` folders or files) and sort them by kind.

A file is recognised by its content, not its name, so renamed outputs (``bench -o esp32.json``) work:
``inspect --json``, ``build`` (tinykeras_build.json), ``bench``/``build --run`` (bench.json), ``profile``,
``validate -o``, ``emulate -o``, ``tune`` (tune.json), ``bench compare`` inputs and the report's own ``fit.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinykeras.errors import InputFileError

KINDS = ("inspect", "fit", "build", "bench", "profile", "validate", "emulate", "tune")
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 3


@dataclass
class Source:
    """One JSON file the page shows figures from."""

    kind: str
    path: str      # as shown on the page (relative to the page where possible)
    data: dict[str, Any]


@dataclass
class Sources:
    """Every recognised file, by kind, in a stable order (sorted paths)."""

    items: list[Source] = field(default_factory=list)
    settings: dict[str, Any] | None = None
    settings_path: str | None = None

    def of(self, kind: str) -> list[Source]:
        return [s for s in self.items if s.kind == kind]

    def first(self, kind: str) -> Source | None:
        found = self.of(kind)
        return found[0] if found else None


def kind_of(data: Any) -> str | None:
    """Which command wrote this JSON object, from its keys; None for anything else."""
    if not isinstance(data, dict):
        return None
    keys = set(data)
    if {"ops", "totals", "inputs", "outputs"} <= keys:
        return "inspect"
    if {"boards", "aot_plan"} <= keys:
        return "fit"
    if {"trials", "front_latency", "objective"} <= keys:
        return "tune"
    if {"ops", "profile_total", "unit"} <= keys:
        return "profile"
    if {"protocol", "latency_us", "runs"} <= keys:
        return "bench"
    if {"board", "runtime", "fit", "arena", "model_sha256"} <= keys:
        return "build"
    if {"outputs", "samples", "passed", "where"} <= keys:
        return "validate"
    if {"runtime", "samples", "bit_exact", "agreement_vs"} <= keys:
        return "emulate"
    return None


def display_path(path: Path, base: Path) -> str:
    """``path`` relative to the page's folder (posix), so the page names files it can be moved along with."""
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _json_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if len(rel.parts) <= MAX_DEPTH and not any(p.startswith(".") for p in rel.parts) and path.is_file():
            found.append(path)
    return found


def load_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise InputFileError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB; not a tinykeras output")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputFileError(f"{path}: not readable JSON ({exc.__class__.__name__}: {str(exc)[:120]}); "
                             "pass the output folders of tinykeras commands to --from") from exc


def load_sources(paths: list[Path], base: Path) -> Sources:
    """Every recognised JSON file under ``paths`` (folders searched three levels deep, files read as is)."""
    out = Sources()
    seen: set[Path] = set()
    for root in paths:
        if not root.exists():
            raise InputFileError(f"--from {root}: no such file or folder; give the output folder of a tinykeras "
                                 "command (build -o, profile -o, tune -o ...) or one of its JSON files")
        found = 0
        for path in _json_files(root):
            if path.resolve() in seen:
                continue
            data = load_json(path) if path.suffix == ".json" or root.is_file() else None
            kind = kind_of(data)
            if kind is None:
                if root.is_file():
                    raise InputFileError(f"--from {root}: not an output of a tinykeras command (expected "
                                         f"the JSON of one of: {', '.join(KINDS)})")
                continue
            seen.add(path.resolve())
            out.items.append(Source(kind, display_path(path, base), data))
            found += 1
        if not found:
            raise InputFileError(f"--from {root}: holds no JSON written by a tinykeras command ({', '.join(KINDS)}); "
                                 "give the folder a command wrote with -o")
    return out
