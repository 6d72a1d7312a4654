"""Row-band (patch-based, MCUNetV2-style) execution of a chain of convolutions, without recomputation.

A *chain* is a run of consecutive CONV_2D / DEPTHWISE_CONV_2D / MAX_POOL_2D / AVERAGE_POOL_2D ops on the fast
paths, each feeding only the next (a pool's window is a kernel like any other), and may end with the ADD of a
residual block: the chain's last output plus the chain's own input, same shape (``SKIP_OPS``), read row by row
beside it, so the block's output can take the input's place row by row. Run in bands, the chain computes
its last op's output a few rows at a time. Every intermediate activation lives in a sliding window of rows (its
*region*): for each band, working backwards from the last op's rows, each op computes only the rows of its output
not computed before (each row exactly once), after moving the rows the next op still needs (the halo of its kernel)
to the top of its region. Each op runs its usual kernel on those rows (a row range with an adjusted top padding, so
the arithmetic is the kernel's own and stays bit-exact). The chain's input and output stay whole, and the output
may stream over the input rows no later band reads (``gap``).

The generator plans the model both ways (``candidates``) and keeps banding only where it makes the arena
smaller (``AotProgram.bands``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinykeras.aot.ops.layout import same_padding
from tinykeras.aot.planner import align_up

CHAIN_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D")
POOL_OPS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")
SKIP_OPS = ("ADD",)  # may end a chain: its other input is the chain's input (a residual block)
_MAX_CHAIN = 12  # ops in one chain
_BAND_ROWS = (1,)  # output rows of the chain's last op per band (more only lets earlier ops run further ahead)
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
    skip: bool = False  # an ADD of the previous op's output and the chain's input, at the same rows


@dataclass(frozen=True)
class BandPlan:
    """A chain run in bands: per band, per op, the rows its kernel reads and writes."""

    ops: tuple[ChainOp, ...]
    band_rows: int
    # per band: (first input row of the first op, first output row of the last op, then per op ``FIELDS``)
    table: tuple[tuple[int, ...], ...]
    region_bytes: tuple[int, ...]  # the sliding window of each intermediate activation (ops but the last)
    gap: int  # the chain's output may start this many bytes below its (dying) input

    # per op and band: input rows given to the kernel, output rows it computes, its top padding, the byte
    # offset of its first input row in the previous op's region, and for its own region (ops but the last)
    # the byte offset and length of the rows kept from the previous band (moved to the region's top; the new
    # rows follow them)
    FIELDS = ("in_rows", "out_rows", "top", "in_off", "keep_from", "keep_bytes")

    @property
    def first(self) -> int:
        return self.ops[0].index

    @property
    def last(self) -> int:
        return self.ops[-1].index

    @property
    def bands(self) -> int:
        return len(self.table)

    def field(self, j: int, name: str) -> int:
        """Index in a table row of op ``j``'s ``name`` (one of ``FIELDS``)."""
        return 2 + len(self.FIELDS) * j + self.FIELDS.index(name)

    def describe(self) -> str:
        return f"ops #{self.first}-#{self.last} row by row in {self.bands} steps (every row computed once)"


def band_plan(ops: tuple[ChainOp, ...], band_rows: int) -> BandPlan | None:
    """The steps of ``ops`` towards ``band_rows`` output rows of the last op at a time (None if the table would
    not fit int16). Each step runs every op once, in order, computing one new output row where the op's
    consumer needs it and its input rows are there (else none): row by row, so each region holds no more than
    its consumer's kernel window.

    >>> op = ChainOp(0, in_h=4, out_h=4, out_w=8, k_h=3, stride_h=1, pad_h=1, in_row_bytes=8,
    ...              out_row_bytes=8, macs=4 * 8 * 9)
    >>> p = band_plan((op, ChainOp(1, 4, 4, 8, 3, 1, 1, 8, 8, 4 * 8 * 9)), 4)
    >>> [(r[2:4], r[8:10]) for r in p.table]  # (in_rows, out_rows) of op 0 and of op 1 in each step
    [((2, 1), (0, 0)), ((3, 1), (2, 1)), ((3, 1), (3, 1)), ((2, 1), (3, 1)), ((0, 0), (2, 1))]
    >>> p.region_bytes, p.gap
    ((24,), 0)
    """
    n, last = len(ops), ops[-1]
    done = [0] * n   # output rows of each op computed so far
    base = [0] * n   # the output row at the top of each op's region
    region = [0] * (n - 1)
    table: list[tuple[int, ...]] = []
    first_reads: list[int] = []

    def first_read(j: int) -> int:  # the first input row of op j's next output row
        return max(done[j] * ops[j].stride_h - ops[j].pad_h, 0)

    def read_end(j: int) -> int:  # one past the last input row of op j's next output row
        return min(done[j] * ops[j].stride_h - ops[j].pad_h + ops[j].k_h, ops[j].in_h)

    for out0 in range(0, last.out_h, band_rows):
        need = [0] * n  # output rows of each op computed once this band is done
        need[-1] = min(out0 + band_rows, last.out_h)
        for j in range(n - 1, 0, -1):
            op = ops[j]
            need[j - 1] = max(done[j - 1], min((need[j] - 1) * op.stride_h - op.pad_h + op.k_h, op.in_h))
        while done != need:
            row = [first_read(0), done[-1]]
            for j, op in enumerate(ops):
                runs = done[j] < need[j] and (j == 0 or read_end(j) <= done[j - 1])
                if not runs:
                    row += [0] * len(BandPlan.FIELDS)
                    continue
                keep_from = keep_bytes = 0
                if j < n - 1:  # this op's region: keep the rows the next op still reads, then add the new one
                    top_row = min(first_read(j + 1), done[j])
                    keep_from = (top_row - base[j]) * op.out_row_bytes
                    keep_bytes = (done[j] - top_row) * op.out_row_bytes
                    base[j] = top_row
                    region[j] = max(region[j], (done[j] + 1 - top_row) * op.out_row_bytes)
                in_off = (first_read(j) - base[j - 1]) * ops[j - 1].out_row_bytes if j else 0
                top = first_read(j) - (done[j] * op.stride_h - op.pad_h)
                row += [read_end(j) - first_read(j), 1, top, in_off, keep_from, keep_bytes]
                done[j] += 1
            if max(row) > _INT16_MAX:
                return None
            table.append(tuple(row))
            # the chain's input rows this step and later ones read: the first op's, and a skip ADD's own rows
            first_reads.append(min(row[0], row[1]) if last.skip else row[0])
    gap = 0
    for e in range(len(table) - 1):  # step e's output must not reach input rows a later step still reads
        written = table[e + 1][1] * last.out_row_bytes
        gap = max(gap, written - first_reads[e + 1] * ops[0].in_row_bytes)
    return BandPlan(ops=ops, band_rows=band_rows, table=tuple(table),
                    region_bytes=tuple(align_up(r, 4) for r in region), gap=align_up(gap, 4))


