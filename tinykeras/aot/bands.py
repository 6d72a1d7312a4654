"""Row-band (patch-based, MCUNetV2-style) execution of a chain of convolutions.

A *chain* is a run of consecutive CONV_2D / DEPTHWISE_CONV_2D ops on the fast paths, each feeding only the
next. Run in bands, the chain computes its last op's output a few rows at a time: for each band the rows
every earlier op must produce (with the halo rows the next op's kernel needs, recomputed where bands
overlap) are worked out backwards, and each op runs its usual kernel on those rows only (a row range with
an adjusted top padding, so the arithmetic is the kernel's own and stays bit-exact). The intermediate
activations then exist only as one band at a time, in two ping-pong regions; the chain's input and output
stay whole, and the output may stream over the input rows no later band reads (``gap``).

The generator plans the model both ways (``candidates``) and keeps banding only where it makes the arena
smaller (``AotProgram.bands``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinykeras.aot.ops.layout import same_padding
from tinykeras.aot.planner import align_up

CHAIN_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
_MAX_CHAIN = 12  # ops in one chain (longer ones only add recomputation)
_BAND_ROWS = (1, 2, 3, 4)  # output rows of the chain's last op per band, tried in turn
_INT16_MAX = 32767  # the band table is int16


@dataclass(frozen=True)
class ChainOp:
    """The row geometry of one op of a chain (batch 1, NHWC)."""

    index: int
    in_h: int
    out_h: int
    out_w: int
    k_h: int
    stride_h: int
    pad_h: int
    in_row_bytes: int  # in_w * in_c
    out_row_bytes: int  # out_w * out_c
    macs: int


@dataclass(frozen=True)
class BandPlan:
    """A chain run in bands: per band, per op, the rows its kernel reads and writes."""

    ops: tuple[ChainOp, ...]
    band_rows: int
    # per band: (first input row of the first op, first output row of the last op, then per op:
    # input rows, output rows, top padding)
    table: tuple[tuple[int, ...], ...]
    region_bytes: tuple[int, int]  # the two ping-pong regions of the intermediate bands
    gap: int  # the chain's output may start this many bytes below its (dying) input
    extra_macs: int  # recomputed halo rows

    @property
    def first(self) -> int:
        return self.ops[0].index

    @property
    def last(self) -> int:
        return self.ops[-1].index

    @property
    def bands(self) -> int:
        return len(self.table)

    def describe(self) -> str:
        return (f"ops #{self.first}-#{self.last} in {self.bands} bands of {self.band_rows} output row(s), "
                f"{self.extra_macs:,} MACs recomputed")


def _input_rows(op: ChainOp, r0: int, r1: int) -> tuple[int, int, int]:
    """Input rows [a, e) that output rows [r0, r1) read (clipped to the tensor) and the band's top padding."""
    lo = r0 * op.stride_h - op.pad_h
    hi = (r1 - 1) * op.stride_h - op.pad_h + op.k_h
    a, e = max(lo, 0), min(hi, op.in_h)
    return a, e, a - lo


def band_plan(ops: tuple[ChainOp, ...], band_rows: int) -> BandPlan | None:
    """The bands of ``ops`` with ``band_rows`` output rows of the last op each (None if the table would not
    fit int16).

    >>> op = ChainOp(0, in_h=8, out_h=8, out_w=8, k_h=3, stride_h=1, pad_h=1, in_row_bytes=8,
    ...              out_row_bytes=8, macs=8 * 8 * 9)
    >>> p = band_plan((op, ChainOp(1, 8, 8, 8, 3, 1, 1, 8, 8, 8 * 8 * 9)), 4)
    >>> p.table[0], p.table[1]
    ((0, 0, 6, 5, 1, 5, 4, 1), (2, 4, 6, 5, 0, 5, 4, 0))
    >>> p.region_bytes, p.gap, p.extra_macs
    ((40, 0), 16, 144)
    """
    last = ops[-1]
    table: list[tuple[int, ...]] = []
    rows_done = [0] * len(ops)
    region = [0, 0]
    first_rows: list[int] = []
    for out0 in range(0, last.out_h, band_rows):
        r0, r1 = out0, min(out0 + band_rows, last.out_h)
        per_op: list[tuple[int, int, int]] = []
        for j in range(len(ops) - 1, -1, -1):
            a, e, pad = _input_rows(ops[j], r0, r1)
            per_op.append((e - a, r1 - r0, pad))
            rows_done[j] += r1 - r0
            if j:
                region[(j - 1) % 2] = max(region[(j - 1) % 2], (e - a) * ops[j - 1].out_row_bytes)
            r0, r1 = a, e
        first_rows.append(r0)
        per_op.reverse()
        row = (r0, out0, *[v for t in per_op for v in t])
        if max(row) > _INT16_MAX:
            return None
        table.append(row)
    gap = 0
    for b in range(len(table) - 1):  # band b's output must not reach input rows a later band still reads
        written = min((b + 1) * band_rows, last.out_h) * last.out_row_bytes
        gap = max(gap, written - first_rows[b + 1] * ops[0].in_row_bytes)
    extra = sum(op.macs // op.out_h * (done - op.out_h) for op, done in zip(ops, rows_done, strict=True))
    return BandPlan(ops=ops, band_rows=band_rows, table=tuple(table),
                    region_bytes=(align_up(region[0], 4), align_up(region[1], 4)), gap=align_up(gap, 4),
                    extra_macs=extra)


def chain_op(info: Any, op: Any) -> ChainOp | None:
    """``op``'s row geometry, or None if it cannot be part of a chain (not a batch-1 NHWC convolution)."""
    if op.op not in CHAIN_OPS or len(op.inputs) < 2 or not op.outputs:
        return None
    x, w, out = info.tensors[op.inputs[0]], info.tensors[op.inputs[1]], info.tensors[op.outputs[0]]
    if len(x.shape) != 4 or len(out.shape) != 4 or len(w.shape) != 4 or x.shape[0] != 1:
        return None
    o = op.options
    if o.get("dilationHFactor", 1) != 1:
        return None
    _, h, wi, c = (int(v) for v in x.shape)
    _, oh, ow, oc = (int(v) for v in out.shape)
    kh, sh = int(w.shape[1]), int(o.get("strideH", 1))
    if min(h, oh, kh, sh) < 1:
        return None
    return ChainOp(op.index, h, oh, ow, kh, sh, same_padding(sh, 1, h, kh, oh), wi * c, ow * oc, int(op.macs))


def candidates(info: Any, fast: set[int], single_use: set[int]) -> list[BandPlan]:
    """Every band plan worth comparing: chains of consecutive fast-path convolutions (``fast``: op indices)
    whose intermediate outputs are used once, by the next op (``single_use``: such tensor indices)."""
    runs: list[list[ChainOp]] = []
    prev = None
    for op in info.ops:
        c = chain_op(info, op) if op.index in fast else None
        linked = (c is not None and prev is not None and runs and runs[-1][-1].index == op.index - 1
                  and prev.outputs[0] == op.inputs[0] and prev.outputs[0] in single_use)
        if c is not None:
            if linked:
                runs[-1].append(c)
            else:
                runs.append([c])
        prev = op
    plans = []
    for run in runs:  # chains start where a run starts (the first layers: where the early activations are)
        for end in range(2, min(len(run), _MAX_CHAIN) + 1):
            for rows in _BAND_ROWS:
                plan = band_plan(tuple(run[:end]), rows)
                if plan is not None and plan.bands > 1:
                    plans.append(plan)
    return plans
