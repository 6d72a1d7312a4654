"""Interrupted rebuilds: kill ``tinykeras build`` at random moments while it replaces a project with
another model's, and check that the project is always one whole build and nothing is left beside it."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tinykeras.fuzz import child_env


def _tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _build(recipe: str, out: Path, board: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tinykeras", "build", "--board", board, "--recipe", recipe,
                             "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())


def run_rebuilds(work: Path, count: int = 40, seed: int = 0, board: str = "qemu_m4") -> dict[str, Any]:
    """Alternate kws and gesture builds into one project, each killed (SIGKILL or SIGTERM) at a random time.

    A project is "mixed" when its files equal neither clean reference build; "leftovers" are temporary or
    old trees beside it once a later build has finished.
    """
    rng = random.Random(seed)
    work = Path(work)
    refs, durations = {}, []
    for recipe in ("kws", "gesture"):
        out = work / f"ref-{recipe}"
        start = time.monotonic()
        if _build(recipe, out, board).wait(timeout=600) != 0:
            raise RuntimeError(f"reference build of {recipe} failed")
        durations.append(time.monotonic() - start)
        refs[recipe] = _tree(out)
    window = max(durations)  # kill anywhere from start-up to just after the usual end
    project = work / "project"
    mixed, states, killed, finished = 0, {"kws": 0, "gesture": 0, "absent": 0}, 0, 0
    examples: list[str] = []
    for k in range(count):
        recipe = ("kws", "gesture")[k % 2]
        proc = _build(recipe, project, board)
        time.sleep(rng.uniform(0.2 * window, 0.95 * window))
        if proc.poll() is None:
            os.kill(proc.pid, rng.choice([signal.SIGKILL, signal.SIGTERM]))
            killed += 1
        else:
            finished += 1
        proc.wait(timeout=120)
        tree = _tree(project)
        state = next((name for name, ref in refs.items() if tree == ref), "absent" if not tree else None)
        if state is None:
            mixed += 1
            if len(examples) < 5:
                examples.append(f"run {k}: files {sorted(tree)[:6]}")
        else:
            states[state] += 1
    # one clean build at the end cleans what killed runs left
    if _build("kws", project, board).wait(timeout=600) != 0:
        raise RuntimeError("final build failed")
    leftovers = sorted(p.name for p in work.iterdir() if p.name.startswith(".project."))
    return {"rebuilds": count, "killed": killed, "finished_before_kill": finished, "mixed_projects": mixed,
            "states": states, "leftovers_after_next_build": leftovers, "leftovers": len(leftovers),
            "board": board, "seed": seed, "build_seconds": round(window, 2), "examples": examples}
