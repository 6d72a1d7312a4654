"""Inline SVG charts for the HTML report: deterministic text (fixed decimals, sorted input), no script, axes
and units on every chart, a colour-blind-safe palette (Okabe-Ito) and text beside every colour."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

# Okabe & Ito (2008): distinguishable with the common colour-vision deficiencies.
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, GREY = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#6b6b6b")
PALETTE = (BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW)
FONT = 11


def n(x: float) -> str:
    """A coordinate: one decimal, no negative zero."""
    v = round(float(x), 1)
    return f"{v + 0.0:.1f}"


def t(text: Any) -> str:
    return escape(str(text), quote=True)


def num(value: float, digits: int = 3) -> str:
    """A tick or value label: thousands separators, at most ``digits`` significant decimals."""
    if value is None:
        return "-"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def nice_ticks(lo: float, hi: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (whole numbers only with ``integer``, e.g. for counts)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, round(step))
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(v, 10))
    return ticks


def _svg(width: float, height: float, body: list[str], title: str) -> str:
    return (f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n(width)} {n(height)}" '
            f'width="{n(width)}" height="{n(height)}" role="img" aria-label="{t(title)}">'
            f"<title>{t(title)}</title>" + "".join(body) + "</svg>")


def _text(x: float, y: float, text: Any, anchor: str = "start", size: int = FONT, cls: str = "",
          rotate: bool = False) -> str:
    extra = f' transform="rotate(-90 {n(x)} {n(y)})"' if rotate else ""
    c = f' class="{cls}"' if cls else ""
    return (f'<text x="{n(x)}" y="{n(y)}" font-size="{size}" text-anchor="{anchor}"{c}{extra}>{t(text)}</text>')


def hbars(rows: Sequence[tuple[str, float, str]], title: str, xlabel: str, width: float = 720,
          limit: tuple[float, str] | None = None, highlight: Sequence[bool] | None = None) -> str:
    """Horizontal bars: (label, value, value text) per row, an x axis with ticks and ``xlabel``."""
    left, right, top, row_h = 190.0, 90.0, 24.0, 18.0
    height = top + row_h * len(rows) + 44
    vmax = max([v for _, v, _ in rows] + ([limit[0]] if limit else []) + [1e-9])
    ticks = nice_ticks(0, vmax)
    scale = (width - left - right) / ticks[-1]
    body = [_text(left, 14, title, size=12, cls="ttl")]
    for tick in ticks:
        x = left + tick * scale
        body.append(f'<line x1="{n(x)}" y1="{n(top)}" x2="{n(x)}" y2="{n(height - 40)}" class="grid"/>')
        body.append(_text(x, height - 28, num(tick), anchor="middle"))
    for k, (label, value, text) in enumerate(rows):
        y = top + k * row_h
        colour = VERMILLION if highlight and highlight[k] else BLUE
        body.append(_text(left - 6, y + 13, label, anchor="end"))
        body.append(f'<rect x="{n(left)}" y="{n(y + 3)}" width="{n(max(value * scale, 0.5))}" height="{n(row_h - 6)}" '
                    f'fill="{colour}"><title>{t(label)}: {t(text)}</title></rect>')
        body.append(_text(left + value * scale + 4, y + 13, text))
    if limit is not None:
        x = left + limit[0] * scale
        body.append(f'<line x1="{n(x)}" y1="{n(top - 4)}" x2="{n(x)}" y2="{n(height - 40)}" class="limit"/>')
        body.append(_text(x, top - 6, limit[1], anchor="middle", cls="lim"))
    body.append(_text(left + (width - left - right) / 2, height - 8, xlabel, anchor="middle", cls="axl"))
    return _svg(width, height, body, title)


def histogram(values: Sequence[float], title: str, xlabel: str, bins: int = 20, width: float = 560) -> str:
    """Counts of ``values`` in equal bins between min and max (one bin when all are equal)."""
    left, right, top, bottom = 56.0, 36.0, 24.0, 48.0
    height = 240.0
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi == lo:
        edges = [lo - 0.5, hi + 0.5]
    else:
        edges = [lo + (hi - lo) * k / bins for k in range(bins + 1)]
    counts = [0] * (len(edges) - 1)
    for v in values:
        k = min(int((v - edges[0]) / (edges[-1] - edges[0]) * len(counts)), len(counts) - 1)
        counts[k] += 1
    yt = nice_ticks(0, max(counts + [1]), 4, integer=True)
    pw, ph = width - left - right, height - top - bottom
    ys = ph / yt[-1]
    xs = pw / (edges[-1] - edges[0])
    body = [_text(left, 14, title, size=12, cls="ttl")]
    for tick in yt:
        y = top + ph - tick * ys
        body.append(f'<line x1="{n(left)}" y1="{n(y)}" x2="{n(width - right)}" y2="{n(y)}" class="grid"/>')
        body.append(_text(left - 4, y + 4, num(tick), anchor="end"))
    for k, c in enumerate(counts):
        x0 = left + (edges[k] - edges[0]) * xs
        x1 = left + (edges[k + 1] - edges[0]) * xs
        y = top + ph - c * ys
        body.append(f'<rect x="{n(x0)}" y="{n(y)}" width="{n(max(x1 - x0 - 1, 0.5))}" height="{n(c * ys)}" '
                    f'fill="{BLUE}"><title>{t(num(edges[k], 6))} to {t(num(edges[k + 1], 6))}: {c} runs</title></rect>')
    span = edges[-1] - edges[0]
    decimals = min(3, max(0, 2 - math.floor(math.log10(span)))) if span > 0 else 0
    for v in (edges[0], (edges[0] + edges[-1]) / 2, edges[-1]):
        body.append(_text(left + (v - edges[0]) * xs, height - 30, f"{v:,.{decimals}f}", anchor="middle"))
    body.append(_text(left + pw / 2, height - 10, xlabel, anchor="middle", cls="axl"))
    body.append(_text(14, top + ph / 2, "runs", anchor="middle", cls="axl", rotate=True))
    return _svg(width, height, body, title)


def scatter(points: Sequence[dict[str, Any]], title: str, xlabel: str, ylabel: str, width: float = 480,
            front: Sequence[str] = (), best: str | None = None, limit: float | None = None,
            limit_label: str = "") -> str:
    """Points {id, x, y, ok}: feasible as filled circles, others as crosses, the front as a line, best as a
    star; every point labelled with its id."""
    left, right, top, bottom = 64.0, 44.0, 24.0, 48.0
    height = 300.0
    xs_all = [p["x"] for p in points] + ([limit] if limit is not None else [])
    ys_all = [p["y"] for p in points]
    xt = nice_ticks(min(xs_all + [0.0]), max(xs_all + [1e-9]), 4)
    ylo, yhi = (min(ys_all), max(ys_all)) if ys_all else (0.0, 1.0)
    pad = (yhi - ylo) * 0.1 or 0.05
    yt = nice_ticks(ylo - pad, yhi + pad, 4)
    pw, ph = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return left + (v - xt[0]) / (xt[-1] - xt[0]) * pw

    def py(v: float) -> float:
        return top + ph - (v - yt[0]) / (yt[-1] - yt[0]) * ph

    body = [_text(left, 14, title, size=12, cls="ttl")]
    for tick in xt:
        body.append(f'<line x1="{n(px(tick))}" y1="{n(top)}" x2="{n(px(tick))}" y2="{n(top + ph)}" class="grid"/>')
        body.append(_text(px(tick), height - 30, num(tick), anchor="middle"))
    for tick in yt:
        body.append(f'<line x1="{n(left)}" y1="{n(py(tick))}" x2="{n(left + pw)}" y2="{n(py(tick))}" class="grid"/>')
        body.append(_text(left - 4, py(tick) + 4, num(tick, 4), anchor="end"))
    by_id = {p["id"]: p for p in points}
    line = [by_id[i] for i in front if i in by_id]
    if len(line) > 1:
        body.append(f'<polyline fill="none" stroke="{ORANGE}" stroke-width="2" points="'
                    + " ".join(f"{n(px(p['x']))},{n(py(p['y']))}" for p in line) + '"/>')
    for p in points:
        x, y = px(p["x"]), py(p["y"])
        tip = f"<title>trial {t(p['id'])}: {t(num(p['x']))}, {t(num(p['y'], 4))}</title>"
        if p["id"] == best:
            body.append(f'<polygon points="{_star(x, y)}" fill="{VERMILLION}">{tip}</polygon>')
        elif p.get("ok", True):
            body.append(f'<circle cx="{n(x)}" cy="{n(y)}" r="4" fill="{BLUE}">{tip}</circle>')
        else:
            body.append(f'<path d="M{n(x - 4)} {n(y - 4)}L{n(x + 4)} {n(y + 4)}M{n(x - 4)} {n(y + 4)}L{n(x + 4)} '
                        f'{n(y - 4)}" stroke="{GREY}" stroke-width="2">{tip}</path>')
        body.append(_text(x + 6, y - 5, p["id"], size=9))
    if limit is not None:
        body.append(f'<line x1="{n(px(limit))}" y1="{n(top)}" x2="{n(px(limit))}" y2="{n(top + ph)}" class="limit"/>')
        body.append(_text(px(limit) - 3, top + 10, limit_label, anchor="end", cls="lim"))
    body.append(_text(left + pw / 2, height - 10, xlabel, anchor="middle", cls="axl"))
    body.append(_text(14, top + ph / 2, ylabel, anchor="middle", cls="axl", rotate=True))
    return _svg(width, height, body, title)


def _star(x: float, y: float, r: float = 8.0) -> str:
    pts = []
    for k in range(10):
        rad = r if k % 2 == 0 else r * 0.45
        a = math.pi / 2 + k * math.pi / 5
        pts.append(f"{n(x + rad * math.cos(a))},{n(y - rad * math.sin(a))}")
    return " ".join(pts)


def heatmap(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str, xlabel: str, ylabel: str) -> str:
    """A confusion matrix: counts printed in every cell, shade by the share of the row."""
    k = len(matrix)
    cell = max(22.0, min(44.0, 420.0 / max(k, 1)))
    left, top = 110.0, 100.0
    width, height = max(left + cell * k + 20, 16 + len(title) * 6.6), top + cell * k + 40
    body = [_text(8, 14, title, size=12, cls="ttl")]
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        body.append(_text(left - 4, top + i * cell + cell / 2 + 4, labels[i] if i < len(labels) else i, anchor="end"))
        for j, c in enumerate(row):
            share = c / total
            fill = f"rgba(0,114,178,{share:.3f})"
            colour = "#fff" if share > 0.55 else "#000"
            body.append(f'<rect x="{n(left + j * cell)}" y="{n(top + i * cell)}" width="{n(cell)}" height="{n(cell)}" '
                        f'fill="{fill}" stroke="#ccc"><title>true {t(labels[i] if i < len(labels) else i)}, '
                        f'predicted {t(labels[j] if j < len(labels) else j)}: {c}</title></rect>')
            body.append(f'<text x="{n(left + j * cell + cell / 2)}" y="{n(top + i * cell + cell / 2 + 4)}" '
                        f'font-size="10" text-anchor="middle" fill="{colour}">{c}</text>')
    for j in range(k):
        x, y = left + j * cell + cell / 2 + 4, top - 6
        body.append(f'<text x="{n(x)}" y="{n(y)}" font-size="{FONT}" transform="rotate(-60 {n(x)} {n(y)})">'
                    f"{t(labels[j] if j < len(labels) else j)}</text>")
    body.append(_text(left + cell * k / 2, height - 10, xlabel, anchor="middle", cls="axl"))
    body.append(_text(12, top + cell * k / 2, ylabel, anchor="middle", cls="axl", rotate=True))
    return _svg(width, height, body, title)


def timeline(buffers: Sequence[dict[str, Any]], live: Sequence[int], arena: int, ops: Sequence[str],
             title: str, width: float = 720) -> str:
    """The arena over the schedule: each buffer a rectangle (ops it lives across x arena bytes it occupies),
    bytes live per op as a line, the arena size as a dashed limit."""
    left, right, top, bottom = 70.0, 20.0, 24.0, 96.0
    height = 360.0
    count = max(len(live), len(ops), 1)
    pw, ph = width - left - right, height - top - bottom
    yt = nice_ticks(0, max([arena] + list(live) + [1]), 4)
    xs, ys = pw / count, ph / yt[-1]
    body = [_text(left, 14, title, size=12, cls="ttl")]
    for tick in yt:
        y = top + ph - tick * ys
        body.append(f'<line x1="{n(left)}" y1="{n(y)}" x2="{n(left + pw)}" y2="{n(y)}" class="grid"/>')
        body.append(_text(left - 4, y + 4, num(tick), anchor="end"))
    for k, b in enumerate(sorted(buffers, key=lambda b: (b["first"], b["offset"], b["key"]))):
        x = left + b["first"] * xs
        w = (min(b["last"], count - 1) - b["first"] + 1) * xs
        y = top + ph - (b["offset"] + b["size"]) * ys
        h = max(b["size"] * ys, 0.5)
        body.append(f'<rect x="{n(x + 1)}" y="{n(y)}" width="{n(max(w - 2, 0.5))}" height="{n(h)}" '
                    f'fill="{PALETTE[k % len(PALETTE)]}" fill-opacity="0.55" stroke="#333" stroke-width="0.5">'
                    f'<title>{t(b["key"])}: {b["size"]:,} B at offset {b["offset"]:,}, ops {b["first"]} to '
                    f'{b["last"]}</title></rect>')
    if live:
        pts = []
        for k, v in enumerate(live):
            y = top + ph - v * ys
            pts += [f"{n(left + k * xs)},{n(y)}", f"{n(left + (k + 1) * xs)},{n(y)}"]
        body.append(f'<polyline fill="none" stroke="#000" stroke-width="1.5" points="{" ".join(pts)}"/>')
    ya = top + ph - arena * ys
    body.append(f'<line x1="{n(left)}" y1="{n(ya)}" x2="{n(left + pw)}" y2="{n(ya)}" class="limit"/>')
    body.append(_text(left + pw - 2, ya - 4, f"arena {arena:,} B", anchor="end", cls="lim"))
    step = max(1, math.ceil(count / 40))
    for k in range(0, count, step):
        label = f"#{k}" + (f" {ops[k]}" if k < len(ops) and count <= 24 else "")
        x, y = left + (k + 0.5) * xs, top + ph + 12
        body.append(f'<text x="{n(x)}" y="{n(y)}" font-size="9" text-anchor="end" '
                    f'transform="rotate(-35 {n(x)} {n(y)})">{t(label)}</text>')
    body.append(_text(left + pw / 2, height - 6, "operator (schedule order); black line: bytes live during the op",
                      anchor="middle", cls="axl"))
    body.append(_text(14, top + ph / 2, "arena offset (bytes)", anchor="middle", cls="axl", rotate=True))
    return _svg(width, height, body, title)


def usage_bar(needed: int, available: int, label: str) -> str:
    """A small bar: share of ``available`` that ``needed`` takes (vermillion with a hatch past 100 %)."""
    width, height = 160.0, 14.0
    share = needed / available if available else 0.0
    w = min(share, 1.0) * width
    over = share > 1.0
    fill = VERMILLION if over else (ORANGE if share > 0.8 else GREEN)
    body = [f'<rect x="0" y="0" width="{n(width)}" height="{n(height)}" fill="#eee" stroke="#999"/>',
            f'<rect x="0" y="0" width="{n(max(w, 0.5))}" height="{n(height)}" fill="{fill}"/>']
    if over:
        body.append(f'<path d="M0 0L{n(width)} {n(height)}M0 {n(height)}L{n(width)} 0" stroke="#000" '
                    'stroke-width="1"/>')
    return (f'<svg class="bar" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n(width)} {n(height)}" '
            f'width="{n(width)}" height="{n(height)}" role="img" aria-label="{t(label)}"><title>{t(label)}</title>'
            + "".join(body) + "</svg>")
