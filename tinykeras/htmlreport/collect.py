"""Compute what the page shows when no ``--from`` folder holds it, with the library functions the other
commands use, and write it as JSON files beside the page: the page is always a view of files.

Writes into one output folder (atomically): ``inspect.json`` (``inspect --json``); ``fit.json`` (every board x
runtime: fits or not, flash/RAM against the limits, pinned library and kernels, ops it cannot run with the
fix, ``tinykeras.latency``'s estimate on real boards, the aot memory plan); ``validate.json`` (``validate -o``,
with ``--data``; with ``run`` also ``validate-qemu_m4.json``, output 0 read back from the emulated board); and
with ``run`` the JSON of ``build --run`` on qemu_m4 with the aot runtime (``qemu_m4-aot/bench.json``,
``tinykeras_build.json``) and of ``profile`` (``profile/profile.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinykeras import fsutil
from tinykeras.boards import Board, board_names, load_board
from tinykeras.errors import InputFileError, TinyKerasError
from tinykeras.inspect import inspect_bytes, read_model_bytes, summary
from tinykeras.runtime.support import support_summary
from tinykeras.types import ModelInfo

FIT_JSON = "fit.json"
INSPECT_JSON = "inspect.json"
VALIDATE_JSON = "validate.json"
RUN_BOARD = "qemu_m4"


def _write(path: Path, obj: Any) -> None:
    fsutil.write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def select_boards(spec: str) -> list[Board]:
    """``all`` or a comma-separated list of board names (unknown names answered with a did-you-mean)."""
    names = board_names() if spec.strip() == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise InputFileError("--boards: no board named; give 'all' or a list such as 'qemu_m4,esp32'")
    return [load_board(n) for n in names]


def aot_plan(program: Any) -> dict[str, Any]:
    """The aot static memory plan: every buffer's op span and offset, and the bytes live at each op."""
    from tinykeras.profile import live_bytes_per_op

    num_ops = max((b.last for b in program.buffers), default=-1) + 1
    return {
        "runtime": "aot",
        "arena_bytes": int(program.arena_bytes),
        "buffers": [{"key": b.key, "size": int(b.size), "first": int(b.first), "last": int(b.last),
                     "offset": int(program.buffer_offsets[b.key])} for b in program.buffers],
        "live_bytes": [int(v) for v in live_bytes_per_op(program.buffers, program.buffer_offsets, num_ops)],
    }


def board_fits(model: bytes, info: ModelInfo, boards: list[Board], name: str) -> dict[str, Any]:
    """fit.json: for every board and every runtime it builds, whether the model fits and why not."""
    from tinykeras.arena import ArenaPlan
    from tinykeras.latency import estimate as latency_estimate
    from tinykeras.libraries import board_library
    from tinykeras.pipeline import fit_figures
    from tinykeras.runtime import aot as aot_runtime
    from tinykeras.runtime import tflm as tflm_runtime
    from tinykeras.runtime.support import check_model

    aot_by_core: dict[str | None, dict[str, Any]] = {}

    def aot_for(board: Any = None) -> dict[str, Any]:
        """The aot plan for ``board``'s core (its kernels' scratch differs per core), once per core."""
        core = board.mcu.core if board is not None else None
        if core not in aot_by_core:
            try:
                planned = aot_runtime.plan(model, info, board, name=name)
                aot_by_core[core] = {"arena": planned.arena.to_json(), "code_bytes": planned.model_flash,
                                     "plan": aot_plan(planned.program), "runtime_plan": planned}
            except TinyKerasError as exc:
                aot_by_core[core] = {"error": str(exc)}
        return aot_by_core[core]

    aot = aot_for()
    tflm_arena: dict[str, Any] | None = None
    entries = []
    for board in boards:
        for runtime in board.runtimes:
            entry: dict[str, Any] = {
                "board": board.name, "description": board.description, "kind": board.kind, "runtime": runtime,
                "default_runtime": runtime == board.default_runtime, "core": board.mcu.core,
                "clock_hz": board.mcu.clock_hz, "library": None, "problems": [], "over": [], "fit": None,
            }
            if runtime == "tflm":
                lib = board_library(board)
                kernels = board.tflm.kernels if board.tflm else None
                entry["library"] = {"id": lib.id, "label": lib.label, "commit": lib.commit, "kernels": kernels,
                                    "delivery": board.tflm.lib_dep if board.tflm else None}
                problems = check_model(info, lib)
                entry["problems"] = [p.to_json() for p in problems]
                if problems:
                    entry["status"] = "cannot run"
                    entries.append(entry)
                    continue
                if tflm_arena is None:
                    tflm_arena = _tflm_arena(model, info)
                if "error" in tflm_arena:
                    entry.update(status="cannot run", error=tflm_arena["error"])
                    entries.append(entry)
                    continue
                entry["arena"] = tflm_arena
                arena = ArenaPlan(**{k: tflm_arena[k] for k in ("measured_bytes", "planned_bytes", "method",
                                                                 "margin_rule", "recorded_bytes")})
                fit, over = fit_figures(board, tflm_runtime.plan(model, info, board, name=name, arena=arena), info)
            else:
                board_aot = aot_for(board)
                if "error" in board_aot:
                    entry.update(status="cannot run", error=board_aot["error"])
                    entries.append(entry)
                    continue
                entry["arena"] = board_aot["arena"]
                fit, over = fit_figures(board, board_aot["runtime_plan"], info)
            entry.update(fit=fit, over=over, status="fits" if not over else "does not fit")
            entries.append(entry)
    for entry, board in ((e, b) for b in boards for e in entries if e["board"] == b.name and b.kind != "qemu"):
        entry["estimate"] = latency_estimate(info, board, entry["runtime"]).to_json()
    return {"model_sha256": info.sha256, "boards": entries, "aot_plan": aot.get("plan"),
            "note": "flash and RAM of the runtimes are estimates (pipeline.check_fit); the ELF sizes of a "
                    "compiled project are exact"}


