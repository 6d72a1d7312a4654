#!/usr/bin/env python3
"""The long hostile-input campaign (issue 13); writes JSON. The test suite runs a bounded slice of it.

    python scripts/fuzz.py models --count 6000 -o fuzz_models.json
    python scripts/fuzz.py serial -o fuzz_serial.json
    python scripts/fuzz.py rebuilds --count 40 -o fuzz_rebuilds.json
    python scripts/fuzz.py all -o fuzz.json
    python scripts/fuzz.py coverage --seconds 600 -o fuzz_coverage.json     # atheris, every Python target
    python scripts/fuzz.py cfuzz --seconds 300 -o fuzz_c.json               # libFuzzer + ASan/UBSan on generated C
    python scripts/fuzz.py soak -o fuzz_soak.json                           # 100,000 records + exchanges

models:   seeded mutants (byte flips, truncations, flatbuffer-aware changes) of the shipped models (and the
          MLPerf Tiny reference models of tests/data, or of TINYKERAS_REFERENCE_MODELS when set) through inspect,
          the aot generator and the TFLM host interpreter: clean errors / accepted / internal errors / hangs
          per stage, contained native crashes, peak memory.
serial:   every hostile-board scenario through the real `tinykeras bench` CLI in a child process: status,
          exit code, session seconds (from connect to hang-up), peak RSS of the child.
rebuilds: builds killed mid-way while replacing a project with another model's: mixed projects, leftovers.
coverage: coverage-guided (atheris/libFuzzer) runs of every target of tinykeras.fuzz.targets (model reader +
          verifier, aot generator, @tk and MLPerf parsers, board/library/settings/labels loaders) for a time
          budget each: executions, coverage growth, corpus size, findings (crash files to turn into tests).
cfuzz:    the generated C of each base model under clang libFuzzer + ASan + UBSan, then its corpus compared
          byte for byte with the TFLM host interpreter (sanitizer build).
soak:     100,000 @tk records (sessions of 10,000, noise lines mixed in) and 100,000 MLPerf exchanges through
          the real readers: memory growth, slowdown, every record accounted for.
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
    paths += sorted(Path(ref).glob("*.tflite")) if ref else sorted(REPO.glob("tests/data/reference_models/*.tflite"))
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


def coverage(seconds: float, seed: int, work: Path, targets: list[str]) -> dict:
    from tinykeras.fuzz.coverage import run_target

    rows = []
    for name in targets:
        row = run_target(name, work, seconds=seconds, seed=seed)
        print(f"  {name}: {row['executions']:,} executions, cov {row['cov_initial']} -> {row['cov_final']}, "
              f"{len(row['findings'])} findings", file=sys.stderr)
        rows.append(row)
    return {"seconds_per_target": seconds, "seed": seed, "work": str(work),
            "executions": sum(r["executions"] for r in rows), "findings": sum(len(r["findings"]) for r in rows),
            "targets_met": all(not r["findings"] and r["exit_code"] == 0 for r in rows), "rows": rows}


def cfuzz(seconds: float, seed: int, work: Path, qemu_boards: tuple[str, ...]) -> dict:
    from tinykeras.fuzz.cfuzz import fuzz_model
    from tinykeras.inspect import inspect_bytes

    rows = []
    for name, data in base_models():
        label = Path(name).parent.name if name.startswith("models/") else Path(name).stem
        row = fuzz_model(data, inspect_bytes(data, path=name), work, name=label, seconds=int(seconds), seed=seed,
                         qemu_boards=qemu_boards)
        print(f"  {label}: {row['executions']:,} executions, {len(row['sanitizer_findings'])} sanitizer findings, "
              f"{row['mismatches']} mismatches in {row['values']:,} values", file=sys.stderr)
        rows.append(row)
    return {"seconds_per_model": seconds, "seed": seed, "work": str(work),
            "qemu_boards": list(qemu_boards),
            "targets_met": all(not r["sanitizer_findings"] and r["bit_exact"] is not False and r["exit_code"] == 0
                               and all(q["bit_exact"] for q in r.get("qemu", {}).values()) for r in rows),
            "rows": rows}


def soak(records: int, exchanges: int) -> dict:
    from tinykeras.fuzz.soak import soak_mlperf, soak_tk

    tk, ml = soak_tk(records), soak_mlperf(exchanges)
    return {"tk": tk, "mlperf": ml, "targets_met": tk["accounted"] and tk["flat"] and ml["accounted"] and ml["flat"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["models", "serial", "rebuilds", "all", "coverage", "cfuzz", "soak"])
    parser.add_argument("--seconds", type=float, default=60.0, help="coverage/cfuzz: budget per target or model")
    parser.add_argument("--targets", default="all", help="coverage: comma-separated target names (default all)")
    parser.add_argument("--work", type=Path, help="coverage/cfuzz: corpus and findings folder (default: a temp dir)")
    parser.add_argument("--qemu", default="qemu_m4", help="cfuzz: emulated boards that rerun the corpus ('' none)")
    parser.add_argument("--records", type=int, default=100_000, help="soak: @tk run records")
    parser.add_argument("--exchanges", type=int, default=100_000, help="soak: MLPerf infer exchanges")
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
    if args.what in ("coverage", "cfuzz"):
        from tinykeras.fuzz.targets import TARGETS

        work = args.work or Path(tempfile.mkdtemp(prefix="tinykeras-fuzz-"))
        if args.what == "coverage":
            names = sorted(TARGETS) if args.targets == "all" else args.targets.split(",")
            out["coverage"] = coverage(args.seconds, args.seed or 1, work, names)
        else:
            out["cfuzz"] = cfuzz(args.seconds, args.seed or 1, work, tuple(b for b in args.qemu.split(",") if b))
    if args.what == "soak":
        out["soak"] = soak(args.records, args.exchanges)
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
