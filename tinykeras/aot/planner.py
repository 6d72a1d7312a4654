"""Static arena plan: buffer lifetimes over the op order, packed greedily by size.

A *buffer* is one arena region: a tensor, a group of tensors that share memory (RESHAPE aliases and
in-place elementwise outputs), or an op's scratch area. Buffers whose lifetimes overlap never overlap
in memory; the largest buffers are placed first, each at the lowest offset that fits (the strategy of
TFLM's greedy planner, without its bookkeeping in the arena).
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


def pack(buffers: list[Buffer], alignment: int = 4) -> tuple[dict[str, int], int]:
    """Offsets for every buffer and the arena size they need.

    >>> offsets, size = pack([Buffer("a", 8, 0, 1), Buffer("b", 8, 1, 2), Buffer("c", 8, 2, 3)])
    >>> offsets, size
    ({'a': 0, 'b': 8, 'c': 0}, 16)
    """
    order = sorted(buffers, key=lambda b: (-b.size, b.first, b.key))
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[str, int] = {}
    for buf in order:
        conflicts = sorted(
            (off, off + other.size) for other, off in placed
            if not (other.last < buf.first or buf.last < other.first)
        )
        offset = 0
        for start, end in conflicts:
            if offset + buf.size <= start:
                break
            offset = max(offset, align_up(end, alignment))
        offsets[buf.key] = offset
        placed.append((buf, offset))
    size = max((off + b.size for b, off in placed), default=0)
    return offsets, align_up(size, 16)


def check_plan(buffers: list[Buffer], offsets: dict[str, int]) -> None:
    """Raise AssertionError if two live-at-once buffers overlap (used by the tests)."""
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            live_together = not (a.last < b.first or b.last < a.first)
            disjoint = offsets[a.key] + a.size <= offsets[b.key] or offsets[b.key] + b.size <= offsets[a.key]
            if live_together and not disjoint and a.size and b.size:
                raise AssertionError(f"buffers {a.key} and {b.key} overlap while both are live")
