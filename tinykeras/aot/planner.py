"""Static arena plan: buffer lifetimes over the op order, packed greedily.

A *buffer* is one arena region: a tensor, a group of tensors that share memory (RESHAPE aliases and
in-place elementwise outputs), or an op's scratch area. Buffers whose lifetimes overlap never overlap
in memory, except where a *stream* allows it: a raster-order kernel (convolution, depthwise, pooling)
may write its output over the part of its dying input it has already read, so the output may start up
to ``gap`` bytes below the input (``streaming_gap`` in ops/layout.py). The packer tries several placement
orders (largest first, as TFLM's greedy planner; by birth; longest-lived first) and two tie-breaks, and
keeps the smallest arena.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    """One arena region live from op ``first`` to op ``last`` (inclusive)."""

    key: str
    size: int
    first: int
    last: int


def align_up(n: int, alignment: int) -> int:
    """Round ``n`` up to a multiple of ``alignment``.

    >>> align_up(13, 4)
    16
    """
    return (n + alignment - 1) // alignment * alignment


def _forbidden(buf: Buffer, other: Buffer, off: int, streams: dict[tuple[str, str], int]) -> tuple[int, int]:
    """Open interval of offsets ``buf`` must avoid given ``other`` placed at ``off`` (both live together)."""
    lo, hi = off - buf.size, off + other.size
    gap = streams.get((other.key, buf.key))  # buf is the output streamed over input `other`
    if gap is not None:
        lo = off - min(buf.size, gap)
    gap = streams.get((buf.key, other.key))  # buf is the input of the output `other`
    if gap is not None:
        hi = off + min(other.size, gap)
    return lo, hi


def _place(order: list[Buffer], alignment: int, streams: dict[tuple[str, str], int],
           prefer_up: bool) -> tuple[dict[str, int], int]:
    """Place each buffer where it grows the arena's extent least (offsets may go negative while placing:
    a streamed output sits below its input); then shift everything so the lowest offset is 0."""
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[str, int] = {}
    low = high = 0
    for buf in order:
        intervals = [
            _forbidden(buf, other, off, streams) for other, off in placed
            if not (other.last < buf.first or buf.last < other.first) and other.size and buf.size
        ]
        candidates = {0}
        for lo, hi in intervals:
            candidates.add(align_up(hi, alignment))
            candidates.add(lo // alignment * alignment)
        best: tuple[int, int, int, int] | None = None
        for cand in candidates:
            if any(lo < cand < hi for lo, hi in intervals):
                continue
            extent = max(high, cand + buf.size) - min(low, cand)
            key = (extent, int(cand < 0) if prefer_up else 0, abs(cand), cand)
            if best is None or key < best:
                best = key
        assert best is not None
        offset = best[3]
        offsets[buf.key] = offset
        placed.append((buf, offset))
        low, high = min(low, offset), max(high, offset + buf.size)
    for key in offsets:
        offsets[key] -= low
    return offsets, align_up(high - low, 16)


def pack(buffers: list[Buffer], alignment: int = 4,
         streams: dict[tuple[str, str], int] | None = None) -> tuple[dict[str, int], int]:
    """Offsets for every buffer and the arena size they need.

    ``streams`` maps (input key, output key) to the gap by which the output may start below the input.

    >>> offsets, size = pack([Buffer("a", 8, 0, 1), Buffer("b", 8, 1, 2), Buffer("c", 8, 2, 3)])
    >>> offsets, size
    ({'a': 0, 'b': 8, 'c': 0}, 16)
    >>> pack([Buffer("in", 64, 0, 1), Buffer("out", 64, 1, 2)], streams={("in", "out"): 8})[1]
    80
    """
    streams = streams or {}
    orders = [
        sorted(buffers, key=lambda b: (-b.size, b.first, b.key)),
        sorted(buffers, key=lambda b: (b.first, -b.size, b.key)),
        sorted(buffers, key=lambda b: (-(b.last - b.first), -b.size, b.key)),
    ]
    best: tuple[dict[str, int], int] | None = None
    for order in orders:
        for prefer_up in (True, False):
            offsets, size = _place(order, alignment, streams, prefer_up)
            if best is None or size < best[1]:
                best = (offsets, size)
    assert best is not None
    return best
