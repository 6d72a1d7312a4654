#!/usr/bin/env python3
"""Every PlatformIO board x (shipped + reference models): build the project, compile it with the library the
board pins (the real trees in --third-party) for the emulator of the board's instruction set (tests/standin.py
emulator_for: microbit, mps2-an500/an505, riscv32 virt; else the Cortex-M4 stand-in), run it on QEMU and compare
with the TFLM host interpreter; plus TFLM on qemu_m4 (reference and CMSIS-NN kernels) against the aot runtime.
Writes JSON.

    .venv/bin/python scripts/bench_boards.py --third-party ../shared/third_party -o bench/boards.json

Per cell: compiled, linked, bit-exact (whole output vector, pattern and random input), arena planned / used and
their ratio. The stand-in harness is tests/standin.py (the same code the test suite runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))   # standin: the stand-in build shared with the tests

from standin import build_standin, run_and_compare  # noqa: E402

from tinykeras import pipeline  # noqa: E402
from tinykeras.boards import load_board  # noqa: E402
from tinykeras.inspect import inspect_bytes  # noqa: E402
from tinykeras.pipeline import BuildOptions, build  # noqa: E402
from tinykeras.resources import models_dir  # noqa: E402

BOARDS = ("esp32", "esp32s3", "nano33ble", "nucleo_l4r5zi", "pico", "pico2", "teensy41", "portenta_h7", "uno_r4_minima",
          "xiao_esp32c3", "esp32c6", "xiao_esp32s3", "nano_esp32")
REFERENCE = REPO / "tests" / "data" / "reference_models"


def models(extra: list[Path] | None = None) -> dict[str, Path]:
    """The shipped and reference models, or only ``extra`` (.tflite files) when given."""
    if extra:
        return {p.stem: p for p in extra}
    out = {name: models_dir() / name / "model.tflite" for name in ("kws", "gesture", "sensor")}
    out.update({p.stem: p for p in sorted(REFERENCE.glob("*.tflite"))})
    return out


def board_cell(board: str, path: Path, third_party: Path, work: Path) -> dict:
    tflm_dir = third_party / "tflite-micro-90b983c"
    try:
        result = build(BuildOptions(board=board, model=path, runs=2, warmup=1, out=work / "project",
                                    tflm_dir=tflm_dir), log=lambda _m: None)
    except Exception as exc:  # a refusal (e.g. a library gap) is a result, recorded as such
        return {"status": "refused", "reason": str(exc).splitlines()[0]}
    b = load_board(board)
    cell = {"library": b.tflm.library, "kernels": b.tflm.kernels, "arena_measured_host": result.arena.measured_bytes}
    try:
        elf = build_standin(result.project_dir, b, b.tflm.lib, b.tflm.kernels, third_party, work / "standin")
        cell["compiled"] = cell["linked"] = True
        model = path.read_bytes()
        figures = run_and_compare(elf, model, inspect_bytes(model, str(path)), result.arena.planned_bytes)
        cell.update(status="bit-exact", arena_planned=figures["arena_planned"], arena_used=figures["arena_used"],
                    planned_over_used=round(figures["arena_planned"] / figures["arena_used"], 3),
                    emulator=figures["emulator"], proves=figures["proves"], note=figures["note"],
                    instructions=figures["instructions"][-1] if figures["instructions"] else None)
    except Exception as exc:
        cell.update(status="failed", reason="".join(traceback.format_exception_only(exc)).strip()[:2000])
    return cell


def qemu_cell(path: Path, runtime: str, kernels: str | None, third_party: Path, work: Path) -> dict:
    model = path.read_bytes()
    info = inspect_bytes(model, str(path))
    out = pipeline.measure(model, info, work, name=path.stem, runs=2, warmup=1, runtime=runtime, kernels=kernels,
                       tflm_dir=third_party / "tflite-micro-90b983c", timeout=600)
    return {k: out[k] for k in ("instructions_per_inference", "instructions_per_mac", "arena_bytes", "arena_used",
                                "sizes", "macs")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--third-party", type=Path, required=True)
    parser.add_argument("-o", "--out", type=Path, default=Path("bench/boards.json"))
    parser.add_argument("--boards", default=",".join(BOARDS))
    parser.add_argument("--no-qemu", action="store_true", help="skip the qemu_m4 runtime comparison")
    parser.add_argument("--models", nargs="*", type=Path,
                        help="only these .tflite files (default: shipped + reference)")
    args = parser.parse_args()
    result: dict = {"boards": {}, "qemu_m4": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for board in args.boards.split(","):
            for name, path in models(args.models).items():
                cell = board_cell(board, path, args.third_party, Path(tmp) / board / name)
                result["boards"].setdefault(board, {})[name] = cell
                print(board, name, cell.get("status"), cell.get("planned_over_used", ""), flush=True)
        if not args.no_qemu:
            for name in ("ad01_int8", "pretrainedResnet_quant"):
                path = REFERENCE / f"{name}.tflite"
                row = {}
                for runtime, kernels in (("aot", None), ("tflm", "reference"), ("tflm", "cmsis-nn")):
                    label = runtime if kernels is None else f"tflm-{kernels}"
                    row[label] = qemu_cell(path, runtime, kernels, args.third_party, Path(tmp) / "q" / name / label)
                    print("qemu_m4", name, label, row[label]["instructions_per_inference"], flush=True)
                cm = row["tflm-cmsis-nn"]["instructions_per_inference"]
                row["aot_over_tflm_cmsis_nn"] = round(row["aot"]["instructions_per_inference"] / cm, 3)
                row["aot_arena_over_tflm_arena_used"] = round(row["aot"]["arena_bytes"]
                                                              / row["tflm-cmsis-nn"]["arena_used"], 3)
                result["qemu_m4"][name] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
