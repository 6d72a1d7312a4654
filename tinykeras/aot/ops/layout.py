"""Shapes and memory layouts the aot op handlers share: N-D shapes as the kernels see them, TFLite's
padding, the pair-interleaved weight rows of tk_matmul_s8, the row quads of the Helium GEMM and of the DSP
cores' batch-1 fully connected layers, and the streaming gap of raster-order kernels."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinykeras.aot.declare import Unsupported
from tinykeras.aot.planner import align_up
from tinykeras.types import TensorInfo


def shape_nhwc(t: TensorInfo) -> tuple[int, int, int, int]:
    """A tensor's shape as (N, H, W, C), missing leading axes as 1 and empty ones as 1."""
    s = tuple(max(d, 1) for d in t.shape)
    if len(s) > 4:
        raise Unsupported(f"{len(s)}-D tensor")
    s = (1,) * (4 - len(s)) + s
    return s[0], s[1], s[2], s[3]


def pad6(shape: tuple[int, ...]) -> list[int]:
    """A shape as the six axes the N-D kernels walk (leading 1s).

    >>> pad6((2, 3))
    [1, 1, 1, 1, 2, 3]
    """
    s = [max(d, 1) for d in shape]
    if len(s) > 6:
        raise Unsupported(f"{len(s)}-D tensor")
    return [1] * (6 - len(s)) + s


def same_padding(stride: int, dilation: int, in_size: int, filt: int, out_size: int) -> int:
    """TFLite's ``ComputePaddingHeightWidth`` for one axis (0 for VALID, whose output leaves none).

    >>> same_padding(1, 1, 5, 3, 5), same_padding(1, 1, 5, 3, 3)
    (1, 0)
    """
    eff = (filt - 1) * dilation + 1
    pad = ((out_size - 1) * stride + eff - in_size) // 2
    return max(pad, 0)