def chain_op(info: Any, op: Any) -> ChainOp | None:
    """``op``'s row geometry, or None if it cannot be part of a chain (not a batch-1 NHWC convolution or pool, or
    a convolution one pixel wide: banded, each call would compute one pixel, without the two-column GEMM)."""
    pool = op.op in POOL_OPS
    if op.op not in CHAIN_OPS or len(op.inputs) < (1 if pool else 2) or not op.outputs:
        return None
    x, out = info.tensors[op.inputs[0]], info.tensors[op.outputs[0]]
    w_shape = (1, int(op.options.get("filterHeight", 1)), 1, 1) if pool else info.tensors[op.inputs[1]].shape
    if len(x.shape) != 4 or len(out.shape) != 4 or len(w_shape) != 4 or x.shape[0] != 1:
        return None
    o = op.options
    if o.get("dilationHFactor", 1) != 1:
        return None
    _, h, wi, c = (int(v) for v in x.shape)
    _, oh, ow, oc = (int(v) for v in out.shape)
    kh, sh = int(w_shape[1]), int(o.get("strideH", 1))
    if min(h, oh, kh, sh) < 1 or (op.op == "CONV_2D" and ow < 2):  # a one-pixel row loses the GEMM's pixel pairs
        return None
    return ChainOp(op.index, h, oh, ow, kh, sh, same_padding(sh, 1, h, kh, oh), wi * c, ow * oc, int(op.macs))


def skip_add(info: Any, op: Any, run: list[ChainOp], single_use: set[int]) -> ChainOp | None:
    """``op`` as the residual ADD ending ``run`` (its inputs: the run's last output, used only here, and the run's
    first input, both of the output's shape), or None."""
    if op.op not in SKIP_OPS or len(op.inputs) != 2 or len(op.outputs) != 1 or not run or run[-1].skip:
        return None
    last, x = info.ops[run[-1].index], info.ops[run[0].index].inputs[0]
    if run[-1].index != op.index - 1 or sorted(op.inputs) != sorted((last.outputs[0], x)) or x == last.outputs[0]:
        return None
    shape = tuple(int(v) for v in info.tensors[op.outputs[0]].shape)
    if (last.outputs[0] not in single_use or len(shape) != 4 or shape[0] != 1
            or any(tuple(int(v) for v in info.tensors[i].shape) != shape for i in op.inputs)):
        return None
    row = shape[2] * shape[3]
    return ChainOp(op.index, shape[1], shape[1], shape[2], 1, 1, 0, row, row, 0, skip=True)


def candidates(info: Any, fast: set[int], single_use: set[int]) -> list[BandPlan]:
    """Every band plan worth comparing: chains of consecutive fast-path convolutions and pools (``fast``: op indices)
    whose intermediate outputs are used once, by the next op (``single_use``: such tensor indices), each may end
    with a residual ADD (``skip_add``)."""
    runs: list[list[ChainOp]] = []
    prev = None
    for op in info.ops:
        add = skip_add(info, op, runs[-1], single_use) if op.index in fast and runs else None
        if add is not None:
            runs[-1].append(add)
            prev = op
            continue
        c = chain_op(info, op) if op.index in fast else None
        linked = (c is not None and prev is not None and runs and runs[-1][-1].index == op.index - 1
                  and not runs[-1][-1].skip and prev.outputs[0] == op.inputs[0] and prev.outputs[0] in single_use)
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
