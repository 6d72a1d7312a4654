"""Every emulated Cortex-M core: qemu_m3 (mps2-an385), qemu_m4 (mps2-an386), qemu_m7 (mps2-an500), qemu_m33
(mps2-an505) and qemu_m55 (mps3-an547, Helium). What differs between them is data: the board file and the
machine's port folder (firmware_templates/baremetal/<machine>/: tk_machine.h, memory.ld).

CI runs one representative model per core (the shipped DS-CNN keyword spotter: conv, depthwise, pooling, fully
connected, softmax) with the aot runtime and with TFLM + CMSIS-NN on every core (one TFLM library archive per
core and kernels, compiled once and cached). Outputs bit-exact with the TFLM host interpreter (the whole output
vector, for the benchmark pattern and a random input).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import requires_tool

from tinykeras.boards import board_names, load_board, load_board_file
from tinykeras.errors import BoardError
from tinykeras.inspect import inspect_bytes
from tinykeras.resources import models_dir
from tinykeras.target import qemu

CORES = {"qemu_m3": ("mps2-an385", "cortex-m3"), "qemu_m4": ("mps2-an386", "cortex-m4"),
         "qemu_m7": ("mps2-an500", "cortex-m7"), "qemu_m33": ("mps2-an505", "cortex-m33"),
         "qemu_m55": ("mps3-an547", "cortex-m55")}
needs_arm = requires_tool("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm")


def test_every_core_has_a_board_and_a_machine_port() -> None:
    emulated = {name for name in board_names() if load_board(name).kind == "qemu"}
    assert emulated == set(CORES)
    assert set(qemu.supported_machines()) == {machine for machine, _ in CORES.values()}
    for name, (machine, core) in CORES.items():
        board = load_board(name)
        settings = qemu.qemu_settings(board)
        assert (settings["machine"], settings["cpu"], board.mcu.core) == (machine, core, core)
        assert f"-mcpu={core}" in settings["cflags"]
        assert qemu.machine_dir(board).name == machine


def test_instruction_counter_resolution_per_machine() -> None:
    assert [qemu.instructions_per_tick(load_board(b)) for b in CORES] == [40, 40, 40, 50, 32]


def test_unknown_machine_names_the_ports(tmp_path: Path) -> None:
    text = (Path(load_board("qemu_m4").path).read_text()
            .replace('machine = "mps2-an386"', 'machine = "mps2-an521"').replace('"qemu_m4"', '"fake"'))
    path = tmp_path / "fake.toml"
    path.write_text(text)
    with pytest.raises(BoardError, match="mps2-an521.*mps3-an547"):
        qemu.qemu_settings(load_board_file(path))


def _kws() -> tuple[Path, bytes]:
    path = models_dir() / "kws" / "model.tflite"
    return path, path.read_bytes()


@needs_arm
@pytest.mark.slow
@pytest.mark.parametrize("board", sorted(CORES))
def test_aot_on_every_core_matches_tflm(board: str, tmp_path: Path) -> None:
    from standin import run_and_compare

    from tinykeras.pipeline import BuildOptions, build

    path, model = _kws()
    result = build(BuildOptions(board=board, model=path, runtime="aot", runs=2, warmup=1, out=tmp_path / "fw"),
                   log=lambda _m: None)
    makefile = (result.project_dir / "Makefile").read_text()
    assert f"-mcpu={CORES[board][1]}" in makefile
    elf = qemu.compile_project(result.project_dir)
    figures = run_and_compare(elf, model, inspect_bytes(model, str(path)), result.arena.planned_bytes, board)
    assert all(n and n > 0 for n in figures["instructions"])


@needs_arm
@pytest.mark.slow
@pytest.mark.parametrize("board", sorted(CORES))
def test_tflm_cmsis_nn_on_every_core_matches_tflm(board: str, third_party_dir: Path, tmp_path: Path) -> None:
    """TFLM 90b983c + CMSIS-NN compiled with each core's flags (plain C on the M3, DSP on the M4/M7/M33, MVE on
    the M55) runs the representative model bit-exact with the host interpreter."""
    from standin import run_and_compare

    from tinykeras.pipeline import BuildOptions, build

    path, model = _kws()
    result = build(BuildOptions(board=board, model=path, runtime="tflm", kernels="cmsis-nn", runs=2, warmup=1,
                                out=tmp_path / "fw", tflm_dir=third_party_dir / "tflite-micro-90b983c"),
                   log=lambda _m: None)
    makefile = (result.project_dir / "Makefile").read_text()
    assert f"-mcpu={CORES[board][1]}" in makefile and "-DCMSIS_NN" in makefile
    elf = qemu.compile_project(result.project_dir)
    figures = run_and_compare(elf, model, inspect_bytes(model, str(path)), result.arena.planned_bytes, board)
    assert all(n and n > 0 for n in figures["instructions"])


@requires_tool("arm-none-eabi-gcc")
def test_aot_kernels_follow_the_core(tmp_path: Path) -> None:
    """The board's compiler flags choose the aot kernels: Helium (MVE) on the M55, the DSP extension on the
    M4/M7/M33 (row-quad fully connected weights loaded by one LDM), portable C on the M3; each compiles at -Os,
    -Og and with the frame pointer kept (PlatformIO's release and debug builds)."""
    import subprocess

    from tinykeras.resources import templates_dir

    src = tmp_path / "kernels.c"
    src.write_text('#include "tk_fast.h"\n'
                   "void fc(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *b, const tk_rq_param *q) {\n"
                   "  tk_fc_fast(x, y, 1, 64, 16, w, b, q, -128, 127, (int32_t *)0, 0);\n"
                   "  tk_fc_fast(x, y, 1, 64, 16, w, b, q, -128, 127, (int32_t *)0, 1);\n}\n"
                   "void dw(const int8_t *x, int8_t *y, const int8_t *z, const int32_t *w, const int32_t *b,\n"
                   "        const tk_rq_param *q) {\n"
                   "  tk_dw3x3_fast(x, y, 8, 8, 16, 8, 8, 1, 1, 1, z, w, b, q, -128, 127, (const int8_t *)0);\n"
                   "  tk_dw3x3_fast(x, y, 8, 8, 16, 8, 8, 1, 1, 1, z, 0, b, q, -128, 127, (const int8_t *)w);\n}\n"
                   "void conv(const int8_t *x, int8_t *y, int8_t *s, const int8_t *w, const int32_t *b,\n"
                   "          const tk_rq_param *q, int32_t *wide) {\n"
                   "  tk_conv_fast(x, y, s, 8, 8, 16, 8, 8, 16, 1, 1, 1, 1, 0, 0, 0, 16, w, b, q, -128, 127,\n"
                   "               wide);\n}\n")
    for board, (_machine, core) in CORES.items():
        cflags = qemu.qemu_settings(load_board(board))["cflags"]
        asm = subprocess.run(["arm-none-eabi-gcc", *cflags, f"-I{templates_dir() / 'runtime' / 'aot'}", "-S", "-o",
                              "-", str(src)], capture_output=True, text=True, check=True).stdout
        assert ("vmladava" in asm and "vmullb" in asm) == (core == "cortex-m55"), board
        if core != "cortex-m55":   # (the M55's DSP leftovers: none at these multiples of 16)
            assert ("smlad" in asm) == (core != "cortex-m3"), board
            assert ("{r8, r9, r10, r11}" in asm) == (core != "cortex-m3"), board  # tk_fc_quad's LDM
        for extra in (["-Os"], ["-Og"], ["-O2", "-fno-omit-frame-pointer"], ["-Os", "-fno-omit-frame-pointer"]):
            # the hand-scheduled loops need at most 13 registers: r7 may be a debug build's frame pointer
            run = subprocess.run(["arm-none-eabi-gcc", *cflags, *extra, f"-I{templates_dir() / 'runtime' / 'aot'}",
                                  "-c", "-o", str(tmp_path / "k.o"), str(src)], capture_output=True, text=True)
            assert run.returncode == 0, (board, extra, run.stderr)


@requires_tool("arm-none-eabi-gcc")
def test_gemm_weight_layout_is_checked_against_the_core(tmp_path: Path) -> None:
    """tk_model.c generated for a core without Helium (pair-interleaved weights) does not compile for the M55,
    nor the M55's (Helium row blocks) for the M4: one #error that says to regenerate, never wrong outputs."""
    import subprocess

    from tinykeras.aot import generate
    from tinykeras.resources import templates_dir

    _path, data = _kws()
    info = inspect_bytes(data)
    for gen_core, board in (("cortex-m4", "qemu_m55"), ("cortex-m55", "qemu_m4"), ("cortex-m55", "qemu_m55")):
        d = tmp_path / f"{gen_core}-{board}"
        d.mkdir()
        for fname, text in generate(data, info, core=gen_core).files.items():
            (d / fname).write_text(text)
        cflags = qemu.qemu_settings(load_board(board))["cflags"]
        run = subprocess.run(["arm-none-eabi-gcc", *cflags, f"-I{d}", f"-I{templates_dir() / 'runtime' / 'aot'}",
                              "-fsyntax-only", str(d / "tk_model.c")], capture_output=True, text=True)
        mismatch = (gen_core == "cortex-m55") != (board == "qemu_m55")
        assert (run.returncode != 0) == mismatch, run.stderr
        assert ("regenerate it for this board" in run.stderr) == mismatch


def test_m55_tflm_library_gets_its_assembler_workaround(third_party_dir: Path, tmp_path: Path) -> None:
    """qemu_m55's library_cflags reach the TFLM library's flags only (binutils 2.40 VCVTNE workaround)."""
    from tinykeras.pipeline import BuildOptions, build

    path, _model = _kws()
    result = build(BuildOptions(board="qemu_m55", model=path, runtime="tflm", kernels="cmsis-nn", out=tmp_path / "t",
                                tflm_dir=third_party_dir / "tflite-micro-90b983c"), log=lambda _m: None)
    lines = (result.project_dir / "Makefile").read_text().splitlines()
    lib_arch = next(ln for ln in lines if ln.startswith("LIB_ARCH"))
    arch = next(ln for ln in lines if ln.startswith("ARCH"))
    assert "-fno-if-conversion" in lib_arch and "-mcpu=cortex-m55" in lib_arch
    assert "-fno-if-conversion" not in arch
