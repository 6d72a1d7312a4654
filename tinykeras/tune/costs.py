"""A trial's limits (the board's free RAM and flash, tightened by options) and what a model costs."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinykeras.boards import Board, load_board
from tinykeras.errors import DataError

# instructions per MAC when QEMU cannot run: the aot runtime's measured ratio on the DS-CNN (README table)
INSTRUCTIONS_PER_MAC_ESTIMATE = 3.04


@dataclass(frozen=True)
class SearchLimits:
    """What a trial must meet: the board's free RAM and flash (limits minus reserved), tightened by options, for
    the runtime ``tinykeras build --board BOARD`` uses (the board's default) and its library's needs."""

    board: str
    ram_bytes: int
    flash_bytes: int
    latency_ms: float | None
    clock_hz: int
    clock_label: str
    runtime: str = "aot"
    library: str | None = None
    per_tensor_dense: bool = False  # the board's library computes per-channel FULLY_CONNECTED wrongly

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def search_limits(board: Board, max_ram: int | None = None, max_flash: int | None = None,
                  max_latency_ms: float | None = None) -> SearchLimits:
    for name, value in (("--max-ram", max_ram), ("--max-flash", max_flash), ("--max-latency-ms", max_latency_ms)):
        if value is not None and value <= 0:
            raise DataError(f"{name} must be positive (got {value})")
    ram = board.limits.app_ram_bytes if max_ram is None else min(max_ram, board.limits.app_ram_bytes)
    flash = board.limits.app_flash_bytes if max_flash is None else min(max_flash, board.limits.app_flash_bytes)
    if board.kind == "qemu":
        from tinykeras.target.qemu import qemu_settings

        s = qemu_settings(board)
        clock, label = int(s["estimate_clock_hz"]), str(s["estimate_label"])
    else:
        clock = int(board.mcu.clock_hz)
        label = (f"estimate: qemu_m4 instructions at {board.name}'s {clock / 1e6:g} MHz, assuming 1 instruction "
                 "per cycle")
    runtime = board.default_runtime
    library = board.tflm.lib if runtime == "tflm" and board.tflm is not None else None
    per_tensor = library is not None and any(g.op == "FULLY_CONNECTED" and g.quantization == "per-channel"
                                             for g in library.gaps)
    return SearchLimits(board.name, int(ram), int(flash), max_latency_ms, clock, label, runtime,
                        library.id if library is not None else None, per_tensor)


def qemu_available() -> bool:
    from tinykeras.target.qemu import CC, QEMU

    return shutil.which(CC) is not None and shutil.which(QEMU) is not None


def model_costs(tflite: bytes, limits: SearchLimits, *, instructions: bool, work: Path) -> dict[str, Any]:
    """Arena, RAM and flash of an int8 model as ``tinykeras build --board BOARD`` plans and checks them (the
    board's runtime plan: its library's op check, arena plan and costs; :func:`tinykeras.pipeline.fit_figures`)
    and, if asked, instructions per inference on qemu_m4 (or estimated from MACs). Raises UnsupportedOpError when
    the board's library cannot run the model correctly; an over-limit model is costed, not refused."""
    from tinykeras.inspect import inspect_bytes
    from tinykeras.pipeline import fit_figures
    from tinykeras.runtime import runtime_module

    board = load_board(limits.board)
    info = inspect_bytes(tflite, path="model.tflite")
    plan = runtime_module(limits.runtime).plan(tflite, info, board, name="model")
    fit, _ = fit_figures(board, plan, info)
    costs: dict[str, Any] = {
        "arena_bytes": int(plan.arena.planned_bytes), "ram_bytes": int(fit["ram_needed"]),
        "model_flash_bytes": int(fit["flash_model"]), "flash_bytes": int(fit["flash_needed"]),
        "tflite_bytes": len(tflite), "macs": int(info.macs),
    }
    if instructions:
        if qemu_available():
            from tinykeras.pipeline import measure

            measured = measure(tflite, info, work, runs=1, warmup=0)
            costs["instructions"] = int(measured["instructions_per_inference"])
            costs["instructions_measured"] = 1
        else:
            costs["instructions"] = int(round(INSTRUCTIONS_PER_MAC_ESTIMATE * info.macs))
            costs["instructions_measured"] = 0
        costs["latency_ms"] = round(costs["instructions"] / limits.clock_hz * 1000.0, 3)
    return costs


def violations(costs: dict[str, Any], limits: SearchLimits) -> list[dict[str, Any]]:
    """The limits ``costs`` break: [{what, needed, limit, ratio}]."""
    out = []
    for what, key, limit in (("ram", "ram_bytes", limits.ram_bytes), ("flash", "flash_bytes", limits.flash_bytes),
                             ("latency", "latency_ms", limits.latency_ms)):
        needed = costs.get(key)
        if needed is not None:
            needed = int(needed) if key.endswith("_bytes") else round(float(needed), 3)
        if limit is not None and needed is not None and needed > limit:
            out.append({"what": what, "needed": needed, "limit": limit, "ratio": round(needed / limit, 4)})
    return out


def describe_violations(found: list[dict[str, Any]]) -> str:
    units = {"ram": "B", "flash": "B", "latency": "ms"}
    return "; ".join(f"{v['what']} {v['needed']:,} {units[v['what']]} > {v['limit']:,} {units[v['what']]}"
                     for v in found)
