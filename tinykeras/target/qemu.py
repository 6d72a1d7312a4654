"""The emulated board (``qemu_m4``): render a Makefile project, build it with arm-none-eabi-gcc and
newlib-nano, run it in ``qemu-system-arm -M mps2-an386 -icount shift=0`` and read the benchmark over a
local TCP port with :func:`tinykeras.device.collect`. No TensorFlow.

Under ``-icount shift=0`` every guest instruction takes 1 ns of guest time, so the firmware's timer
measures instructions: deterministic, and labelled as such. A time on real hardware is only an estimate
(``[qemu] estimate_clock_hz`` of the board file).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2

from tinykeras import mlperf_models
from tinykeras.boards import Board
from tinykeras.c_literals import c_float, c_string
from tinykeras.cgen import banner
from tinykeras.device import collect
from tinykeras.errors import BoardError, ModelError, SerialError, ToolchainError, did_you_mean
from tinykeras.native import tied_to_us
from tinykeras.resources import templates_dir
from tinykeras.runtime import tflm_tree
from tinykeras.types import ModelInfo, index_limit

CC = "arm-none-eabi-gcc"
QEMU = "qemu-system-arm"
TOOLCHAIN_PACKAGES = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
BENCH_FILES = ("tk_bench.c", "tk_bench.h", "tk_model_api.h", "tk_port.h")
PORT_FILES = ("port_qemu.c", "startup.c", "tk_qemu.h")
LINKER_SCRIPT = "sections.ld"   # the sections (port_dir); it INCLUDEs the machine's memory.ld
MACHINE_FILES = ("tk_machine.h", "memory.ld")   # firmware_templates/baremetal/<machine>/: one port per machine
QEMU_KEYS = ("machine", "cpu", "icount_shift", "timer_hz", "cflags", "library_cflags", "estimate_clock_hz",
             "estimate_label")
_WAITING = "waiting for connection"  # what QEMU prints on stderr once its server socket listens


# ------------------------------------------------------------------------------------------ board


def qemu_settings(board: Board) -> dict[str, Any]:
    """The board's ``[qemu]`` table, checked: known keys only, with the defaults filled in."""
    table = dict(board.qemu)
    for key in sorted(table):
        if key not in QEMU_KEYS:
            hint = did_you_mean(key, QEMU_KEYS, "qemu.") or f"; known keys: {', '.join(QEMU_KEYS)}"
            raise BoardError(f"{board.path}: unknown key 'qemu.{key}'{hint}")
    settings: dict[str, Any] = {
        "machine": "mps2-an386", "cpu": "cortex-m4", "icount_shift": 0, "timer_hz": 25_000_000,
        "cflags": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"],
        "estimate_clock_hz": board.mcu.clock_hz,
        "estimate_label": f"estimate at {board.mcu.clock_hz / 1e6:g} MHz, assuming 1 instruction per cycle",
    }
    settings.update(table)
    machines = supported_machines()
    if settings["machine"] not in machines:
        raise BoardError(f"{board.path}: qemu.machine = '{settings['machine']}' has no port "
                         f"(firmware_templates/baremetal/<machine>/); ports exist for: {', '.join(machines)}")
    return settings


def supported_machines() -> list[str]:
    """The QEMU machines with a port: a folder of firmware_templates/baremetal/ holding its MACHINE_FILES."""
    root = templates_dir() / "baremetal"
    return sorted(p.name for p in root.iterdir() if all((p / f).is_file() for f in MACHINE_FILES))


def machine_dir(board: Board) -> Path:
    """The port folder of the board's QEMU machine (its tk_machine.h and memory.ld)."""
    return templates_dir() / "baremetal" / str(qemu_settings(board)["machine"])


def instructions_per_tick(board: Board) -> int:
    """Guest instructions per counter tick, rounded up: the resolution of the instruction counter (40 on
    mps2-an386, 50 on mps2-an505, 32 (31.25) on mps3-an547)."""
    s = qemu_settings(board)
    return math.ceil(1e9 / (2 ** int(s["icount_shift"])) / int(s["timer_hz"]))


