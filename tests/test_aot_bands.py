"""Row-band execution of the first convolutions (aot/bands.py): the band geometry, the plan, and bit-exactness
with the TFLM host interpreter under ASan/UBSan (every chain length and band height of a small model whose
first layers dominate the arena, with odd sizes and asymmetric padding) and on qemu_m4."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from aot_support import convert_int8
from hypothesis import given, settings
from hypothesis import strategies as st
from mirrors import check_plan

import tinykeras.aot.generator as generator
from tinykeras.aot import generate
from tinykeras.aot.bands import BandPlan, ChainOp, band_plan
from tinykeras.inspect import inspect_bytes
from tinykeras.tflm_host import TflmRunner

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (apt install gcc)")


@st.composite
def chains(draw: st.DrawFn) -> tuple[ChainOp, ...]:
    h = draw(st.integers(4, 40))
    ops = []
    for k in range(draw(st.integers(2, 5))):
        kh, s = draw(st.sampled_from([1, 3, 5])), draw(st.sampled_from([1, 2]))
        same = draw(st.booleans()) or kh == 1
        oh = (h + s - 1) // s if same else (h - kh) // s + 1
        if oh < 1:
            break
        pad = max(((oh - 1) * s + kh - h) // 2, 0)
        ops.append(ChainOp(k, h, oh, 3, kh, s, pad, 12, 9, oh * 27))
        h = oh
    if len(ops) < 2:
        ops = [ChainOp(0, 6, 6, 3, 3, 1, 1, 12, 9, 6), ChainOp(1, 6, 6, 3, 3, 1, 1, 9, 9, 6)]
    return tuple(ops)


@st.composite
def residual_chains(draw: st.DrawFn) -> tuple[ChainOp, ...]:
    """A residual block: shape-keeping convolutions (stride 1, SAME) ending in the ADD of the block's input."""
    h = draw(st.integers(3, 40))
    ops = [ChainOp(k, h, h, 3, kh, 1, (kh - 1) // 2, 9, 9, h * 27)
           for k, kh in enumerate(draw(st.lists(st.sampled_from([1, 3, 5]), min_size=1, max_size=4)))]
    return (*ops, ChainOp(len(ops), h, h, 3, 1, 1, 0, 9, 9, 0, skip=True))


@settings(max_examples=200, deadline=None)
@given(chains(), st.integers(1, 4))
def test_steps_compute_every_row_once_from_the_rows_their_regions_hold(ops: tuple[ChainOp, ...], rows: int) -> None:
    """Replaying the table with row ids: every op computes its output rows once, in order (the last op all of
    them); each kernel call is given exactly the input rows its output row's window covers (clipped), found
    where the table says in the previous op's region (after that region's keep move), with the top padding
    that places them as the whole-tensor kernel has them; no region holds more than its size; and the chain's
    output, streaming ``gap`` bytes below its input, never reaches an input row a later step reads."""
    _replay(ops, rows)


@settings(max_examples=100, deadline=None)
@given(residual_chains(), st.integers(1, 4))
def test_residual_adds_read_the_chain_input_before_the_output_reaches_it(ops: tuple[ChainOp, ...],
                                                                         rows: int) -> None:
    """The same replay for chains ending in a skip ADD: it also reads the chain's input (its own rows), and the
    output, streaming ``gap`` bytes below that input, never reaches a row the ADD or the first op reads later
    (a block of one 3x3 convolution writes its row r before that convolution has read input row r for its row
    r + 1: a gap of a row; two 3x3 convolutions, as in ResNet, none: see the model test below)."""
    _replay(ops, rows)


def _replay(ops: tuple[ChainOp, ...], rows: int) -> BandPlan:
    plan = band_plan(ops, rows)
    assert plan is not None
    n = len(ops)
    regions: list[list[int]] = [[] for _ in range(n - 1)]
    computed: list[list[int]] = [[] for _ in range(n)]
    # the chain's input rows read from each step on: the first op's, and a skip ADD's own (its output rows)
    reads = [min(entry[0], entry[1]) if ops[-1].skip else entry[0] for entry in plan.table]
    for e, entry in enumerate(plan.table):
        assert entry[1] == len(computed[-1])
        for j, op in enumerate(ops):
            in_rows, out_rows, top, in_off, keep_from, keep_bytes = (entry[plan.field(j, f)] for f in plan.FIELDS)
            if out_rows == 0:
                assert (in_rows, top, in_off, keep_from, keep_bytes) == (0, 0, 0, 0, 0)
                continue
            if j < n - 1:  # the keep move of this op's region
                assert keep_from % op.out_row_bytes == 0 and keep_bytes % op.out_row_bytes == 0
                drop, keep = keep_from // op.out_row_bytes, keep_bytes // op.out_row_bytes
                assert drop + keep <= len(regions[j])
                regions[j] = regions[j][drop:drop + keep]
            r0 = len(computed[j])
            lo = r0 * op.stride_h - op.pad_h
            first, end = max(lo, 0), min((r0 + out_rows - 1) * op.stride_h - op.pad_h + op.k_h, op.in_h)
            assert top == first - lo and in_rows == end - first
            if j == 0:
                assert entry[0] == first
            else:
                prev = ops[j - 1]
                assert in_off % prev.out_row_bytes == 0
                held = regions[j - 1][in_off // prev.out_row_bytes:][:in_rows]
                assert held == list(range(first, end))
            computed[j] += range(r0, r0 + out_rows)
            if j < n - 1:
                regions[j] += range(r0, r0 + out_rows)
                assert len(regions[j]) * op.out_row_bytes <= plan.region_bytes[j]
        written = len(computed[-1]) * ops[-1].out_row_bytes
        if e + 1 < len(plan.table):
            assert written <= plan.gap + min(reads[e + 1:]) * ops[0].in_row_bytes
    for rows_of_op in computed:
        assert rows_of_op == list(range(len(rows_of_op)))
    assert len(computed[-1]) == ops[-1].out_h
    return plan


def _first_layers_model(seed: int = 0) -> bytes:
    """25x40x3 -> conv 3x3/2 SAME (asymmetric padding) -> dw 3x3 -> pw 32 -> dw 3x3/2 -> conv 5x5 SAME (linear,
    the model's output): the early activations make the per-tensor peak."""
    from tinykeras.keras_io import import_tf, tf_keras

    tf = import_tf()
    keras = tf_keras()
    tf.keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((25, 40, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 1, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    outputs = layers.Conv2D(8, 5, padding="same")(x)  # the whole 7x10x8 map is compared: every band's rows
    model = keras.Model(inputs, outputs)
    rep = [np.random.default_rng(seed).uniform(-1, 1, (32, 25, 40, 3)).astype(np.float32)]
    return convert_int8(model, rep)


FIRST_LAYERS = Path(__file__).parent / "data" / "bands" / "first_layers.tflite"  # _first_layers_model(), stored


@pytest.fixture(scope="module")
def first_layers() -> bytes:
    return FIRST_LAYERS.read_bytes()


def test_bands_are_chosen_only_where_they_shrink_the_arena(first_layers: bytes) -> None:
    info = inspect_bytes(first_layers)
    program = generate(first_layers, info)
    assert program.bands is not None and program.bands.first == 0
    assert program.arena_bytes <= 0.9 * program.per_tensor_arena_bytes
    check_plan(list(program.buffers), program.buffer_offsets, program.streams)
    assert generate(first_layers, info).files == program.files  # deterministic
    assert "tk_band_0" in program.files["tk_model.c"]


def _compare(data: bytes, plan, count: int = 6) -> int:
    from tinykeras.aot.host import AotHostRunner

    info = inspect_bytes(data)
    x = np.random.default_rng(3).integers(-128, 128, size=(count, 25, 40, 3), dtype=np.int8)
    ours = AotHostRunner(data, info, sanitize=True).run_all(x)
    ref = TflmRunner(data, info).run_all(x)
    return int(np.sum(ours != ref))


@needs_gcc
@pytest.mark.parametrize("chain_len,rows", [(2, 1), (4, 3), (5, 1)])
def test_every_band_split_is_bit_exact_under_sanitizers(first_layers: bytes, chain_len: int, rows: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced band plans (chain length x band height): a wrong boundary row, padding or stream gap changes
    outputs or trips ASan."""
    from tinykeras.aot.bands import candidates

    chosen = []

    def force(gen, per_tensor):
        fast = {p.index for p in gen.plans if p.fast_path}
        for plan in candidates(gen.info, fast, {t for t in range(len(gen.info.tensors))}):
            if len(plan.ops) == chain_len:
                chosen.append(band_plan(plan.ops, rows))
                return chosen[-1]
        return None

    monkeypatch.setattr(generator, "choose_bands", force)
    assert _compare(first_layers, None) == 0
    assert chosen, "no such chain in the model"


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_banded_plan_on_qemu_m4_matches_tflm(first_layers: bytes) -> None:
    from tinykeras.device_check import check_on_qemu

    info = inspect_bytes(first_layers)
    assert generate(first_layers, info).bands is not None
    result = check_on_qemu(first_layers, info, 3)
    assert result["mismatches"] == 0, result


def test_profile_shows_the_banded_plan(first_layers: bytes) -> None:
    """profile.json's buffers and live bytes come from the banded plan, with a note saying so (the counts here
    are placeholders: the counter itself is tested on qemu in test_aot_perf.py)."""
    from tinykeras.profile import assemble_profile, timeline_png
    from tinykeras.runtime import aot as aot_runtime

    info = inspect_bytes(first_layers)
    program = generate(first_layers, info, profile=True)
    assert program.bands is not None
    n = len(info.ops)
    raw = {"unit": "instructions", "mark_cost_x65": 0, "ops": [1000] * n, "total": 1000 * n}
    prof = assemble_profile(raw, aot_runtime.plan(first_layers, info, profile=True), info, "qemu_m4", "first_layers")
    band = next(b for b in prof.buffers if b["key"] == f"b{program.bands.first}")
    assert band["first"] == program.bands.first and band["last"] == program.bands.last
    assert band["size"] >= sum(program.bands.region_bytes)
    inter = {info.ops[i].outputs[0] for i in range(program.bands.first, program.bands.last)}
    assert not any(b["key"] == f"t{t}" for b in prof.buffers for t in inter)  # intermediates only as bands
    assert max(o.live_bytes for o in prof.ops) <= program.arena_bytes < program.per_tensor_arena_bytes
    assert any("row bands" in note for note in prof.notes)
    assert timeline_png(prof)[:4] == b"\x89PNG"


if __name__ == "__main__":  # regenerate the stored model
    FIRST_LAYERS.write_bytes(_first_layers_model())


@needs_gcc
def test_banded_1x1_convolutions_compile_warning_free_and_match_tflm() -> None:
    """A MobileNetV2-style stem (3x3/2, depthwise, 1x1 project, 1x1 expand, depthwise/2, 1x1) in row bands: the
    1x1 convolutions get a literal 0 top padding (no band-table lookup), so -O2 -Werror=array-bounds sees their
    direct path and no im2col into the null scratch they are given; outputs equal TFLM's."""
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.keras_io import import_tf, tf_keras

    import_tf().keras.utils.set_random_seed(5)
    k = tf_keras()
    L = k.layers
    x = k.Input((48, 48, 3), batch_size=1)
    t = L.ReLU(6.0)(L.Conv2D(16, 3, strides=2, padding="same")(x))
    t = L.ReLU(6.0)(L.DepthwiseConv2D(3, padding="same")(t))
    t = L.Conv2D(8, 1)(t)
    t = L.ReLU(6.0)(L.Conv2D(48, 1)(t))
    t = L.ReLU(6.0)(L.DepthwiseConv2D(3, strides=2, padding="same")(t))
    t = L.Conv2D(8, 1)(t)
    out = L.Dense(3)(L.GlobalAveragePooling2D()(t))
    data = convert_int8(k.Model(x, out), [np.random.default_rng(0).random((16, 48, 48, 3), dtype=np.float32)])
    info = inspect_bytes(data)
    program = generate(data, info)
    assert program.bands is not None, "the stem should be banded"
    calls = [ln for ln in program.files["tk_model.c"].splitlines() if "tk_conv_fast(" in ln and "tk_r[" in ln]
    assert calls and all("(int8_t *)0" not in ln or ", 0, " in ln for ln in calls)
    xs = np.random.default_rng(1).integers(-128, 128, size=(4, 48, 48, 3), dtype=np.int8)
    assert np.array_equal(AotHostRunner(data, info).run_all(xs), TflmRunner(data, info).run_all(xs))


@needs_gcc
def test_pools_join_banded_chains_bit_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gesture-style stack (conv, max pool, conv, average pool with padded border windows): the pools are
    chain ops like the convolutions (their window is the kernel); the chosen plan bands through the max pool
    for a fraction of the per-tensor arena, and both it and a forced chain through the average pool give TFLM's
    outputs in the sanitizer build."""
    from tinykeras.aot.bands import candidates
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.keras_io import import_tf, tf_keras

    import_tf().keras.utils.set_random_seed(7)
    k = tf_keras()
    L = k.layers
    x = k.Input((40, 6, 2), batch_size=1)
    t = L.Conv2D(16, (4, 3), padding="same", activation="relu")(x)
    t = L.MaxPooling2D((3, 2), strides=(2, 2), padding="same")(t)
    t = L.Conv2D(8, 3, padding="same", activation="relu")(t)
    t = L.AveragePooling2D(3, strides=1, padding="same")(t)
    out = L.Dense(3)(L.Flatten()(t))
    data = convert_int8(k.Model(x, out), [np.random.default_rng(0).uniform(-1, 1, (16, 40, 6, 2)).astype(np.float32)])
    info = inspect_bytes(data)
    program = generate(data, info)
    assert program.bands is not None and "MAX_POOL_2D" in {info.ops[p.index].op for p in program.bands.ops}
    assert program.arena_bytes <= 0.5 * program.per_tensor_arena_bytes
    xs = np.random.default_rng(2).integers(-128, 128, size=(4, 40, 6, 2), dtype=np.int8)
    ref = TflmRunner(data, info).run_all(xs)
    assert np.array_equal(AotHostRunner(data, info, sanitize=True).run_all(xs), ref)

    def longest(gen, per_tensor):
        fast = {p.index for p in gen.plans if p.fast_path}
        return max(candidates(gen.info, fast, set(range(len(gen.info.tensors)))), key=lambda plan: len(plan.ops))

    monkeypatch.setattr(generator, "choose_bands", longest)
    forced = generate(data, info)
    assert forced.bands is not None and info.ops[forced.bands.last].op == "AVERAGE_POOL_2D"
    assert np.array_equal(AotHostRunner(data, info, sanitize=True).run_all(xs), ref)


def test_one_pixel_wide_convolutions_stay_out_of_chains() -> None:
    """A convolution whose output rows are one pixel wide is not banded (each call would compute one pixel,
    without the GEMM's two-column pairing): the shipped gesture model bands its first conv and max pool
    (128x3 rows), not the 42x1 conv after them, and still needs a fraction of its per-tensor arena."""
    from tinykeras.resources import models_dir

    data = (models_dir() / "gesture" / "model.tflite").read_bytes()
    info = inspect_bytes(data)
    program = generate(data, info, core="cortex-m4")
    assert program.bands is not None
    assert [info.ops[p.index].op for p in program.bands.ops] == ["CONV_2D", "MAX_POOL_2D"]
    assert program.arena_bytes <= 0.5 * program.per_tensor_arena_bytes


def _residual_model(third_use: bool) -> bytes:
    """ResNet-8's first block at a small size: conv stem, then conv-conv plus the stem's output (ADD, ReLU);
    ``third_use``: the stem's output is added once more after the block, so it must outlive the chain."""
    from tinykeras.keras_io import import_tf, tf_keras

    import_tf().keras.utils.set_random_seed(11)
    k = tf_keras()
    L = k.layers
    x = k.Input((18, 14, 3), batch_size=1)
    stem = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    t = L.Conv2D(8, 3, padding="same", activation="relu")(stem)
    t = L.Conv2D(8, (5, 3), padding="same")(t)
    t = L.ReLU()(L.Add()([t, stem]))
    if third_use:
        t = L.Add()([stem, t])
    out = L.Dense(4)(L.GlobalAveragePooling2D()(L.Conv2D(16, 3, strides=2, padding="same")(t)))
    return convert_int8(k.Model(x, out), [np.random.default_rng(0).uniform(-1, 1, (16, 18, 14, 3)).astype(np.float32)])


@needs_gcc
@pytest.mark.parametrize("third_use", [False, True])
def test_residual_blocks_band_through_their_add_bit_exact(third_use: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A residual block's conv, conv and ADD run as one banded chain: the block's input (the skip) is read row by
    row beside the last conv's rows and, when the ADD is its last use, the block's output takes its place (the
    arena holds one block-sized map instead of three: the chosen plan). When the skip is used again later it must
    stay whole (the plan, forced, is then larger than the per-tensor one and not chosen). Outputs equal TFLM's in
    the sanitizer build either way."""
    from tinykeras.aot.bands import candidates
    from tinykeras.aot.host import AotHostRunner

    data = _residual_model(third_use)
    info = inspect_bytes(data)
    if third_use:
        assert generate(data, info).bands is None
        stem = info.ops[0].outputs[0]  # (used three times: the block's first conv and two ADDs)

        def force(gen, per_tensor):
            fast = {p.index for p in gen.plans if p.fast_path}
            return next(plan for plan in candidates(gen.info, fast, set(range(len(gen.info.tensors))) - {stem})
                        if plan.ops[-1].skip)

        monkeypatch.setattr(generator, "choose_bands", force)
    program = generate(data, info)
    assert program.bands is not None and program.bands.ops[-1].skip
    assert info.ops[program.bands.last].op == "ADD"
    check_plan(list(program.buffers), program.buffer_offsets, program.streams)
    chain_in = info.ops[program.bands.first].inputs[0]
    chain_out = info.ops[program.bands.last].outputs[0]
    assert (program.tensor_offsets[chain_in] == program.tensor_offsets[chain_out]) is not third_use
    if not third_use:
        assert program.arena_bytes <= 0.7 * program.per_tensor_arena_bytes
    xs = np.random.default_rng(4).integers(-128, 128, size=(4, 18, 14, 3), dtype=np.int8)
    assert np.array_equal(AotHostRunner(data, info, sanitize=True).run_all(xs), TflmRunner(data, info).run_all(xs))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m55"])
def test_banded_residual_block_on_qemu_matches_tflm(board: str) -> None:
    """The residual chain (conv, conv, ADD over the skip's rows) compiled for the DSP and the Helium core."""
    from tinykeras.device_check import check_on_qemu

    data = _residual_model(False)
    info = inspect_bytes(data)
    result = check_on_qemu(data, info, 4, board=board)
    assert result["values"] > 0 and result["mismatches"] == 0, result
