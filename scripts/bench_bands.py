"""Row bands vs the per-tensor plan (tinykeras/aot/bands.py): arena, recomputed MACs, qemu_m4 instructions and
flash of the aot runtime, both plans, on the MobileNet stand-ins and the shipped models; writes JSON.

    PYTHONPATH=. python scripts/bench_bands.py -o docs/bench_bands.json [--models mobilenet_v1_025_96 ...]
        [--tflite built/*.tflite]   (--models with no names: only the --tflite files)

The per-tensor figures come from the same generator with row bands switched off
(``generator.MIN_BAND_SAVING`` above 1: no band plan can qualify).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import tinykeras.aot.generator as generator  # noqa: E402
from tinykeras.inspect import inspect_bytes  # noqa: E402


def _qemu(data: bytes, info: Any, name: str) -> dict[str, Any]:
    from tinykeras import pipeline
    from tinykeras.errors import TinyKerasError, ToolchainError
    from tinykeras.target import qemu

    try:
        qemu.check_toolchain()
        qemu.check_qemu()
    except ToolchainError as exc:
        return {"skipped": str(exc)}
    with tempfile.TemporaryDirectory(prefix="tk-bands-") as tmp:
        try:
            m = pipeline.measure(data, info, Path(tmp), name=name, runs=1, warmup=0, timeout=600.0)
        except TinyKerasError as exc:
            return {"error": str(exc)}
    return {"instructions_per_inference": m.get("instructions_per_inference"), "sizes": m.get("sizes"),
            "arena_used": m.get("arena_used")}


def measure(name: str, data: bytes, with_qemu: bool) -> dict[str, Any]:
    from tinykeras import aot

    info = inspect_bytes(data)
    saving = generator.MIN_BAND_SAVING
    out: dict[str, Any] = {"macs": info.macs}
    for plan in ("per_tensor", "chosen"):
        generator.MIN_BAND_SAVING = 2.0 if plan == "per_tensor" else saving
        try:
            program = aot.generate(data, info)
            bands = program.bands
            out[plan] = {"arena_bytes": program.arena_bytes,
                         "bands": bands.describe() if bands else None}
            if with_qemu:
                out[plan]["qemu_m4"] = _qemu(data, info, name)
        finally:
            generator.MIN_BAND_SAVING = saving
    pt, ch = out["per_tensor"], out["chosen"]
    out["arena_ratio"] = round(ch["arena_bytes"] / pt["arena_bytes"], 4)
    if with_qemu:
        a, b = (p["qemu_m4"].get("instructions_per_inference") for p in (pt, ch))
        out["instructions_ratio"] = round(b / a, 4) if a and b else None
    return out


def main(argv: list[str] | None = None) -> int:
    from bench_runtime import collect_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--models", nargs="*", default=None, help="names as scripts/bench_runtime.py knows them")
    ap.add_argument("--tflite", nargs="*", type=Path, default=[], help="also these .tflite files (by file stem)")
    ap.add_argument("--no-qemu", action="store_true")
    args = ap.parse_args(argv)
    models = collect_models(args.models) if args.models != [] else {}
    models.update({p.stem: p.read_bytes() for p in args.tflite})
    report = {name: measure(name, data, not args.no_qemu) for name, data in models.items()}
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
