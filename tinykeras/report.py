"""Write results: rich tables, JSON, CSV and PNG plots (matplotlib, Agg). Never imports TensorFlow.

Same data in -> byte-identical files out: JSON keeps insertion order, PNGs carry no timestamp or version.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinykeras.fsutil import write_bytes_atomic, write_text_atomic

STAT_KEYS = ("min", "mean", "p50", "p90", "p99", "max", "std")


def dumps(obj: Any) -> str:
    """JSON text, indented, ending in a newline; NaN/inf become null."""
    return json.dumps(_finite(obj), indent=2, ensure_ascii=False) + "\n"


def write_json(path: Path | str, obj: Any) -> None:
    write_text_atomic(path, dumps(obj))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table: thousands separators for big values, ``-`` for missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
        return f"{value:.{digits}g}"
    return str(value)


# --------------------------------------------------------------------------------------------- bench


def bench_table(data: dict[str, Any]) -> Any:
    """A rich Table of one bench report JSON (``BenchReport.to_json()``): one row per statistic."""
    from rich.table import Table

    title = f"{data.get('board') or '?'} / {data.get('runtime') or '?'} / {data.get('model') or '?'}"
    table = Table(title=title, title_justify="left")
    table.add_column("stat")
    blocks = [(name, unit) for name, unit in (("latency_us", "latency (us)"), ("cycles", "cycles"),
                                              ("instructions", "instructions")) if data.get(name)]
    for _, unit in blocks:
        table.add_column(unit, justify="right")
    for key in STAT_KEYS:
        table.add_row(key, *(fmt(data[name].get(key)) for name, _ in blocks))
    return table


def bench_summary(data: dict[str, Any]) -> list[str]:
    """Lines under the table: runs, arena, per-MAC figures, status."""
    lines = [f"runs: {data.get('runs')} of {fmt(data.get('expected_runs'))}"
             f" ({'complete' if data.get('complete') else 'INCOMPLETE: ' + str(data.get('message'))})"]
    if data.get("arena_bytes") is not None:
        used = data.get("arena_used")
        lines.append(f"arena: {fmt(data.get('arena_bytes'))} B planned"
                     + (f", {fmt(used)} B used" if used is not None else ""))
    per = data.get("per_mac")
    if per:
        parts = [f"{per['ns']:.4g} ns"] + [f"{per[k]:.4g} {k}" for k in ("cycles", "instructions") if k in per]
        lines.append(f"per MAC ({fmt(data.get('macs'))} MACs): " + ", ".join(parts))
    if data.get("timer") in ("cmsdk_timer0", "sse_counter") or (data.get("instructions") and not data.get("cycles")):
        lines.append("note: emulated board time is guest time (QEMU -icount), it counts instructions, "
                     "not the speed of a real chip")
    return lines


def bench_csv(data: dict[str, Any]) -> str:
    """One row per reported run: i, us, cycles, instructions, top, score."""
    cols = ["i", "us", "cycles", "instructions", "top", "score"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in data.get("samples", []):
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in cols])
    return buf.getvalue()


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def latency_histogram_png(values: Sequence[float], title: str, unit: str = "us") -> bytes:
    """A histogram of per-run latencies with p50 and p99 marked."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    if values:
        data = sorted(values)
        bins = min(50, max(5, int(math.sqrt(len(data))) * 2))
        lo, hi = data[0], data[-1]
        if hi - lo < 1e-9 * max(1.0, abs(hi)):
            lo, hi = lo - 0.5, hi + 0.5
        ax.hist(data, bins=bins, range=(lo, hi), color="#4c72b0")
        from tinykeras.metrics import stats

        s = stats(data) or {}
        for key, style in (("p50", "-"), ("p99", "--")):
            ax.axvline(s[key], color="#c44e52", linestyle=style, label=f"{key} {fmt(s[key])} {unit}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"latency ({unit})")
    ax.set_ylabel("runs")
    ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


def bench_paths(json_path: Path) -> dict[str, Path]:
    """The files written beside ``-o report.json``."""
    stem = json_path.with_suffix("")
    return {"json": json_path, "csv": stem.with_suffix(".csv"), "png": Path(f"{stem}_latency.png"),
            "log": stem.with_suffix(".log")}


def write_bench(data: dict[str, Any], json_path: Path) -> dict[str, Path]:
    """Write JSON, CSV and the latency histogram beside ``json_path``; the raw log is written by the reader."""
    paths = bench_paths(json_path)
    write_json(paths["json"], data)
    write_text_atomic(paths["csv"], bench_csv(data))
    title = f"{data.get('board') or '?'} {data.get('runtime') or ''} {data.get('model') or ''}".strip()
    values = [row["us"] for row in data.get("samples", []) if "us" in row]
    write_bytes_atomic(paths["png"], latency_histogram_png(values, title))
    return paths


def compare_table(a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B") -> Any:
    """Side-by-side table of two bench reports with B/A ratios."""
    from rich.markup import escape
    from rich.table import Table

    name_a, name_b = escape(name_a), escape(name_b)  # labels may hold "[path]": text, not rich markup
    table = Table(title=f"A: {name_a} vs B: {name_b}", title_justify="left")
    table.add_column("metric")
    table.add_column(f"A: {name_a}", justify="right")
    table.add_column(f"B: {name_b}", justify="right")
    table.add_column("B/A", justify="right")
    for row in compare_rows(a, b):
        table.add_row(row[0], fmt(row[1]), fmt(row[2]), "-" if row[3] is None else f"{row[3]:.3f}x")
    return table


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any, float | None]]:
    """(metric, value in A, value in B, B/A) for the fields two bench reports share."""
    rows: list[tuple[str, Any, Any, float | None]] = []
    for key in ("board", "runtime", "model", "runs", "complete"):
        rows.append((key, a.get(key), b.get(key), None))
    for key in ("arena_bytes", "arena_used", "model_bytes", "macs"):
        if a.get(key) is not None or b.get(key) is not None:
            rows.append((key, a.get(key), b.get(key), _ratio(a.get(key), b.get(key))))
    for block in ("latency_us", "cycles", "instructions"):
        ba, bb = a.get(block) or {}, b.get(block) or {}
        if not ba and not bb:
            continue
        for k in STAT_KEYS:
            rows.append((f"{block}.{k}", ba.get(k), bb.get(k), _ratio(ba.get(k), bb.get(k))))
    pa, pb = a.get("per_mac") or {}, b.get("per_mac") or {}
    for k in sorted(set(pa) | set(pb)):
        rows.append((f"per_mac.{k}", pa.get(k), pb.get(k), _ratio(pa.get(k), pb.get(k))))
    return rows


