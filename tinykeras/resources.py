"""Locate the data trees (boards, firmware templates, shipped models) in a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the directory of data tree ``name`` (``boards``, ``libraries``, ``firmware_templates``, ``models``)."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tinykeras data directory '{name}' is missing from the installation")


def boards_dir() -> Path:
    return data_dir("boards")


def templates_dir() -> Path:
    return data_dir("firmware_templates")


def models_dir() -> Path:
    return data_dir("models")


def libraries_dir() -> Path:
    return data_dir("libraries")
