"""The emulated board qemu_m4: render the Makefile project, build it with arm-none-eabi-gcc, run it in
qemu-system-arm and read the benchmark over socket://. A tiny hand-written model stands in for the runtime
where the aot runtime is not the point; the aot test checks the reference model against TFLM."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from mirrors import bench_input, mlperf_results

from tinykeras.boards import load_board
from tinykeras.errors import BoardError, SerialError, ToolchainError
from tinykeras.target import qemu
from tinykeras.types import ModelInfo, Quantization, TensorInfo

HAVE_CC = shutil.which("arm-none-eabi-gcc") is not None
HAVE_QEMU = shutil.which("qemu-system-arm") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="needs arm-none-eabi-gcc (apt install gcc-arm-none-eabi "
                                                   "libnewlib-arm-none-eabi)")
needs_qemu = pytest.mark.skipif(not (HAVE_CC and HAVE_QEMU),
                                reason="needs arm-none-eabi-gcc and qemu-system-arm (apt, scripts/setup.sh)")

# A fully connected layer 16 -> 4 whose weights come from a formula; fake_model() mirrors it in numpy.
# INIT and INVOKE are replaced to make firmware that hangs or faults.
FAKE_MODEL = r"""
#include "tk_model_api.h"
static int8_t s_in[16];
static int8_t s_out[4];
int tk_model_init(void) { INIT; return 0; }
int8_t *tk_input(void) { return s_in; }
const int8_t *tk_output(void) { return s_out; }
unsigned tk_input_bytes(void) { return 16u; }
unsigned tk_output_bytes(void) { return 4u; }
int tk_invoke(void) {
  unsigned j, i;
  for (j = 0u; j < 4u; ++j) {
    int32_t acc = 0;
    for (i = 0u; i < 16u; ++i) {
      acc += (int32_t)s_in[i] * (int32_t)((int32_t)((i * 7u + j * 13u) % 31u) - 15);
    }
    acc >>= 6;
    s_out[j] = (int8_t)(acc > 127 ? 127 : acc < -128 ? -128 : acc);
  }
  return 0;
}
unsigned tk_arena_used(void) { return 20u; }
const char *tk_model_error(void) { return ""; }
"""
OUT_SCALE, OUT_ZP = 0.25, -3


def fake_model(x: bytes) -> np.ndarray:
    xi = np.frombuffer(x, dtype=np.int8).astype(np.int32)
    w = np.array([[((i * 7 + j * 13) % 31) - 15 for i in range(16)] for j in range(4)], dtype=np.int32)
    return np.clip((w @ xi) >> 6, -128, 127).astype(np.int8)


def fake_info() -> ModelInfo:
    t_in = TensorInfo(0, "in", (1, 16), "int8", Quantization((0.5,), (0,)), False, 0)
    t_out = TensorInfo(1, "out", (1, 4), "int8", Quantization((OUT_SCALE,), (OUT_ZP,)), False, 0)
    return ModelInfo("fake.tflite", "ab" * 32, 100, (t_in, t_out), (), (0,), (1,), "fake")


def render(out: Path, init: str = "(void)0", runs: int = 4) -> Path:
    source = FAKE_MODEL.replace("INIT", init)
    qemu.render_project(load_board("qemu_m4"), b"x" * 100, fake_info(), out, runtime_files={"fake_model.c": source},
                        runs=runs, warmup=1, name="fake", arena_bytes=20)
    return out


def qemu_pids(needle: str) -> list[int]:
    """QEMU processes whose command line mentions ``needle``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "qemu-system-arm" in cmd and needle in cmd:
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def fake_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HAVE_CC:
        pytest.skip("needs arm-none-eabi-gcc (apt install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    return qemu.compile_project(render(tmp_path_factory.mktemp("fake") / "proj"))


def test_board_file_validates() -> None:
    board = load_board("qemu_m4")
    assert board.kind == "qemu" and board.default_runtime == "aot" and board.timer.api == "cmsdk_timer0"
    s = qemu.qemu_settings(board)
    assert s["machine"] == "mps2-an386" and qemu.instructions_per_tick(board) == 40
    assert qemu.qemu_args(board)[:4] == ["-M", "mps2-an386", "-cpu", "cortex-m4"]
    assert "shift=0" in qemu.qemu_args(board)


def test_unknown_qemu_key_is_rejected(tmp_path: Path) -> None:
    text = load_board("qemu_m4").path.read_text().replace("icount_shift = 0", "icount_shfit = 0")
    (tmp_path / "qemu_m4.toml").write_text(text)
    with pytest.raises(BoardError, match="did you mean 'qemu.icount_shift'"):
        qemu.qemu_settings(load_board("qemu_m4", tmp_path))


def test_render_is_deterministic_and_bannered(tmp_path: Path) -> None:
    a, b = render(tmp_path / "a"), render(tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert {str(p) for p in files} >= {"Makefile", "sections.ld", "memory.ld", "src/tk_machine.h", "src/main.c",
                                       "src/tk_bench.c", "src/port_qemu.c", "src/startup.c", "src/fake_model.c"}
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        if rel.name != "fake_model.c":  # runtime files come with their own banner
            assert "Generated by tinykeras" in (a / rel).read_text().splitlines()[0], rel
    main = (a / "src/main.c").read_text()
    assert '"qemu_m4"' in main and '"abababababababab"' in main and "0.25f" in main
    assert "static uint8_t s_db[16u];" in main and '"tinykeras qemu_m4 (emulator' in main


def test_missing_tools_name_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_make = tmp_path / "make"
    fake_make.write_text("#!/bin/sh\nexit 0\n")
    fake_make.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match="gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        qemu.compile_project(tmp_path)
    with pytest.raises(ToolchainError, match="apt install qemu-system-arm"):
        with qemu.qemu_session(tmp_path / "x.elf", load_board("qemu_m4")):
            pass


@needs_cc
def test_compile_error_is_a_toolchain_error(tmp_path: Path) -> None:
    qemu.render_project(load_board("qemu_m4"), b"x", fake_info(), tmp_path,
                        runtime_files={"broken.c": "int tk_invoke(void) { return undeclared_thing; }\n"},
                        runs=1, warmup=0, name="fake", arena_bytes=0)
    with pytest.raises(ToolchainError, match="undeclared_thing"):
        qemu.compile_project(tmp_path)


@needs_cc
def test_elf_sizes_match_arm_none_eabi_size(fake_elf: Path) -> None:
    sizes = qemu.elf_sizes(fake_elf)
    out = subprocess.run(["arm-none-eabi-size", "-A", str(fake_elf)], capture_output=True, text=True,
                         check=True).stdout
    table = {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines() if ln.startswith(".")}
    assert sizes["text"] == table[".text"]
    # the vector table is constant data
    assert sizes["rodata"] == table[".isr_vector"] + table[".rodata"] + table.get(".ARM.exidx", 0)
    assert sizes["bss"] == table[".bss"] and sizes["data"] == table.get(".data", 0)
    assert sizes["flash"] == sizes["text"] + sizes["rodata"] + sizes["data"]
    assert sizes["ram"] == sizes["data"] + sizes["bss"]


@needs_qemu
def test_benchmark_end_to_end(fake_elf: Path, tmp_path: Path) -> None:
    board = load_board("qemu_m4")
    first = qemu.run_benchmark(fake_elf, board, runs=4, timeout=20, raw_log=tmp_path / "raw.log")
    second = qemu.run_benchmark(fake_elf, board, runs=4, timeout=20)
    assert first.complete and len(first.runs) == 4 and [r.i for r in first.runs] == [0, 1, 2, 3]
    assert first.hello["board"] == "qemu_m4" and first.hello["arena_used"] == 20
    expected = fake_model(bench_input(16))
    for r in first.runs:
        assert r.top == int(np.argmax(expected)) and r.score == int(expected.max())
        assert r.instructions is not None and r.instructions > 0 and r.instructions % 40 == 0
    # guest instructions are deterministic: the same in two QEMU sessions
    assert [r.instructions for r in first.runs] == [r.instructions for r in second.runs]
    assert (tmp_path / "raw.log").read_bytes().startswith(b"@tk {")
    s = qemu.summary(first, board, qemu.elf_sizes(fake_elf), 20)
    assert s["instructions_per_inference"] == first.runs[0].instructions
    assert s["estimate_ms"] == pytest.approx(s["instructions_per_inference"] / 120e6 * 1e3, abs=1e-3)
    assert "estimate" in s["estimate_label"] and s["sizes"]["flash"] > 0


@needs_qemu
def test_mlperf_commands_over_the_socket(fake_elf: Path) -> None:
    import serial

    def reply(port: serial.Serial, cmd: str = "") -> list[str]:
        if cmd:
            port.write(cmd.encode())
        buf, end = b"", time.monotonic() + 10
        while b"m-ready" not in buf and time.monotonic() < end:
            buf += port.read(4096)
        return [ln for ln in buf.decode().splitlines() if ln]

    x = bytes(np.random.default_rng(5).integers(0, 256, 16, dtype=np.uint8))
    with qemu.qemu_session(fake_elf, load_board("qemu_m4")) as url:
        port = serial.serial_for_url(url, timeout=0.05)
        try:
            assert reply(port)[-2:] == ["m-init-done", "m-ready"]
            assert reply(port, "name%") == ["m-name-dut-[tinykeras qemu_m4 (emulator: QEMU mps2-an386; times are "
                                            "instruction counts at 1 ns each)]", "m-ready"]
            assert reply(port, "db load 16%") == ["m-[Expecting 16 bytes]", "m-ready"]
            assert reply(port, f"db {x.hex()}%") == ["m-load-done", "m-ready"]
            lines = reply(port, "infer 5 2%")
            assert lines[:3] == ["m-warmup-start-2", "m-warmup-done", "m-infer-start-5"]
            want = mlperf_results(fake_model(x), OUT_SCALE, OUT_ZP)
            assert lines[-3:] == ["m-infer-done", want, "m-ready"]
            assert reply(port, "results%") == [want, "m-ready"]
            # commands sent while the board computes wait in the RX interrupt's ring buffer: none is lost
            port.write(b"infer 40 0%timestamp%profile%results%")
            buf, end = b"", time.monotonic() + 10
            while buf.count(b"m-ready") < 4 and time.monotonic() < end:
                buf += port.read(4096)
            lines = [ln for ln in buf.decode().splitlines() if ln]
            assert lines.count("m-ready") == 4 and lines.count(want) == 2 and "m-model-[fake]" in lines, lines
        finally:
            port.close()


@needs_qemu
def test_hanging_firmware_times_out_and_qemu_is_killed(tmp_path: Path) -> None:
    elf = qemu.compile_project(render(tmp_path / "hang", init="for (;;) {}"))
    start = time.monotonic()
    with pytest.raises(SerialError, match="printed no benchmark record"):
        qemu.run_benchmark(elf, load_board("qemu_m4"), runs=2, timeout=1.5)
    assert time.monotonic() - start < 15
    assert qemu_pids(str(elf)) == []


@needs_qemu
def test_fault_is_reported_and_ends_qemu(tmp_path: Path) -> None:
    # an undefined instruction: UsageFault -> error record, semihosting exit 3
    elf = qemu.compile_project(render(tmp_path / "fault", init="__builtin_trap()"))
    report = qemu.run_benchmark(elf, load_board("qemu_m4"), runs=2, timeout=10)
    assert report.status == "error" and "CPU fault" in (report.error or "")
    assert qemu_pids(str(elf)) == []


@needs_qemu
def test_qemu_exit_status_via_semihosting(tmp_path: Path) -> None:
    # the same firmware with an init that returns failure ends QEMU with main's status (1)
    elf = qemu.compile_project(render(tmp_path / "fail", init="return -1"))
    proc = subprocess.run(["qemu-system-arm", *qemu.qemu_args(load_board("qemu_m4")), "-kernel", str(elf),
                           "-serial", "null"], capture_output=True, timeout=30, check=False)
    assert proc.returncode == 1
