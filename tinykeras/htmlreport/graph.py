"""Draw a model's operator graph (``inspect --json`` form) as inline SVG: layers by longest path from the
inputs, so parallel branches sit side by side and a residual ADD shows its skip edge curving past the
branch; every model input and output is its own node."""

from __future__ import annotations

from typing import Any

from tinykeras.htmlreport.svg import BLUE, GREEN, ORANGE, _svg, n, t

NODE_W, NODE_H, GAP_X, ROW_H = 170.0, 36.0, 24.0, 62.0


def _shape(tensor: dict[str, Any] | None) -> str:
    return "x".join(str(d) for d in tensor["shape"]) if tensor else "-"


def layout(summary: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, str]]]:
    """Nodes (id -> {label, sub, kind, row, col}) and edges (from, to, tensor shape)."""
    nodes: dict[str, dict[str, Any]] = {}
    producer: dict[int, str] = {}
    edges: list[tuple[str, str, str]] = []
    for k, tensor in enumerate(summary["inputs"]):
        nid = f"in{k}"
        nodes[nid] = {"label": f"input {tensor['name']}", "sub": f"{_shape(tensor)} {tensor['dtype']}",
                      "kind": "io", "row": 0, "preds": []}
        producer[tensor["index"]] = nid
    for op in summary["ops"]:
        nid = f"op{op['index']}"
        preds = []
        for tensor in op["inputs"]:
            if tensor is None or tensor["constant"] or tensor["index"] not in producer:
                continue
            src = producer[tensor["index"]]
            if src not in preds:
                preds.append(src)
                edges.append((src, nid, _shape(tensor)))
        row = 1 + max((nodes[p]["row"] for p in preds), default=0)
        out = op["outputs"][0] if op["outputs"] else None
        sub = f"{_shape(out)}" + (f" · {op['macs']:,} MACs" if op.get("macs") else "")
        nodes[nid] = {"label": f"#{op['index']} {op['op']}", "sub": sub, "kind": "op", "row": row, "preds": preds,
                      "branch": len(preds) > 1}
        for tensor in op["outputs"]:
            if tensor is not None:
                producer[tensor["index"]] = nid
    for k, tensor in enumerate(summary["outputs"]):
        nid = f"out{k}"
        src = producer.get(tensor["index"])
        preds = [src] if src else []
        nodes[nid] = {"label": f"output {tensor['name']}", "sub": f"{_shape(tensor)} {tensor['dtype']}",
                      "kind": "io", "row": 1 + max((nodes[p]["row"] for p in preds), default=0), "preds": preds}
        if src:
            edges.append((src, nid, _shape(tensor)))
    rows: dict[int, list[str]] = {}
    for nid, node in nodes.items():
        rows.setdefault(node["row"], []).append(nid)
    for r in sorted(rows):
        def key(nid: str, order: list[str] = rows[r]) -> tuple[float, int]:
            preds = nodes[nid]["preds"]
            mean = sum(nodes[p]["col"] for p in preds) / len(preds) if preds else 0.0
            return (mean, order.index(nid))
        for col, nid in enumerate(sorted(rows[r], key=key)):
            nodes[nid]["col"] = float(col) - (len(rows[r]) - 1) / 2.0
    return nodes, edges


def graph_svg(summary: dict[str, Any], title: str) -> str:
    nodes, edges = layout(summary)
    cols = [node["col"] for node in nodes.values()]
    lo, hi = min(cols), max(cols)
    margin = 130.0
    width = (hi - lo) * (NODE_W + GAP_X) + NODE_W + 2 * margin
    height = (max(node["row"] for node in nodes.values()) + 1) * ROW_H + 40

    def centre(nid: str) -> tuple[float, float]:
        node = nodes[nid]
        return margin + NODE_W / 2 + (node["col"] - lo) * (NODE_W + GAP_X), 30 + node["row"] * ROW_H

    mid = margin + NODE_W / 2 + (0.0 - lo) * (NODE_W + GAP_X)
    body = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
            'orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#555"/></marker></defs>']
    for src, dst, shape in edges:
        (x1, y1), (x2, y2) = centre(src), centre(dst)
        y1 += NODE_H / 2
        y2 -= NODE_H / 2
        span = nodes[dst]["row"] - nodes[src]["row"]
        if span > 1:   # a skip edge: bulge out beside the nodes it passes, on the source's side
            side = -1.0 if x1 < mid else 1.0
            off = side * (NODE_W / 2 + 30 + 8 * (span % 3)) + (x2 - x1) / 2
            d = (f"M{n(x1)} {n(y1)}C{n(x1 + off)} {n(y1 + ROW_H / 2)} {n(x1 + off)} {n(y2 - ROW_H / 2)} "
                 f"{n(x2)} {n(y2)}")
        else:
            d = f"M{n(x1)} {n(y1)}C{n(x1)} {n(y1 + 16)} {n(x2)} {n(y2 - 16)} {n(x2)} {n(y2)}"
        body.append(f'<path d="{d}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)">'
                    f"<title>{t(shape)}</title></path>")
    for nid, node in sorted(nodes.items(), key=lambda item: (item[1]["row"], item[1]["col"])):
        x, y = centre(nid)
        fill = "#fff" if node["kind"] == "op" else "#eef6fb"
        stroke = ORANGE if node.get("branch") else (GREEN if node["kind"] == "io" else BLUE)
        width_px = 2.5 if node.get("branch") else 1.2
        body.append(f'<g class="node" data-node="{t(nid)}"><rect x="{n(x - NODE_W / 2)}" y="{n(y - NODE_H / 2)}" '
                    f'width="{n(NODE_W)}" height="{n(NODE_H)}" rx="5" fill="{fill}" stroke="{stroke}" '
                    f'stroke-width="{width_px}"/>'
                    f'<text x="{n(x)}" y="{n(y - 3)}" font-size="11" text-anchor="middle" font-weight="600">'
                    f'{t(node["label"][:30])}</text>'
                    f'<text x="{n(x)}" y="{n(y + 11)}" font-size="9" text-anchor="middle">{t(node["sub"][:34])}</text>'
                    f"<title>{t(node['label'])}: {t(node['sub'])}"
                    f"{' (joins ' + str(len(node['preds'])) + ' branches)' if node.get('branch') else ''}</title></g>")
    return _svg(width, height, body, title)
