"""Filesystem helpers: outputs appear complete or not at all, also when they replace an earlier output.

An output directory is built in a temporary sibling and swapped in only when complete: with Linux's
``renameat2(RENAME_EXCHANGE)`` the old and new trees trade places in one atomic step, elsewhere by two
renames (old away, new in). The old tree is then deleted, so no stale file survives a rebuild. Every
output directory carries a marker file (:data:`MARKER`); tinykeras refuses to replace a non-empty directory
without it unless ``--force`` (:func:`forcing`), and never writes into ``/`` or a home directory.
Leftovers of an interrupted run (``.NAME.tmp-PID-*``, ``.NAME.old-PID-*``) are removed (or, if the swap
was cut between its two renames, put back) by the next run once their process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tinykeras.errors import DiskFullError, OutputError

MARKER = ".tinykeras-output"
_MARKER_TEXT = "This directory is a tinykeras output; tinykeras replaces it as a whole when it rebuilds it.\n"
_FORCE = [False]


@contextlib.contextmanager
def forcing(on: bool = True) -> Iterator[None]:
    """While active, output directories without the tinykeras marker may be replaced (``--force``)."""
    previous = _FORCE[0]
    _FORCE[0] = previous or on
    try:
        yield
    finally:
        _FORCE[0] = previous


def os_error(exc: OSError, what: str) -> OutputError:
    """One line (and a distinct exit code) for a write that failed: full disk, read-only, no permission."""
    where = exc.filename or what
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"{where}: no space left on the device (or quota exceeded) while writing {what}; "
                             "free some space and rerun (nothing was left half-written)")
    if exc.errno == errno.EROFS:
        return OutputError(f"{where}: read-only file system; write {what} elsewhere with -o")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return OutputError(f"{where}: permission denied writing {what}; choose a directory you can write with -o")
    return OutputError(f"{where}: cannot write {what} ({exc.strerror or exc})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_location(final: Path) -> None:
    """Refuse ``/``, home directories and their parents, and paths that exist but are not directories."""
    final = Path(final).resolve()
    homes = {Path.home().resolve(), Path("/root"), Path("/home")}
    home_root = Path("/home")
    if final == Path(final.anchor) or final in homes or final.parent == home_root or \
            any(home.is_relative_to(final) for home in homes if home != home_root):
        raise OutputError(f"{final}: refusing to write an output into / or a home directory; "
                          "give a subdirectory with -o (e.g. -o out/project)")
    if final.exists() and not final.is_dir():
        raise OutputError(f"{final}: exists and is not a directory; give a directory with -o")


def check_output_dir(final: Path | str, replace: bool = True) -> None:
    """What :func:`atomic_output_dir` refuses, checked up front: commands call it before any slow work, so a bad
    ``-o`` fails in a second, not after training."""
    final = Path(final).resolve()
    check_output_location(final)
    if replace and final.is_dir() and not _FORCE[0] and not _is_our_output(final):
        raise OutputError(f"{final}: exists and is not a tinykeras output (no {MARKER} file); refusing to "
                          "replace it. Choose a new -o directory, or add --force to replace it as a whole")


def check_output_file(path: Path | str) -> None:
    """Refuse, before any work, a file output (``-o report.json``) that is a directory or sits under a file."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name for this output (e.g. {path}/report.json)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{path}: {parent} exists and is not a directory; choose another path")
            break


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_leftovers(final: Path) -> None:
    """Remove (or restore) what interrupted runs left beside ``final``; skip those of live processes."""
    for kind in ("old", "tmp"):
        for item in sorted(final.parent.glob(f".{final.name}.{kind}-*")):
            parts = item.name[len(f".{final.name}.{kind}-"):].split("-", 1)
            if not parts[0].isdigit() or _pid_alive(int(parts[0])):
                continue
            if kind == "old" and not final.exists() and (item / "tree").is_dir():
                os.replace(item / "tree", final)  # cut between "old away" and "new in": put the old one back
            shutil.rmtree(item, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _is_our_output(final: Path) -> bool:
    return (final / MARKER).is_file() or not any(final.iterdir())


@contextlib.contextmanager
def atomic_output_dir(final: Path | str, overwrite: bool = True, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; put it in place only if the block succeeds.

    ``replace`` (the default): ``final`` becomes exactly what the block wrote (plus the marker file); an
    earlier output there is swapped out atomically and deleted. A non-empty ``final`` without the marker
    is refused (OutputError) unless :func:`forcing` is active. ``replace=False`` adds the block's files
    to an existing directory instead (``carray`` into a firmware source folder), each file moved atomically.
    On any exception the temporary directory is removed and ``final`` is left as it was.
    """
    final = Path(final).resolve()
    check_output_dir(final, replace=replace)
    if final.exists() and not overwrite:
        raise OutputError(f"{final}: already exists")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _clean_leftovers(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the result should look like any other directory
    except OSError as exc:
        raise os_error(exc, f"the output directory {final}") from exc
    try:
        yield tmp
        if replace:
            (tmp / MARKER).write_text(_MARKER_TEXT)
            _commit(tmp, final)
        else:
            _merge(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise os_error(exc, f"the output directory {final}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        return
    if _exchange(tmp, final):  # tmp now holds the old tree
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-{os.getpid()}-", dir=final.parent))
    os.replace(final, old / "tree")
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _merge(tmp: Path, final: Path) -> None:
    final.mkdir(parents=True, exist_ok=True)
    for item in sorted(tmp.rglob("*")):
        if item.is_file():
            dest = final / item.relative_to(tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(item, dest)
    shutil.rmtree(tmp, ignore_errors=True)


def _write_atomic(path: Path | str, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise os_error(exc, str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask like any file
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise os_error(exc, str(path)) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    _write_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory."""
    _write_atomic(path, data)