def qemu_args(board: Board) -> list[str]:
    """The qemu-system-arm options, without ``-kernel`` and ``-serial``."""
    s = qemu_settings(board)
    return ["-M", str(s["machine"]), "-cpu", str(s["cpu"]), "-nographic", "-monitor", "none",
            "-icount", f"shift={int(s['icount_shift'])}", "-semihosting-config", "enable=on,target=native"]


# ------------------------------------------------------------------------------------------ render


def _banner(source: str, sha256: str, style: str) -> str:
    text = banner(source, sha256, "//").rstrip("\n")
    if style == "#":
        return "\n".join("#" + line[2:] for line in text.splitlines())
    if style == "/*":
        return "\n".join(f"/*{line[2:]} */" for line in text.splitlines())
    return text


def render_project(board: Board, model: bytes, info: ModelInfo, out_dir: Path, *, runtime_files: dict[str, str],
                   runs: int, warmup: int, name: str, arena_bytes: int,
                   frontend_files: dict[str, str] | None = None, runtime: str = "aot",
                   library: Any = None, kernels: str | None = None,
                   library_files: dict[str, Path] | None = None, db_bytes: int | None = None,
                   main_source: str | None = None, mlperf_model: str | None = None, mlperf: bool = True) -> None:
    """Write the Makefile project for ``board`` into ``out_dir``: ``Makefile``, ``sections.ld`` and the
    machine's ``memory.ld``, and ``src/`` (the benchmark, the QEMU port with the machine's ``tk_machine.h``,
    a rendered ``main.c`` and the runtime's files, e.g.
    ``tinykeras.aot.generate(...).files``), plus the feature front end (``frontend_files``, from
    ``tinykeras.recipes.frontend.frontend_sources``; compiled, not called by the benchmark).
    The tflm runtime (``tinykeras.runtime.tflm.tflm_sources``) adds ``library`` and ``library_files``, copied
    into ``tflm/`` and compiled with the library's flags. ``mlperf_model`` is the MLPerf Tiny id the command
    loop announces (default: recognised by content, see tinykeras.mlperf_models; ``mlperf`` False: int8 bytes in,
    every output printed, whatever the model). ``db_bytes``: at least this many `db` bytes (raw float features of
    an input normalised on the device). ``main_source`` replaces the benchmark's ``main.c`` (the profile and
    check firmware mains). Same inputs -> byte-identical files."""
    if board.kind != "qemu":
        raise BoardError(f"board '{board.name}' is a {board.kind} board; render_project needs a qemu board")
    if runs < 0 or warmup < 0:
        raise ModelError(f"runs ({runs}) and warmup ({warmup}) must be >= 0")
    inputs, outputs = info.input_tensors(), info.output_tensors()
    if not inputs or not outputs:
        raise ModelError(f"model '{name}' has no input or no output tensor")
    out_q = outputs[0].quantization
    settings = qemu_settings(board)
    source = Path(info.path).name if info.path else f"{name}.tflite"
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["cstr"] = c_string
    bench_dir = templates_dir() / "runtime" / "bench"
    port_dir = templates_dir() / "baremetal" / "qemu"

    files: dict[str, str] = {}
    for fname in BENCH_FILES:
        files[f"src/{fname}"] = _banner(source, info.sha256, "//") + "\n" + (bench_dir / fname).read_text()
    for fname in PORT_FILES:
        files[f"src/{fname}"] = _banner(source, info.sha256, "//") + "\n" + (port_dir / fname).read_text()
    files[LINKER_SCRIPT] = _banner(source, info.sha256, "/*") + "\n" + (port_dir / LINKER_SCRIPT).read_text()
    machine = machine_dir(board)
    files["src/tk_machine.h"] = _banner(source, info.sha256, "//") + "\n" + (machine / "tk_machine.h").read_text()
    files["memory.ld"] = _banner(source, info.sha256, "/*") + "\n" + (machine / "memory.ld").read_text()
    for fname, text in sorted(runtime_files.items()):
        rel = Path(fname)
        if rel.is_absolute() or ".." in rel.parts:
            raise ModelError(f"runtime file name '{fname}' must be a relative path inside the project")
        if f"src/{rel.as_posix()}" in files or rel.as_posix() == "main.c":
            raise ModelError(f"runtime file '{fname}' clashes with a benchmark or port file of the same name")
        files[f"src/{rel.as_posix()}"] = text
    for fname, text in sorted((frontend_files or {}).items()):
        if f"src/{fname}" in files:
            raise ModelError(f"front-end file '{fname}' clashes with a runtime or benchmark file of the same name")
        files[f"src/{fname}"] = _banner(source, info.sha256, "//") + "\n" + text

    mlperf = mlperf_models.firmware_values(model, info, mlperf_model, mlperf_models.dut_name(
        board.name, True, f"QEMU {settings['machine']}"), enabled=mlperf, min_db_bytes=db_bytes or 0)
    context = {
        **mlperf, "mlperf_model": mlperf["mlperf"].id or name, "input_scale": c_float(mlperf["input_scale_value"]),
        "banner": _banner(source, info.sha256, "//"), "board": board.name, "runtime": runtime, "name": name,
        "sha256_prefix": info.sha256[:16], "model_bytes": len(model), "arena_bytes": int(arena_bytes),
        "cpu_hz": board.mcu.clock_hz, "timer": board.timer.api, "runs": int(runs), "warmup": int(warmup),
        "macs": info.macs, "output_scale": c_float(out_q.scale if out_q else 1.0),
        "output_zero_point": int(out_q.zero_point if out_q else 0),
    }
    files["src/main.c"] = main_source or env.from_string((port_dir / "main.c.j2").read_text()).render(context)
    sources = sorted(p for p in files if p.endswith(".c"))
    copied = {f"tflm/{rel}": src for rel, src in sorted((library_files or {}).items())}
    files["Makefile"] = env.from_string((port_dir / "Makefile.j2").read_text()).render(
        banner=_banner(source, info.sha256, "#"), board=board.name, runtime=runtime, cflags=settings["cflags"],
        linker_script=LINKER_SCRIPT, id_limit=index_limit(info, 0), sources=sources, qemu_args=qemu_args(board),
        **_library_make_vars(library, kernels, settings, files, copied))

    out_dir = Path(out_dir)
    for rel, text in sorted(files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, newline="\n")
    for rel, src in copied.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path)


