#!/usr/bin/env python3
"""Print the ``[counts.*]`` tables of tinykeras/data/latency.toml from the benchmark JSONs, so the instruction
counts the latency estimates use are measured figures, never typed by hand.

    .venv/bin/python scripts/latency_counts.py > /tmp/counts.toml   # then replace the [counts.*] tables

Sources (all in docs/): bench_runtime.json (qemu_m4: aot, TFLM reference and CMSIS-NN), bench_cores.json
(qemu_m3/m7/m33/m55: aot and TFLM + CMSIS-NN), bench_boards_riscv.json (xiao_esp32c3: TFLM + ESP-NN on RV32IMC,
recorded in the "cmsis-nn" column: the board library's optimized kernels). tests/test_latency.py checks that
the data file equals this script's output.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinykeras.boards import load_board  # noqa: E402
from tinykeras.resources import models_dir  # noqa: E402

DOCS = REPO / "docs"
SHIPPED = {"kws": "shipped_kws", "gesture": "shipped_gesture", "sensor": "shipped_sensor"}
COLUMNS = (("cmsis_nn", "cmsis-nn"), ("reference", "reference"))


def _model_files() -> dict[str, Path]:
    """Model name -> file for the models whose hash identifies them (shipped and MLPerf reference models)."""
    files = {f"shipped_{n}": models_dir() / n / "model.tflite" for n in ("kws", "gesture", "sensor")}
    files.update({p.stem: p for p in (REPO / "tests" / "data" / "reference_models").glob("*.tflite")})
    return files


def _boards_of(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{board: figures}; bench_runtime.json written before --boards holds qemu_m4 at the top level."""
    return model["boards"] if "boards" in model else {"qemu_m4": model}


def counts() -> dict[str, dict[str, Any]]:
    """{model: {"sha256"?, "macs", core: {column: instructions}}} from the benchmark JSONs."""
    out: dict[str, dict[str, Any]] = {}
    for source in ("bench_runtime.json", "bench_cores.json"):
        for name, model in json.loads((DOCS / source).read_text())["models"].items():
            entry = out.setdefault(name, {"macs": model["macs"]})
            for board, figures in _boards_of(model).items():
                cols = {}
                aot = (figures.get("aot") or {}).get("instructions")
                for key, column in COLUMNS:
                    tflm = (figures.get("tflm") or {}).get(key) or {}
                    if tflm.get("instructions") and str(tflm.get("source", "")).startswith("measured"):
                        cols[column] = tflm["instructions"]
                if aot:
                    cols["aot"] = aot
                if cols.get("cmsis-nn"):   # a core counts only with its TFLM baseline beside aot
                    entry.setdefault(load_board(board).mcu.core, {}).update(cols)
    riscv = json.loads((DOCS / "bench_boards_riscv.json").read_text())["boards"]["xiao_esp32c3"]
    for name, cell in riscv.items():
        name = SHIPPED.get(name, name)
        if name in out and cell.get("instructions") and cell.get("status") == "bit-exact":
            out[name]["riscv32"] = {"cmsis-nn": cell["instructions"]}
    files = _model_files()
    for name, entry in out.items():
        if name in files and files[name].is_file():
            entry["sha256"] = hashlib.sha256(files[name].read_bytes()).hexdigest()
    return out


def toml_text(data: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name in sorted(data):
        entry = data[name]
        lines.append(f"[counts.{name}]")
        if "sha256" in entry:
            lines.append(f'sha256 = "{entry["sha256"]}"')
        lines.append(f"macs = {entry['macs']}")
        for core in sorted(k for k, v in entry.items() if isinstance(v, dict)):
            cells = ", ".join(f"{col} = {entry[core][col]}" for col in ("cmsis-nn", "reference", "aot")
                              if col in entry[core])
            lines.append(f"{core} = {{ {cells} }}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(toml_text(counts()), end="")
