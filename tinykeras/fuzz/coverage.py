"""Coverage-guided fuzzing of the Python targets with atheris (libFuzzer for Python).

``python -m tinykeras.fuzz.coverage TARGET [libFuzzer flags] [CORPUS_DIR ...]`` runs one target of
:mod:`tinykeras.fuzz.targets` in this process, with tinykeras' own modules instrumented for coverage. An
exception outside the error hierarchy ends the run with a crash file (``-artifact_prefix``), as libFuzzer does.
:func:`run_target` drives that in a child process with a time or execution budget, a seeded corpus and the
target's dictionary, and returns what libFuzzer printed as figures (executions, coverage growth, findings).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# libFuzzer's status lines: "#4096	pulse  cov: 1234 ft: 2345 corp: 56/7890b lim: 4 exec/s: 123 rss: 200Mb"
_STATUS = re.compile(rb"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_DONE = re.compile(rb"^Done (\d+) runs in (\d+) second")
_ARTIFACTS = ("crash-", "leak-", "timeout-", "oom-", "slow-unit-")


def _child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, TINYKERAS_FUZZ_CHILD="1")


def run_target(name: str, work: Path, *, seconds: float | None = 30.0, runs: int | None = None, seed: int = 1,
               corpus: Path | None = None, max_len: int = 1 << 20, timeout_per_input: int = 20) -> dict[str, Any]:
    """Fuzz target ``name`` for ``seconds`` (or ``runs`` executions) in a child process; figures as a dict.

    The corpus grows in ``corpus`` (default ``work/corpus-NAME``), seeded with the target's seeds; findings
    (libFuzzer artifacts) land in ``work/findings-NAME/``.
    """
    from tinykeras.fuzz.targets import TARGETS, dictionary_text

    target = TARGETS[name]
    corpus = corpus or work / f"corpus-{name}"
    seeds = work / f"seeds-{name}"
    findings = work / f"findings-{name}"
    for d in (corpus, seeds, findings):
        d.mkdir(parents=True, exist_ok=True)
    for k, data in enumerate(target.seeds()):
        (seeds / f"seed-{k:03d}").write_bytes(data)
    args = [sys.executable, "-m", "tinykeras.fuzz.coverage", name, f"-seed={seed}", f"-max_len={max_len}",
            f"-timeout={timeout_per_input}", "-rss_limit_mb=3072", f"-artifact_prefix={findings}/",
            "-print_final_stats=1"]
    if target.dictionary:
        dict_file = work / f"{name}.dict"
        dict_file.write_text(dictionary_text(target))
        args.append(f"-dict={dict_file}")
    if runs is not None:
        args.append(f"-runs={runs}")
    if seconds is not None:
        args.append(f"-max_total_time={max(1, int(seconds))}")
    args += [str(corpus), str(seeds)]
    start = time.monotonic()
    limit = (seconds or 0) + 120 + (runs or 0) * 0.05
    try:
        proc = subprocess.run(args, capture_output=True, env=_child_env(), timeout=limit)
        stderr, rc, hung = proc.stderr, proc.returncode, False
    except subprocess.TimeoutExpired as exc:
        stderr, rc, hung = exc.stderr or b"", None, True
    wall = time.monotonic() - start
    artifacts = sorted(p.name for p in findings.iterdir() if p.name.startswith(_ARTIFACTS))
    return {
        "target": name, "description": target.description, "seed": seed, "budget_s": seconds, "runs": runs,
        "wall_s": round(wall, 1), "exit_code": rc, "hung": hung,
        "seeds": len(list(seeds.iterdir())), "corpus": len(list(corpus.iterdir())), **parse_libfuzzer(stderr),
        "findings": artifacts, "findings_dir": str(findings),
        "log_tail": stderr.decode("utf-8", "replace")[-1500:] if (rc not in (0, None) or artifacts) else "",
    }


def parse_libfuzzer(stderr: bytes) -> dict[str, Any]:
    """Executions and the coverage curve from libFuzzer's status lines (atheris prints the same ones)."""
    growth: list[dict[str, Any]] = []
    executions = 0
    for line in stderr.splitlines():
        m = _STATUS.match(line)
        if m:
            executions = int(m.group(1))
            growth.append({"execs": executions, "event": m.group(2).decode(), "cov": int(m.group(3)),
                           "ft": int(m.group(4)), "corpus": int(m.group(5))})
        d = _DONE.match(line)
        if d:
            executions = int(d.group(1))
    inited = next((g for g in growth if g["event"] == "INITED"), growth[0] if growth else None)
    final = growth[-1] if growth else None
    return {"executions": executions, "cov_initial": inited["cov"] if inited else None,
            "cov_final": final["cov"] if final else None, "ft_final": final["ft"] if final else None,
            "growth": _thin(growth)}


def _thin(growth: list[dict[str, int]], keep: int = 40) -> list[dict[str, int]]:
    """At most ``keep`` evenly spaced points of the coverage curve (the JSON stays small)."""
    if len(growth) <= keep:
        return growth
    step = len(growth) / keep
    return [growth[int(k * step)] for k in range(keep)] + [growth[-1]]


def replay(name: str, paths: list[Path]) -> list[dict[str, str]]:
    """Run each file through target ``name`` in this process; the ones that raise (regression check)."""
    from tinykeras.errors import TinyKerasError
    from tinykeras.fuzz.targets import TARGETS

    failures = []
    for path in paths:
        try:
            TARGETS[name].run(path.read_bytes())
        except TinyKerasError:
            pass
        except Exception as exc:  # noqa: BLE001 - any other exception is exactly what this looks for
            failures.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"[:300]})
    return failures


def main(argv: list[str]) -> None:
    """Child entry point: instrument tinykeras, then hand the libFuzzer flags to atheris."""
    import atheris

    if len(argv) < 2:
        raise SystemExit("usage: python -m tinykeras.fuzz.coverage TARGET [libFuzzer flags] [CORPUS ...]")
    name = argv[1]
    with atheris.instrument_imports(include=["tinykeras"], exclude=["tinykeras.fuzz"]):
        from tinykeras.fuzz import targets
        targets.warm_imports()
    from tinykeras.errors import TinyKerasError

    run = targets.TARGETS[name].run

    def one_input(data: bytes) -> None:
        try:
            run(data)
        except TinyKerasError:
            pass

    atheris.Setup([argv[0], *argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
