"""A .tflite int8 model -> C99 source (tk_model.h / tk_model.c) calling the aot kernels. No TensorFlow.

Every quantization parameter is computed here (see ``fixedpoint.py``); weights, folded biases, multipliers
and shifts become ``static const`` arrays (flash); activations live in one static arena whose layout
``planner.pack`` fixes at generation time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import tinykeras.aot.fixedpoint as fp
from tinykeras.aot.ops2 import BINARY_PARAMS, KERNEL_FILES2, OPS2, UNSUPPORTED_WHY, Ops2Mixin
from tinykeras.aot.planner import Buffer, align_up, pack
from tinykeras.c_literals import c_hex_float
from tinykeras.cgen import banner
from tinykeras.errors import ModelError, UnsupportedOpError
from tinykeras.resources import templates_dir
from tinykeras.types import ModelInfo, OpInfo, TensorInfo

SUPPORTED_OPS = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "FULLY_CONNECTED",
    "LOGISTIC", "MAX_POOL_2D", "MEAN", "MUL", "PAD", "QUANTIZE", "RESHAPE", "SOFTMAX", "TANH",
) + OPS2
KERNEL_FILES = ("tk_fixedpoint.h", "tk_kernels.h", "tk_fast.h", "tk_conv.c", "tk_ops.c") + KERNEL_FILES2
_HINT = "use --runtime tflm"
_INPLACE_OPS = {"ADD", "MUL", "LOGISTIC", "TANH", "QUANTIZE"}
_MAX_TENSOR_BYTES = 16 * 1024 * 1024  # one activation in the static arena (a microcontroller has far less)
_INT32 = (-(2**31), 2**31 - 1)
_C_TYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float", "int16": "int16_t", "uint8": "uint8_t"}


@dataclass(frozen=True)
class OpPlan:
    """What the generated code does for one operator."""

    index: int
    op: str
    kernel: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    scratch_bytes: int
    in_place: bool
    macs: int
    fast_path: bool = True  # False: a general kernel runs (the op falls off the specialised fast paths)


@dataclass(frozen=True)
class AotProgram:
    """The generated sources and the figures of the static plan."""

    files: dict[str, str]
    arena_bytes: int
    weights_bytes: int
    input_bytes: int
    output_bytes: int
    ops: tuple[OpPlan, ...] = ()
    tensor_offsets: dict[int, int] = field(default_factory=dict)
    macs: int = 0
    buffers: tuple[Buffer, ...] = ()
    buffer_offsets: dict[str, int] = field(default_factory=dict)
    streams: dict[tuple[str, str], int] = field(default_factory=dict)


class _Unsupported(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _shape_nhwc(t: TensorInfo) -> tuple[int, int, int, int]:
    s = tuple(max(d, 1) for d in t.shape)
    if len(s) > 4:
        raise _Unsupported(f"{len(s)}-D tensor")
    s = (1,) * (4 - len(s)) + s
    return s[0], s[1], s[2], s[3]


def _pad6(shape: tuple[int, ...]) -> list[int]:
    s = [max(d, 1) for d in shape]
    if len(s) > 6:
        raise _Unsupported(f"{len(s)}-D tensor")
    return [1] * (6 - len(s)) + s


def _compute_padding(stride: int, dilation: int, in_size: int, filt: int, out_size: int) -> int:
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


def _c_array(ctype: str, name: str, values: Any, per_line: int = 24) -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    if not flat:
        flat = [0]
    lines = []
    for start in range(0, len(flat), per_line):
        lines.append("  " + ", ".join(str(v) for v in flat[start:start + per_line]))
    body = ",\n".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] TK_WALIGN = {{\n{body}\n}};\n"


def _c_float(x: float, double: bool = False) -> str:
    """An exact C literal for a float32 (or double) scale."""
    try:
        return c_hex_float(x, double=double)
    except ValueError:
        raise _Unsupported("non-finite quantization scale") from None


def _check_int(key: str, value: Any) -> None:
    """Every integer a parameter struct receives must fit the C ``int``/``int32_t`` field it is written to."""
    if isinstance(value, (int, np.integer)) and not _INT32[0] <= int(value) <= _INT32[1]:
        raise _Unsupported(f"parameter {key} = {int(value)} does not fit a 32-bit int")


def _struct(ctype: str, name: str, fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if isinstance(value, (list, tuple)):
            for v in value:
                _check_int(key, v)
            value = "{" + ", ".join(str(int(v)) for v in value) + "}"
        else:
            _check_int(key, value)
        parts.append(f"  .{key} = {value},")
    return f"static const {ctype} {name} = {{\n" + "\n".join(parts) + "\n};\n"


def fast_rq_params(mults: list[int], shifts: list[int], out_zp: int,
                   acc_bound: int) -> list[tuple[int, int, int]] | None:
    """tk_rq parameters {M, 2^(e-1) + (out_zp << e), e} per channel (runtime/aot/tk_fast.h), or None.

    >>> fast_rq_params([1 << 30 | 5, 0], [-3, 0], -128, 1000)
    [(1073741829, -1020, 3), (0, -255, 1)]
    >>> fast_rq_params([1 << 30], [2], 0, 1000) is None  # a left shift: the general kernels
    True
    """
    rows = []
    for m, s in zip(mults, shifts, strict=True):
        if m == 0:
            rows.append((0, 1 + 2 * out_zp, 1))
            continue
        e = -s
        if not (1 << 30) <= m < (1 << 31) or not 1 <= e <= 31:
            return None
        rnd = (1 << (e - 1)) + out_zp * (1 << e)
        if acc_bound + abs(rnd) >= 2**30:
            return None
        rows.append((m, rnd, e))
    return rows


class _Generator(Ops2Mixin):
    def __init__(self, info: ModelInfo, name: str, profile: bool = False):
        self.info = info
        self.name = name
        self.profile = profile
        self.decls: list[str] = []
        self.calls: list[str] = []
        self.weights_bytes = 0
        self.const_names: dict[int, str] = {}
        self.array_bytes: dict[str, int] = {}
        self.plans: list[OpPlan] = []
        self.scratch: dict[int, int] = {}
        self.general: set[int] = set()  # ops running on general (not specialised) kernels
        self.overlaps: list[tuple[int, int, int]] = []  # (input, output, gap) of streaming kernels
        self.buffers: tuple[Buffer, ...] = ()
        self.buffer_offsets: dict[str, int] = {}
        self.streams: dict[tuple[str, str], int] = {}
        n = len(info.ops)
        self.group = {t.index: t.index for t in info.tensors}
        # Lifetimes over the op order; graph inputs exist before op 0, outputs live to the end.
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        for op in info.ops:
            for i in op.inputs:
                if i >= 0 and not info.tensors[i].is_constant:
                    self.last[i] = max(self.last.get(i, -1), op.index)
                    self.first.setdefault(i, op.index)
            for i in op.outputs:
                self.first.setdefault(i, op.index)
                self.last.setdefault(i, op.index)
        for i in info.inputs:
            self.first[i] = 0
            self.last.setdefault(i, 0)
        for i in info.outputs:
            self.last[i] = n
            self.first.setdefault(i, 0)

    # ---- memory groups -------------------------------------------------------------------------------
    def find(self, t: int) -> int:
        while self.group[t] != t:
            self.group[t] = self.group[self.group[t]]
            t = self.group[t]
        return t

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.group[rb] = ra

    def group_last(self, t: int) -> int:
        root = self.find(t)
        return max(self.last[m] for m in self.last if self.find(m) == root)

    # ---- tensor references ---------------------------------------------------------------------------
    def ref(self, index: int, ctype: str = "int8_t") -> str:
        t = self.info.tensors[index]
        if t.is_constant:
            if index not in self.const_names:
                name = f"tk_const_{index}"
                self.add_array(_C_TYPES.get(t.dtype, "int8_t"), name, t.data)
                self.const_names[index] = name
            return f"(const {ctype} *){self.const_names[index]}"
        return f"(({ctype} *)(tk_arena + TK_OFF_T{index}))"

    def add_array(self, ctype: str, name: str, values: Any) -> str:
        arr = np.asarray(values)
        self.decls.append(_c_array(ctype, name, arr))
        nbytes = max(arr.size, 1) * {"int8_t": 1, "uint8_t": 1, "int16_t": 2}.get(ctype, 4)
        self.weights_bytes += nbytes
        self.array_bytes[name] = nbytes
        return name

    def drop_decls(self, *names: str) -> None:
        """Remove declarations (arrays by name, or the op's parameter struct) a fast path does not use."""
        for name in names:
            pattern = re.compile(rf"^static const \w+ {re.escape(name)}(\[\d+\])?( TK_WALIGN)? =")
            self.decls = [d for d in self.decls if not pattern.match(d)]
            self.weights_bytes -= self.array_bytes.pop(name, 0)

    def tensor(self, index: int) -> TensorInfo:
        return self.info.tensors[index]

    @staticmethod
    def q(t: TensorInfo) -> tuple[float, int]:
        if t.quantization is None:
            raise _Unsupported(f"tensor '{t.name}' is not quantized")
        scale = t.quantization.scale
        if not (math.isfinite(scale) and scale > 0) or not _INT32[0] <= t.quantization.zero_point <= _INT32[1]:
            raise _Unsupported(f"tensor '{t.name}' has scale {scale} and zero point {t.quantization.zero_point}")
        return scale, t.quantization.zero_point

    def require_dtype(self, t: TensorInfo, *dtypes: str) -> None:
        if t.dtype not in dtypes:
            raise _Unsupported(f"{t.dtype} tensor '{t.name}' (the aot runtime needs {'/'.join(dtypes)})")

    # ---- generation ----------------------------------------------------------------------------------
    def run(self) -> None:
        bad: list[tuple[int, str]] = []
        for op in self.info.ops:
            if op.op not in SUPPORTED_OPS:
                bad.append((op.index, f"{op.op} ({UNSUPPORTED_WHY[op.op]})" if op.op in UNSUPPORTED_WHY else op.op))
        if bad:
            raise UnsupportedOpError(bad, "aot", _HINT)
        for op in self.info.ops:
            try:
                self.emit(op)
            except _Unsupported as exc:
                raise UnsupportedOpError([(op.index, f"{op.op} ({exc.reason})")], "aot", _HINT) from None

    def emit(self, op: OpInfo) -> None:
        handler = getattr(self, "op_" + op.op.lower())
        ins = [i for i in op.inputs]
        self.check_operands(op)
        self.calls.append(f"  /* #{op.index} {op.op} */")
        try:
            kernel, scratch, in_place = handler(op, ins, op.outputs[0])
        except (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
            raise _Unsupported(f"malformed parameters ({type(exc).__name__}: {exc})") from None
        if self.profile:
            self.calls.append(f"  TK_PROFILE_MARK({op.index});")
        if scratch:
            self.scratch[op.index] = scratch
        self.plans.append(OpPlan(index=op.index, op=op.op, kernel=kernel, inputs=tuple(op.inputs),
                                 outputs=tuple(op.outputs), scratch_bytes=scratch, in_place=in_place,
                                 macs=op.macs, fast_path=op.index not in self.general))

    def check_operands(self, op: OpInfo) -> None:
        """Before any parameter is computed: operands exist, activations are of a size the arena can hold,
        and every option the kernels receive is a small positive integer."""
        if not op.outputs or not op.inputs or op.inputs[0] < 0:
            raise _Unsupported("missing input or output")
        for i in tuple(op.inputs) + tuple(op.outputs):
            if not -1 <= i < len(self.info.tensors):
                raise _Unsupported(f"tensor index {i} out of range")
            if i >= 0 and not self.info.tensors[i].is_constant and self.info.tensors[i].nbytes > _MAX_TENSOR_BYTES:
                raise _Unsupported(f"tensor #{i} of {self.info.tensors[i].nbytes:,} bytes (the aot arena takes "
                                   f"at most {_MAX_TENSOR_BYTES // 2**20} MiB per tensor)")
        for key in ("strideH", "strideW", "dilationHFactor", "dilationWFactor", "filterHeight", "filterWidth"):
            value = op.options.get(key, 1)
            if not isinstance(value, int) or not 1 <= value <= 65535:
                raise _Unsupported(f"{key} = {value}")
        if op.options.get("padding", "SAME") not in ("SAME", "VALID"):
            raise _Unsupported(f"padding {op.options.get('padding')}")

    def try_in_place(self, op: OpInfo, candidates: list[int], out: int) -> bool:
        """Let ``out`` share memory with an input that dies at this op and has the same size."""
        o = self.tensor(out)
        for i in candidates:
            t = self.tensor(i)
            if i < 0 or t.is_constant or t.nbytes != o.nbytes or tuple(t.shape) != tuple(o.shape):
                continue
            if self.group_last(i) == op.index and out not in self.info.inputs:
                self.union(i, out)
                return True
        return False

    def try_overlap(self, op: OpInfo, i: int, out: int, gap: int) -> None:
        """Let a raster-order kernel write its output over the part of its dying input it has already read."""
        t = self.tensor(i)
        if t.is_constant or out in self.info.inputs or self.find(i) == self.find(out):
            return
        if self.group_last(i) == op.index:
            self.overlaps.append((i, out, gap))

    def act(self, op: OpInfo, out: TensorInfo) -> tuple[int, int]:
        scale, zp = self.q(out)
        try:
            return fp.activation_range(op.options.get("fusedActivationFunction", "NONE"), scale, zp)
        except ValueError as exc:
            raise _Unsupported(str(exc)) from None

    def bias_values(self, ins: list[int], channels: int) -> np.ndarray:
        if len(ins) > 2 and ins[2] >= 0:
            b = self.tensor(ins[2])
            self.require_dtype(b, "int32")
            if b.data is None:
                raise _Unsupported("non-constant bias")
            if b.data.size != channels:
                raise _Unsupported(f"bias has {b.data.size} values for {channels} channels")
            return b.data.astype(np.int64).reshape(-1)
        return np.zeros(channels, dtype=np.int64)

    def weights_of(self, index: int) -> tuple[TensorInfo, np.ndarray]:
        w = self.tensor(index)
        self.require_dtype(w, "int8")
        if w.data is None:
            raise _Unsupported("non-constant weights")
        if w.quantization is None or any(z != 0 for z in w.quantization.zero_points):
            raise _Unsupported("weights with a non-zero zero point")
        return w, w.data.astype(np.int64)

    @staticmethod
    def fold(bias: np.ndarray, in_zp: int, wsum: np.ndarray) -> np.ndarray:
        folded = bias - in_zp * wsum
        if folded.min(initial=0) < -(2**31) or folded.max(initial=0) >= 2**31:
            raise _Unsupported("folded bias exceeds int32")
        return folded

    def per_channel(self, op: OpInfo, x: TensorInfo, w: TensorInfo, out: TensorInfo, channels: int) -> tuple[str, str]:
        assert w.quantization is not None
        scales = [self.q(x)[0], self.q(out)[0], *w.quantization.scales]
        if len(w.quantization.scales) not in (1, channels):
            raise _Unsupported(f"{len(w.quantization.scales)} weight scales for {channels} channels")
        if not all(math.isfinite(v) and v > 0 for v in scales):
            raise _Unsupported("quantization scales must be finite and positive")
        mults, shifts = fp.conv_multipliers(self.q(x)[0], w.quantization.scales, self.q(out)[0], channels)
        m = self.add_array("int32_t", f"tk_mult_{op.index}", mults)
        s = self.add_array("int8_t", f"tk_shift_{op.index}", shifts)
        return m, s

    # ---- fast paths (runtime/aot/tk_fast.h) ----------------------------------------------------------
    def fast_rq(self, op: OpInfo, x: TensorInfo, w: TensorInfo, out: TensorInfo, channels: int,
                acc_bound: int) -> list[tuple[int, int, int]] | None:
        """Per-channel (multiplier, 2^(e-1) + (out_zp << e), e) for tk_rq, or None when the fast
        requantization would not give TFLM's integers (a shift that is not to the right, or accumulators
        that may reach 2^30)."""
        mults, shifts = fp.conv_multipliers(self.q(x)[0], w.quantization.scales, self.q(out)[0], channels)
        return fast_rq_params(mults, shifts, self.q(out)[1], acc_bound)

    def add_struct_array(self, ctype: str, name: str, rows: list[tuple[int, ...]]) -> str:
        body = ",\n".join("  {" + ", ".join(str(int(v)) for v in row) + "}" for row in rows)
        self.decls.append(f"static const {ctype} {name}[{len(rows)}] = {{\n{body}\n}};\n")
        self.weights_bytes += 4 * sum(len(row) for row in rows)
        return name

    def op_conv_2d(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(x, "int8")
        self.require_dtype(out, "int8")
        w, wd = self.weights_of(ins[1])
        n, h, wi, c = _shape_nhwc(x)
        _, oh, ow, oc = _shape_nhwc(out)
        oc_w, kh, kw, ic = wd.shape
        if ic != c or oc_w != oc:
            raise _Unsupported("grouped convolution")
        o = op.options
        sh, sw = o.get("strideH", 1), o.get("strideW", 1)
        dh, dw = o.get("dilationHFactor", 1), o.get("dilationWFactor", 1)
        in_zp = self.q(x)[1]
        bias = self.fold(self.bias_values(ins, oc), in_zp, wd.reshape(oc, -1).sum(axis=1))
        lo, hi = self.act(op, out)
        wname = self.add_array("int8_t", f"tk_w_{op.index}", pair_interleave(wd.reshape(oc, -1)))
        bname = self.add_array("int32_t", f"tk_b_{op.index}", bias)
        m, s = self.per_channel(op, x, w, out, oc)
        pad_h, pad_w = _compute_padding(sh, dh, h, kh, oh), _compute_padding(sw, dw, wi, kw, ow)
        self.decls.append(_struct("tk_conv_params", f"tk_p_{op.index}", {
            "batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": oh, "out_w": ow, "out_c": oc,
            "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh, "dil_w": dw,
            "pad_h": pad_h, "pad_w": pad_w, "in_zp": in_zp, "out_zp": self.q(out)[1], "act_min": lo, "act_max": hi,
            "weights": wname, "bias_adj": bname, "mult": m, "shift": s,
        }))
        direct = kh == 1 and kw == 1 and pad_h == 0 and pad_w == 0
        scratch = 0 if direct else 2 * kh * kw * c
        if n == 1:
            self.try_overlap(op, ins[0], out_i, streaming_gap((h, wi, c), (oh, ow, oc), (sh, sw), (pad_h, pad_w), 2))
        scratch_ref = f"(int8_t *)(tk_arena + TK_SCRATCH_{op.index})" if scratch else "(int8_t *)0"
        rq = self.fast_rq(op, x, w, out, oc, np.abs(bias).max(initial=0) + kh * kw * c * 128 * 128)
        if n == 1 and dh == 1 and dw == 1 and rq is not None:
            self.drop_decls(f"tk_p_{op.index}", m, s)
            col_depth = kh * kw * c
            if not direct and col_depth % 8:  # im2col columns padded to the SMLAD loop's 8, weights 0 there
                col_depth = align_up(col_depth, 8)
                self.drop_decls(wname)
                padded = np.zeros((oc, col_depth), dtype=np.int64)
                padded[:, :kh * kw * c] = wd.reshape(oc, -1)
                wname = self.add_array("int8_t", f"tk_w_{op.index}", pair_interleave(padded))
                scratch = 2 * col_depth
            self.add_struct_array("tk_rq_param", f"tk_rq_{op.index}", rq)
            self.calls.append(
                f"  tk_conv_fast({self.ref(ins[0])}, {self.ref(out_i)}, {scratch_ref}, {h}, {wi}, {c}, {oh}, {ow}, "
                f"{oc}, {kh}, {kw}, {sh}, {sw}, {pad_h}, {pad_w}, {in_zp}, {col_depth}, {wname}, {bname}, "
                f"tk_rq_{op.index}, "
                f"{lo}, {hi});")
            return ("tk_conv_fast 1x1" if direct else "tk_conv_fast"), scratch, False
        self.general.add(op.index)
        self.calls.append(f"  tk_conv_s8(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)}, {scratch_ref});")
        return "tk_conv_s8", scratch, False

    def op_depthwise_conv_2d(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(x, "int8")
        self.require_dtype(out, "int8")
        w, wd = self.weights_of(ins[1])
        n, h, wi, c = _shape_nhwc(x)
        _, oh, ow, oc = _shape_nhwc(out)
        _, kh, kw, oc_w = wd.shape
        if oc_w != oc or oc % c:
            raise _Unsupported("filter channels do not match")
        o = op.options
        sh, sw = o.get("strideH", 1), o.get("strideW", 1)
        dh, dw = o.get("dilationHFactor", 1), o.get("dilationWFactor", 1)
        in_zp = self.q(x)[1]
        bias = self.bias_values(ins, oc)
        lo, hi = self.act(op, out)
        wname = self.add_array("int8_t", f"tk_w_{op.index}", wd)
        bname = self.add_array("int32_t", f"tk_b_{op.index}", bias)
        m, s = self.per_channel(op, x, w, out, oc)
        self.decls.append(_struct("tk_dwconv_params", f"tk_p_{op.index}", {
            "batches": n, "in_h": h, "in_w": wi, "in_c": c, "out_h": oh, "out_w": ow, "out_c": oc,
            "depth_mult": oc // c, "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh,
            "dil_w": dw, "pad_h": _compute_padding(sh, dh, h, kh, oh), "pad_w": _compute_padding(sw, dw, wi, kw, ow),
            "in_zp": in_zp, "out_zp": self.q(out)[1], "act_min": lo, "act_max": hi,
            "weights": wname, "bias": bname, "mult": m, "shift": s,
        }))
        pads = (_compute_padding(sh, dh, h, kh, oh), _compute_padding(sw, dw, wi, kw, ow))
        if n == 1:
            self.try_overlap(op, ins[0], out_i, streaming_gap((h, wi, c), (oh, ow, oc), (sh, sw), pads, 1))
        rq = self.fast_rq(op, x, w, out, oc, np.abs(bias).max(initial=0) + kh * kw * 255 * 128)
        if (n == 1 and (kh, kw) == (3, 3) and (dh, dw) == (1, 1) and sh == sw and oc == c and c % 4 == 0
                and rq is not None):
            self.drop_decls(f"tk_p_{op.index}", m, s, wname, bname)
            wsum = wd.reshape(9, c).sum(axis=0)
            adj = self.fold(bias, in_zp, wsum)
            # per 4-channel group and tap: (w[c], w[c+2]) and (w[c+1], w[c+3]) as int16 lanes of an int32
            w9 = wd.reshape(9, c // 4, 4).transpose(1, 0, 2)  # [group][tap][4]
            lanes = np.stack([w9[..., 0] & 0xFFFF | (w9[..., 2] << 16), w9[..., 1] & 0xFFFF | (w9[..., 3] << 16)],
                             axis=-1)
            lanes = lanes.astype(np.int64)
            lanes = np.where(lanes >= 2**31, lanes - 2**32, lanes)
            wx = self.add_array("int32_t", f"tk_wx_{op.index}", lanes)
            ba = self.add_array("int32_t", f"tk_ba_{op.index}", adj)
            zrow = self.add_array("int8_t", f"tk_zp_{op.index}", np.full(c, in_zp))
            self.add_struct_array("tk_rq_param", f"tk_rq_{op.index}", rq)
            self.calls.append(
                f"  tk_dw3x3_fast({self.ref(ins[0])}, {self.ref(out_i)}, {h}, {wi}, {c}, {oh}, {ow}, {sh}, {pads[0]}, "
                f"{pads[1]}, {zrow}, {wx}, {ba}, tk_rq_{op.index}, {lo}, {hi});")
            return "tk_dw3x3_fast", 0, False
        self.general.add(op.index)
        self.calls.append(f"  tk_dwconv_s8(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)});")
        return "tk_dwconv_s8", 0, False

    def op_fully_connected(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(x, "int8")
        self.require_dtype(out, "int8")
        w, wd = self.weights_of(ins[1])
        if wd.ndim != 2:
            raise _Unsupported("weights are not 2-D")
        units, depth = wd.shape
        if x.num_elements % depth:
            raise _Unsupported("input size is not a multiple of the weights' depth")
        in_zp = self.q(x)[1]
        bias = self.fold(self.bias_values(ins, units), in_zp, wd.sum(axis=1))
        lo, hi = self.act(op, out)
        wname = self.add_array("int8_t", f"tk_w_{op.index}", pair_interleave(wd))
        bname = self.add_array("int32_t", f"tk_b_{op.index}", bias)
        m, s = self.per_channel(op, x, w, out, units)
        self.decls.append(_struct("tk_fc_params", f"tk_p_{op.index}", {
            "batches": x.num_elements // depth, "depth": depth, "units": units, "out_zp": self.q(out)[1],
            "act_min": lo, "act_max": hi, "weights": wname, "bias_adj": bname, "mult": m, "shift": s,
        }))
        rq = self.fast_rq(op, x, w, out, units, np.abs(bias).max(initial=0) + depth * 128 * 128)
        if rq is not None:
            self.drop_decls(f"tk_p_{op.index}", m, s)
            self.add_struct_array("tk_rq_param", f"tk_rq_{op.index}", rq)
            self.calls.append(
                f"  tk_fc_fast({self.ref(ins[0])}, {self.ref(out_i)}, {x.num_elements // depth}, {depth}, {units}, "
                f"{wname}, {bname}, tk_rq_{op.index}, {lo}, {hi});")
            return "tk_fc_fast", 0, False
        self.general.add(op.index)
        self.calls.append(f"  tk_fc_s8(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)});")
        return "tk_fc_s8", 0, False

    def pool(self, op: OpInfo, ins: list[int], out_i: int, kernel: str) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(x, "int8")
        self.require_dtype(out, "int8")
        n, h, wi, c = _shape_nhwc(x)
        _, oh, ow, _ = _shape_nhwc(out)
        o = op.options
        fh, fw = o.get("filterHeight", 1), o.get("filterWidth", 1)
        sh, sw = o.get("strideH", 1), o.get("strideW", 1)
        lo, hi = self.act(op, out)
        self.decls.append(_struct("tk_pool_params", f"tk_p_{op.index}", {
            "batches": n, "in_h": h, "in_w": wi, "c": c, "out_h": oh, "out_w": ow, "f_h": fh, "f_w": fw,
            "stride_h": sh, "stride_w": sw, "pad_h": _compute_padding(sh, 1, h, fh, oh),
            "pad_w": _compute_padding(sw, 1, wi, fw, ow), "act_min": lo, "act_max": hi,
        }))
        if n == 1:
            pads = (_compute_padding(sh, 1, h, fh, oh), _compute_padding(sw, 1, wi, fw, ow))
            self.try_overlap(op, ins[0], out_i, streaming_gap((h, wi, c), (oh, ow, c), (sh, sw), pads, 1))
        if kernel == "tk_maxpool_s8" and n == 1 and c % 4 == 0:
            pads = (_compute_padding(sh, 1, h, fh, oh), _compute_padding(sw, 1, wi, fw, ow))
            self.drop_decls(f"tk_p_{op.index}")
            self.calls.append(f"  tk_maxpool_fast({self.ref(ins[0])}, {self.ref(out_i)}, {h}, {wi}, {c}, {oh}, {ow}, "
                              f"{fh}, {fw}, {sh}, {sw}, {pads[0]}, {pads[1]}, {lo}, {hi});")
            return "tk_maxpool_fast", 0, False
        if kernel == "tk_maxpool_s8":
            self.general.add(op.index)
        self.calls.append(f"  {kernel}(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)});")
        return kernel, 0, False

    def op_average_pool_2d(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.pool(op, ins, out_i, "tk_avgpool_s8")

    def op_max_pool_2d(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.pool(op, ins, out_i, "tk_maxpool_s8")

    def binary(self, op: OpInfo, ins: list[int], out_i: int, kind: str) -> tuple[str, int, bool]:
        a, b, out = self.tensor(ins[0]), self.tensor(ins[1]), self.tensor(out_i)
        for t in (a, b, out):
            self.require_dtype(t, "int8")
        (sa, za), (sb, zb), (so, zo) = self.q(a), self.q(b), self.q(out)
        lo, hi = self.act(op, out)
        oshape = _pad6(out.shape)
        fields: dict[str, Any] = {"n": out.num_elements}
        broadcast = not (a.num_elements == b.num_elements == out.num_elements)
        strides = []
        for t in (a, b):
            s = _pad6(t.shape) if len(t.shape) <= 6 else []
            if len(t.shape) > len(out.shape):
                raise _Unsupported("input of higher rank than the output")
            dense, acc = [0] * 6, 1
            for d in range(5, -1, -1):
                dense[d] = acc if s[d] != 1 or oshape[d] == 1 else 0
                if s[d] not in (1, oshape[d]):
                    raise _Unsupported("shapes do not broadcast")
                acc *= s[d]
            strides.append(dense)
        fields.update({"broadcast": int(broadcast), "out_shape": oshape, "stride1": strides[0],
                       "stride2": strides[1], "in1_offset": -za, "in2_offset": -zb, "out_offset": zo})
        if kind == "add":
            p = fp.add_params(sa, sb, so)
            fields.update(p)
        elif kind in BINARY_PARAMS:  # ops2: SUB, SQUARED_DIFFERENCE, MAXIMUM, MINIMUM
            fields.update(BINARY_PARAMS[kind](sa, sb, so))
        else:
            mult, shift = fp.quantize_multiplier(fp.f32(sa) * fp.f32(sb) / fp.f32(so))
            fields.update({"left_shift": 0, "in1_mult": 0, "in2_mult": 0, "out_mult": mult, "in1_shift": 0,
                           "in2_shift": 0, "out_shift": shift})
        fields.update({"act_min": lo, "act_max": hi})
        self.decls.append(_struct("tk_binary_params", f"tk_p_{op.index}", fields))
        in_place = self.try_in_place(op, [i for i in ins if self.tensor(i).num_elements == out.num_elements], out_i)
        if kind == "add" and not broadcast:
            fast = self.fast_add(op, fields, lo, hi)
            if fast:
                self.drop_decls(f"tk_p_{op.index}")
                self.calls.append(f"  tk_add_fast({self.ref(ins[0])}, {self.ref(ins[1])}, {self.ref(out_i)}, "
                                  f"{out.num_elements}, {fast[0]} + 128, {fast[1]} + 128, {fast[2]}, {lo}, {hi});")
                return "tk_add_fast", 0, in_place
        if kind == "add":
            self.general.add(op.index)
        kernel = f"tk_{kind}_s8"
        self.calls.append(f"  {kernel}(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(ins[1])}, {self.ref(out_i)});")
        return kernel, 0, in_place

    def fast_add(self, op: OpInfo, f: dict[str, Any], lo: int, hi: int) -> tuple[str, str, str] | None:
        """Lookup tables of the two rescaled inputs and the output tk_rq parameters of an ADD, or None."""
        luts = []
        for k in (1, 2):
            luts.append([fp.mbqm((v + f[f"in{k}_offset"]) << f["left_shift"], f[f"in{k}_mult"], f[f"in{k}_shift"])
                         for v in range(-128, 128)])
        bound = max(abs(a) for a in luts[0]) + max(abs(b) for b in luts[1])
        rq = fast_rq_params([f["out_mult"]], [f["out_shift"]], f["out_offset"], bound)
        if rq is None:
            return None
        names = (self.add_array("int32_t", f"tk_lut1_{op.index}", luts[0]),
                 self.add_array("int32_t", f"tk_lut2_{op.index}", luts[1]))
        self.add_struct_array("tk_rq_param", f"tk_rq_{op.index}", rq)
        return names[0], names[1], f"tk_rq_{op.index}"

    def op_add(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.binary(op, ins, out_i, "add")

    def op_mul(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.binary(op, ins, out_i, "mul")

    def op_reshape(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        if x.nbytes != out.nbytes:
            raise _Unsupported("input and output sizes differ")
        if x.is_constant or out_i in self.info.inputs:
            self.calls.append(f"  memcpy({self.ref(out_i)}, {self.ref(ins[0])}, {out.nbytes});")
            return "memcpy", 0, False
        self.union(ins[0], out_i)
        self.calls.append("  /* alias: the output shares the input's memory */")
        return "alias", 0, True

    def op_softmax(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(x, "int8")
        self.require_dtype(out, "int8")
        if self.q(out) != (1.0 / 256, -128):
            raise _Unsupported("int8 output must have scale 1/256 and zero point -128")
        mult, shift, diff_min = fp.softmax_params(op.options.get("beta", 1.0), self.q(x)[0])
        depth = max(x.shape[-1], 1) if x.shape else 1
        self.decls.append(_struct("tk_softmax_params", f"tk_p_{op.index}", {
            "rows": x.num_elements // depth, "depth": depth, "in_mult": mult, "in_left_shift": shift,
            "diff_min": diff_min,
        }))
        self.calls.append(f"  tk_softmax_s8(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)});")
        return "tk_softmax_s8", 0, False

    def sigmoid(self, op: OpInfo, ins: list[int], out_i: int, kernel: str,
                out_q: tuple[float, int]) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(x, "int8")
        self.require_dtype(out, "int8")
        if self.q(out)[1] != out_q[1]:
            raise _Unsupported(f"int8 output must have zero point {out_q[1]}")
        mult, shift, radius = fp.sigmoid_params(self.q(x)[0])
        self.decls.append(_struct("tk_sigmoid_params", f"tk_p_{op.index}", {
            "n": x.num_elements, "in_zp": self.q(x)[1], "range_radius": radius, "in_mult": mult,
            "in_left_shift": shift,
        }))
        in_place = self.try_in_place(op, [ins[0]], out_i)
        self.calls.append(f"  {kernel}(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)});")
        return kernel, 0, in_place

    def op_logistic(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.sigmoid(op, ins, out_i, "tk_logistic_s8", (1.0 / 256, -128))

    def op_tanh(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        return self.sigmoid(op, ins, out_i, "tk_tanh_s8", (1.0 / 128, 0))

    def op_quantize(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(out, "int8")
        so, zo = self.q(out)
        if x.dtype == "float32":
            self.calls.append(f"  tk_quantize_f32_s8({x.num_elements}, {_c_float(so)}, {zo}, "
                              f"{self.ref(ins[0], 'float')}, {self.ref(out_i)});")
            return "tk_quantize_f32_s8", 0, False
        self.require_dtype(x, "int8", "float32")
        si, zi = self.q(x)
        mult, shift = fp.quantize_multiplier(fp.f32(si) / fp.f32(so))
        self.decls.append(_struct("tk_requant_params", f"tk_p_{op.index}", {
            "n": x.num_elements, "in_zp": zi, "out_zp": zo, "mult": mult, "shift": shift}))
        in_place = self.try_in_place(op, [ins[0]], out_i)
        self.calls.append(f"  tk_requantize_s8(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)});")
        return "tk_requantize_s8", 0, in_place

    def op_dequantize(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(x, "int8")
        self.require_dtype(out, "float32")
        s, z = self.q(x)
        self.calls.append(f"  tk_dequantize_s8_f32({x.num_elements}, {_c_float(s, double=True)}, {z}, "
                          f"{self.ref(ins[0])}, {self.ref(out_i, 'float')});")
        return "tk_dequantize_s8_f32", 0, False

    def op_mean(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out, axis = self.tensor(ins[0]), self.tensor(out_i), self.tensor(ins[1])
        self.require_dtype(x, "int8")
        self.require_dtype(out, "int8")
        if axis.data is None:
            raise _Unsupported("non-constant axis")
        rank = len(x.shape)
        axes = sorted({int(a) + rank if int(a) < 0 else int(a) for a in axis.data.reshape(-1)})
        shape6 = _pad6(x.shape)
        offset = 6 - rank
        reduced = {a + offset for a in axes}
        count = int(np.prod([shape6[d] for d in reduced])) if reduced else 1
        out_stride, acc = [0] * 6, 1
        for d in range(5, -1, -1):
            if d not in reduced:
                out_stride[d] = acc
                acc *= shape6[d]
        (si, zi), (so, zo) = self.q(x), self.q(out)
        mult, shift = fp.mean_multiplier(si, so, count)
        self.decls.append(_struct("tk_mean_params", f"tk_p_{op.index}", {
            "in_shape": shape6, "out_stride": out_stride, "out_n": out.num_elements, "count": count,
            "in_zp": zi, "out_zp": zo, "mult": mult, "shift": shift}))
        scratch = 4 * out.num_elements
        self.calls.append(f"  tk_mean_s8(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)}, "
                          f"(int32_t *)(tk_arena + TK_SCRATCH_{op.index}));")
        return "tk_mean_s8", scratch, False

    def op_concatenation(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        out = self.tensor(out_i)
        if op.options.get("fusedActivationFunction", "NONE") != "NONE":
            raise _Unsupported("fused activation")
        rank = len(out.shape)
        axis = int(op.options.get("axis", 0))
        axis = axis + rank if axis < 0 else axis
        size = out.itemsize
        outer = int(np.prod([max(d, 1) for d in out.shape[:axis]])) if axis else 1
        out_stride = int(np.prod([max(d, 1) for d in out.shape[axis:]])) * size
        offset = 0
        for i in ins:
            t = self.tensor(i)
            if t.dtype != out.dtype or (out.dtype == "int8" and self.q(t) != self.q(out)):
                raise _Unsupported("inputs quantized differently from the output")
            chunk = int(np.prod([max(d, 1) for d in t.shape[axis:]])) * size
            self.calls.append(f"  tk_copy_rows((uint8_t *){self.ref(out_i)} + {offset}, {out_stride}, "
                              f"{self.ref(i)}, {chunk}, {outer});")
            offset += chunk
        return "tk_copy_rows", 0, False

    def op_pad(self, op: OpInfo, ins: list[int], out_i: int) -> tuple[str, int, bool]:
        x, out, pads = self.tensor(ins[0]), self.tensor(out_i), self.tensor(ins[1])
        self.require_dtype(x, "int8")
        if pads.data is None:
            raise _Unsupported("non-constant paddings")
        rank = len(x.shape)
        before = [0] * 6
        for d, (lo_pad, _) in enumerate(pads.data.reshape(rank, 2).tolist()):
            before[6 - rank + d] = int(lo_pad)
        self.decls.append(_struct("tk_pad_params", f"tk_p_{op.index}", {
            "in_shape": _pad6(x.shape), "out_shape": _pad6(out.shape), "before": before, "elem_bytes": 1,
            "pad_value": self.q(out)[1]}))
        self.calls.append(f"  tk_pad(&tk_p_{op.index}, {self.ref(ins[0])}, {self.ref(out_i)});")
        return "tk_pad", 0, False

    # ---- plan and files ------------------------------------------------------------------------------
    def plan(self) -> tuple[dict[str, int], int, list[Buffer]]:
        """Offsets of every tensor (by group) and scratch area; returns (offsets by tensor/scratch key, size)."""
        members: dict[int, list[int]] = {}
        for t in self.first:
            members.setdefault(self.find(t), []).append(t)
        size = {g: max(self.info.tensors[m].nbytes for m in ms) for g, ms in members.items()}
        buffers = []
        for g in sorted(members):
            first = min(self.first[m] for m in members[g])
            last = max(self.last[m] for m in members[g])
            buffers.append(Buffer(f"t{g}", align_up(size[g], 4), first, last))
        for index, nbytes in sorted(self.scratch.items()):
            buffers.append(Buffer(f"s{index}", align_up(nbytes, 4), index, index))
        # Streaming kernels: the output may start up to `gap` bytes below its dying input.
        streams: dict[tuple[str, str], int] = {}
        for i, o, gap in self.overlaps:
            gi, go = self.find(i), self.find(o)
            if gi != go:
                key = (f"t{gi}", f"t{go}")
                streams[key] = max(streams.get(key, 0), gap)
        offsets, total = pack(buffers, streams=streams)
        self.streams = streams
        for g in members:
            offsets[f"g{g}"] = offsets[f"t{g}"]
        return offsets, max(total, 16), buffers

    def files(self) -> tuple[dict[str, str], int, dict[int, int]]:
        offsets, arena, buffers = self.plan()
        self.buffers = tuple(buffers)
        self.buffer_offsets = {k: v for k, v in offsets.items() if not k.startswith("g")}
        info = self.info
        head = banner(info.path or "model.tflite", info.sha256, "//")
        ins, outs = info.input_tensors(), info.output_tensors()
        tensor_offsets = {t: offsets[f"g{self.find(t)}"] for t in self.first}
        defines = [f"#define TK_OFF_T{t} {off}" for t, off in sorted(tensor_offsets.items())]
        defines += [f"#define TK_SCRATCH_{index} {offsets[f's{index}']}" for index in sorted(self.scratch)]
        header = _HEADER.format(
            banner=head, name=self.name, arena=arena, in_bytes=ins[0].nbytes, out_bytes=outs[0].nbytes,
            n_in=len(ins), n_out=len(outs), macs=info.macs,
        )
        in_list = ", ".join(f"tk_arena + {tensor_offsets[t.index]}" for t in ins)
        out_list = ", ".join(f"tk_arena + {tensor_offsets[t.index]}" for t in outs)
        in_sizes = ", ".join(str(t.nbytes) for t in ins)
        out_sizes = ", ".join(str(t.nbytes) for t in outs)
        decls, calls = "\n".join(self.decls), "\n".join(self.calls)
        if self.profile:
            decls = _PROFILE_DECLS.format(n=len(info.ops)) + decls
            calls = "  uint64_t tk_prof_t = tk_profile_now();\n" + calls
        source = _SOURCE.format(
            banner=head, defines="\n".join(defines), decls=decls, calls=calls,
            in_list=in_list, out_list=out_list, in_sizes=in_sizes, out_sizes=out_sizes,
            name=self.name,
        )
        files = {"tk_model.h": header, "tk_model.c": source}
        kernel_dir = templates_dir() / "runtime" / "aot"
        for fname in KERNEL_FILES:
            files[fname] = (kernel_dir / fname).read_text()
        return files, arena, tensor_offsets


_HEADER = """{banner}#ifndef TK_MODEL_H_
#define TK_MODEL_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define TK_MODEL_NAME "{name}"
#define TK_RUNTIME "aot"
#define TK_ARENA_BYTES {arena}      /* static memory plan */
#define TK_INPUT_BYTES {in_bytes}
#define TK_OUTPUT_BYTES {out_bytes}
#define TK_NUM_INPUTS {n_in}
#define TK_NUM_OUTPUTS {n_out}
#define TK_MODEL_MACS {macs}

int tk_model_init(void);            /* 0 = ok */
int8_t *tk_input(void);             /* where to write the input (inside the arena) */
const int8_t *tk_output(void);      /* where the output is after tk_invoke() */
int tk_invoke(void);                /* 0 on success */
unsigned tk_input_bytes(void);
unsigned tk_output_bytes(void);
unsigned tk_arena_used(void);
const char *tk_model_error(void);

/* Models with several inputs or outputs. */
int8_t *tk_input_at(unsigned i);
const int8_t *tk_output_at(unsigned i);
unsigned tk_input_bytes_at(unsigned i);
unsigned tk_output_bytes_at(unsigned i);

#ifdef __cplusplus
}}
#endif

#endif /* TK_MODEL_H_ */
"""

_PROFILE_DECLS = """/* Profile build (tinykeras profile): a counter read after every op. Not the benchmark build. */
uint64_t tk_profile_now(void);  /* the profile firmware's counter: instructions, cycles or microseconds */
uint64_t tk_profile_counts[{n}];
const unsigned tk_profile_num_ops = {n};
#define TK_PROFILE_MARK(k) do {{ \\
    const uint64_t tk_prof_now = tk_profile_now(); \\
    tk_profile_counts[k] += tk_prof_now - tk_prof_t; \\
    tk_prof_t = tk_prof_now; \\
  }} while (0)

"""

_SOURCE = """{banner}#include <string.h>

#include "tk_fast.h"
#include "tk_kernels.h"
#include "tk_model.h"
#include "tk_ops2.h"

#if defined(__GNUC__) || defined(__clang__)
#define TK_ALIGN16 __attribute__((aligned(16)))
#define TK_WALIGN __attribute__((aligned(8))) /* weights: LDRD in tk_fast.h needs word alignment, even at -Os */
#else
#define TK_ALIGN16
#define TK_WALIGN
#endif

/* Arena offsets: tensors sharing memory share an offset; op scratch areas are TK_SCRATCH_<op>. */
{defines}

static uint8_t tk_arena[TK_ARENA_BYTES] TK_ALIGN16;

{decls}
static uint8_t *const tk_inputs[TK_NUM_INPUTS] = {{{in_list}}};
static uint8_t *const tk_outputs[TK_NUM_OUTPUTS] = {{{out_list}}};
static const unsigned tk_input_sizes[TK_NUM_INPUTS] = {{{in_sizes}}};
static const unsigned tk_output_sizes[TK_NUM_OUTPUTS] = {{{out_sizes}}};

int tk_model_init(void) {{
  memset(tk_arena, 0, sizeof(tk_arena));
  return 0;
}}

int8_t *tk_input(void) {{ return (int8_t *)tk_inputs[0]; }}
const int8_t *tk_output(void) {{ return (const int8_t *)tk_outputs[0]; }}
unsigned tk_input_bytes(void) {{ return TK_INPUT_BYTES; }}
unsigned tk_output_bytes(void) {{ return TK_OUTPUT_BYTES; }}
unsigned tk_arena_used(void) {{ return TK_ARENA_BYTES; }}
const char *tk_model_error(void) {{ return ""; }}
int8_t *tk_input_at(unsigned i) {{ return i < TK_NUM_INPUTS ? (int8_t *)tk_inputs[i] : (int8_t *)0; }}
const int8_t *tk_output_at(unsigned i) {{
  return i < TK_NUM_OUTPUTS ? (const int8_t *)tk_outputs[i] : (const int8_t *)0;
}}
unsigned tk_input_bytes_at(unsigned i) {{ return i < TK_NUM_INPUTS ? tk_input_sizes[i] : 0u; }}
unsigned tk_output_bytes_at(unsigned i) {{ return i < TK_NUM_OUTPUTS ? tk_output_sizes[i] : 0u; }}

int tk_invoke(void) {{
{calls}
  return 0;
}}
"""


def generate(model: bytes, info: ModelInfo, name: str = "model", profile: bool = False) -> AotProgram:
    """Generate the aot C sources for ``info`` (the ModelInfo of ``model``).

    ``profile=True`` adds a counter read after every op (``tk_profile_counts``, ``tk_profile_now()`` to be
    provided by the profile firmware, see tinykeras/profile.py); the benchmark build never has it.

    Raises UnsupportedOpError (listing each op and its index) when an op or a tensor type is outside
    what the aot kernels implement.
    """
    if not info.ops:
        raise ModelError(f"{info.path or 'model'}: the model has no operators")
    gen = _Generator(info, name, profile)
    gen.run()
    files, arena, offsets = gen.files()
    ins, outs = info.input_tensors(), info.output_tensors()
    return AotProgram(
        files=files, arena_bytes=arena, weights_bytes=gen.weights_bytes, input_bytes=ins[0].nbytes,
        output_bytes=outs[0].nbytes, ops=tuple(gen.plans), tensor_offsets=offsets, macs=info.macs,
        buffers=gen.buffers, buffer_offsets=gen.buffer_offsets, streams=dict(gen.streams),
    )
