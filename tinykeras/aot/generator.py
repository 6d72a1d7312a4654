"""A .tflite int8 model -> C99 source (tk_model.h / tk_model.c) calling the aot kernels. No TensorFlow.

The generator walks the ops in order and hands each to its handler (``tinykeras.aot.ops``, one module per op
family); the handlers compute every quantization parameter (``fixedpoint.py``) and emit C through
``emit.py``. Here: tensor lifetimes and memory groups (in-place and streaming ops), the operand checks
every op gets, the helpers the handlers share, and the static plan (``planner.pack``) and files.
Weights, folded biases, multipliers and shifts become ``static const`` arrays (flash); activations live in
one static arena whose layout is fixed at generation time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import tinykeras.aot.fixedpoint as fp
from tinykeras.aot.bands import CHAIN_OPS, SKIP_OPS, BandPlan, candidates
from tinykeras.aot.declare import Unsupported
from tinykeras.aot.emit import C_TYPES, INT32_RANGE, c_array, c_struct_array, kernel_sources, render
from tinykeras.aot.ops import KERNEL_FILES, OPS, REFUSED, SUPPORTED_OPS
from tinykeras.aot.ops.layout import helium_row_blocks, helium_rq_blocks
from tinykeras.aot.planner import Buffer, align_up, pack
from tinykeras.cgen import banner
from tinykeras.errors import ModelError, UnsupportedOpError
from tinykeras.types import ModelInfo, OpInfo, TensorInfo

__all__ = ["KERNEL_FILES", "SUPPORTED_OPS", "AotProgram", "Generator", "OpPlan", "generate"]

_HINT = "use --runtime tflm"
# Cores whose conv kernels run on int16 columns (tk_fast.h TK_FAST_WIDE: the DSP extension without Helium).
WIDE_COLUMN_CORES = frozenset({"cortex-m4", "cortex-m7", "cortex-m33"})
# Cores with Helium (MVE): depthwise 3x3 layers also get their weights tap by tap (int8 [tap][channel]).
HELIUM_CORES = frozenset({"cortex-m55", "cortex-m85"})
MIN_BAND_SAVING = 0.10  # row bands are kept only where they shrink the arena by at least this share
_MAX_TENSOR_BYTES = 16 * 1024 * 1024  # one activation in the static arena (a microcontroller has far less)


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
    bands: BandPlan | None = None  # the chain run in row bands (None: the per-tensor plan was smaller)
    per_tensor_arena_bytes: int = 0  # the arena of the per-tensor plan, for comparison


class Generator:
    """One model's generation: the state the op handlers write into (``decls``, ``calls``, plan inputs)."""

    def __init__(self, info: ModelInfo, name: str, profile: bool = False, bands: BandPlan | None = None,
                 core: str | None = None, wide_fc: frozenset[int] = frozenset()):
        self.info = info
        self.wide_fc = wide_fc  # fully connected ops given an int16 copy of their input (free_fc_scratch)
        self.name = name
        self.profile = profile
        self.bands = bands
        self.wide_columns = core in WIDE_COLUMN_CORES  # scratch for int16 conv columns (DSP cores without Helium)
        self.helium = core in HELIUM_CORES
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
                self.add_array(C_TYPES.get(t.dtype, "int8_t"), name, t.data)
                self.const_names[index] = name
            return f"(const {ctype} *){self.const_names[index]}"
        return f"(({ctype} *)(tk_arena + TK_OFF_T{index}))"

    def add_array(self, ctype: str, name: str, values: Any) -> str:
        arr = np.asarray(values)
        self.decls.append(c_array(ctype, name, arr))
        nbytes = max(arr.size, 1) * {"int8_t": 1, "uint8_t": 1, "int16_t": 2}.get(ctype, 4)
        self.weights_bytes += nbytes
        self.array_bytes[name] = nbytes
        return name

    def gemm_weights(self, name: str, rows: np.ndarray) -> str:
        """Array ``name`` (pair-interleaved ``rows``) of a fast GEMM (tk_fast.h tk_gemm_cols), re-added on Helium
        cores in the row blocks their kernels read (layout.helium_row_blocks)."""
        if self.helium:
            self.drop_decls(name)
            self.add_array("int8_t", name, helium_row_blocks(rows))
        return name

    def gemm_rq(self, rq: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        """A fast GEMM's tk_rq_param rows in the layout this core's kernels read (layout.helium_rq_blocks on
        Helium cores)."""
        return helium_rq_blocks(rq) if self.helium else rq

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
            raise Unsupported(f"tensor '{t.name}' is not quantized")
        scale, zero_point = t.quantization.scale, t.quantization.zero_point
        if not (math.isfinite(scale) and scale > 0) or not INT32_RANGE[0] <= zero_point <= INT32_RANGE[1]:
            raise Unsupported(f"tensor '{t.name}' has scale {scale} and zero point {zero_point}")
        return scale, zero_point

    def require_dtype(self, t: TensorInfo, *dtypes: str) -> None:
        if t.dtype not in dtypes:
            raise Unsupported(f"{t.dtype} tensor '{t.name}' (the aot runtime needs {'/'.join(dtypes)})")

    def unary_s8(self, ins: list[int], out_i: int) -> tuple[TensorInfo, TensorInfo]:
        """The input and output of a one-input int8 op, both checked to be int8."""
        x, out = self.tensor(ins[0]), self.tensor(out_i)
        self.require_dtype(x, "int8")
        self.require_dtype(out, "int8")
        return x, out

    def const_ints(self, index: int, what: str) -> list[int]:
        """The values of a constant operand (an axis, a permutation, begin/end ...)."""
        t = self.tensor(index)
        if t.data is None:
            raise Unsupported(f"non-constant {what}")
        return [int(v) for v in t.data.reshape(-1)]

    # ---- generation ----------------------------------------------------------------------------------
    def run(self) -> None:
        bad: list[tuple[int, str]] = []
        for op in self.info.ops:
            if op.op not in SUPPORTED_OPS:
                bad.append((op.index, f"{op.op} ({REFUSED[op.op]})" if op.op in REFUSED else op.op))
        if bad:
            raise UnsupportedOpError(bad, "aot", _HINT)
        for op in self.info.ops:
            try:
                self.emit(op)
            except Unsupported as exc:  # the reason, then what the op's declaration says aot runs
                detail = f"{op.op} ({exc.reason}; aot's {op.op}: {OPS[op.op].constraints})"
                raise UnsupportedOpError([(op.index, detail)], "aot", _HINT) from None
        self.share_identical_arrays()

    def share_identical_arrays(self) -> None:
        """Declare each constant array once: a later array with the same type, size and values (an unrolled
        RNN's weights and multipliers, repeated per time step) becomes a ``#define`` of the first."""
        first: dict[str, str] = {}
        decls = []
        for decl in self.decls:
            m = re.match(r"static const (\w+) (\w+)(\[\d+\])?( TK_WALIGN)? = (.*)", decl, flags=re.S)
            if m is None:
                decls.append(decl)
                continue
            key = f"{m[1]} {m[3]}{m[4]} {m[5]}"
            if key in first:
                decls.append(f"#define {m[2]} {first[key]}\n")
                self.weights_bytes -= self.array_bytes.pop(m[2], 0)
            else:
                first[key] = m[2]
                decls.append(decl)
        self.decls = decls

    def emit(self, op: OpInfo) -> None:
        handler = OPS[op.op].handler
        ins = [i for i in op.inputs]
        self.check_operands(op)
        bands = self.bands
        if bands is not None and op.index == bands.first:
            self.calls.append(f"  /* #{bands.first}-#{bands.last}: {bands.bands} row bands (aot/bands.py) */")
            self.add_array("int16_t", f"tk_band_{bands.first}", bands.table)
            self.calls.append(f"  {{ int tk_b; for (tk_b = 0; tk_b < {bands.bands}; ++tk_b) {{\n"
                              f"  const int16_t *tk_r = tk_band_{bands.first} + tk_b * {len(bands.table[0])};")
        self.calls.append(f"  /* #{op.index} {op.op} */")
        start = len(self.calls)
        try:
            kernel, scratch, in_place = handler(self, op, ins, op.outputs[0])
        except (IndexError, KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
            raise Unsupported(f"malformed parameters ({type(exc).__name__}: {exc})") from None
        if op.index not in self.general and not self.in_bands(op.index) and len(self.calls) > start:
            # a fast kernel in a function of its own: the compiler allocates its registers apart from the rest
            body = "\n".join(self.calls[start:])
            del self.calls[start:]
            self.decls.append(f"static TK_NOINLINE void tk_op_{op.index}(void) {{\n{body}\n}}\n")
            self.calls.append(f"  tk_op_{op.index}();")
        if self.profile:
            self.calls.append(f"  TK_PROFILE_MARK({op.index});")
        if bands is not None and op.index == bands.last:
            self.calls.append("  } }")
        if scratch:
            self.scratch[op.index] = scratch
        self.plans.append(OpPlan(index=op.index, op=op.op, kernel=kernel, inputs=tuple(op.inputs),
                                 outputs=tuple(op.outputs), scratch_bytes=scratch, in_place=in_place,
                                 macs=op.macs, fast_path=op.index not in self.general))

    def check_operands(self, op: OpInfo) -> None:
        """Before any parameter is computed: operands exist, activations are of a size the arena can hold,
        and every option the kernels receive is a small positive integer."""
        if not op.outputs or not op.inputs or op.inputs[0] < 0:
            raise Unsupported("missing input or output")
        for i in tuple(op.inputs) + tuple(op.outputs):
            if not -1 <= i < len(self.info.tensors):
                raise Unsupported(f"tensor index {i} out of range")
            if i >= 0 and not self.info.tensors[i].is_constant and self.info.tensors[i].nbytes > _MAX_TENSOR_BYTES:
                raise Unsupported(f"tensor #{i} of {self.info.tensors[i].nbytes:,} bytes (the aot arena takes "
                                   f"at most {_MAX_TENSOR_BYTES // 2**20} MiB per tensor)")
        for key in ("strideH", "strideW", "dilationHFactor", "dilationWFactor", "filterHeight", "filterWidth"):
            value = op.options.get(key, 1)
            if not isinstance(value, int) or not 1 <= value <= 65535:
                raise Unsupported(f"{key} = {value}")
        if op.options.get("padding", "SAME") not in ("SAME", "VALID"):
            raise Unsupported(f"padding {op.options.get('padding')}")

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
        if t.is_constant or out in self.info.inputs or self.find(i) == self.find(out) or self.in_bands(op.index):
            return
        if self.group_last(i) == op.index:
            self.overlaps.append((i, out, gap))

    # ---- row bands (aot/bands.py) --------------------------------------------------------------------
    def in_bands(self, index: int) -> bool:
        return self.bands is not None and self.bands.first <= index <= self.bands.last

    def band_args(self, index: int, in_t: int, out_t: int, h: int, oh: int, pad_h: int) -> tuple[str, ...]:
        """(input, output, in_h, out_h, pad_h) of a convolution's or pool's kernel call: the whole tensors and literal
        shapes, or inside a banded chain the band's rows (``tk_r``: this band's row of the band table); there it
        first emits the move of the rows this op's region keeps from the previous band."""
        if not self.in_bands(index):
            return self.ref(in_t), self.ref(out_t), str(h), str(oh), str(pad_h)
        assert self.bands is not None
        bands = self.bands
        j, ops = index - bands.first, bands.ops

        def region(k: int) -> str:  # the sliding window of chain op k's output rows
            return f"((int8_t *)(tk_arena + TK_BAND_{bands.first} + {sum(bands.region_bytes[:k])}))"

        def at(name: str) -> str:
            return f"tk_r[{bands.field(j, name)}]"

        if j < len(ops) - 1:  # first the rows the next op still reads move to the top of this op's region
            self.calls.append(f"  tk_fast_copy({region(j)}, {region(j)} + {at('keep_from')}, {at('keep_bytes')});")
        src = (f"((int8_t *)(tk_arena + TK_OFF_T{in_t} + tk_r[0] * {ops[0].in_row_bytes}))" if j == 0
               else f"({region(j - 1)} + {at('in_off')})")
        dst = (f"((int8_t *)(tk_arena + TK_OFF_T{out_t} + tk_r[1] * {ops[-1].out_row_bytes}))"
               if j == len(ops) - 1 else f"({region(j)} + {at('keep_bytes')})")
        # a band's top padding is the op's for the first band, 0 for the others: a literal 0 where the op has none
        # (so the compiler sees a 1x1 convolution take its direct path: no im2col into a null scratch)
        top = at("top") if pad_h else "0"
        return src, dst, at("in_rows"), at("out_rows"), top

    def act(self, op: OpInfo, out: TensorInfo) -> tuple[int, int]:
        scale, zp = self.q(out)
        try:
            return fp.activation_range(op.options.get("fusedActivationFunction", "NONE"), scale, zp)
        except ValueError as exc:
            raise Unsupported(str(exc)) from None

    def bias_values(self, ins: list[int], channels: int) -> np.ndarray:
        if len(ins) > 2 and ins[2] >= 0:
            b = self.tensor(ins[2])
            self.require_dtype(b, "int32")
            if b.data is None:
                raise Unsupported("non-constant bias")
            if b.data.size != channels:
                raise Unsupported(f"bias has {b.data.size} values for {channels} channels")
            return b.data.astype(np.int64).reshape(-1)
        return np.zeros(channels, dtype=np.int64)

    def weights_of(self, index: int) -> tuple[TensorInfo, np.ndarray]:
        w = self.tensor(index)
        self.require_dtype(w, "int8")
        if w.data is None:
            raise Unsupported("non-constant weights")
        if w.quantization is None or any(z != 0 for z in w.quantization.zero_points):
            raise Unsupported("weights with a non-zero zero point")
        return w, w.data.astype(np.int64)

    @staticmethod
    def fold(bias: np.ndarray, in_zp: int, wsum: np.ndarray) -> np.ndarray:
        folded = bias - in_zp * wsum
        if folded.min(initial=0) < -(2**31) or folded.max(initial=0) >= 2**31:
            raise Unsupported("folded bias exceeds int32")
        return folded

    def per_channel(self, op: OpInfo, x: TensorInfo, w: TensorInfo, out: TensorInfo, channels: int) -> tuple[str, str]:
        assert w.quantization is not None
        scales = [self.q(x)[0], self.q(out)[0], *w.quantization.scales]
        if len(w.quantization.scales) not in (1, channels):
            raise Unsupported(f"{len(w.quantization.scales)} weight scales for {channels} channels")
        if not all(math.isfinite(v) and v > 0 for v in scales):
            raise Unsupported("quantization scales must be finite and positive")
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
        return fp.fast_rq_params(mults, shifts, self.q(out)[1], acc_bound)

    def add_struct_array(self, ctype: str, name: str, rows: list[tuple[int, ...]]) -> str:
        self.decls.append(c_struct_array(ctype, name, rows))
        self.array_bytes[name] = 4 * sum(len(row) for row in rows)
        self.weights_bytes += self.array_bytes[name]
        return name

    # ---- plan and files ------------------------------------------------------------------------------
    def lifetimes(self, bands: BandPlan | None) -> tuple[dict[int, int], dict[int, int]]:
        """First and last op of every arena tensor; a banded chain's intermediate tensors have none (they live
        in the band regions), its input lives through the whole chain and its output from the chain's start."""
        first, last = dict(self.first), dict(self.last)
        if bands is not None:
            chain = [self.info.ops[p.index] for p in bands.ops]
            for op in chain[:-1]:
                first.pop(op.outputs[0], None)
                last.pop(op.outputs[0], None)
            last[chain[0].inputs[0]] = max(last[chain[0].inputs[0]], bands.last)
            first[chain[-1].outputs[0]] = bands.first
        return first, last

    def plan(self, bands: BandPlan | None = None) -> tuple[dict[str, int], int, list[Buffer]]:
        """Offsets of every tensor (by group) and scratch area; returns (offsets by tensor/scratch key, size).

        ``bands``: plan for that chain run in row bands (a plan of the per-tensor generation may be asked
        for any candidate: the chain's ops emit the same scratch either way).
        """
        first, last = self.lifetimes(bands)
        members: dict[int, list[int]] = {}
        for t in first:
            members.setdefault(self.find(t), []).append(t)
        size = {g: max(self.info.tensors[m].nbytes for m in ms) for g, ms in members.items()}
        buffers = []
        for g in sorted(members):
            buffers.append(Buffer(f"t{g}", align_up(size[g], 4), min(first[m] for m in members[g]),
                                  max(last[m] for m in members[g])))
        chain_scratch = 0
        for index, nbytes in sorted(self.scratch.items()):
            if bands is not None and bands.first <= index <= bands.last:
                chain_scratch = max(chain_scratch, align_up(nbytes, 4))
            else:
                buffers.append(Buffer(f"s{index}", align_up(nbytes, 4), index, index))
        streams: dict[tuple[str, str], int] = {}
        if bands is not None:  # the band regions, then the largest im2col scratch of the chain's ops
            buffers.append(Buffer(f"b{bands.first}", sum(bands.region_bytes) + chain_scratch, bands.first,
                                  bands.last))
            chain_in, chain_out = self.info.ops[bands.first].inputs[0], self.info.ops[bands.last].outputs[0]
            gi, go = self.find(chain_in), self.find(chain_out)
            # the output streams over the input if the chain is the input's last use: its first op, or a skip ADD
            # reading it row by row to the end
            if (gi != go and chain_in not in self.info.outputs and chain_out not in self.info.inputs
                    and self.group_last(chain_in) <= (bands.last if bands.ops[-1].skip else bands.first)):
                streams[(f"t{gi}", f"t{go}")] = bands.gap
        # Streaming kernels: the output may start up to `gap` bytes below its dying input.
        for i, o, gap in self.overlaps:
            if i not in first or o not in first:
                continue
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
        offsets, arena, buffers = self.plan(self.bands)
        self.buffers = tuple(buffers)
        self.buffer_offsets = {k: v for k, v in offsets.items() if not k.startswith("g")}
        info = self.info
        head = banner(info.path or "model.tflite", info.sha256, "//")
        ins, outs = info.input_tensors(), info.output_tensors()
        tensor_offsets = {t: offsets[f"g{self.find(t)}"] for t in self.lifetimes(self.bands)[0]}
        defines = [f"#define TK_OFF_T{t} {off}" for t, off in sorted(tensor_offsets.items())]
        bands = self.bands
        for index in sorted(self.scratch):
            if self.in_bands(index):
                assert bands is not None
                off = offsets[f"b{bands.first}"] + sum(bands.region_bytes)
            else:
                off = offsets[f"s{index}"]
            defines.append(f"#define TK_SCRATCH_{index} {off}")
        if bands is not None:
            defines.append(f"#define TK_BAND_{bands.first} {offsets[f'b{bands.first}']}")
        header = render(
            "tk_model.h.in", banner=head, name=self.name, arena=arena, in_bytes=ins[0].nbytes,
            out_bytes=outs[0].nbytes, n_in=len(ins), n_out=len(outs), macs=info.macs,
        )
        in_list = ", ".join(f"tk_arena + {tensor_offsets[t.index]}" for t in ins)
        out_list = ", ".join(f"tk_arena + {tensor_offsets[t.index]}" for t in outs)
        in_sizes = ", ".join(str(t.nbytes) for t in ins)
        out_sizes = ", ".join(str(t.nbytes) for t in outs)
        decls, calls = "\n".join(self.decls), "\n".join(self.calls)
        if self.profile:
            decls = render("tk_profile_decls.c.in", n=len(info.ops)) + decls
            calls = "  uint64_t tk_prof_t = tk_profile_now();\n" + calls
        source = render(
            "tk_model.c.in", banner=head, helium=int(self.helium), defines="\n".join(defines), decls=decls, calls=calls,
            in_list=in_list, out_list=out_list, in_sizes=in_sizes, out_sizes=out_sizes,
        )
        files = {"tk_model.h": header, "tk_model.c": source, **kernel_sources(KERNEL_FILES)}
        return files, arena, tensor_offsets


def choose_bands(gen: Generator, per_tensor_arena: int) -> BandPlan | None:
    """The band plan (aot/bands.py) with the smallest arena, fewest bands on a tie, if it needs at least
    ``MIN_BAND_SAVING`` less than the per-tensor plan of ``gen`` (a generation without bands); else None (each
    band costs its kernel calls and the moves of the kept rows: a few percent of arena is not worth that)."""
    info = gen.info
    uses: dict[int, int] = {}
    for op in info.ops:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1
    groups: dict[int, set[int]] = {}
    for t in gen.first:
        groups.setdefault(gen.find(t), set()).add(t)
    # an ADD's output shares its input's memory here, not in a chain that ends with it (bands.skip_add)
    add_outs = {i: op.outputs[0] for op in info.ops if op.op in SKIP_OPS for i in op.inputs}

    def alone(t: int) -> bool:  # t's memory is its own (no alias, no in-place op but a residual ADD)
        return groups.get(gen.find(t), {t}) <= {t, add_outs.get(t, t)}

    single_use = {t for t, n in uses.items() if n == 1 and t >= 0 and t not in info.outputs
                  and not info.tensors[t].is_constant and alone(t)}
    fast = {p.index for p in gen.plans if p.fast_path and p.op in CHAIN_OPS + SKIP_OPS}
    best: tuple[int, int, BandPlan] | None = None
    for plan in candidates(info, fast, single_use):
        arena = gen.plan(plan)[1]
        if arena <= per_tensor_arena * (1 - MIN_BAND_SAVING) and (best is None or (arena, plan.bands) < best[:2]):
            best = (arena, plan.bands, plan)
    return best[2] if best is not None else None


_FC_REPLANS = 16  # free_fc_scratch re-packs the plan per candidate up to this many fully connected layers
WIDE_FC_GROWTH = 0.5  # int16 FC inputs may grow the arena by up to this share of the plan without them


def fc_arena_budget(arena: int) -> int:
    """The arena a plan of ``arena`` bytes may grow to for int16 fully connected inputs (2 instructions fewer
    per 4 rows x 4 inputs, tk_fc_quad and tk_fc_wide): worth a few hundred bytes, never half the arena.

    >>> fc_arena_budget(768), fc_arena_budget(10304)
    (1152, 15456)
    """
    return int(arena * (1 + WIDE_FC_GROWTH))


def free_fc_scratch(gen: Generator) -> frozenset[int]:
    """On the DSP cores without Helium (``WIDE_COLUMN_CORES``): the batch-1 fast FULLY_CONNECTED ops (depth %
    8 == 0) that get an int16 copy of the input (2 bytes per depth value, tk_fast.h tk_fc_quad/tk_fc_wide). Up to
    ``_FC_REPLANS`` candidates, largest first, each is kept if the re-packed plan stays within ``fc_arena_budget``
    (the arena may grow by ``WIDE_FC_GROWTH`` for them); beyond that (an unrolled RNN has hundreds) one plan is
    searched for a gap live beside each op (no growth), and ``generate`` keeps the set only if the plan with it
    stays within the budget."""
    if not gen.wide_columns:
        return frozenset()
    info = gen.info
    offsets, arena, buffers = gen.plan(gen.bands)
    budget = fc_arena_budget(arena)
    candidates = []
    for p in gen.plans:
        if p.kernel != "tk_fc_fast" or gen.in_bands(p.index):
            continue
        depth = int(info.tensors[p.inputs[1]].shape[-1])
        if depth % 8 == 0 and info.tensors[p.inputs[0]].num_elements == depth:
            candidates.append((p.macs, p.index, 2 * depth))
    chosen = set()
    if len(candidates) <= _FC_REPLANS:
        for _macs, index, nbytes in sorted(candidates, reverse=True):
            gen.scratch[index] = nbytes
            if gen.plan(gen.bands)[1] <= budget:
                chosen.add(index)
            else:
                del gen.scratch[index]
        for index in chosen:  # the generation with them plans them again
            del gen.scratch[index]
        return frozenset(chosen)
    for _macs, index, nbytes in candidates:
        need, end = align_up(nbytes, 4), 0
        for lo, hi in sorted((offsets[b.key], offsets[b.key] + b.size) for b in buffers
                             if b.first <= index <= b.last):
            if lo - end >= need:
                break
            end = max(end, hi)
        else:
            if arena - end < need:
                continue
        chosen.add(index)
    return frozenset(chosen)


def generate(model: bytes, info: ModelInfo, name: str = "model", profile: bool = False,
             core: str | None = None) -> AotProgram:
    """Generate the aot C sources for ``info`` (the ModelInfo of ``model``).

    ``core`` (the board's, e.g. ``cortex-m4``; None: any): on cores whose kernels take wide (int16) convolution
    columns (``WIDE_COLUMN_CORES``) the plan gives them their scratch (and fully connected layers theirs where the
    arena has room, ``free_fc_scratch``); on Helium cores (``HELIUM_CORES``) depthwise layers get tap-major
    weights and parameter vectors, conv/FC layers row-block weights (the C states that layout, TK_WEIGHTS_HELIUM).

    ``profile=True`` adds a counter read after every op (``tk_profile_counts``, ``tk_profile_now()`` to be
    provided by the profile firmware, see tinykeras/profile.py); the benchmark build never has it.

    Raises UnsupportedOpError (listing each op and its index) when an op or a tensor type is outside
    what the aot kernels implement.
    """
    if not info.ops:
        raise ModelError(f"{info.path or 'model'}: the model has no operators")
    gen = Generator(info, name, profile, core=core)
    gen.run()
    per_tensor = gen.plan()[1]
    best = choose_bands(gen, per_tensor)
    if best is not None:
        gen = Generator(info, name, profile, bands=best, core=core)
        gen.run()
    wide_fc = free_fc_scratch(gen)
    if wide_fc:
        wide = Generator(info, name, profile, bands=best, core=core, wide_fc=wide_fc)
        wide.run()
        if wide.plan(best)[1] <= fc_arena_budget(gen.plan(best)[1]):
            gen = wide
    files, arena, offsets = gen.files()
    ins, outs = info.input_tensors(), info.output_tensors()
    return AotProgram(
        files=files, arena_bytes=arena, weights_bytes=gen.weights_bytes, input_bytes=ins[0].nbytes,
        output_bytes=outs[0].nbytes, ops=tuple(gen.plans), tensor_offsets=offsets, macs=info.macs,
        buffers=gen.buffers, buffer_offsets=gen.buffer_offsets, streams=dict(gen.streams), bands=gen.bands,
        per_tensor_arena_bytes=per_tensor,
    )
