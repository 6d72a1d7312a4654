"""Board + model -> a PlatformIO project (Jinja2 templates with StrictUndefined). No TensorFlow.

The project layout::

    platformio.ini              the board's environment, the pinned TFLM library (tflm runtime only)
    README.md                   how to build, flash and read it
    tinykeras_build.json        the build report (written by tinykeras.pipeline)
    src/main.cpp                setup(): tk_port_init(); tk_bench_main(&config)
    src/tk_port_arduino.cpp     board glue: Serial, timer, cycle counter (tk_port.h)
    src/tk_model_tflm.cpp       TFLM adapter (tk_model_api.h)          -- runtime tflm
    src/model_data.h/.cc        the .tflite as an aligned C array      -- runtime tflm
    src/tk_model.c/.h, kernels  tinykeras' generated C (tk_model_api.h) -- runtime aot
    src/model_settings.h        shapes, scales, zero points
    src/tk_bench.c/.h, tk_port.h, tk_model_api.h   the shared benchmark (firmware_templates/runtime/bench)
    src/tk_frontend.c/.h, tk_frontend_tables.h      the feature front end, when the model's settings.json
                                                    names its features (firmware_templates/runtime/frontend)

Every file starts with the tinykeras banner naming the model and its SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from tinykeras import cgen
from tinykeras.arena import ArenaPlan
from tinykeras.boards import Board
from tinykeras.errors import BoardError, UnsupportedOpError
from tinykeras.inspect import tflm_resolver_methods
from tinykeras.resources import templates_dir
from tinykeras.types import ModelInfo

# Protocol names of the timers (docs/protocol.md) by board timer API.
TIMER_NAMES = {"esp_timer_get_time": "esp_timer", "micros": "micros", "time_us_64": "time_us_64",
               "dwt": "dwt", "cmsdk_timer0": "cmsdk_timer0"}
# MLPerf Tiny model ids for `profile%`, by the shipped recipe or reference model name.
MLPERF_IDS = {"kws": "kws01", "ad01_int8": "ad01", "pretrainedResnet_quant": "ic01"}
BENCH_SOURCES = ("tk_bench.c", "tk_bench.h", "tk_model_api.h", "tk_port.h")


@dataclass(frozen=True)
class RenderRequest:
    """Everything a project is rendered from. Same request -> byte-identical files."""

    board: Board
    runtime: str                      # "tflm" | "aot"
    model: bytes
    info: ModelInfo
    model_name: str                   # C-friendly name printed in the hello record
    source_name: str                  # the model's file name, for banners
    arena: ArenaPlan
    runs: int = 10
    warmup: int = 2
    labels: tuple[str, ...] | None = None
    aot_files: tuple[tuple[str, str], ...] = ()  # (relative name, text) from tinykeras.aot.generate
    frontend_files: tuple[tuple[str, str], ...] = ()   # tinykeras.recipes.frontend.frontend_sources
    feature_defines: tuple[tuple[str, str], ...] = ()  # TK_FE_* macros for model_settings.h


def resolver_entries(info: ModelInfo) -> list[tuple[str, str]]:
    """(op name, MicroMutableOpResolver method) for each distinct op of the model, sorted by op name."""
    methods = tflm_resolver_methods()
    missing = [(op.index, op.op) for op in info.ops if op.op not in methods]
    if missing:
        raise UnsupportedOpError(missing, "TFLite-Micro", "Use --runtime aot or replace those layers")
    return [(name, methods[name]) for name in sorted(set(info.op_names))]


def banner_lines(request: RenderRequest, comment: str, close: str = "") -> str:
    """The cgen banner with ``comment`` as line prefix (and ``close`` as suffix), without a final newline."""
    text = cgen.banner(request.source_name, request.info.sha256, comment)
    return "\n".join(line + close for line in text.rstrip("\n").splitlines())


def _environment(directory: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,
    )


def render_platformio(request: RenderRequest) -> dict[str, str]:
    """Render the PlatformIO project as {relative path: text}, sorted by path."""
    board = request.board
    if board.kind != "platformio" or board.platformio is None or board.tflm is None:
        raise BoardError(f"board '{board.name}' is not a PlatformIO board (kind = '{board.kind}')")
    if request.runtime not in board.runtimes:
        raise BoardError(f"board '{board.name}' has no runtime '{request.runtime}'; "
                         f"choose one of {', '.join(board.runtimes)}")
    root = templates_dir() / "platformio"
    framework_dir = root / board.platformio.framework
    if not framework_dir.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "common")
        raise BoardError(f"board '{board.name}' uses framework '{board.platformio.framework}', which has no "
                         f"templates in {framework_dir}; supported: {', '.join(known)}")
    tflm = request.runtime == "tflm"
    resolver = resolver_entries(request.info) if tflm else []
    context: dict[str, Any] = {
        "board": board, "pio": board.platformio, "tflm": board.tflm, "runtime": request.runtime,
        "info": request.info, "model_name": request.model_name, "source_name": request.source_name,
        "arena": request.arena, "runs": request.runs, "warmup": request.warmup,
        "ops": request.info.op_names, "resolver": resolver,
        "timer_name": TIMER_NAMES[board.timer.api],
        "mlperf_model": MLPERF_IDS.get(request.model_name, request.model_name),
        "lib_deps": ([board.tflm.lib_dep] if tflm else []) + list(board.platformio.lib_deps),
        "tflm_lib": board.tflm.lib_dep,
        "banner": lambda comment, close="": banner_lines(request, comment, close),
    }
    files: dict[str, str] = {}
    for base in (root / "common", framework_dir):
        env = _environment(base)
        for template in sorted(base.rglob("*.j2")):
            rel = template.relative_to(base).as_posix()
            if rel == "src/tk_model_tflm.cpp.j2" and not tflm:
                continue
            files[rel[:-3]] = env.get_template(rel).render(**context)
    files.update(_model_sources(request, tflm))
    files.update(_runtime_sources(request))
    return dict(sorted(files.items()))


def _model_sources(request: RenderRequest, tflm: bool) -> dict[str, str]:
    labels = list(request.labels) if request.labels else None
    extra = dict(request.feature_defines) or None
    files = {"src/model_settings.h": cgen.model_settings(request.info, labels, extra, source=request.source_name)}
    for name, text in request.frontend_files:
        files[f"src/{name}"] = banner_lines(request, "//") + "\n" + text
    if tflm:
        arrays = cgen.model_array(request.model, request.info, "g_model", source=request.source_name)
        files.update({f"src/{name}": text for name, text in arrays.files.items()})
    else:
        for name, text in request.aot_files:
            files[f"src/{name}"] = _with_banner(request, name, text)
    return files


def _runtime_sources(request: RenderRequest) -> dict[str, str]:
    """The shared benchmark sources, copied from firmware_templates/runtime/bench with the banner."""
    bench = templates_dir() / "runtime" / "bench"
    files = {}
    for name in BENCH_SOURCES:
        path = bench / name
        if not path.exists():
            raise BoardError(f"the benchmark source {path} is missing from the installation; reinstall tinykeras")
        files[f"src/{name}"] = _with_banner(request, name, path.read_text(encoding="utf-8"))
    return files


def _with_banner(request: RenderRequest, name: str, text: str) -> str:
    if text.startswith("// Generated by tinykeras") or "Generated by tinykeras" in text[:200]:
        return text
    comment = "//" if name.endswith((".c", ".h", ".cc", ".cpp")) else "#"
    return banner_lines(request, comment) + "\n" + text


def write_project(files: dict[str, str | bytes], directory: Path) -> list[Path]:
    """Write ``files`` below ``directory`` with LF line ends, in sorted order."""
    written = []
    for rel, content in sorted(files.items()):
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="\n")
        written.append(path)
    return written