def pair_interleave(w: np.ndarray) -> np.ndarray:
    """Weight rows [rows, depth] in the layout tk_matmul_s8 walks with one pointer per row pair.

    Rows 2p and 2p+1 alternate in blocks of 4 depth values, then come the depth % 4 leftovers of each;
    an odd last row stays as it is. Every pair starts at offset 2p * depth, as in the natural layout.

    >>> pair_interleave(np.arange(10).reshape(2, 5)).tolist()
    [0, 1, 2, 3, 5, 6, 7, 8, 4, 9]
    >>> pair_interleave(np.arange(3).reshape(1, 3)).tolist()
    [0, 1, 2]
    """
    rows, depth = w.shape
    pairs, k4 = rows // 2, depth // 4 * 4
    if pairs == 0:  # a single row (Dense(1)): nothing to interleave
        return w.reshape(-1).copy()
    paired = w[:2 * pairs].reshape(pairs, 2, depth)
    blocks = paired[:, :, :k4].reshape(pairs, 2, k4 // 4, 4).transpose(0, 2, 1, 3).reshape(pairs, -1)
    tails = paired[:, :, k4:].reshape(pairs, -1)
    parts = [np.concatenate([blocks, tails], axis=1).reshape(-1)]
    if rows % 2:
        parts.append(w[-1])
    return np.concatenate(parts)


def row_quads(w: np.ndarray, chunk: int) -> np.ndarray:
    """Weight rows [rows, depth] in groups of 4 whose ``chunk``-value pieces come row by row (rows 0, 1, 2, 3 of
    depth 0..chunk, then of the next chunk), then each row's depth % chunk leftovers; the rows past the last group
    of 4 are laid out by ``pair_interleave``. Every group starts at 4g * depth. The Helium GEMM reads 16-value
    chunks (``helium_row_blocks``), the DSP cores' batch-1 fully connected 4-value ones (tk_fast.h tk_fc_quad: one
    LDM per chunk of the 4 rows).

    >>> row_quads(np.arange(4 * 8).reshape(4, 8), 4)[:8].tolist()
    [0, 1, 2, 3, 8, 9, 10, 11]
    >>> w = np.arange(30).reshape(6, 5)
    >>> row_quads(w, 4)[20:].tolist() == pair_interleave(w[4:]).tolist()
    True
    """
    rows, depth = w.shape
    groups, whole = rows // 4, depth // chunk * chunk
    if groups == 0:
        return pair_interleave(w)
    quads = w[:4 * groups].reshape(groups, 4, depth)
    chunks = quads[:, :, :whole].reshape(groups, 4, whole // chunk, chunk).transpose(0, 2, 1, 3).reshape(groups, -1)
    tails = quads[:, :, whole:].reshape(groups, -1)
    return np.concatenate([np.concatenate([chunks, tails], axis=1).reshape(-1), pair_interleave(w[4 * groups:])])


def helium_row_blocks(w: np.ndarray) -> np.ndarray:
    """Weight rows [rows, depth] as the Helium GEMM (tk_fast.h tk_dot4_mve) reads them with contiguous loads:
    ``row_quads`` of 16-value chunks.

    >>> helium_row_blocks(np.arange(4 * 18).reshape(4, 18))[[0, 16, 32, 48, 64, 66, 68, 70]].tolist()
    [0, 18, 36, 54, 16, 34, 52, 70]
    """
    return row_quads(w, 16)


def helium_rq_blocks(rq: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """The requantization rows of a Helium GEMM (tk_fast.h tk_gemm4_mve) as the tk_rq_param array it reads: each
    group of 4 rows as three whole vectors (4 multipliers, 4 rounding constants, 4 negated shifts) in the
    group's 12 words; the rows past the last group of 4 as they are.

    >>> helium_rq_blocks([(10, 20, 1), (11, 21, 2), (12, 22, 3), (13, 23, 4), (14, 24, 5)])
    [(10, 11, 12), (13, 20, 21), (22, 23, -1), (-2, -3, -4), (14, 24, 5)]
    """
    full = len(rq) // 4 * 4
    words = [v for g in range(0, full, 4) for field in range(3)
             for v in (rq[g + i][field] * (-1 if field == 2 else 1) for i in range(4))]
    return [(words[i], words[i + 1], words[i + 2]) for i in range(0, len(words), 3)] + list(rq[full:])


def helium_dw_params(bias_adj: np.ndarray, rq: list[tuple[int, int, int]]) -> np.ndarray:
    """Per group of 8 channels, the vectors the Helium depthwise kernel loads whole (tk_fast.h tk_dw8_taps_mve):
    bias_adj, multiplier, rounding, -shift (of tk_rq_param), each for the even channels c, c+2, c+4, c+6 then
    the odd ones.

    >>> helium_dw_params(np.arange(8), [(10 + i, 20 + i, i % 3) for i in range(8)]).reshape(8, 4)[[0, 1, 2, 7]].tolist()
    [[0, 2, 4, 6], [1, 3, 5, 7], [10, 12, 14, 16], [-1, 0, -2, -1]]
    """
    q = np.asarray(rq, dtype=np.int64).reshape(-1, 3)
    fields = np.stack([np.asarray(bias_adj, dtype=np.int64), q[:, 0], q[:, 1], -q[:, 2]])  # [4, C]
    groups = fields.shape[1] // 8
    return fields.reshape(4, groups, 4, 2).transpose(1, 0, 3, 2).reshape(-1)


def streaming_gap(in_hwc: tuple[int, int, int], out_hwc: tuple[int, int, int], stride: tuple[int, int],
                  pad: tuple[int, int], step: int) -> int:
    """Bytes by which an output may start below its input so that a kernel producing ``step`` output pixels
    at a time in raster order never overwrites input it still has to read (input and output then share
    all but this many bytes). The first input byte a pixel reads is that of its top-left valid tap.

    >>> streaming_gap((4, 4, 8), (4, 4, 8), (1, 1), (1, 1), 1)  # 3x3 SAME: one row and one pixel behind
    48
    """
    (_, in_w, in_c), (out_h, out_w, out_c) = in_hwc, out_hwc
    npix = out_h * out_w
    q = np.arange(npix)
    iy = np.maximum((q // out_w) * stride[0] - pad[0], 0)
    ix = np.maximum((q % out_w) * stride[1] - pad[1], 0)
    first = (iy * in_w + ix) * in_c
    still_needed = np.minimum.accumulate(first[::-1])[::-1]  # smallest input byte read from pixel q on
    starts = np.arange(0, npix, step)
    ends = np.minimum(starts + step, npix)
    gap = int(np.max(ends * out_c - still_needed[starts]))
    return align_up(max(gap, 0), 4)


def prod(values: Any) -> int:
    """The number of elements of a shape (empty axes count as 1; an empty shape has one).

    >>> prod([2, 0, 3]), prod([])
    (6, 1)
    """
    return int(np.prod([max(int(d), 1) for d in values])) if len(values) else 1


def axis_index(axis: int, rank: int) -> int:
    """A possibly negative axis as an index."""
    return axis + rank if axis < 0 else axis
