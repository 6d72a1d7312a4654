#!/usr/bin/env python3
"""The long hostile-input campaign (issue 13); writes JSON. The test suite runs a bounded slice of it.

    python scripts/fuzz.py models --count 6000 -o fuzz_models.json
    python scripts/fuzz.py serial -o fuzz_serial.json
    python scripts/fuzz.py rebuilds --count 40 -o fuzz_rebuilds.json
    python scripts/fuzz.py all -o fuzz.json

models:   seeded mutants (byte flips, truncations, flatbuffer-aware changes) of the shipped models (and the
          MLPerf Tiny reference models when TINYKERAS_REFERENCE_MODELS names their folder) through inspect,
          the aot generator and the TFLM host interpreter: clean errors / accepted / internal errors / hangs
          per stage, contained native crashes, peak memory.
serial:   every hostile-board scenario through the real `tinykeras bench` CLI in a child process: status,
          exit code, session seconds (from connect to hang-up), peak RSS of the child.
rebuilds: builds killed mid-way while replacing a project with another model's: mixed projects, leftovers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def base_models() -> list[tuple[str, bytes]]:
    paths = sorted(REPO.glob("models/*/model.tflite"))
    ref = os.environ.get("TINYKERAS_REFERENCE_MODELS")
    if ref:
        paths += sorted(Path(ref).glob("*.tflite"))
    return [(str(p.relative_to(REPO) if p.is_relative_to(REPO) else p.name), p.read_bytes()) for p in paths]


def models(count: int, seed: int, hang_s: float) -> dict:
    from tinykeras.fuzz.campaign import run_models

    bases = base_models()
    result = run_models([data for _, data in bases], count, seed=seed, hang_s=hang_s)
    result["bases"] = [name for name, _ in bases]
    result["targets_met"] = (result["internal_errors"] == 0 and result["hangs"] == 0 and result["crashes"] == 0
                             and max(result["peak_rss"].values()) < 1024)
    return result


def serial(timeout: float) -> dict:
    from tinykeras.fuzz.serial_server import SCENARIOS, run_scenario

    with tempfile.TemporaryDirectory(prefix="tinykeras-fuzz-serial-") as work:
        rows = [run_scenario(s, Path(work), timeout=timeout) for s in SCENARIOS]
    return {
        "scenarios": len(rows), "timeout_s": timeout,
        "clean_labelled": sum(r["ok"] for r in rows), "in_time": sum(r["in_time"] for r in rows),
        "max_session_s": max(r["session_s"] or 0 for r in rows),
        "max_peak_rss_mb": max(r["peak_rss_mb"] or 0 for r in rows),
        "peak_unknown": sum(r["peak_rss_mb"] is None for r in rows),
        "targets_met": all(r["ok"] and r["in_time"] and (r["peak_rss_mb"] or 1e9) < 200 for r in rows),
        "rows": rows,
    }


def rebuilds(count: int, seed: int) -> dict:
    from tinykeras.fuzz.rebuilds import run_rebuilds

    with tempfile.TemporaryDirectory(prefix="tinykeras-fuzz-rebuilds-") as work:
        result = run_rebuilds(Path(work), count=count, seed=seed)
    result["targets_met"] = result["mixed_projects"] == 0 and result["leftovers"] == 0
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["models", "serial", "rebuilds", "all"])
    parser.add_argument("--count", type=int, help="mutants (models, default 6000) or rebuilds (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang", type=float, default=10.0, help="seconds after which a model counts as a hang")
    parser.add_argument("--timeout", type=float, default=2.0, help="bench --timeout for the serial scenarios")
    parser.add_argument("-o", "--out", type=Path, default=Path("fuzz.json"))
    args = parser.parse_args()
    start = time.monotonic()
    out: dict = {"command": " ".join(["scripts/fuzz.py", *sys.argv[1:]])}
    if args.what in ("models", "all"):
        out["models"] = models(args.count or 6000, args.seed, args.hang)
    if args.what in ("serial", "all"):
        out["serial"] = serial(args.timeout)
    if args.what in ("rebuilds", "all"):
        out["rebuilds"] = rebuilds(args.count if args.what == "rebuilds" and args.count else 40, args.seed)
    out["wall_s"] = round(time.monotonic() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    summary = {k: {kk: vv for kk, vv in v.items() if kk not in ("rows", "examples")} if isinstance(v, dict) else v
               for k, v in out.items()}
    print(json.dumps(summary, indent=2))
    met = all(v.get("targets_met", True) for v in out.values() if isinstance(v, dict))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
