"""Boards as data: ``boards/*.toml`` -> validated :class:`Board` values. No TensorFlow.

The schema is documented in ``docs/architecture.md``. Unknown keys are rejected with a "did you mean".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinykeras.errors import BoardError, did_you_mean
from tinykeras.libraries import load_library
from tinykeras.resources import boards_dir
from tinykeras.types import RUNTIME_NAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = ("platformio", "qemu")
CONSOLES = ("uart", "usb-serial-jtag")  # ESP-IDF: UART0 (a USB-UART bridge) or the chip's USB-Serial-JTAG
TIMER_APIS = ("esp_timer_get_time", "micros", "time_us_64", "dwt", "cmsdk_timer0", "sse_counter")

# key -> (type, required). Tables map to nested specs; ``None`` marks a free-form table.
_SPEC: dict[str, Any] = {
    "name": (str, True),
    "description": (str, True),
    "kind": (str, True),
    "default_runtime": (str, False),
    "runtimes": (list, False),
    "sources": (list, True),
    "mcu": ({"core": (str, True), "arch": (str, True), "clock_hz": (int, True), "fpu": (bool, True)}, True),
    "limits": ({"flash_bytes": (int, True), "ram_bytes": (int, True),
                "reserved_flash_bytes": (int, False), "reserved_ram_bytes": (int, False)}, True),
    "timer": ({"api": (str, True), "cycles": (str, False), "enable": (list, False), "includes": (list, False)}, True),
    "serial": ({"baud": (int, True), "console": (str, False)}, True),
    "platformio": ({"platform": (str, True), "board": (str, True), "framework": (str, True),
                    "build_flags": (list, False), "lib_deps": (list, False), "extra": (dict, False)}, False),
    "tflm": ({"library": (str, True), "kernels": (str, False)}, False),
    "qemu": (None, False),
}


@dataclass(frozen=True)
class Mcu:
    core: str
    arch: str
    clock_hz: int
    fpu: bool


@dataclass(frozen=True)
class Limits:
    flash_bytes: int
    ram_bytes: int
    reserved_flash_bytes: int = 0
    reserved_ram_bytes: int = 0

    @property
    def app_flash_bytes(self) -> int:
        """Flash left for model, runtime and benchmark code."""
        return self.flash_bytes - self.reserved_flash_bytes

    @property
    def app_ram_bytes(self) -> int:
        """RAM left for the tensor arena and the runtime's own state."""
        return self.ram_bytes - self.reserved_ram_bytes