def _tflm_arena(model: bytes, info: ModelInfo) -> dict[str, Any]:
    from tinykeras.arena import plan_arena

    try:
        return plan_arena(model, info).to_json()
    except TinyKerasError as exc:
        return {"error": str(exc)}


def collect(model_path: Path, out_dir: Path, *, boards: str | None = "all", data: Path | None = None,
            keras: Path | None = None, run: bool = False, custom_objects: str | None = None,
            log: Callable[[str], None] = lambda _m: None) -> Path:
    """Compute and write the JSON files listed in the module docstring into ``out_dir`` (atomically);
    ``boards=None`` leaves out fit.json."""
    model = read_model_bytes(model_path)
    info = inspect_bytes(model, path=model_path.name)
    chosen = select_boards(boards) if boards is not None else None
    arrays = None
    if data is not None:
        from tinykeras.keras_io import load_arrays

        arrays = load_arrays(data)
    with fsutil.atomic_output_dir(out_dir) as tmp:
        _write(tmp / INSPECT_JSON, {**summary(info), "libraries": support_summary(info)})
        if chosen is not None:
            log(f"fit on {len(chosen)} board(s)")
            _write(tmp / FIT_JSON, board_fits(model, info, chosen, model_path.stem))
        if arrays is not None:
            from tinykeras.keras_io import load_model
            from tinykeras.validation import validate, write_report

            log("validate on the host (TFLite-Micro)" + (" against the float model" if keras else ""))
            loaded = load_model(keras, custom_objects=custom_objects) if keras is not None else None
            write_report(validate(model, arrays, keras=loaded, path=model_path.name), tmp / VALIDATE_JSON)
            if run:
                log(f"validate on {RUN_BOARD} (aot, output 0 read back over serial)")
                write_report(validate(model, arrays, keras=loaded, board=RUN_BOARD, path=model_path.name),
                             tmp / f"validate-{RUN_BOARD}.json")
        if run:
            _run(model_path, model, info, tmp, log)
    return out_dir


def _run(model_path: Path, model: bytes, info: ModelInfo, tmp: Path, log: Callable[[str], None]) -> None:
    """Build and run the aot benchmark on the emulated board and profile it per layer; keep their JSON
    (bench.json, tinykeras_build.json, profile.json), not the projects and binaries."""
    import shutil
    import tempfile

    from tinykeras.pipeline import BuildOptions, build
    from tinykeras.profile import profile, write_profile

    with tempfile.TemporaryDirectory(prefix="tk-report-") as work:
        log(f"build --run on {RUN_BOARD} (aot)")
        project = Path(work) / "project"
        build(BuildOptions(board=RUN_BOARD, model=model_path, runtime="aot", run=True, out=project), log=log)
        kept = tmp / f"{RUN_BOARD}-aot"
        kept.mkdir()
        for name in ("bench.json", "tinykeras_build.json"):
            shutil.copyfile(project / name, kept / name)
        log(f"profile on {RUN_BOARD} (aot)")
        result = profile(model, info, board=RUN_BOARD, runtime="aot", name=model_path.stem, benchmark=False)
        paths = write_profile(result, Path(work) / "profile")
        (tmp / "profile").mkdir()
        shutil.copyfile(paths["json"], tmp / "profile" / "profile.json")
