"""The second set of aot kernels (tk_ops2.c) on the emulated Cortex-M4 (qemu_m4), and built for a Cortex-M0+.

One model chains TRANSPOSE_CONV, HARD_SWISH, LEAKY_RELU, STRIDED_SLICE, SUB, MAXIMUM, RESIZE_NEAREST_NEIGHBOR,
PADV2, GATHER, UNPACK/PACK, SPLIT, RELU, a float ELU, PReLU (float NEG), TRANSPOSE, BATCH_MATMUL and
REDUCE_MAX; its whole output vector, read back with the MLPerf
`results%` command, must equal the TFLM host interpreter's for the benchmark pattern and a random input.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mirrors import bench_input, mlperf_results
from standin import mlperf_reply

from tinykeras.inspect import inspect_bytes

needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (scripts/setup.sh)")

NEW_OPS = {"TRANSPOSE_CONV", "HARD_SWISH", "LEAKY_RELU", "STRIDED_SLICE", "SUB", "MAXIMUM", "RESIZE_NEAREST_NEIGHBOR",
           "PADV2", "GATHER", "PACK", "UNPACK", "SPLIT", "RELU", "ELU", "NEG", "TRANSPOSE", "BATCH_MATMUL",
           "REDUCE_MAX"}


def _chain_model() -> bytes:
    from aot_support import convert_int8

    from tinykeras.keras_io import import_tf, tf_keras

    tf, k = import_tf(), tf_keras()
    tf.keras.utils.set_random_seed(7)
    L = k.layers
    x = k.Input((6, 5, 4), batch_size=1)
    t = L.Conv2DTranspose(4, 3, strides=2, padding="same", bias_initializer="random_normal")(x)  # 12x10x4
    t = L.LeakyReLU(0.2)(L.Lambda(lambda v: v * tf.nn.relu6(v + 3.0) / 6.0)(t))
    c = L.Cropping2D(((1, 1), (1, 1)))(t)  # 10x8x4
    s = L.Subtract()([c, L.Conv2D(4, 1)(c)])
    m = L.MaxPooling2D(2)(L.Maximum()([s, c]))  # 5x4x4
    u = L.UpSampling2D(2)(m)  # 10x8x4
    p = L.Lambda(lambda v: tf.pad(v, [[0, 0], [1, 0], [0, 1], [0, 0]], constant_values=0.25))(u)  # 11x9x4
    g = L.Lambda(lambda v: tf.gather(v, [3, 1, 2, 0], axis=-1))(p)
    r = L.Lambda(lambda v: tf.stack(tf.unstack(v, axis=1)[::-1], axis=1))(g)
    a, b = L.Lambda(lambda v: tf.split(v, 2, axis=-1))(r)
    h = L.Concatenate()([L.ReLU()(a), b])
    s2 = L.Reshape((5, 24))(L.PReLU(alpha_initializer="random_normal")(L.Permute((2, 1, 3))(x)))
    f2 = L.GlobalMaxPooling1D()(L.Attention()([s2, L.Dense(24)(s2)]))
    f1 = L.Dense(16, activation="elu")(L.Flatten()(L.AveragePooling2D(3)(h)))
    y = L.Dense(12)(L.Add()([f1, L.Dense(16)(f2)]))
    model = k.Model(x, y)
    rep = np.random.default_rng(1).normal(0, 1, (48, 6, 5, 4)).astype(np.float32)
    return convert_int8(model, [rep])




@pytest.mark.slow
@needs_arm
def test_ops2_kernels_on_qemu_match_tflm(tmp_path: Path) -> None:
    from tinykeras.aot import generate
    from tinykeras.boards import load_board
    from tinykeras.device.port import open_port
    from tinykeras.target import qemu
    from tinykeras.tflm_host import TflmRunner

    model = _chain_model()
    info = inspect_bytes(model)
    assert NEW_OPS <= set(info.op_names), f"missing {NEW_OPS - set(info.op_names)} in {info.op_names}"
    program = generate(model, info, name="ops2")
    board = load_board("qemu_m4")
    qemu.render_project(board, model, info, tmp_path, runtime_files=program.files, runs=1, warmup=0, name="ops2",
                        arena_bytes=program.arena_bytes)
    elf = qemu.compile_project(tmp_path)
    t_in, t_out = info.input_tensors()[0], info.output_tensors()[0]
    q = t_out.quantization
    assert q.scale >= 0.002  # three decimals of `results%` tell every int8 value apart
    tflm = TflmRunner(model, info)

    def reference(x: bytes) -> str:
        out = tflm.invoke(np.frombuffer(x, dtype=np.int8).reshape(t_in.shape))[0]
        return mlperf_results(out, q.scale, q.zero_point)

    x = bytes(np.random.default_rng(23).integers(0, 256, t_in.nbytes, dtype=np.uint8))
    assert reference(x) != reference(bench_input(t_in.nbytes))  # the output depends on the input
    with qemu.qemu_session(elf, board) as url:
        port = open_port(url)  # keeps the bytes QEMU sent before open() returned
        try:
            mlperf_reply(port)
            assert mlperf_reply(port, "results%")[0] == reference(bench_input(t_in.nbytes))
            mlperf_reply(port, f"db load {len(x)}%")
            for k in range(0, len(x), 32):
                mlperf_reply(port, f"db {x[k:k + 32].hex()}%")
            assert mlperf_reply(port, "infer 1 0%")[-2] == reference(x)
        finally:
            port.close()


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_ops2_kernels_compile_for_cortex_m0plus(tmp_path: Path) -> None:
    """No DSP, no FPU: the portable C of tk_ops2.c builds warning-free for a Cortex-M0+."""
    from tinykeras.resources import templates_dir

    src = templates_dir() / "runtime" / "aot"
    proc = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-mcpu=cortex-m0plus",
                           "-mthumb", f"-I{src}", "-c", str(src / "tk_ops2.c"), "-o", str(tmp_path / "tk_ops2.o")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
