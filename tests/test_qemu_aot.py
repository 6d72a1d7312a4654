"""The aot runtime on the emulated Cortex-M4 (qemu_m4), end to end: generate, render, make, run in QEMU,
and compare the outputs with the TFLM host interpreter bit for bit (the `@tk` run records for the
benchmark's input pattern, and the MLPerf `results%` vector for random inputs loaded with `db`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mirrors import bench_input, mlperf_results
from standin import mlperf_random_input, mlperf_reply

from tinykeras import mlperf_models
from tinykeras.boards import load_board
from tinykeras.inspect import inspect_bytes
from tinykeras.target import qemu

pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (apt install gcc-arm-none-eabi libnewlib-arm-none-eabi "
           "qemu-system-arm; scripts/setup.sh)")


def _generate():
    aot = pytest.importorskip("tinykeras.aot")
    if not hasattr(aot, "generate"):
        pytest.skip("tinykeras.aot.generate is not available yet")
    return aot.generate




@pytest.mark.slow
@pytest.mark.parametrize("name", ["ad01_int8", "pretrainedResnet_quant"])
def test_aot_on_qemu_matches_tflm(name: str, reference_models: dict[str, Path], tmp_path: Path) -> None:
    from tinykeras.device.port import open_port
    from tinykeras.tflm_host import TflmRunner

    generate = _generate()
    model = reference_models[name].read_bytes()
    info = inspect_bytes(model, str(reference_models[name]))
    program = generate(model, info, name=name)
    board = load_board("qemu_m4")
    qemu.render_project(board, model, info, tmp_path, runtime_files=program.files, runs=2, warmup=1, name=name,
                        arena_bytes=program.arena_bytes)
    elf = qemu.compile_project(tmp_path)

    t_in, t_out = info.input_tensors()[0], info.output_tensors()[0]
    q_out = t_out.quantization
    assert q_out.scale >= 0.002  # so the 3 decimals of `results%` tell every int8 value apart (bit-exact)
    tflm = TflmRunner(model, info)

    def reference(x: bytes) -> np.ndarray:
        sample = np.frombuffer(x, dtype=np.int8).reshape(t_in.shape)
        return np.asarray(tflm.invoke(sample)[0]).ravel()

    pattern_out = reference(bench_input(t_in.nbytes))
    conv, random_in, random_tensor = mlperf_random_input(model, info, 11)
    random_out = reference(random_tensor)

    with qemu.qemu_session(elf, board) as url:
        port = open_port(url)  # keeps the bytes QEMU sent before open() returned
        try:
            boot = mlperf_reply(port)
            recs = [json.loads(ln[4:]) for ln in boot if ln.startswith("@tk ")]
            assert [r["event"] for r in recs] == ["hello", "run", "run", "done"], boot[:3]
            assert recs[0]["arena_used"] == program.arena_bytes
            for run in recs[1:3]:
                assert run["top"] == int(np.argmax(pattern_out)) and run["score"] == int(pattern_out.max())
            # the whole output vector of the last timed run, against TFLM
            assert mlperf_reply(port, "results%")[0] == mlperf_results(pattern_out, q_out.scale, q_out.zero_point)
            mlperf_reply(port, f"db load {len(random_in)}%")
            for k in range(0, len(random_in), 32):
                mlperf_reply(port, f"db {random_in[k:k + 32].hex()}%")
            lines = mlperf_reply(port, "infer 1 0%")
            assert lines[-2] == mlperf_models.results_line(conv, random_out, q_out.scale, q_out.zero_point, random_in)
        finally:
            port.close()