def _library_make_vars(library: Any, kernels: str | None, settings: dict[str, Any], files: dict[str, str],
                       copied: dict[str, Path]) -> dict[str, Any]:
    """Makefile variables of a TFLM library build (empty for the aot runtime)."""
    if library is None:
        return {"library": None}

    # the core's flags, plus the board's flags for the library alone (qemu.library_cflags: a toolchain workaround)
    arch = [f for f in settings["cflags"] if not f.startswith("-O")] + list(settings.get("library_cflags", ()))
    return {
        "library": library, "kernels": kernels, "lib_arch": arch,
        "lib_defines": [f"-D{d}" for d in library.defines(kernels)],
        "lib_includes": [f"-Itflm/{d}".rstrip("/.") if d != "." else "-Itflm"
                         for d in tflm_tree.include_dirs(kernels or library.default_kernels)],
        "lib_cflags": list(library.build.get("cflags", ())), "lib_cxxflags": list(library.build.get("cxxflags", ())),
        "cxx_sources": sorted(p for p in files if p.endswith((".cc", ".cpp"))),
        "lib_sources": tflm_tree.sources(copied), "opt_app": "-O2",
    }


# ----------------------------------------------------------------------------------------- compile


def check_toolchain() -> None:
    """Raise ToolchainError naming the Debian packages when the cross compiler or newlib-nano is missing."""
    if shutil.which("make") is None:
        raise ToolchainError("`make` not found; install it (Debian: `sudo apt install make`, or run scripts/setup.sh)")
    if shutil.which(CC) is None:
        raise ToolchainError(f"{CC} not found; install the Arm cross compiler and newlib-nano "
                             f"(Debian: `sudo apt install {TOOLCHAIN_PACKAGES}`, or run scripts/setup.sh)")
    probe = subprocess.run([CC, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                            "-print-file-name=libc_nano.a"], capture_output=True, text=True, check=False)
    if probe.returncode != 0 or not Path(probe.stdout.strip()).is_file():
        raise ToolchainError(f"newlib-nano (libc_nano.a) not found for {CC}; install "
                             f"`sudo apt install libnewlib-arm-none-eabi` (or run scripts/setup.sh)")


