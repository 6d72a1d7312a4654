"""Per-layer profile of a model on the emulated board: instructions (or cycles, or microseconds) per op,
share of the total, instructions per MAC, arena bytes live, the memory timeline and a bar chart.

The profile firmware is a separate build: ``tinykeras.aot.generate(..., profile=True)`` reads the board's
counter after every op and ``runtime/profile/tk_profile_main.c`` prints the counts once. The counter reads
cost instructions, so the whole-model count of the profile build differs from the benchmark build; the
report therefore carries the benchmark build's own count (measured separately, undisturbed), the profile
build's total and the measured cost of one counter read, which is subtracted from every op.

Runtimes: ``aot`` and ``tflm`` (TFLM's MicroProfiler interface, one event per operator, the same counter).
Boards: the emulated cores (qemu_m3 ... qemu_m55); on a port without a counter the unit is microseconds and
the report says so.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinykeras import pipeline
from tinykeras.boards import load_board
from tinykeras.device import read_until
from tinykeras.errors import BoardError, SerialError, TinyKerasError, ToolchainError
from tinykeras.fsutil import atomic_output_dir
from tinykeras.report import _figure, _png, fmt, write_json
from tinykeras.types import ModelInfo

UNIT_NOTE = {
    "instructions": "instructions counted by QEMU -icount shift=0 (resolution: one counter tick per op reading)",
    "cycles": "CPU cycles from the core's cycle counter",
    "us": "microseconds: this board has no cycle counter, so the profile is in microseconds",
}


@dataclass(frozen=True)
class OpProfile:
    """One op of the profile."""

    index: int
    op: str
    kernel: str
    fast_path: bool
    macs: int
    count: int            # in ``unit``, the counter-read cost subtracted
    share: float          # of the sum over ops
    per_mac: float | None
    live_bytes: int       # arena bytes holding live tensors (and this op's scratch) during the op
    output_shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelProfile:
    """The per-op profile and the figures that frame it."""

    model: str
    board: str
    runtime: str
    unit: str
    unit_note: str
    ops: tuple[OpProfile, ...]
    profile_total: int            # whole inference in the profile build (counter reads included)
    mark_cost: float              # one counter read, subtracted from every op
    benchmark_total: int | None   # whole inference in the benchmark build (no counter reads)
    arena_bytes: int
    peak_op: int
    macs: int
    notes: list[str] = field(default_factory=list)
    buffers: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ops"] = [asdict(o) for o in self.ops]
        return data


def live_bytes_per_op(buffers: Any, offsets: dict[str, int], num_ops: int) -> list[int]:
    """Bytes of the arena covered by buffers live at each op (streamed overlaps counted once).

    >>> from tinykeras.aot.planner import Buffer
    >>> live_bytes_per_op([Buffer("a", 8, 0, 1), Buffer("b", 8, 1, 1)], {"a": 0, "b": 4}, 2)
    [8, 12]
    """
    out = []
    for k in range(num_ops):
        spans = sorted((offsets[b.key], offsets[b.key] + b.size) for b in buffers if b.first <= k <= b.last)
        covered, end = 0, None
        for lo, hi in spans:
            if end is None or lo >= end:
                covered += hi - lo
                end = hi
            elif hi > end:
                covered += hi - end
                end = hi
        out.append(covered)
    return out


def _profile_record(text: bytes, timeout: float) -> dict[str, Any]:
    """The ``@tkprofile`` JSON record in what the profile firmware printed."""
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith("@tkprofile ") and line.rstrip().endswith("}"):
            return json.loads(line[len("@tkprofile "):])
    raise SerialError(f"the profile firmware printed no @tkprofile line within {timeout:g} s: {text[-300:]!r}")


def _run_profile(runtime: str, model: bytes, info: ModelInfo, board_name: str, name: str, timeout: float,
                 benchmark: bool, kernels: str | None = None, tflm_dir: Path | str | None = None) -> ModelProfile:
    """Build and run the profile firmware (and, with ``benchmark``, the benchmark build) on ``board_name``, both
    through the driver (:func:`tinykeras.pipeline.assemble`). aot counts each op in its generated code; the tflm
    adapter hands TFLite-Micro a MicroProfiler whose events (one per operator's Invoke) read the same counter, so
    the two runtimes compare per layer."""
    board = load_board(board_name)
    if board.kind != "qemu":
        raise BoardError(f"profile runs on the emulated board for now; '{board_name}' is a {board.kind} board "
                         "(use --board qemu_m4)")
    planned = pipeline.plan_build(board, model, runtime=runtime, info=info, name=name, profile=True,
                                  kernels=kernels)
    with tempfile.TemporaryDirectory(prefix="tk-profile-") as tmp:
        firmware = pipeline.assemble(planned, model, Path(tmp) / "profile", name=name, main="profile", runs=1,
                                     warmup=0, tflm_dir=tflm_dir)
        with pipeline.running(firmware) as url:
            raw = _profile_record(read_until(url, lambda buf: b"}\n" in buf, timeout=timeout), timeout)
        bench_total = None
        notes = []
        if benchmark:
            try:
                measured = pipeline.measure(model, info, Path(tmp) / "bench", name=name, runs=1, warmup=0,
                                            timeout=timeout, board=planned.board, runtime=runtime,
                                            kernels=planned.runtime.kernels, tflm_dir=tflm_dir)
                bench_total = measured.get("instructions_per_inference")
            except TinyKerasError as exc:
                notes.append(f"benchmark build not measured: {exc}")
    if runtime == "tflm":
        notes.append(f"TFLite-Micro {planned.runtime.library.label}, {planned.runtime.kernels} kernels: one "
                     "MicroProfiler event per operator; no per-op arena figures (TFLM plans its arena itself)")
    return assemble_profile(raw, planned.runtime, info, board_name, name, bench_total, notes)


def assemble_profile(raw: dict[str, Any], planned: Any, info: ModelInfo, board_name: str, name: str,
                     bench_total: int | None = None, notes: list[str] | None = None) -> ModelProfile:
    """A :class:`ModelProfile` from the firmware's ``@tkprofile`` record and the runtime's plan (aot: its
    program's kernels and buffers; tflm: the library's kernels, no buffer plan of its own)."""
    program = planned.program
    notes = list(notes or [])
    if "error" in raw:
        raise ToolchainError(f"the profile firmware failed: {raw['error']}")
    if len(raw.get("ops", [])) != len(info.ops):
        raise ToolchainError(f"the profile firmware reported {len(raw.get('ops', []))} ops, the model has "
                             f"{len(info.ops)}")
    unit = str(raw["unit"])
    mark = float(raw["mark_cost_x65"]) / 65.0
    counts = [max(int(round(c - mark)), 0) for c in raw["ops"]]
    total = sum(counts) or 1
    if program is not None:
        live = live_bytes_per_op(program.buffers, program.buffer_offsets, len(info.ops))
        kernels = {p.index: (p.kernel, p.fast_path) for p in program.ops}
    else:
        live = [0] * len(info.ops)
        kernels = {op.index: (f"{planned.kernels} {op.op.lower()}", True) for op in info.ops}
    rows = []
    for op in info.ops:
        kernel, fast = kernels[op.index]
        out_shape = tuple(info.tensors[op.outputs[0]].shape) if op.outputs else ()
        c = counts[op.index]
        rows.append(OpProfile(
            index=op.index, op=op.op, kernel=kernel, fast_path=fast, macs=op.macs, count=c,
            share=round(c / total, 4), per_mac=round(c / op.macs, 3) if op.macs else None,
            live_bytes=live[op.index], output_shape=out_shape))
    notes.insert(0, "profile build: the counter is read after every op, a separate firmware from the benchmark "
                    "build; the whole-model count comes from the benchmark build")
    if unit == "us":
        notes.insert(0, "this board has no cycle counter: the profile is in microseconds")
    bands = getattr(program, "bands", None)
    if bands is not None and program is not None:
        notes.append(f"row bands (timeline: green, buffer b{bands.first}): {bands.describe()}; arena "
                     f"{program.arena_bytes:,} B, per-tensor plan {program.per_tensor_arena_bytes:,} B")
    peak = max(range(len(live)), key=lambda k: live[k]) if live else 0
    buffers = [{"key": b.key, "size": b.size, "first": b.first, "last": b.last,
                "offset": program.buffer_offsets[b.key]} for b in program.buffers] if program is not None else []
    return ModelProfile(model=name, board=board_name, runtime=planned.name, unit=unit,
                        unit_note=UNIT_NOTE.get(unit, unit), ops=tuple(rows), profile_total=int(raw["total"]),
                        mark_cost=round(mark, 1), benchmark_total=bench_total, arena_bytes=planned.arena.planned_bytes,
                        peak_op=peak, macs=info.macs, notes=notes, buffers=buffers)


PROFILED_RUNTIMES = ("aot", "tflm")


def profile(model: bytes, info: ModelInfo, board: str = "qemu_m4", runtime: str = "aot", name: str = "model",
            benchmark: bool = True, kernels: str | None = None, tflm_dir: Path | str | None = None,
            timeout: float = 300.0) -> ModelProfile:
    """Profile ``model`` per op on ``board`` with ``runtime`` (tflm: ``kernels`` or the board's, from the TFLM
    tree ``tflm_dir`` or ``$TINYKERAS_TFLM_DIR``)."""
    if runtime not in PROFILED_RUNTIMES:
        raise ToolchainError(f"profile with runtime '{runtime}' is not available (available: "
                             f"{', '.join(PROFILED_RUNTIMES)})")
    return _run_profile(runtime, model, info, board, name, timeout, benchmark, kernels, tflm_dir)


def profile_table(p: ModelProfile) -> Any:
    """A rich Table, one row per op; ops off the specialised fast paths are marked with '*'."""
    from rich.table import Table


    unit = p.unit
    table = Table(title=f"profile {p.model} ({p.runtime} on {p.board}, {unit})", title_justify="left")
    for col, justify in (("#", "right"), ("op", "left"), ("kernel", "left"), (unit, "right"), ("share", "right"),
                         (f"{unit}/MAC", "right"), ("MACs", "right"), ("arena live B", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for o in p.ops:
        table.add_row(str(o.index), o.op, o.kernel + ("" if o.fast_path else " *"), fmt(o.count),
                      f"{100 * o.share:.1f}%", fmt(o.per_mac) if o.per_mac is not None else "",
                      fmt(o.macs), "" if not p.buffers else fmt(o.live_bytes) + (" (peak)" if o.index == p.peak_op
                                                                                 else ""))
    return table


def profile_summary(p: ModelProfile) -> list[str]:
    lines = [f"unit: {p.unit_note}"]
    if p.benchmark_total is not None:
        per_mac = f" ({p.benchmark_total / p.macs:.3f} per MAC)" if p.macs else ""
        lines.append(f"benchmark build: {fmt(p.benchmark_total)} {p.unit} per inference{per_mac}")
    lines.append(f"profile build: {fmt(p.profile_total)} {p.unit} per inference, of which counter reads "
                 f"~{p.mark_cost:g} per op; sum over ops after subtracting them: {fmt(sum(o.count for o in p.ops))}")
    lines.append(f"arena: {fmt(p.arena_bytes)} B" + (f"; most live at op #{p.peak_op}" if p.buffers else " planned"))
    slow = [o.index for o in p.ops if not o.fast_path]
    if slow:
        lines.append(f"* ops on the general kernels (off the specialised fast paths): {slow}")
    lines.extend(p.notes)
    return lines


def bars_png(p: ModelProfile) -> bytes:
    """Per-op bar chart of the count; ops off the fast paths in a second colour."""
    fig = _figure(max(6.4, 0.28 * len(p.ops) + 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    xs = [o.index for o in p.ops]
    colors = ["tab:blue" if o.fast_path else "tab:red" for o in p.ops]
    ax.bar(xs, [o.count for o in p.ops], color=colors)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{o.index} {o.op[:10]}" for o in p.ops], rotation=90, fontsize=7)
    ax.set_ylabel(p.unit)
    ax.set_title(f"{p.model}: {p.unit} per op ({p.runtime}, {p.board})", fontsize=10)
    if any(not o.fast_path for o in p.ops):
        ax.text(0.99, 0.97, "red: general kernels", transform=ax.transAxes, ha="right", va="top", fontsize=8,
                color="tab:red")
    fig.tight_layout()
    return _png(fig)


def timeline_png(p: ModelProfile) -> bytes:
    """Memory timeline: every arena buffer as a rectangle (ops it is live for x its offset range), peak marked."""
    from matplotlib.patches import Rectangle


    fig = _figure(max(6.4, 0.22 * len(p.ops) + 2), 4.8)
    ax = fig.add_subplot(1, 1, 1)
    for k, b in enumerate(p.buffers):
        scratch, bands = b["key"].startswith("s"), b["key"].startswith("b")
        color = "tab:orange" if scratch else "tab:green" if bands else f"C{k % 10}"
        ax.add_patch(Rectangle((b["first"] - 0.45, b["offset"]), b["last"] - b["first"] + 0.9, b["size"],
                               facecolor=color, alpha=0.55, edgecolor="black",
                               linewidth=0.4))
    peak_live = p.ops[p.peak_op].live_bytes if p.ops else 0
    ax.axvline(p.peak_op, color="red", linestyle="--", linewidth=1)
    ax.axhline(p.arena_bytes, color="black", linewidth=0.8)
    ax.text(p.peak_op, p.arena_bytes, f" peak: op #{p.peak_op}, {peak_live:,} B live; arena {p.arena_bytes:,} B",
            color="red", va="bottom", fontsize=8)
    ax.set_xlim(-1, max(len(p.ops), 1))
    ax.set_ylim(0, p.arena_bytes * 1.12 + 1)
    ax.set_xlabel("op (schedule order)")
    ax.set_ylabel("arena offset (bytes)")
    banded = any(b["key"].startswith("b") for b in p.buffers)
    ax.set_title(f"{p.model}: tensor lifetimes in the arena (orange: scratch"
                 + ("; green: row bands)" if banded else ")"))
    fig.tight_layout()
    return _png(fig)


def write_profile(p: ModelProfile, out_dir: Path) -> dict[str, Path]:
    """profile.json, timeline.png and layers.png into ``out_dir`` (atomically)."""
    names = {"json": "profile.json", "timeline": "timeline.png", "layers": "layers.png"}
    with atomic_output_dir(out_dir) as tmp:
        write_json(tmp / names["json"], p.to_json())
        (tmp / names["timeline"]).write_bytes(timeline_png(p))
        (tmp / names["layers"]).write_bytes(bars_png(p))
    return {k: Path(out_dir) / v for k, v in names.items()}
