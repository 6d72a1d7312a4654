"""``pareto.png``: the validation objective against instructions and against RAM."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_pareto(report: dict[str, Any], path: Path) -> None:
    """Validation objective against instructions and against RAM: every trained trial, the fronts, the best."""
    from tinykeras.recipes.base import _pyplot, save_png

    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    objective = report["objective"]
    trained = [t for t in report["trials"] if t.get("trained") and objective in t["metrics"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    limits = report["limits"]
    for ax, cost, front_key, label, limit in (
            (axes[0], "instructions", "front_latency", "instructions per inference (qemu_m4)",
             limits["latency_ms"] * limits["clock_hz"] / 1000.0 if limits["latency_ms"] else None),
            (axes[1], "ram_bytes", "front_ram",
             f"RAM: {limits.get('runtime', 'aot')} arena + runtime + benchmark buffers (KiB)", limits["ram_bytes"])):
        scale = 1 / 1024 if cost == "ram_bytes" else 1  # RAM in KiB: round ticks
        for t in trained:
            m = t["metrics"]
            if cost not in m:
                continue
            ax.scatter(m[cost] * scale, m[objective], marker="o" if t["feasible"] else "x",
                       color="tab:blue" if t["feasible"] else "tab:gray", zorder=2)
            ax.annotate(t["trial_id"], (m[cost] * scale, m[objective]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        front = [next(t for t in trained if t["trial_id"] == i) for i in report[front_key]]
        if front:
            ax.plot([t["metrics"][cost] * scale for t in front], [t["metrics"][objective] for t in front], "-",
                    color="tab:orange", label="Pareto front", zorder=1)
        best = next((t for t in trained if t["trial_id"] == report["best"]), None)
        if best is not None:
            ax.scatter(best["metrics"][cost] * scale, best["metrics"][objective], marker="*", s=180, color="tab:red",
                       label=f"best (trial {best['trial_id']})", zorder=3)
        if limit is not None:
            ax.axvline(limit * scale, color="tab:red", linestyle="--", linewidth=0.8, label=f"{report['board']} limit")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # a few ticks, never overlapping
        if cost == "ram_bytes":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        else:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.tick_params(labelsize=7)
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel(f"{objective} (int8)", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"tinykeras tune {report['recipe']} --board {report['board']}: {len(trained)} trained trials "
                 f"(x = breaks a limit)", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