def check_qemu() -> None:
    if shutil.which(QEMU) is None:
        raise ToolchainError(f"{QEMU} not found; install it (Debian: `sudo apt install qemu-system-arm`, "
                             "or run scripts/setup.sh)")


def compile_project(project_dir: Path, jobs: int = 2) -> Path:
    """Run ``make`` in a rendered project; return ``build/firmware.elf``.

    Raises ToolchainError when the toolchain is missing or the build fails (with the first error lines).
    """
    check_toolchain()
    project_dir = Path(project_dir)
    cached = _library_archive(project_dir)
    extra = [f"TFLM_LIB={cached}"] if cached is not None and cached.exists() else []
    proc = subprocess.run(["make", "-C", str(project_dir), f"-j{max(jobs, 1)}", "--no-print-directory", *extra],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr + proc.stdout).splitlines()
        errors = [ln for ln in lines if "error" in ln.lower()] or lines[-10:]
        raise ToolchainError(f"building {project_dir} failed (make exit {proc.returncode}):\n"
                             + "\n".join(errors[:8]))
    elf = project_dir / "build" / "firmware.elf"
    if not elf.is_file():
        raise ToolchainError(f"make succeeded but {elf} is missing; check {project_dir / 'Makefile'}")
    built = project_dir / "build" / "libtflm.a"
    if cached is not None and not extra and built.is_file():   # keep the TFLM archive for the next build
        with contextlib.suppress(OSError):
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(built, tmp)
            tmp.replace(cached)
    return elf


def _library_archive(project_dir: Path) -> Path | None:
    """Where a compiled TFLM library of this exact project (sources and flags) is cached, or None (aot).
    ``$TINYKERAS_CACHE_DIR`` (default ``~/.cache/tinykeras``)/tflm-lib/<hash>.a."""
    makefile = project_dir / "Makefile"
    text = makefile.read_text(encoding="utf-8") if makefile.is_file() else ""
    if "TFLM_LIB ?=" not in text:
        return None
    import hashlib

    # The library's flags (LIB_* lines) and its sources (every file under tflm/): not the application's lines,
    # which hold model-specific values.
    digest = hashlib.sha256("\n".join(ln for ln in text.splitlines() if ln.startswith("LIB_")).encode())
    for path in sorted((project_dir / "tflm").rglob("*")):
        if path.is_file():
            rel = path.relative_to(project_dir).as_posix().encode()
            digest.update(rel + hashlib.sha256(path.read_bytes()).digest())
    root = Path(os.environ.get("TINYKERAS_CACHE_DIR", Path.home() / ".cache" / "tinykeras"))
    return root / "tflm-lib" / f"{digest.hexdigest()[:24]}.a"


