"""Latency before flashing: instructions per inference x cycles per instruction (CPI) / the board's clock.

Instructions are those this project measured on the emulator of the board's own core (qemu_m3/m4/m7/m33/m55,
RV32IMC on riscv32 virt; the Xtensa ESP32s on their Cortex-M4 stand-in, said so) for the model, matched by its
SHA-256, or, for any other model, its MACs times the median instructions-per-MAC of the models measured on that
core. The CPI is calibrated per core on public measured figures against counts on the same emulated core
(``tinykeras/data/latency.toml``, with sources), and the error printed beside the estimate is measured
leave-one-out against those figures. Where a core has fewer than two
public figures no error can be measured, and where it has none no estimate is given: both are said, not guessed.
No TensorFlow, no compiler: fast enough for ``inspect`` and ``boards --model``.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from tinykeras.boards import Board
from tinykeras.types import ModelInfo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATA = Path(__file__).resolve().parent / "data" / "latency.toml"


STAND_IN = "cortex-m4"   # whose counts stand in for a core this machine cannot emulate (Xtensa)


@dataclass(frozen=True)
class Calibration:
    """Cycles per instruction (counted on ``counts_core``'s emulator) for one core, from public figures."""

    core: str
    counts_core: str
    board: str
    cpi: float
    figures: int
    loo_error: float | None   # largest |estimate / public - 1| leaving each figure out; None below two figures
    source: str


@dataclass(frozen=True)
class Estimate:
    """Milliseconds per inference on a board (None where no public figure calibrates its core)."""

    board: str
    runtime: str
    ms: float | None
    error: float | None       # relative, measured leave-one-out (public figures, and MAC-based counts if used)
    instructions: int | None
    measured: bool            # instructions measured for this very model (else estimated from MACs)
    basis: str

    def text(self) -> str:
        """One short line: milliseconds, the measured error (or why there is none)."""
        if self.ms is None:
            return f"no estimate ({self.basis})"
        err = (f"±{self.error * 100:.0f}% leave-one-out" if self.error is not None
               else "error not measurable: one public figure")
        how = "measured" if self.measured else "from MACs"
        if "stand-in" in self.basis:   # a core this machine cannot emulate: counted on the Cortex-M4
            how += " on the Cortex-M4 stand-in, not this chip: the true error is larger"
        return f"~{self.ms:,.1f} ms ({err}; instructions {how})"

    def to_json(self) -> dict[str, Any]:
        return {"board": self.board, "runtime": self.runtime, "ms": None if self.ms is None else round(self.ms, 3),
                "error": None if self.error is None else round(self.error, 3), "instructions": self.instructions,
                "instructions_measured": self.measured, "basis": self.basis}


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    return tomllib.loads(DATA.read_text(encoding="utf-8"))


def core_class(board: Board) -> str:
    """The calibration class of a board's core (the RISC-V cores share the ESP32-C3's figure)."""
    return "riscv32" if board.mcu.arch == "riscv32" else board.mcu.core


def counted_core(core: str) -> str:
    """The emulated core whose instruction counts a core class uses: its own, or the Cortex-M4 stand-in."""
    return core if any(core in c for c in _data()["counts"].values()) else STAND_IN


def _gmean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


@cache
def calibrations() -> dict[str, Calibration]:
    """CPI per core class: the geometric mean over all its public figures (every board measured with that core),
    with the leave-one-out error over them."""
    data = _data()
    cpi: dict[str, dict[tuple[str, str], float]] = {}
    figs: dict[str, list[dict[str, Any]]] = {}
    for fig in data["figure"]:
        where = counted_core(fig["core"])
        for m, ms in fig["ms"].items():
            count = data["counts"][m][where][fig["kernels"]]
            cpi.setdefault(fig["core"], {})[(fig["board"], m)] = ms / 1000 * fig["clock_hz"] / count
        figs.setdefault(fig["core"], []).append(fig)
    out = {}
    for core, points in cpi.items():
        loo = None
        if len(points) >= 2:
            loo = max(abs(_gmean([c for k, c in points.items() if k != p]) / points[p] - 1) for p in points)
        boards = "; ".join(f["board"] for f in figs[core])
        sources = "; ".join(f["source"] for f in figs[core])
        out[core] = Calibration(core, counted_core(core), boards, _gmean(list(points.values())), len(points), loo,
                                sources)
    return out


def _column(board: Board, runtime: str) -> str:
    if runtime == "aot":
        return "aot"
    kernels = board.tflm.kernels if board.tflm else "cmsis-nn"
    return "reference" if kernels == "reference" else "cmsis-nn"   # esp-nn: calibrated on the CMSIS-NN counts


@cache
def _per_mac(column: str, core: str = STAND_IN) -> tuple[float, float]:
    """Median instructions per MAC of the models measured on ``core``, and its leave-one-out error."""
    ratios = {m: c[core][column] / c["macs"] for m, c in _data()["counts"].items()
              if c.get("macs") and column in c.get(core, {})}
    loo = max(abs(statistics.median([r for k, r in ratios.items() if k != m]) / ratios[m] - 1) for m in ratios)
    return statistics.median(ratios.values()), loo


def instructions(info: ModelInfo, column: str, core: str = STAND_IN) -> tuple[int, bool, float]:
    """(instructions per inference on ``core``'s emulator, measured?, relative error of the count)."""
    for counts in _data()["counts"].values():
        if counts.get("sha256") == info.sha256 and column in counts.get(core, {}):
            return int(counts[core][column]), True, 0.0
    per_mac, loo = _per_mac(column, core)
    return round(info.macs * per_mac), False, loo


def estimate(info: ModelInfo, board: Board, runtime: str) -> Estimate:
    """The latency estimate of ``info`` on ``board`` with ``runtime`` (tflm or aot)."""
    column = _column(board, runtime)
    core = counted_core(core_class(board))
    if not any(column in c.get(core, {}) for c in _data()["counts"].values()):
        return Estimate(board.name, runtime, None, None, None, False,
                        f"{runtime} instruction counts not measured on {core}")
    count, measured, count_error = instructions(info, column, core)
    cal = calibrations().get(core_class(board))
    if cal is None:
        return Estimate(board.name, runtime, None, None, count, measured,
                        f"no public TFLM figure for a {board.mcu.core} to calibrate on")
    ms = count * cal.cpi / board.mcu.clock_hz * 1000
    error = None if cal.loo_error is None else (1 + cal.loo_error) * (1 + count_error) - 1
    how = "measured" if measured else "from MACs"
    figures = f"{cal.figures} public figure{'s' if cal.figures > 1 else ''}"
    note = " + aot assumed at TFLM's CPI" if runtime == "aot" else ""
    where = core if core == core_class(board) else f"{core} stand-in"
    return Estimate(board.name, runtime, ms, error, count, measured,
                    f"{where} instructions {how} x CPI {cal.cpi:.2f} from {figures}: {cal.board}{note}")


def estimates(info: ModelInfo, boards: list[Board]) -> list[Estimate]:
    """Every real board (not the emulated one), both runtimes where both apply (default runtime first)."""
    out = []
    for b in (b for b in boards if b.kind != "qemu"):
        for runtime in [b.default_runtime] + [r for r in b.runtimes if r != b.default_runtime]:
            out.append(estimate(info, b, runtime))
    return out