def _ratio(x: Any, y: Any) -> float | None:
    if isinstance(x, bool) or isinstance(y, bool):
        return None
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x:
        return float(y) / float(x)
    return None


# ------------------------------------------------------------------------------------------- emulate


def confusion_matrix_png(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> bytes:
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    import numpy as np

    m = np.asarray(matrix, dtype=np.int64)
    n = len(m)
    size = min(12.0, 3.0 + 0.45 * n)
    fig = _figure(size, size)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=90 if n > 6 else 0)
    ax.set_yticklabels(labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        top = m.max() if m.size else 0
        for r in range(n):
            for c in range(n):
                ax.text(c, r, str(m[r, c]), ha="center", va="center", fontsize=8,
                        color="white" if top and m[r, c] > top / 2 else "black")
    fig.tight_layout()
    return _png(fig)


def score_histogram_png(series: dict[str, Sequence[float]], title: str, xlabel: str) -> bytes:
    """Overlaid histograms (one per named series) of top-1 scores."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    values = [float(v) for s in series.values() for v in s]
    if values:
        lo, hi = min(values), max(values)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        for name in sorted(series):
            ax.hist(list(series[name]), bins=40, range=(lo, hi), alpha=0.5, label=name)
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


_REF_NAMES = {"keras": "{rt} vs Keras (float)", "tflite": "{rt} vs tf.lite", "tflm": "{rt} vs TFLM host",
              "tflm_vs_tflite": "TFLM host vs tf.lite"}


def emulate_table(data: dict[str, Any]) -> Any:
    """A rich Table of an emulate report."""
    from rich.table import Table

    runtime = data.get("runtime") or "?"
    model = Path(str(data.get("model") or "model")).name
    table = Table(title=f"emulate {model} ({runtime})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    arena = data.get("arena") or {}
    rows: list[tuple[str, Any]] = [
        ("samples", data.get("samples")),
        ("input", data.get("input")),
        ("accuracy", _pct(data.get("accuracy"))),
        (f"host us / inference ({runtime})", data.get("host_us_per_inference")),
        (f"arena bytes ({runtime})", data.get("arena_bytes")),
    ]
    if runtime != "tflm" and arena.get("tflm_measured_bytes") is not None:
        rows.append(("arena bytes (TFLM host, measured)", arena["tflm_measured_bytes"]))
    for ref, block in (data.get("comparisons") or {}).items():
        name = _REF_NAMES.get(ref, ref).format(rt=runtime)
        rows.append((f"{name}: top-1 agreement", _pct(block.get("agreement"))))
        rows.append((f"{name}: max |deviation|", block.get("max_abs_deviation")))
        if "bit_exact" in block:
            rows.append((f"{name}: bit-exact", block.get("bit_exact")))
            if not block.get("bit_exact"):
                rows.append((f"{name}: differing values (max LSB)",
                             f"{fmt(block.get('mismatches'))} ({fmt(block.get('max_abs_lsb'))})"))
    for out in data.get("outputs") or []:  # every output, with its task's metrics (tinykeras.metrics)
        figures = [f"{label} {_pct(out[key]) if key in ('accuracy', 'agreement') else fmt(out[key])}"
                   for key, label in (("accuracy", "accuracy"), ("agreement", "agreement"), ("rmse", "RMSE"),
                                      ("r2", "R²"), ("cosine", "cosine"), ("labels_rmse", "RMSE vs labels"))
                   if out.get(key) is not None]
        if out.get("collapsed"):
            figures.append("COLLAPSED")
        rows.append((f"output '{out['name']}' ({out['task']})", ", ".join(figures) or "-"))
    for name, value in rows:
        table.add_row(name, value if isinstance(value, str) else fmt(value))
    return table


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100.0 * float(value):.2f} %"