def elf_sizes(elf: Path) -> dict[str, int]:
    """Section sizes of a 32-bit little-endian ELF, grouped by flags: ``text`` (code), ``rodata``
    (constants, the vector table, the weights), ``data``, ``bss``; ``flash`` = text + rodata + data,
    ``ram`` = data + bss."""
    raw = Path(elf).read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
        raise ToolchainError(f"{elf} is not a 32-bit little-endian ELF file")
    shoff, = struct.unpack_from("<I", raw, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", raw, 0x2E)
    sections = [struct.unpack_from("<IIIIIIIIII", raw, shoff + k * shentsize) for k in range(shnum)]
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    alloc, write, execinstr, nobits = 0x2, 0x1, 0x4, 8
    for _name, sh_type, sh_flags, _addr, _off, sh_size, *_ in sections:
        if not sh_flags & alloc or sh_size == 0:
            continue
        if sh_flags & execinstr:
            sizes["text"] += sh_size
        elif not sh_flags & write:
            sizes["rodata"] += sh_size
        elif sh_type == nobits:
            sizes["bss"] += sh_size
        else:
            sizes["data"] += sh_size
    sizes["flash"] = sizes["text"] + sizes["rodata"] + sizes["data"]
    sizes["ram"] = sizes["data"] + sizes["bss"]
    return sizes


# --------------------------------------------------------------------------------------------- run


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def qemu_session(elf: Path, board: Board, *, start_timeout: float = 20.0) -> Iterator[str]:
    """Start QEMU with ``elf`` and its UART0 on a local TCP server port; yield the ``socket://`` URL.

    The guest starts when the first client connects (``wait=on``), so nothing it prints is lost. QEMU is
    killed (its whole process group) when the block ends, whatever happens.
    """
    check_qemu()
    elf = Path(elf)
    if not elf.is_file():
        raise ToolchainError(f"{elf}: no such firmware; build it first (tinykeras build --board {board.name})")
    last_error = ""
    for _attempt in range(3):  # another process may grab the free port between probe and bind
        port = _free_port()
        cmd = [QEMU, *qemu_args(board), "-kernel", str(elf),
               "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on"]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(tied_to_us(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, start_new_session=True)  # dies with tinykeras, even by SIGKILL
            try:
                state = _wait_listening(proc, err, start_timeout)
                if state == "listening":
                    yield f"socket://127.0.0.1:{port}"
                    return
                err.seek(0)
                last_error = err.read().decode("utf-8", "replace").strip()
                if state == "timeout":
                    raise ToolchainError(f"{QEMU} did not open its serial port within {start_timeout:g} s: "
                                         f"{last_error or 'no message'}")
                if "Address already in use" not in last_error:
                    raise ToolchainError(f"{QEMU} failed to start (exit {proc.returncode}): "
                                         f"{last_error.splitlines()[0] if last_error else 'no message'}")
            finally:
                _kill(proc)
    raise ToolchainError(f"{QEMU} could not bind a local TCP port: {last_error}")


def _wait_listening(proc: subprocess.Popen, err: Any, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        err.seek(0)
        if _WAITING in err.read().decode("utf-8", "replace"):
            return "listening"
        if proc.poll() is not None:
            return "exited"
        time.sleep(0.02)
    return "timeout"


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def run_benchmark(elf: Path, board: Board, *, runs: int, timeout: float = 60.0,
                  raw_log: Path | None = None) -> Any:
    """Run the benchmark firmware in QEMU and read ``runs`` run records: a :class:`tinykeras.device.BenchReport`.

    ``timeout``: seconds without a record before giving up. Firmware that prints nothing raises
    SerialError; QEMU is always killed. An incomplete session is returned as such (``report.complete``).
    """
    with qemu_session(elf, board) as url:
        report = collect(url, baud=board.baud, runs=runs, timeout=timeout, raw_log=raw_log)
    if report.status == "interrupted":   # collect keeps a Ctrl-C's partial report; here the command stops
        raise KeyboardInterrupt
    if report.hello is None and report.error is None:
        where = f"; raw log: {raw_log}" if raw_log else ""
        raise SerialError(f"the firmware {elf} printed no benchmark record in QEMU within {timeout:g} s "
                          f"({report.message()}); it hangs or crashed silently{where}")
    return report


def summary(report: Any, board: Board, sizes: dict[str, int] | None = None,
            arena_bytes: int | None = None) -> dict[str, Any]:
    """The qemu_m4 figures for the report: instructions per inference (deterministic; median of the runs),
    its resolution, an estimated time on real hardware (labelled as an estimate), arena and ELF sizes."""
    s = qemu_settings(board)
    counts = sorted(r.instructions for r in report.runs if r.instructions is not None)
    per_inference = counts[len(counts) // 2] if counts else None
    macs = report.effective_macs()
    out: dict[str, Any] = {
        "instructions_per_inference": per_inference,
        "instructions_min": counts[0] if counts else None,
        "instructions_max": counts[-1] if counts else None,
        "instructions_resolution": instructions_per_tick(board),
        "instructions_per_mac": round(per_inference / macs, 3) if per_inference and macs else None,
        "estimate_ms": (round(per_inference / int(s["estimate_clock_hz"]) * 1000.0, 3)
                        if per_inference else None),
        "estimate_clock_hz": int(s["estimate_clock_hz"]),
        "estimate_label": str(s["estimate_label"]),
        "arena_bytes": arena_bytes if arena_bytes is not None else (report.hello or {}).get("arena_bytes"),
    }
    if sizes is not None:
        out["sizes"] = dict(sizes)
    return out