@dataclass(frozen=True)
class Timer:
    api: str
    cycles: str | None = None
    enable: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlatformIO:
    platform: str
    board: str
    framework: str
    build_flags: tuple[str, ...] = ()
    lib_deps: tuple[str, ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()  # sorted (key, value) pairs


@dataclass(frozen=True)
class Tflm:
    """The TFLite-Micro library a board pins (``libraries/<library>.toml``) and the kernels it builds with."""

    library: str
    kernels: str

    @property
    def lib(self) -> Any:
        """The :class:`tinykeras.libraries.Library`."""
        return load_library(self.library)

    @property
    def lib_dep(self) -> str:
        """How a project gets the library: its ``lib_deps`` line, component or tree, for tables and reports."""
        lib = self.lib
        delivery = lib.delivery
        if delivery["kind"] == "platformio":
            return delivery["lib_dep"]
        if delivery["kind"] == "idf-component":
            return f"{delivery['component']}=={delivery['component_version']} (ESP-IDF component)"
        return f"{lib.name} {lib.version} copied from a TFLM tree ({self.kernels} kernels)"


@dataclass(frozen=True)
class Board:
    """One validated board file."""

    name: str
    description: str
    kind: str
    sources: tuple[str, ...]
    mcu: Mcu
    limits: Limits
    timer: Timer
    baud: int
    default_runtime: str
    runtimes: tuple[str, ...]
    path: Path
    platformio: PlatformIO | None = None
    tflm: Tflm | None = None
    qemu: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    console: str = "uart"

    def summary(self) -> dict[str, Any]:
        """The JSON form printed by ``tinykeras boards --json``."""
        return {
            "name": self.name, "description": self.description, "kind": self.kind,
            "core": self.mcu.core, "arch": self.mcu.arch, "clock_hz": self.mcu.clock_hz, "fpu": self.mcu.fpu,
            "flash_bytes": self.limits.flash_bytes, "ram_bytes": self.limits.ram_bytes,
            "timer": self.timer.api, "baud": self.baud,
            "default_runtime": self.default_runtime, "runtimes": list(self.runtimes),
            "platformio_board": self.platformio.board if self.platformio else None,
            "framework": self.platformio.framework if self.platformio else None,
            "tflm_library": self.tflm.lib_dep if self.tflm else None,
            "proven_on": self.proven_on,
            "sources": list(self.sources),
        }


    @property
    def proven_on(self) -> str:
        """The emulator that runs this board's build in the tests (tinykeras/data/emulators.toml)."""
        if self.kind == "qemu":
            return f"itself ({self.qemu.get('machine', 'qemu')})"
        return _emulators().get(self.mcu.core, "not run (no emulator for this core)")


def _emulators() -> dict[str, str]:
    path = Path(__file__).resolve().parent / "data" / "emulators.toml"
    return tomllib.loads(path.read_text(encoding="utf-8"))["core"]


def board_names(directory: Path | None = None) -> list[str]:
    """Names of every board file, sorted."""
    return sorted(p.stem for p in (directory or boards_dir()).glob("*.toml"))


def load_board(name: str, directory: Path | None = None) -> Board:
    """Load and validate board ``name`` (a file stem in ``boards/``, or a path to a .toml file)."""
    directory = directory or boards_dir()
    candidate = Path(name)
    if candidate.suffix == ".toml" and candidate.exists():
        return load_board_file(candidate)
    path = directory / f"{name}.toml"
    if not path.exists():
        names = board_names(directory)
        raise BoardError(f"unknown board '{name}'{did_you_mean(name, names)} Known boards: {', '.join(names)} "
                         "(`tinykeras boards` lists them)")
    return load_board_file(path)


def list_boards(directory: Path | None = None) -> list[Board]:
    """Every board, validated, sorted by name."""
    directory = directory or boards_dir()
    return [load_board_file(directory / f"{n}.toml") for n in board_names(directory)]


def load_board_file(path: Path) -> Board:
    """Parse and validate one board file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BoardError(f"{path}: invalid TOML ({exc}); fix the file") from exc
    _check_table(raw, _SPEC, path, "")
    return _build(raw, path)


def _check_table(data: dict[str, Any], spec: dict[str, Any], path: Path, where: str) -> None:
    for key in sorted(data):
        if key not in spec:
            hint = did_you_mean(key, spec, where) or f"; known keys: {', '.join(spec)}"
            raise BoardError(f"{path}: unknown key '{where}{key}'{hint}")
    for key, (kind, required) in spec.items():
        if key not in data:
            if required:
                raise BoardError(f"{path}: missing key '{where}{key}'; see docs/boards.md for the schema")
            continue
        value = data[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise BoardError(f"{path}: '{where}{key}' must be a table [{key}]")
            _check_table(value, kind, path, f"{where}{key}.")
        elif kind is None:
            if not isinstance(value, dict):
                raise BoardError(f"{path}: '{where}{key}' must be a table [{key}]")
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BoardError(f"{path}: '{where}{key}' must be a {kind.__name__}, not {type(value).__name__} "
                             f"({value!r})")


def _choice(value: str, allowed: tuple[str, ...], path: Path, key: str) -> str:
    if value not in allowed:
        raise BoardError(f"{path}: {key} = '{value}' is not one of {', '.join(allowed)}{did_you_mean(value, allowed)}")
    return value


def _build(raw: dict[str, Any], path: Path) -> Board:
    if raw["name"] != path.stem:
        raise BoardError(f"{path}: name = '{raw['name']}' must equal the file name '{path.stem}'")
    kind = _choice(raw["kind"], KINDS, path, "kind")
    if not raw["sources"] or not all(isinstance(s, str) for s in raw["sources"]):
        raise BoardError(f"{path}: 'sources' must list at least one URL or document the settings come from")
    timer = raw["timer"]
    _choice(timer["api"], TIMER_APIS, path, "timer.api")
    if timer["api"] == "dwt" and not timer.get("enable"):
        raise BoardError(f"{path}: timer.api = 'dwt' needs timer.enable, the DWT enable sequence")
    if (timer["api"] == "dwt" and raw["mcu"]["core"] == "cortex-m7"
            and not any("LAR" in s for s in timer.get("enable", ()))):
        raise BoardError(f"{path}: a Cortex-M7 needs 'DWT->LAR = 0xC5ACCE55;' in timer.enable before the "
                         "cycle counter counts")
    runtimes = tuple(raw.get("runtimes", RUNTIME_NAMES if kind == "platformio" else ("aot",)))
    for r in runtimes:
        _choice(r, RUNTIME_NAMES, path, "runtimes")
    default_runtime = _choice(raw.get("default_runtime", "tflm" if kind == "platformio" else "aot"),
                              RUNTIME_NAMES, path, "default_runtime")
    if default_runtime not in runtimes:
        raise BoardError(f"{path}: default_runtime '{default_runtime}' is not in runtimes {list(runtimes)}")
    pio = tflm = None
    if "tflm" in raw:
        t = raw["tflm"]
        lib = load_library(t["library"])
        kernels = t.get("kernels", lib.default_kernels)
        if kernels not in lib.kernels:
            raise BoardError(f"{path}: tflm.kernels = '{kernels}' is not one of {lib.label}'s: "
                             f"{', '.join(lib.kernels)}")
        tflm = Tflm(library=lib.id, kernels=kernels)
    if "tflm" in runtimes and tflm is None:
        raise BoardError(f"{path}: runtime 'tflm' needs a [tflm] table naming the library (libraries/*.toml)")
    if kind == "platformio":
        if "platformio" not in raw:
            raise BoardError(f"{path}: a kind = \"platformio\" board needs a [platformio] table")
        p = raw["platformio"]
        extra = p.get("extra", {})
        for key, value in extra.items():
            if not isinstance(value, (str, list)):
                raise BoardError(f"{path}: platformio.extra.{key} must be a string or a list of strings")
        pio = PlatformIO(platform=p["platform"], board=p["board"], framework=p["framework"],
                         build_flags=tuple(p.get("build_flags", ())), lib_deps=tuple(p.get("lib_deps", ())),
                         extra=tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in extra.items())))
    elif kind == "qemu" and "qemu" not in raw:
        raise BoardError(f"{path}: a kind = \"qemu\" board needs a [qemu] table")
    limits = Limits(**raw["limits"])
    if limits.app_flash_bytes <= 0 or limits.app_ram_bytes <= 0:
        raise BoardError(f"{path}: reserved flash/RAM leave nothing for the application")
    return Board(
        name=raw["name"], description=raw["description"], kind=kind, sources=tuple(raw["sources"]),
        mcu=Mcu(**raw["mcu"]), limits=limits,
        timer=Timer(api=timer["api"], cycles=timer.get("cycles"), enable=tuple(timer.get("enable", ())),
                    includes=tuple(timer.get("includes", ()))),
        baud=raw["serial"]["baud"], default_runtime=default_runtime, runtimes=runtimes, path=path,
        platformio=pio, tflm=tflm, qemu=dict(raw.get("qemu", {})), raw=raw,
        console=_choice(raw["serial"].get("console", "uart"), CONSOLES, path, "serial.console"),
    )


def markdown_table(boards: list[Board] | None = None) -> str:
    """The board table of docs/boards.md, generated from the board files."""
    boards = boards if boards is not None else list_boards()
    rows = ["| board | description | core | clock | flash / RAM (usable by the app) | timer | runtimes "
            "(default first) | TFLM library | proven on (emulator) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for b in boards:
        runtimes = [b.default_runtime] + [r for r in b.runtimes if r != b.default_runtime]
        timer = f"`{b.timer.api}`" + (f" + `{b.timer.cycles}`" if b.timer.cycles else "")
        lib = f"`{b.tflm.lib_dep}`" if b.tflm else "-"
        rows.append(
            f"| `{b.name}` | {b.description} | {b.mcu.core}{' (FPU)' if b.mcu.fpu else ''} | "
            f"{b.mcu.clock_hz / 1e6:g} MHz | {b.limits.app_flash_bytes // 1024:,} / "
            f"{b.limits.app_ram_bytes // 1024:,} KiB | {timer} | {', '.join(runtimes)} | {lib} | {b.proven_on} |")
    return "\n".join(rows) + "\n"
