"""The aot runtime end to end: reference models and a DS-CNN bit-exact vs TFLM under ASan/UBSan, the plan, errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from aot_support import convert_int8, dscnn_tflite
from hypothesis import given, settings
from hypothesis import strategies as st
from mirrors import bench_input, check_plan, mlperf_results

from tinykeras.aot import SUPPORTED_OPS, generate
from tinykeras.aot.fixedpoint import quantize_multiplier, sigmoid_params, softmax_params
from tinykeras.aot.planner import Buffer, pack
from tinykeras.errors import ToolchainError, UnsupportedOpError
from tinykeras.inspect import inspect_bytes, load_model_info
from tinykeras.tflm_host import TflmRunner

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc (apt install gcc)")
REFERENCE_SAMPLES = 200


def _random_inputs(info, count: int, seed: int) -> np.ndarray:
    t = info.input_tensors()[0]
    return np.random.default_rng(seed).integers(-128, 128, size=(count,) + tuple(t.shape[1:]), dtype=np.int8)


def _compare(data: bytes, info, count: int, seed: int) -> tuple[int, int]:
    from tinykeras.aot.host import AotHostRunner

    x = _random_inputs(info, count, seed)
    ours = AotHostRunner(data, info, sanitize=True).run_all(x)
    ref = TflmRunner(data, info).run_all(x)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    return int(np.sum(ours != ref)), ours.size


@needs_gcc
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ad01_int8", "pretrainedResnet_quant"])
def test_reference_models_bit_exact_under_sanitizers(name: str, reference_models: dict[str, Path]) -> None:
    path = reference_models[name]
    info = load_model_info(path)
    mismatches, total = _compare(path.read_bytes(), info, REFERENCE_SAMPLES, seed=1)
    assert mismatches == 0, f"{name}: {mismatches} of {total} output values differ from TFLM"


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "models").glob("*/model.tflite"))


@needs_gcc
@pytest.mark.parametrize("path", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_shipped_models_bit_exact_under_sanitizers(path: Path) -> None:
    info = load_model_info(path)
    mismatches, total = _compare(path.read_bytes(), info, REFERENCE_SAMPLES, seed=4)
    assert mismatches == 0, f"{path}: {mismatches} of {total} output values differ from TFLM"


@pytest.fixture(scope="session")
def dscnn() -> bytes:
    return dscnn_tflite(seed=0)


@needs_gcc
def test_dscnn_bit_exact_under_sanitizers(dscnn: bytes) -> None:
    info = inspect_bytes(dscnn)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(info.op_names)
    assert info.macs == 2_656_768
    mismatches, total = _compare(dscnn, info, 100, seed=2)
    assert mismatches == 0, f"DS-CNN: {mismatches} of {total} output values differ from TFLM"


def test_generation_is_deterministic_and_plan_is_valid(reference_models: dict[str, Path]) -> None:
    for path in reference_models.values():
        info = load_model_info(path)
        data = path.read_bytes()
        first, second = generate(data, info, "m"), generate(data, info, "m")
        assert first.files == second.files
        check_plan(list(first.buffers), first.buffer_offsets, first.streams)
        scratch = max([p.scratch_bytes for p in first.ops] + [0])
        assert 0 < first.arena_bytes <= info.activation_peak_bytes + scratch + 64
        assert first.arena_bytes % 16 == 0
        header = first.files["tk_model.h"]
        assert f"#define TK_ARENA_BYTES {first.arena_bytes} " in header
        for proto in ("int8_t *tk_input(void);", "const int8_t *tk_output(void);", "int tk_invoke(void);",
                      "int tk_model_init(void);", "unsigned tk_input_bytes(void);", "unsigned tk_output_bytes(void);",
                      "unsigned tk_arena_used(void);", "const char *tk_model_error(void);"):
            assert proto in header
        assert set(first.files) >= {"tk_model.c", "tk_kernels.h", "tk_conv.c", "tk_ops.c", "tk_fixedpoint.h"}
        # Weights live in flash: every array in tk_model.c is static const.
        arrays = re.findall(r"^static (?:const )?\w+ \w+\[\d+\]", first.files["tk_model.c"], flags=re.M)
        assert arrays and all(a.startswith("static const") for a in arrays if "tk_arena" not in a)


def test_reshape_is_an_alias_and_elementwise_runs_in_place(reference_models: dict[str, Path]) -> None:
    path = reference_models["pretrainedResnet_quant"]
    info = load_model_info(path)
    prog = generate(path.read_bytes(), info)
    # Convolutions write over the part of their dying input already read: below the naive peak.
    assert prog.arena_bytes < info.activation_peak_bytes
    kinds = {p.op: p for p in prog.ops}
    assert kinds["RESHAPE"].kernel == "alias"
    reshape = kinds["RESHAPE"]
    assert prog.tensor_offsets[reshape.inputs[0]] == prog.tensor_offsets[reshape.outputs[0]]
    adds = [p for p in prog.ops if p.op == "ADD"]
    assert any(p.in_place for p in adds)


@given(st.lists(st.tuples(st.integers(1, 64), st.integers(0, 9), st.integers(0, 5)), min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_pack_never_overlaps_live_buffers(specs: list[tuple[int, int, int]]) -> None:
    buffers = [Buffer(f"b{i}", size, first, first + span) for i, (size, first, span) in enumerate(specs)]
    offsets, total = pack(buffers)
    check_plan(buffers, offsets)
    peak = max(sum(b.size for b in buffers if b.first <= step <= b.last) for step in range(15))
    assert peak <= total
    assert all(offsets[b.key] % 4 == 0 and offsets[b.key] + b.size <= total for b in buffers)


def test_quantize_multiplier_matches_tflite_examples() -> None:
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.25) == (1 << 30, -1)
    m, s = quantize_multiplier(0.0123456)
    assert 1 << 30 <= m < 1 << 31 and abs(m * 2.0 ** (s - 31) - 0.0123456) < 1e-9
    # A value whose mantissa rounds up to 2^31 moves to the next exponent.
    assert quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    mult, shift, diff_min = softmax_params(1.0, 0.1)
    assert shift >= 0 and diff_min < 0 and mult > 0
    mult, shift, radius = sigmoid_params(0.05)
    assert radius > 0 and mult >= 1 << 30


def test_unsupported_op_names_op_and_index() -> None:
    from tinykeras.keras_io import import_tf, tf_keras

    import_tf().keras.utils.set_random_seed(1)
    keras = tf_keras()
    inputs = keras.Input((8,), batch_size=1)
    x = keras.layers.Dense(8)(inputs)
    outputs = keras.layers.Lambda(lambda t: import_tf().reverse(t, axis=[-1]))(x)  # REVERSE_V2
    model = keras.Model(inputs, outputs)
    data = convert_int8(model, [np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)])
    info = inspect_bytes(data)
    missing = [op for op in info.ops if op.op not in SUPPORTED_OPS]
    assert missing, info.op_names
    with pytest.raises(UnsupportedOpError) as err:
        generate(data, info)
    assert err.value.runtime == "aot"
    assert (missing[0].index, missing[0].op) in err.value.ops
    assert "--runtime tflm" in str(err.value) and f"operator #{missing[0].index}" in str(err.value)


def test_missing_gcc_raises_toolchain_error(monkeypatch: pytest.MonkeyPatch,
                                            reference_models: dict[str, Path]) -> None:
    from tinykeras.aot import host

    monkeypatch.setattr(host.shutil, "which", lambda name: None)
    path = reference_models["ad01_int8"]
    with pytest.raises(ToolchainError, match="gcc"):
        host.AotHostRunner(path.read_bytes(), load_model_info(path))


@needs_gcc
def test_shared_library_runner_matches_tflm(reference_models: dict[str, Path]) -> None:
    """The optimised (-O2, no sanitizer) build used by emulate and the benchmark is bit-exact too."""
    from tinykeras.aot.host import AotHostRunner

    path = reference_models["ad01_int8"]
    info = load_model_info(path)
    x = _random_inputs(info, 30, seed=3)
    runner = AotHostRunner(path.read_bytes(), info)
    assert np.array_equal(runner.run_all(x), TflmRunner(path.read_bytes(), info).run_all(x))
    assert runner.invoke(x[:1])[0].shape == tuple(info.output_tensors()[0].shape)
    assert runner.arena_bytes == runner.program.arena_bytes


def _reply(port, cmd: str = "", timeout: float = 60.0) -> list[str]:
    import time

    if cmd:
        port.write(cmd.encode())
    buf, end = b"", time.monotonic() + timeout
    while not buf.endswith(b"m-ready\r\n") and time.monotonic() < end:
        buf += port.read(65536)
    assert buf.endswith(b"m-ready\r\n"), f"no m-ready after {cmd!r}: {buf[-300:]!r}"
    return [ln for ln in buf.decode().splitlines() if ln]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (scripts/setup.sh)")
def test_dscnn_dsp_kernels_on_qemu_match_tflm(dscnn: bytes, tmp_path: Path) -> None:
    """The Cortex-M4 DSP paths (SMLAD conv/FC, SMLABB depthwise) give TFLM's outputs: whole output vectors
    read back with the MLPerf `results%` command, for the benchmark pattern and two random inputs."""
    import serial

    from tinykeras.boards import load_board
    from tinykeras.target import qemu

    info = inspect_bytes(dscnn)
    program = generate(dscnn, info, name="dscnn")
    board = load_board("qemu_m4")
    qemu.render_project(board, dscnn, info, tmp_path, runtime_files=program.files, runs=1, warmup=0, name="dscnn",
                        arena_bytes=program.arena_bytes)
    elf = qemu.compile_project(tmp_path)
    t_in, t_out = info.input_tensors()[0], info.output_tensors()[0]
    q = t_out.quantization
    assert q.scale >= 0.002  # three decimals of `results%` tell every int8 value apart
    tflm = TflmRunner(dscnn, info)

    def reference(x: bytes) -> str:
        out = tflm.invoke(np.frombuffer(x, dtype=np.int8).reshape(t_in.shape))[0]
        return mlperf_results(out, q.scale, q.zero_point)

    with qemu.qemu_session(elf, board) as url:
        port = serial.serial_for_url(url, timeout=0.05)
        try:
            _reply(port)
            assert _reply(port, "results%")[0] == reference(bench_input(t_in.nbytes))
            for seed in (21, 22):
                x = bytes(np.random.default_rng(seed).integers(0, 256, t_in.nbytes, dtype=np.uint8))
                _reply(port, f"db load {len(x)}%")
                for k in range(0, len(x), 32):
                    _reply(port, f"db {x[k:k + 32].hex()}%")
                assert _reply(port, "infer 1 0%")[-2] == reference(x)
        finally:
            port.close()
