"""Each aot kernel on its own: single-op int8 models (tf_keras + TFLiteConverter) vs the TFLM host interpreter.

Every case checks that the op under test really is in the converted model, then compares all outputs bit for
bit on random int8 inputs covering the whole range, with the generated C built under ASan + UBSan.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from aot_support import convert_int8, tflm_outputs

from tinykeras.inspect import inspect_bytes

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (apt install gcc)")

SAMPLES = 24


def _seq(shape: tuple[int, ...], *layers: Any) -> Any:
    from tinykeras.keras_io import tf_keras

    keras = tf_keras()
    inputs = keras.Input(shape, batch_size=1)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def _two(shape_a: tuple[int, ...], shape_b: tuple[int, ...], merge: str, post: Any = None) -> Any:
    from tinykeras.keras_io import tf_keras

    keras = tf_keras()
    a, b = keras.Input(shape_a, batch_size=1, name="in_a"), keras.Input(shape_b, batch_size=1, name="in_b")
    if merge == "add":
        x = keras.layers.Add()([a, b])
    elif merge == "mul":
        x = keras.layers.Multiply()([a, b])
    else:
        x = keras.layers.Concatenate(axis=-1)([a, b])
    if post is not None:
        x = post(x)
    return keras.Model([a, b], x)


def _cases() -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """name -> (op that must appear, builder taking the keras module)."""
    return {
        "conv_same_relu": ("CONV_2D", lambda k: _seq(
            (9, 7, 3), k.layers.Conv2D(8, 3, padding="same", activation="relu"))),
        "conv_valid_stride2_relu6": ("CONV_2D", lambda k: _seq(
            (11, 9, 4), k.layers.Conv2D(6, (3, 2), strides=2, padding="valid"), k.layers.ReLU(6.0))),
        "conv_dilated_same": ("CONV_2D", lambda k: _seq(
            (10, 10, 2), k.layers.Conv2D(5, 3, dilation_rate=2, padding="same"))),
        "conv_pointwise_1x1": ("CONV_2D", lambda k: _seq((6, 5, 12), k.layers.Conv2D(7, 1, activation="relu"))),
        "conv_5x5_stride21_same": ("CONV_2D", lambda k: _seq((11, 10, 2), k.layers.Conv2D(4, 5, strides=(2, 1),
                                                                                       padding="same"))),
        "conv_kws_stem": ("CONV_2D", lambda k: _seq((49, 10, 1), k.layers.Conv2D(16, (10, 4), strides=2, padding="same",
                                                                               activation="relu"))),
        "dw_same_relu": ("DEPTHWISE_CONV_2D", lambda k: _seq(
            (8, 6, 8), k.layers.DepthwiseConv2D(3, padding="same", activation="relu"))),
        "dw_valid_stride2_mult2": ("DEPTHWISE_CONV_2D", lambda k: _seq(
            (9, 9, 3), k.layers.DepthwiseConv2D(3, strides=2, padding="valid", depth_multiplier=2))),
        "dw_dilated_relu6": ("DEPTHWISE_CONV_2D", lambda k: _seq(
            (10, 10, 5), k.layers.DepthwiseConv2D(3, dilation_rate=2, padding="same"), k.layers.ReLU(6.0))),
        "dw_5x5_same": ("DEPTHWISE_CONV_2D", lambda k: _seq((6, 7, 6), k.layers.DepthwiseConv2D(5, padding="same"))),
        "dw_5x1_valid_c16": ("DEPTHWISE_CONV_2D", lambda k: _seq(  # tk_dw_fast: a time kernel, Helium lanes
            (12, 1, 16), k.layers.DepthwiseConv2D((5, 1)))),
        "dw_3x5_stride2_c12_relu6": ("DEPTHWISE_CONV_2D", lambda k: _seq(  # tk_dw_fast: padded taps, 4-lane groups
            (9, 11, 12), k.layers.DepthwiseConv2D((3, 5), strides=2, padding="same"), k.layers.ReLU(6.0))),
        "dw_3x3_stride21_c8": ("DEPTHWISE_CONV_2D", lambda k: _seq(  # tk_dw_fast: unequal strides
            (9, 7, 8), k.layers.DepthwiseConv2D(3, strides=(2, 1), padding="same"))),
        "fc_relu": ("FULLY_CONNECTED", lambda k: _seq((20,), k.layers.Dense(10, activation="relu"))),
        "fc_odd": ("FULLY_CONNECTED", lambda k: _seq((33,), k.layers.Dense(7))),
        "fc_batched": ("FULLY_CONNECTED", lambda k: _seq((5, 12), k.layers.Dense(6))),
        "avgpool_valid": ("AVERAGE_POOL_2D", lambda k: _seq((8, 6, 4), k.layers.AveragePooling2D(2))),
        "avgpool_same_stride2": ("AVERAGE_POOL_2D", lambda k: _seq(
            (7, 9, 3), k.layers.AveragePooling2D(3, strides=2, padding="same"))),
        "maxpool_valid": ("MAX_POOL_2D", lambda k: _seq((8, 6, 4), k.layers.MaxPooling2D(2))),
        "maxpool_same": ("MAX_POOL_2D", lambda k: _seq((7, 9, 3), k.layers.MaxPooling2D(3, strides=2, padding="same"))),
        "add": ("ADD", lambda k: _two((8, 8, 8), (8, 8, 8), "add")),
        "add_relu": ("ADD", lambda k: _two((8, 8, 8), (8, 8, 8), "add", k.layers.ReLU())),
        "add_45_relu6": ("ADD", lambda k: _two((5, 3, 3), (5, 3, 3), "add", k.layers.ReLU(6.0))),  # Helium: 4 + tail
        "add_broadcast": ("ADD", lambda k: _two((4, 5, 6), (1, 1, 6), "add")),
        "mul": ("MUL", lambda k: _two((3, 4, 5), (3, 4, 5), "mul")),
        "mul_broadcast": ("MUL", lambda k: _two((3, 4, 5), (3, 1, 5), "mul")),
        "concat": ("CONCATENATION", lambda k: _two((3, 4, 5), (3, 4, 2), "concat")),
        "reshape": ("RESHAPE", lambda k: _seq((4, 6), k.layers.Reshape((3, 8)), k.layers.Dense(5))),
        "softmax": ("SOFTMAX", lambda k: _seq((10,), k.layers.Softmax())),
        "softmax_rows": ("SOFTMAX", lambda k: _seq((3, 7), k.layers.Softmax())),
        "logistic": ("LOGISTIC", lambda k: _seq((40,), k.layers.Activation("sigmoid"))),
        "tanh": ("TANH", lambda k: _seq((40,), k.layers.Activation("tanh"))),
        "mean_global": ("MEAN", lambda k: _seq((5, 6, 7), k.layers.GlobalAveragePooling2D())),
        "pad": ("PAD", lambda k: _seq((4, 5, 3), k.layers.ZeroPadding2D(((1, 2), (0, 1))), k.layers.Conv2D(2, 2))),
        # shapes that take the specialised paths of runtime/aot/tk_fast.h (two blocks of 8 per loop, odd rows)
        "conv_pw_16_to_11_relu6": ("CONV_2D", lambda k: _seq((5, 7, 16), k.layers.Conv2D(11, 1), k.layers.ReLU(6.0))),
        "conv_pw_stride2": ("CONV_2D", lambda k: _seq((7, 9, 8), k.layers.Conv2D(6, 1, strides=2))),
        "conv_3x3_c8_same": ("CONV_2D", lambda k: _seq((6, 5, 8), k.layers.Conv2D(5, 3, padding="same"))),
        "conv_pw_32_to_12": ("CONV_2D", lambda k: _seq(  # Helium asm: 3 groups of 4 rows, an odd pixel count
            (3, 5, 32), k.layers.Conv2D(12, 1))),
        "conv_3x3_c16_relu6": ("CONV_2D", lambda k: _seq(  # Helium asm with clamp: im2col depth 144 (9 blocks)
            (5, 6, 16), k.layers.Conv2D(8, 3, padding="same"), k.layers.ReLU(6.0))),
        "dw3x3_stride2_c12": ("DEPTHWISE_CONV_2D", lambda k: _seq(
            (9, 8, 12), k.layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu"))),
        "dw3x3_stride2_c16": ("DEPTHWISE_CONV_2D", lambda k: _seq(  # Helium: pairs of interior pixels, 2 x 8 lanes
            (9, 11, 16), k.layers.DepthwiseConv2D(3, strides=2, padding="same"))),
        "dw3x3_valid_c4_relu6": ("DEPTHWISE_CONV_2D", lambda k: _seq(
            (5, 6, 4), k.layers.DepthwiseConv2D(3), k.layers.ReLU(6.0))),
        "dw3x3_c24_relu6": ("DEPTHWISE_CONV_2D", lambda k: _seq(  # Helium: VMAX/VMIN clamp, odd pixel count per row
            (6, 5, 24), k.layers.DepthwiseConv2D(3, padding="same"), k.layers.ReLU(6.0))),
        "fc_depth32_odd_units": ("FULLY_CONNECTED", lambda k: _seq((32,), k.layers.Dense(13, activation="relu"))),
        "fc_wide_stack": ("FULLY_CONNECTED", lambda k: _seq(  # DSP cores: layers 2 and 3 get the int16 input
            (256,), k.layers.Dense(16), k.layers.Dense(24, activation="relu"), k.layers.Dense(13))),
        "fc_wide_grows_arena": ("FULLY_CONNECTED", lambda k: _seq(  # DSP cores: the last layer's int16 input
            (32,), k.layers.Dense(32, activation="relu"), k.layers.Dense(160))),  # grows the arena 192 -> 256 B
        "maxpool_same_c8": ("MAX_POOL_2D", lambda k: _seq(
            (7, 9, 8), k.layers.MaxPooling2D(3, strides=2, padding="same"))),
        "avgpool_same_c12": ("AVERAGE_POOL_2D", lambda k: _seq(  # border windows of 4, 6 and 9 taps; 8 + 4 lanes
            (7, 9, 12), k.layers.AveragePooling2D(3, strides=2, padding="same"))),
        "avgpool_global_c16_relu6": ("AVERAGE_POOL_2D", lambda k: _seq(  # DS-CNN's: one 5x7 window
            (5, 7, 16), k.layers.AveragePooling2D((5, 7)), k.layers.ReLU(6.0))),
    }

# Cases that must run on the general kernels (off the fast paths), and marked as such.
GENERAL = {"conv_dilated_same": "CONV_2D", "dw_valid_stride2_mult2": "DEPTHWISE_CONV_2D",
           "dw_dilated_relu6": "DEPTHWISE_CONV_2D", "dw_5x5_same": "DEPTHWISE_CONV_2D", "add_broadcast": "ADD",
           "maxpool_same": "MAX_POOL_2D", "avgpool_same_stride2": "AVERAGE_POOL_2D"}
FAST_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D")


CASES = _cases()


@pytest.fixture(scope="session")
def converted() -> dict[str, bytes]:
    """Converted flatbuffers, built lazily once per session."""
    return {}


def _model(converted: dict[str, bytes], name: str, float_io: bool = False) -> bytes:
    key = name + (":float" if float_io else "")
    if key not in converted:
        from tinykeras.keras_io import import_tf, tf_keras

        tf = import_tf()
        tf.keras.utils.set_random_seed(11)
        model = CASES[name][1](tf_keras())
        rng = np.random.default_rng(5)
        shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
        rep = [rng.normal(0, 1, (48,) + tuple(s[1:])).astype(np.float32) for s in shapes]
        converted[key] = convert_int8(model, rep, float_io=float_io)
    return converted[key]


def _check_bit_exact(data: bytes, samples: int = SAMPLES) -> tuple[Any, int]:
    from tinykeras.aot.host import AotHostRunner

    info = inspect_bytes(data)
    rng = np.random.default_rng(9)
    inputs = []
    for t in info.input_tensors():
        shape = (samples,) + tuple(t.shape[1:])
        if t.dtype == "int8":
            inputs.append(rng.integers(-128, 128, size=shape, dtype=np.int8))
        else:
            inputs.append(rng.normal(0, 2, size=shape).astype(np.float32))
    runner = AotHostRunner(data, info, sanitize=True)
    ours = runner.invoke_many(inputs)
    ref = tflm_outputs(data, inputs, len(info.outputs))
    mismatches = 0
    for a_outs, b_outs in zip(ours, ref, strict=True):
        for a, b in zip(a_outs, b_outs, strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype
            mismatches += int(np.sum(a.view(np.uint8) != b.view(np.uint8)))
    return info, mismatches


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_bit_exact(name: str, converted: dict[str, bytes]) -> None:
    data = _model(converted, name)
    info, mismatches = _check_bit_exact(data)
    assert CASES[name][0] in info.op_names, f"{name}: converted ops {info.op_names}"
    assert mismatches == 0, f"{name}: {mismatches} output values differ from TFLM"


def test_quantize_dequantize_float_io(converted: dict[str, bytes]) -> None:
    """Float input/output: QUANTIZE float->int8 at the start, DEQUANTIZE int8->float at the end, bit-exact floats."""
    data = _model(converted, "fc_relu", float_io=True)
    info, mismatches = _check_bit_exact(data)
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(info.op_names), info.op_names
    assert mismatches == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_selection_is_reported(name: str, converted: dict[str, bytes]) -> None:
    """Conv/depthwise/FC/ADD take the specialised kernels unless the shape needs the general ones, and the
    plan says which (tinykeras profile marks the general ones)."""
    from tinykeras.aot import generate

    data = _model(converted, name)
    info = inspect_bytes(data)
    program = generate(data, info)
    for plan in program.ops:
        if plan.op in FAST_OPS:
            expect_general = GENERAL.get(name) == plan.op
            assert plan.fast_path is not expect_general, f"{name}: op {plan.op} kernel {plan.kernel}"
            assert ("fast" in plan.kernel) is plan.fast_path


@pytest.mark.parametrize("name", ["conv_3x3_c8_same", "conv_pw_stride2", "conv_pw_16_to_11_relu6"])
def test_wide_columns_are_planned_for_dsp_cores_only(name: str, converted: dict[str, bytes]) -> None:
    """On Cortex-M4/M7/M33 (the DSP extension without Helium) each fast convolution gets 4 bytes of scratch per
    column depth value for its int16 columns (tk_gemm_wide) and is passed it; on other cores, and with no core
    given, the call passes a null pointer and the arena is the smaller one (the qemu test runs the wide path)."""
    from tinykeras.aot import generate

    data = _model(converted, name)
    info = inspect_bytes(data)
    plain = generate(data, info)
    conv_calls = [ln for ln in plain.files["tk_model.c"].splitlines() if "tk_conv_fast(" in ln]
    assert conv_calls and all(ln.rstrip().endswith("(int32_t *)0);") for ln in conv_calls)
    for core in ("cortex-m4", "cortex-m7", "cortex-m33"):
        wide = generate(data, info, core=core)
        calls = [ln for ln in wide.files["tk_model.c"].splitlines() if "tk_conv_fast(" in ln]
        assert calls and all("(int32_t *)(tk_arena + TK_SCRATCH_" in ln for ln in calls)
        conv = next(p for p in wide.ops if p.op == "CONV_2D")
        base = next(p for p in plain.ops if p.op == "CONV_2D")
        assert conv.scratch_bytes - base.scratch_bytes >= 4 * 8 and wide.arena_bytes >= plain.arena_bytes
    for core in ("cortex-m3", "cortex-m0plus", "xtensa-lx7"):
        assert generate(data, info, core=core).files == plain.files


@pytest.mark.parametrize("name", ["conv_3x3_c8_same", "conv_pw_16_to_11_relu6", "fc_depth32_odd_units", "fc_odd"])
def test_helium_gemm_weights_are_planned_for_helium_cores_only(name: str, converted: dict[str, bytes]) -> None:
    """On Cortex-M55 the fast conv/fully connected weights are laid out in the Helium row blocks tk_dot4_mve loads
    contiguously (same bytes, same calls, same arena), and tk_model.c says so (TK_WEIGHTS_HELIUM, checked by
    tk_fast.h against the compiler's MVE flag); elsewhere pair-interleaved as before."""
    import re

    from tinykeras.aot import generate

    data = _model(converted, name)
    info = inspect_bytes(data)
    plain, helium = generate(data, info), generate(data, info, core="cortex-m55")
    src, hsrc = plain.files["tk_model.c"], helium.files["tk_model.c"]
    assert "#define TK_WEIGHTS_HELIUM 0" in src and "#define TK_WEIGHTS_HELIUM 1" in hsrc
    assert helium.arena_bytes == plain.arena_bytes and helium.weights_bytes == plain.weights_bytes

    def arrays(text: str) -> dict[str, list[int]]:
        found = re.findall(r"int8_t (tk_w_\d+)\[\d+\][^=]*= \{([^}]*)\}", text)
        return {k: [int(v) for v in body.replace("\n", " ").split(",") if v.strip()] for k, body in found}

    def calls(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if ln.startswith("  tk_")]

    assert calls(hsrc) == calls(src)
    weights, hweights = arrays(src), arrays(hsrc)
    assert weights and weights.keys() == hweights.keys()
    assert all(sorted(hweights[k]) == sorted(v) for k, v in weights.items())
    assert any(hweights[k] != v for k, v in weights.items())  # every case has a group of 4 rows


def test_fully_connected_int16_inputs_stay_within_the_arena_budget(converted: dict[str, bytes]) -> None:
    """On the DSP cores a batch-1 fully connected layer gets an int16 copy of its input (tk_fc_wide, tk_fc_quad)
    only while the arena stays within half again the plan without them (generator.fc_arena_budget): in
    fc_wide_stack the small layers after the 256-input one do, in gaps, the first does not; in
    fc_wide_grows_arena both do, the second for 64 more bytes. Depths % 16 == 0 get row-quad weights (one LDM per
    4 rows); without a core, neither."""
    from tinykeras.aot import generate
    from tinykeras.aot.generator import fc_arena_budget

    for name, wide, quad, grows in (("fc_wide_stack", [False, True, True], [True, True, False], False),
                                    ("fc_wide_grows_arena", [True, True], [True, True], True)):
        data = _model(converted, name)
        info = inspect_bytes(data)
        plain, dsp = generate(data, info), generate(data, info, core="cortex-m4")
        calls = [ln for ln in dsp.files["tk_model.c"].splitlines() if "tk_fc_fast(" in ln]
        assert [("TK_SCRATCH_" in ln) for ln in calls] == wide, name
        assert [ln.rstrip().endswith(", 1);") for ln in calls] == quad, name
        assert (dsp.arena_bytes > plain.arena_bytes) is grows, name
        assert dsp.arena_bytes <= fc_arena_budget(plain.arena_bytes), name
        assert all(ln.rstrip().endswith("(int32_t *)0, 0);") for ln in plain.files["tk_model.c"].splitlines()
                   if "tk_fc_fast(" in ln)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_dsp_core_layouts_run_bit_exact_in_portable_c(converted: dict[str, bytes]) -> None:
    """A model generated for the Cortex-M4 (row-quad FC weights, int16 scratch in the plan) compiled where the
    DSP paths are off (the host, ASan + UBSan): the portable C reads the same layouts, TFLM's outputs."""
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.tflm_host import TflmRunner

    for name in ("fc_wide_stack", "fc_wide_grows_arena", "fc_depth32_odd_units"):
        data = _model(converted, name)
        info = inspect_bytes(data)
        runner = AotHostRunner(data, info, sanitize=True, core="cortex-m4")
        assert ", 1);" in runner.program.files["tk_model.c"], name  # a row-quad layer
        xs = np.random.default_rng(5).integers(-128, 128, size=(6, *info.input_tensors()[0].shape[1:]), dtype=np.int8)
        assert np.array_equal(runner.run_all(xs), TflmRunner(data, info).run_all(xs)), name


@pytest.mark.parametrize("name", ["dw_same_relu", "dw3x3_stride2_c16", "dw3x3_stride2_c12", "dw3x3_c24_relu6"])
def test_helium_depthwise_weights_are_planned_for_helium_cores_only(name: str, converted: dict[str, bytes]) -> None:
    """On Cortex-M55 a fast depthwise 3x3 with channels % 8 == 0 gets its weights tap by tap (tk_wt_<op>, for
    tk_dw8_taps_mve) instead of the SXTB16-ordered words; elsewhere, and for other channel counts, the call
    passes a null pointer (the qemu_m55 test runs the Helium path)."""
    from tinykeras.aot import generate

    data = _model(converted, name)
    info = inspect_bytes(data)
    channels = next(t.shape[-1] for t in info.tensors if t.index == info.ops[0].inputs[0])
    helium = generate(data, info, core="cortex-m55").files["tk_model.c"]
    assert ("tk_wt_" in helium) is (channels % 8 == 0)
    assert "tk_wt_" not in generate(data, info, core="cortex-m4").files["tk_model.c"]
    assert "tk_wt_" not in generate(data, info).files["tk_model.c"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (scripts/setup.sh)")
@pytest.mark.parametrize("name", sorted(n for n, (op, _) in CASES.items()
                                        if op in FAST_OPS))
@pytest.mark.parametrize("board", ["qemu_m4", "qemu_m55"])
def test_kernel_bit_exact_on_qemu(board: str, name: str, converted: dict[str, bytes]) -> None:
    """The Cortex-M4 DSP code (SMLAD/SMMLAR paths, hand-scheduled loops) and the Cortex-M55 Helium code
    (VLDRB gathers, VMLADAVA, VMULLB/T, vector requantization) against TFLM, every output byte."""
    from tinykeras.device_check import check_on_qemu

    data = _model(converted, name)
    result = check_on_qemu(data, inspect_bytes(data), samples=12, board=board)
    assert result["values"] > 0 and result["mismatches"] == 0, result
