"""The aot runtime's specialised paths, memory plan and per-layer profile (issue 12).

Speed is a benchmark (scripts/bench_runtime.py writes it as JSON), never asserted here; these tests check
correctness (bit for bit against TFLM), the plan's safety and what `tinykeras profile` reports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mirrors import check_plan

from tinykeras.aot import generate
from tinykeras.aot.planner import Buffer, pack
from tinykeras.inspect import inspect_bytes

needs_qemu = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                reason="needs arm-none-eabi-gcc and qemu-system-arm (scripts/setup.sh)")


@pytest.fixture(scope="session")
def dscnn() -> bytes:
    from tinykeras.bench_models import dscnn_tflite

    return dscnn_tflite(seed=0)


@given(st.lists(st.tuples(st.integers(1, 64), st.integers(0, 40)), min_size=2, max_size=10))
@settings(max_examples=60, deadline=None)
def test_streamed_chains_pack_safely(specs: list[tuple[int, int]]) -> None:
    """A chain of ops, each output streamed over its dying input with some gap: the packer keeps every
    output at or below `gap` under its input (or apart from it) and never overlaps anything else."""
    buffers = [Buffer(f"t{i}", 4 * size, i, i + 1) for i, (size, _) in enumerate(specs)]
    streams = {(f"t{i}", f"t{i + 1}"): 4 * gap for i, (_, gap) in enumerate(specs[1:])}
    offsets, total = pack(buffers, streams=streams)
    check_plan(buffers, offsets, streams)
    assert all(0 <= offsets[b.key] and offsets[b.key] + b.size <= total for b in buffers)
    assert total <= sum(b.size for b in buffers) + 16


def test_reference_plans_are_valid_and_use_streams(reference_models: dict[str, Path]) -> None:
    for path in reference_models.values():
        data = path.read_bytes()
        program = generate(data, inspect_bytes(data))
        check_plan(list(program.buffers), program.buffer_offsets, program.streams)
    # ResNet's convolutions overlap their inputs: legal only through the streams
    assert program.streams
    with pytest.raises(AssertionError):
        check_plan(list(program.buffers), program.buffer_offsets)


@pytest.mark.slow
def test_arena_not_larger_than_tflm(reference_models: dict[str, Path], dscnn: bytes) -> None:
    """The aot plan is never worse than the smallest arena the TFLM host interpreter works with."""
    from tinykeras.arena import measure_arena_bytes

    for data in [p.read_bytes() for p in reference_models.values()] + [dscnn]:
        info = inspect_bytes(data)
        assert generate(data, info).arena_bytes <= measure_arena_bytes(data, info)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc (scripts/setup.sh)")
def test_generated_code_builds_for_cortex_m0plus(dscnn: bytes, tmp_path: Path) -> None:
    """No DSP extension: the portable paths (the ones the host build runs bit-exact) compile warning-free."""
    program = generate(dscnn, inspect_bytes(dscnn))
    for name, text in program.files.items():
        (tmp_path / name).write_text(text)
    for name in sorted(n for n in program.files if n.endswith(".c")):
        proc = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-mthumb", "-O2", "-std=c99", "-Wall",
                               "-Wextra", "-Werror", "-c", name, "-o", name + ".o"], cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        disasm = subprocess.run(["arm-none-eabi-objdump", "-d", name + ".o"], cwd=tmp_path, capture_output=True,
                                text=True).stdout
        assert "smlad" not in disasm and "sxtb16" not in disasm


@pytest.mark.slow
@needs_qemu
def test_dscnn_bit_exact_on_qemu_200_inputs(dscnn: bytes) -> None:
    from tinykeras.device_check import check_on_qemu

    result = check_on_qemu(dscnn, inspect_bytes(dscnn), samples=200)
    assert result["samples"] == 200 and result["mismatches"] == 0, result


@pytest.mark.slow
@needs_qemu
def test_profile_on_qemu(dscnn: bytes, tmp_path: Path) -> None:
    from tinykeras.profile import profile, write_profile

    info = inspect_bytes(dscnn)
    prof = profile(dscnn, info, board="qemu_m4", runtime="aot", name="dscnn")
    assert prof.unit == "instructions" and len(prof.ops) == len(info.ops)
    total = sum(o.count for o in prof.ops)
    assert prof.benchmark_total is not None
    # the per-op counts (counter reads subtracted) add up to the undisturbed benchmark count, to the
    # counter's resolution (40 instructions per reading) and the code the marks change (0.2 %)
    assert abs(total - prof.benchmark_total) <= 40 * (len(prof.ops) + 1) + 0.002 * prof.benchmark_total
    assert abs(sum(o.share for o in prof.ops) - 1.0) < 0.01
    convs = [o for o in prof.ops if o.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert all(o.count > 0 and o.per_mac and o.fast_path for o in convs)
    assert max(o.live_bytes for o in prof.ops) <= prof.arena_bytes
    paths = write_profile(prof, tmp_path / "prof")
    data = json.loads(paths["json"].read_text())
    assert [o["op"] for o in data["ops"]] == [op.op for op in info.ops]
    assert "separate firmware" in " ".join(data["notes"])
    for key in ("timeline", "layers"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_live_bytes_counts_streamed_overlap_once() -> None:
    from tinykeras.profile import live_bytes_per_op

    buffers = [Buffer("in", 64, 0, 1), Buffer("out", 64, 1, 2)]
    assert live_bytes_per_op(buffers, {"in": 8, "out": 0}, 3) == [64, 72, 64]


def test_profile_cli_rejects_boards_and_runtimes_it_cannot_measure(tmp_path: Path,
                                                                   reference_models: dict[str, Path]) -> None:
    from click.testing import CliRunner

    from tinykeras.cli import cli

    model = str(reference_models["ad01_int8"])
    runner = CliRunner()
    for args, words in ((["--board", "esp32"], "emulated board"), (["--board", "esp23"], "unknown board"),
                        (["--runtime", "tflm", "--tflm-dir", str(tmp_path / "none")], "not a directory")):
        result = runner.invoke(cli, ["profile", model, "-o", str(tmp_path / "p"), *args])
        assert result.exit_code != 0
        assert words in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
    missing = runner.invoke(cli, ["profile", str(tmp_path / "nope.tflite")])
    assert missing.exit_code != 0 and "no such file" in missing.output


@pytest.mark.slow
def test_mobilenets_bit_exact_under_sanitizers() -> None:
    """MobileNet-v1 0.25 and MobileNetV2 0.35 at 96x96 (random weights): every op on the fast paths, host
    build under ASan + UBSan equal to TFLM."""
    from tinykeras.aot.host import AotHostRunner
    from tinykeras.bench_models import build_tflite
    from tinykeras.tflm_host import TflmRunner

    for name in ("mobilenet_v1_025_96", "mobilenet_v2_035_96"):
        data = build_tflite(name)
        info = inspect_bytes(data)
        assert all(p.fast_path for p in generate(data, info).ops)
        x = np.random.default_rng(4).integers(-128, 128, size=(6, 96, 96, 3), dtype=np.int8)
        ours = AotHostRunner(data, info, sanitize=True).run_all(x)
        assert np.array_equal(ours, TflmRunner(data, info).run_all(x)), name


_HOST_PORT = r"""
#include <time.h>
#include <stdio.h>
#include "tk_port.h"
/* A board without a cycle counter (like the RP2040): microseconds only. */
void tk_port_init(void) {}
void tk_port_write(const char *s, unsigned n) { fwrite(s, 1, n, stdout); }
int tk_port_read_char(void) { return -1; }
void tk_port_idle(void) {}
uint64_t tk_port_time_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}
uint64_t tk_port_counter(void) { return 0; }
tk_counter_kind tk_port_counter_kind(void) { return TK_COUNTER_NONE; }
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_profile_firmware_without_cycle_counter_reports_microseconds(reference_models: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    """The profile firmware on a port with no counter (built for the host here): unit us, and said so."""
    from tinykeras.profile import assemble_profile, profile_summary
    from tinykeras.resources import templates_dir
    from tinykeras.runtime import aot as aot_runtime

    data = reference_models["ad01_int8"].read_bytes()
    info = inspect_bytes(data)
    program = generate(data, info, profile=True)
    for name, text in program.files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "port.c").write_text(_HOST_PORT)
    (tmp_path / "main.c").write_text((templates_dir() / "runtime" / "profile" / "tk_profile_main.c").read_text())
    bench = templates_dir() / "runtime" / "bench"
    (tmp_path / "tk_port.h").write_text((bench / "tk_port.h").read_text())
    (tmp_path / "tk_model_api.h").write_text((bench / "tk_model_api.h").read_text())
    sources = sorted(n for n in program.files if n.endswith(".c")) + ["port.c", "main.c"]
    subprocess.run(["gcc", "-std=c99", "-D_POSIX_C_SOURCE=199309L", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                    "prof", *sources, "-lm"], cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(["./prof"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("@tkprofile "))
    raw = json.loads(line[len("@tkprofile "):])
    assert raw["unit"] == "us" and len(raw["ops"]) == len(info.ops)
    prof = assemble_profile(raw, aot_runtime.plan(data, info, profile=True), info, "host-without-counter", "ad01")
    assert prof.unit == "us" and "microseconds" in prof.unit_note
    assert any("no cycle counter" in line for line in profile_summary(prof))
