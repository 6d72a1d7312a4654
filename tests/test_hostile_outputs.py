"""Outputs: all-or-nothing also when replacing, refused where they do not belong, umask, full disks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinykeras import fsutil
from tinykeras.cli import cli
from tinykeras.errors import DiskFullError, OutputError


def _build(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["build", "--board", "qemu_m4", *args])


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_rebuild_with_another_model_leaves_no_stale_files(tmp_path: Path, reference_models: dict[str, Path]) -> None:
    project, clean = tmp_path / "p", tmp_path / "clean"
    ad01 = str(reference_models["ad01_int8"])
    assert _build("--recipe", "kws", "-o", str(project)).exit_code == 0
    kws_files = set(_tree(project))
    assert _build("--model", ad01, "-o", str(project)).exit_code == 0
    assert _build("--model", ad01, "-o", str(clean)).exit_code == 0
    assert _tree(project) == _tree(clean)  # exactly a fresh ad01 build: kws' front end is gone
    assert kws_files != set(_tree(clean))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean", "p"]  # nothing left beside them


@pytest.mark.parametrize("where", ["/", "home", "file"])
def test_refused_locations(tmp_path: Path, where: str) -> None:
    target = {"/": "/", "home": str(Path.home()), "file": str(tmp_path / "f")}[where]
    (tmp_path / "f").write_text("x")
    result = _build("-o", target)
    assert result.exit_code == 10, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_foreign_directory_needs_force(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = _build("-o", str(mine))
    assert result.exit_code == 10 and "--force" in result.stderr
    assert (mine / "notes.txt").read_text() == "keep me"
    assert _build("-o", str(mine), "--force").exit_code == 0
    assert not (mine / "notes.txt").exists() and (mine / fsutil.MARKER).is_file()
    assert _build("-o", str(mine)).exit_code == 0  # now it is ours: no --force needed


def test_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fsutil.write_text_atomic(tmp_path / "a.json", "{}")
        assert _build("-o", str(tmp_path / "p")).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    for p in (tmp_path / "p").rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o755 if p.is_dir() else 0o644), p


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DiskFullError, match="no space left"):
        with fsutil.atomic_output_dir(tmp_path / "out") as tmp:
            (tmp / "a.txt").write_text("partial")
            with open("/dev/full", "wb") as handle:
                handle.write(b"x" * 4096)
                handle.flush()
    assert list(tmp_path.iterdir()) == []
    assert DiskFullError.exit_code != OutputError.exit_code


def test_swap_cut_between_renames_is_restored(tmp_path: Path) -> None:
    final = tmp_path / "p"
    with fsutil.atomic_output_dir(final) as tmp:
        (tmp / "a").write_text("old")
    dead = tmp_path / ".p.old-999999999-x"  # a process that no longer exists moved it away and died
    dead.mkdir()
    os.replace(final, dead / "tree")
    with pytest.raises(RuntimeError):
        with fsutil.atomic_output_dir(final):
            raise RuntimeError("interrupted")
    assert (final / "a").read_text() == "old" and not dead.exists()


def test_interrupted_rebuilds_never_mix(tmp_path: Path) -> None:
    """CI slice of scripts/fuzz.py rebuilds: builds killed while replacing a project."""
    from tinykeras.fuzz.rebuilds import run_rebuilds

    result = run_rebuilds(tmp_path, count=6, seed=3)
    assert result["mixed_projects"] == 0 and result["leftovers"] == 0, result
