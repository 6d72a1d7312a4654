"""Render the report page from the recognised JSON files: one self-contained HTML file (inline CSS, JS and SVG;
nothing fetched), the same bytes for the same inputs.

Every key figure is written as ``<span class="fig" data-src=S data-k=PATH data-v=JSON>text</span>``: S is the
index of the source file (listed at the foot of the page), PATH the key path inside it and JSON its value, so a
test (or a reader) can check each figure shown against the file it came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from tinykeras.htmlreport import graph, svg
from tinykeras.htmlreport.sources import Source, Sources
from tinykeras.report import STAT_KEYS, fmt

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html.j2"


class Figures:
    """Numbers the page shows, each tied to the file and key it came from."""

    def __init__(self, sources: Sources) -> None:
        self.index = {id(s): k for k, s in enumerate(sources.items)}

    def __call__(self, source: Source, path: str, text: str | None = None, digits: int = 4,
                 scale: float = 1.0, suffix: str = "") -> Markup:
        value: Any = source.data
        for part in path.split("."):
            if isinstance(value, list):
                value = value[int(part)]
            else:
                value = value.get(part) if isinstance(value, dict) else None
        if text is None:
            shown = value * scale if isinstance(value, (int, float)) and not isinstance(value, bool) else value
            if isinstance(shown, float) and scale != 1.0:
                text = f"{shown:.{max(digits - 2, 1)}f}"
            else:
                text = fmt(shown, digits)
            text += suffix
        return Markup('<span class="fig" data-src="{}" data-k="{}" data-v="{}">{}</span>').format(
            self.index[id(source)], path, json.dumps(value, sort_keys=True), text)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def model_section(src: Source, settings: dict[str, Any] | None) -> dict[str, Any]:
    m = src.data
    ops = []
    for op in m["ops"]:
        out = op["outputs"][0] if op["outputs"] else None
        inputs = [t for t in op["inputs"] if t is not None and not t["constant"]]
        ops.append({"op": op, "out_shape": "x".join(map(str, out["shape"])) if out else "-",
                    "in_shapes": ", ".join("x".join(map(str, t["shape"])) for t in inputs),
                    "options": ", ".join(f"{k}={v}" for k, v in sorted(op["options"].items())
                                         if not k.endswith("_activation_function") or v != "NONE")})
    return {"src": src, "ops": ops, "graph": Markup(graph.graph_svg(m, "operator graph")),
            "labels": (settings or {}).get("labels")}


def quality_sections(sources: list[Source], settings: dict[str, Any] | None) -> list[dict[str, Any]]:
    labels = list((settings or {}).get("labels") or [])
    out = []
    for src in sources:
        outputs = []
        for j, m in enumerate(src.data["outputs"]):
            cm = None
            if m.get("confusion"):
                k = len(m["confusion"])
                names = labels if len(labels) == k else [str(c) for c in range(k)]
                cm = Markup(svg.heatmap(m["confusion"], names, f"confusion matrix of output {m['name']} (int8, "
                                        f"{src.data['where']})", "predicted class (int8)", "true class"))
            outputs.append({"m": m, "j": j, "confusion": cm})
        out.append({"src": src, "outputs": outputs})
    return out


def emulate_sections(sources: list[Source], settings: dict[str, Any] | None) -> list[dict[str, Any]]:
    labels = list((settings or {}).get("labels") or [])
    out = []
    for src in sources:
        matrix = src.data.get("confusion_matrix")
        cm = None
        if matrix:
            names = labels if len(labels) == len(matrix) else [str(c) for c in range(len(matrix))]
            cm = Markup(svg.heatmap(matrix, names, f"confusion matrix ({src.data['runtime']} on the host, emulate)",
                                    "predicted class (int8)", "true class"))
        out.append({"src": src, "confusion": cm})
    return out


def _bench_label(b: dict[str, Any]) -> str:
    return f"{b.get('board')} / {b.get('runtime')} / {b.get('model')}"


def board_rows(fit: Source | None, builds: list[Source], benches: list[Source]) -> list[dict[str, Any]]:
    """One row per board x runtime: fit figures (fit.json, else a build's report) and the measured latency."""
    rows: list[dict[str, Any]] = []
    covered = set()
    if fit is not None:
        for k, entry in enumerate(fit.data["boards"]):
            rows.append({"src": fit, "path": f"boards.{k}", "e": entry})
            covered.add((entry["board"], entry["runtime"]))
    for b in builds:
        key = (b.data["board"], b.data["runtime"])
        if key in covered:
            continue
        covered.add(key)
        entry = {"board": b.data["board"], "runtime": b.data["runtime"], "status": "fits", "fit": b.data["fit"],
                 "library": b.data.get("tflm_library"), "problems": [], "over": [], "kind": b.data.get("board_kind")}
        rows.append({"src": b, "path": "", "e": entry, "from_build": True})
    for row in rows:
        e = row["e"]
        row["bench"] = [s for s in benches
                        if s.data.get("board") == e["board"] and s.data.get("runtime") == e["runtime"]]
        row["problems"] = problem_groups(e.get("problems") or [])
        f = e.get("fit")
        if f:
            row["flash_bar"] = Markup(svg.usage_bar(f["flash_needed"], f["flash_available"],
                                                    f"flash {f['flash_needed']:,} of {f['flash_available']:,} B"))
            row["ram_bar"] = Markup(svg.usage_bar(f["ram_needed"], f["ram_available"],
                                                  f"RAM {f['ram_needed']:,} of {f['ram_available']:,} B"))
            row["flash_share"] = _pct(f["flash_needed"] / f["flash_available"])
            row["ram_share"] = _pct(f["ram_needed"] / f["ram_available"])
    return rows


def problem_groups(problems: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Problems with the same reason and fix in one line: ``FULLY_CONNECTED #0, #1: reason. Fix: ...``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in problems:
        groups.setdefault((p["reason"], p["fix"]), []).append(p)
    out = []
    for (reason, fix), members in groups.items():
        where = ", ".join(f"{p.get('op') or 'model'}" + (f" #{p['index']}" if p.get("index") is not None else "")
                          for p in members)
        out.append({"where": where, "reason": reason, "fix": fix})
    return out


def profile_sections(sources: list[Source]) -> list[dict[str, Any]]:
    out = []
    for src in sources:
        p = src.data
        unit = p["unit"]
        rows = [(f"#{o['index']} {o['op']}", float(o["count"]), f"{o['count']:,} ({o['share'] * 100:.1f}%)")
                for o in p["ops"]]
        bars = svg.hbars(rows, f"{unit} per layer ({p['board']}, {p['runtime']})", f"{unit} per inference",
                         highlight=[not o["fast_path"] for o in p["ops"]])
        chart = None
        if p.get("buffers"):
            chart = svg.timeline(p["buffers"], [o["live_bytes"] for o in p["ops"]], p["arena_bytes"],
                                 [o["op"] for o in p["ops"]], f"arena timeline ({p['runtime']} memory plan)")
        out.append({"src": src, "bars": Markup(bars), "timeline": Markup(chart) if chart else None})
    return out


def bench_sections(sources: list[Source]) -> list[dict[str, Any]]:
    out = []
    for src in sources:
        b = src.data
        us = [s["us"] for s in b.get("samples") or [] if isinstance(s.get("us"), (int, float))]
        ins = [s["instructions"] for s in b.get("samples") or [] if isinstance(s.get("instructions"), (int, float))]
        charts = []
        if us:
            charts.append(Markup(svg.histogram(us, f"latency of {len(us)} runs ({_bench_label(b)})", "latency (µs)")))
        if ins and len(set(ins)) > 1:
            charts.append(Markup(svg.histogram(ins, f"instructions of {len(ins)} runs", "instructions per inference")))
        stats = [k for k in ("latency_us", "instructions", "cycles") if isinstance(b.get(k), dict)]
        out.append({"src": src, "label": _bench_label(b), "charts": charts, "stats": stats})
    return out


def compare_rows(sources: list[Source]) -> list[dict[str, Any]]:
    """Rows of the side-by-side comparison: each stat of latency and instructions for every bench."""
    rows = []
    for metric in ("latency_us", "instructions", "cycles"):
        for stat in ("min", "p50", "mean", "max"):
            cells = [s for s in sources if isinstance(s.data.get(metric), dict)]
            if len(cells) == len(sources):
                base = sources[0].data[metric].get(stat)
                rows.append({"metric": metric, "stat": stat, "path": f"{metric}.{stat}", "ratios": [
                    None if not base or s.data[metric].get(stat) is None else s.data[metric][stat] / base
                    for s in sources]})
    return rows


def tune_sections(sources: list[Source]) -> list[dict[str, Any]]:
    out = []
    for src in sources:
        r = src.data
        objective = r["objective"]
        trained = [tr for tr in r["trials"] if objective in (tr.get("metrics") or {})]
        limits = r.get("limits") or {}
        charts = []
        for cost, front_key, label, limit in (
                ("instructions", "front_latency", "instructions per inference (qemu_m4)",
                 limits["latency_ms"] * limits["clock_hz"] / 1000.0 if limits.get("latency_ms") else None),
                ("ram_bytes", "front_ram", "RAM: arena + benchmark buffers (bytes)", limits.get("ram_bytes"))):
            pts = [{"id": tr["trial_id"], "x": tr["metrics"][cost], "y": tr["metrics"][objective],
                    "ok": bool(tr.get("feasible"))} for tr in trained if tr["metrics"].get(cost) is not None]
            if pts:
                charts.append(Markup(svg.scatter(pts, f"{objective} against {cost}: Pareto front", label,
                                                 f"{objective} (int8)", front=r.get(front_key) or [],
                                                 best=r.get("best"), limit=limit,
                                                 limit_label=f"{r.get('board')} limit")))
        out.append({"src": src, "charts": charts, "trials": r["trials"], "objective": objective,
                    "front": set(r.get("front_latency") or []) | set(r.get("front_ram") or [])})
    return out


def aot_timeline(fit: Source | None, model: Source) -> Markup | None:
    plan = fit.data.get("aot_plan") if fit is not None else None
    if not plan:
        return None
    return Markup(svg.timeline(plan["buffers"], plan["live_bytes"], plan["arena_bytes"],
                               [o["op"] for o in model.data["ops"]], "arena timeline (aot static memory plan, "
                               "computed at generation; no run needed)"))


def _host_first(validations: list[Source]) -> list[Source]:
    """Host validations before board ones (a board reads back output 0 only)."""
    return sorted(validations, key=lambda s: bool(s.data.get("board")))


def glance(sources: Sources, fig: Figures) -> list[tuple[str, Markup]]:
    """The few lines at the top: where it fits, how accurate after int8, how fast where measured."""
    out: list[tuple[str, Markup]] = []
    fit = sources.first("fit")
    if fit is not None and fit.data["boards"]:
        entries = fit.data["boards"]
        fits = sorted({e["board"] for e in entries if e["status"] == "fits"})
        out.append(("fits", Markup(escape(f"{len(fits)} of {len({e['board'] for e in entries})} boards "
                                          f"({sum(e['status'] == 'fits' for e in entries)} of {len(entries)} "
                                          "board x runtime pairs)"))))
    for src in _host_first(sources.of("validate"))[:1]:
        for j, m in enumerate(src.data["outputs"]):
            parts = [Markup(f"{label} ") + fig(src, f"outputs.{j}.{key}", scale=100, suffix="%", digits=3)
                     for key, label in (("accuracy", "top-1"), ("agreement", "agreement with float"))
                     if m.get(key) is not None]
            if parts:
                out.append((f"int8 {m['name']}", Markup(", ").join(parts)))
    for src in sources.of("bench"):
        b = src.data
        text = Markup(escape(f"{b.get('board')} / {b.get('runtime')}: p50 ")) + fig(src, "latency_us.p50", suffix=" µs")
        if isinstance(b.get("instructions"), dict):
            text += Markup(", ") + fig(src, "instructions.p50") + Markup(" instructions")
        out.append(("measured", text))
    return out


def render(sources: Sources, title: str, model_label: str) -> str:
    """The page for ``sources`` (one ``inspect`` source required)."""
    import jinja2

    model = sources.first("inspect")
    if model is None:
        raise ValueError("render needs the model's inspect JSON")
    fit = sources.first("fit")
    benches = sources.of("bench")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), undefined=jinja2.StrictUndefined,
                             autoescape=True, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["pct"] = _pct
    env.filters["shape"] = lambda s: "x".join(str(d) for d in s) if s is not None else "-"
    fig = Figures(sources)
    context = {
        "title": title, "model_label": model_label, "sources": sources, "fig": fig, "glance": glance(sources, fig),
        "model": model_section(model, sources.settings), "settings_path": sources.settings_path,
        "quality": quality_sections(_host_first(sources.of("validate")), sources.settings),
        "emulations": emulate_sections(sources.of("emulate"), sources.settings),
        "boards": board_rows(fit, sources.of("build"), benches), "fit": fit,
        "profiles": profile_sections(sources.of("profile")), "aot_timeline": aot_timeline(fit, model),
        "benches": bench_sections(benches), "compare": compare_rows(benches) if len(benches) > 1 else [],
        "bench_sources": benches, "tunes": tune_sections(sources.of("tune")), "stat_keys": STAT_KEYS,
        "css": Markup((TEMPLATE_DIR / "report.css").read_text(encoding="utf-8")),
        "js": Markup((TEMPLATE_DIR / "report.js").read_text(encoding="utf-8")),
        "escape": escape,
    }
    return env.get_template(TEMPLATE).render(**context)
