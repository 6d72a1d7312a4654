"""Board + model -> a PlatformIO project (Jinja2 templates with StrictUndefined). No TensorFlow.

The project layout::

    platformio.ini              the board's environment; lib_deps pins a registry library (tflm runtime)
    README.md                   how to build, flash and read it
    tinykeras_build.json        the build report (written by tinykeras.pipeline)
    src/main.cpp                setup() / app_main(): tk_port_init(); tk_bench_main(&config)
    src/tk_port_<framework>.c*  board glue: serial, timer, cycle counter (tk_port.h)
    src/tk_model_tflm.cpp       TFLM adapter + generated op resolver   -- runtime tflm
    src/tk_tflm_platform.cc     DebugLog / micro_time, where the library leaves them to the project
    src/model_data.h/.cc        the .tflite as an aligned C array      -- runtime tflm
    lib/tflm/                   TFLM sources copied from a TFLM tree   -- libraries delivered as "tree"
    CMakeLists.txt, sdkconfig.defaults, src/CMakeLists.txt, src/idf_component.yml   -- framework espidf
    src/tk_model.c/.h, kernels  tinykeras' generated C (tk_model_api.h) -- runtime aot
    src/model_settings.h        shapes, scales, zero points
    src/tk_bench.c/.h, tk_port.h, tk_model_api.h   the shared benchmark (firmware_templates/runtime/bench)
    src/tk_frontend.c/.h, tk_frontend_tables.h      the feature front end, when the model's settings.json
                                                    names its features (firmware_templates/runtime/frontend)

Every file starts with the tinykeras banner naming the model and its SHA-256.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from tinykeras import cgen, mlperf_models
from tinykeras.arena import ArenaPlan
from tinykeras.boards import Board
from tinykeras.c_literals import c_string
from tinykeras.errors import BoardError
from tinykeras.resources import templates_dir
from tinykeras.runtime import tflm_tree
from tinykeras.runtime.base import RuntimeSources
from tinykeras.types import ModelInfo

# Protocol names of the timers (docs/protocol.md) by board timer API.
TIMER_NAMES = {"esp_timer_get_time": "esp_timer", "micros": "micros", "time_us_64": "time_us_64",
               "dwt": "dwt", "cmsdk_timer0": "cmsdk_timer0", "sse_counter": "sse_counter"}
BENCH_SOURCES = ("tk_bench.c", "tk_bench.h", "tk_model_api.h", "tk_port.h")
TREE_LIB = "lib/tflm"   # where a tree-delivered TFLM library's sources go in a PlatformIO project


@dataclass(frozen=True)
class RenderRequest:
    """Everything a project is rendered from. Same request -> byte-identical files."""

    board: Board
    runtime: RuntimeSources           # tinykeras.runtime.tflm.tflm_sources / aot_sources
    model: bytes
    info: ModelInfo
    model_name: str                   # C-friendly name printed in the hello record
    source_name: str                  # the model's file name, for banners
    runs: int = 10
    warmup: int = 2
    labels: tuple[str, ...] | None = None
    frontend_files: tuple[tuple[str, str], ...] = ()   # tinykeras.recipes.frontend.frontend_sources
    feature_defines: tuple[tuple[str, str], ...] = ()  # TK_FE_* macros for model_settings.h
    mlperf_model: str | None = None   # --mlperf-model: the MLPerf Tiny id (else recognised by content)

    @property
    def arena(self) -> ArenaPlan:
        return self.runtime.arena


def banner_lines(request: RenderRequest, comment: str, close: str = "") -> str:
    """The cgen banner with ``comment`` as line prefix (and ``close`` as suffix), without a final newline."""
    text = cgen.banner(request.source_name, request.info.sha256, comment)
    return "\n".join(line + close for line in text.rstrip("\n").splitlines())


def _environment(*directories: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in directories]), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,
    )
    env.filters["cstr"] = c_string
    return env


def render_platformio(request: RenderRequest) -> dict[str, str | Path]:
    """Render the PlatformIO project as {relative path: text, or the library file to copy}, sorted by path."""
    board, runtime = request.board, request.runtime
    if board.kind != "platformio" or board.platformio is None:
        raise BoardError(f"board '{board.name}' is not a PlatformIO board (kind = '{board.kind}')")
    if runtime.name not in board.runtimes:
        raise BoardError(f"board '{board.name}' has no runtime '{runtime.name}'; "
                         f"choose one of {', '.join(board.runtimes)}")
    root = templates_dir() / "platformio"
    framework_dir = root / board.platformio.framework
    if not framework_dir.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "common")
        raise BoardError(f"board '{board.name}' uses framework '{board.platformio.framework}', which has no "
                         f"templates in {framework_dir}; supported: {', '.join(known)}")
    library = runtime.library
    files: dict[str, str | Path] = {}
    files.update(_model_sources(request))
    files.update(_runtime_sources(request))
    tree = library is not None and library.delivery["kind"] == "tree"
    if tree:
        files.update({f"{TREE_LIB}/{rel}": src for rel, src in runtime.library_files.items()})
        files[f"{TREE_LIB}/library.json"] = _tree_library_json(library, runtime)
    build_flags = list(board.platformio.build_flags)
    if library is not None and board.platformio.framework != "espidf":
        build_flags += [f"-D{d}" for d in library.defines(runtime.kernels)]
        if tree:
            build_flags += [f"-I {TREE_LIB}/{d}" for d in tflm_tree.include_dirs(runtime.kernels or "")[1:]]
    lib_deps = ([library.lib_dep] if library is not None and library.lib_dep else []) + list(board.platformio.lib_deps)
    context: dict[str, Any] = {
        "board": board, "pio": board.platformio, "runtime": runtime.name, "library": library,
        "kernels": runtime.kernels, "info": request.info, "model_name": request.model_name,
        "source_name": request.source_name, "arena": request.arena, "runs": request.runs, "warmup": request.warmup,
        "ops": request.info.op_names, "timer_name": TIMER_NAMES[board.timer.api],
        **mlperf_models.firmware_values(request.model, request.info, request.mlperf_model,
                                        mlperf_models.dut_name(board.name, False)),
        "lib_deps": lib_deps, "build_flags": build_flags,
        "sources": sorted(Path(p).name for p in files if p.startswith("src/") and p.endswith((".c", ".cc", ".cpp"))),
        "banner": lambda comment, close="": banner_lines(request, comment, close),
    }
    for base in (root / "common", framework_dir):
        env = _environment(base, root)
        for template in sorted(base.rglob("*.j2")):
            rel = template.relative_to(base).as_posix()
            files[rel[:-3]] = env.get_template(rel).render(**context)
    if board.platformio.framework == "espidf":  # src/CMakeLists.txt lists every source, the rendered ones too
        context["sources"] = sorted(Path(p).name for p in files if p.startswith("src/")
                                    and p.endswith((".c", ".cc", ".cpp")))
        files["src/CMakeLists.txt"] = _environment(framework_dir, root).get_template(
            "src/CMakeLists.txt.j2").render(**context)
    return dict(sorted(files.items()))


def _tree_library_json(library: Any, runtime: RuntimeSources) -> str:
    """lib/tflm/library.json: PlatformIO builds the copied TFLM sources with TFLM's flags."""
    flags = [f"-D{d}" for d in library.defines(runtime.kernels)] + list(library.build.get("cxxflags", ()))[1:]
    manifest = {
        "name": "tflm", "version": f"0.0.0+{library.version}",
        "description": f"{library.name} {library.version} ({library.origin} {library.commit}), "
                       f"{runtime.kernels} kernels, copied by tinykeras from a TFLM tree",
        "build": {"srcDir": ".", "includeDir": ".", "libArchive": True,
                  "flags": flags + [f"-I{d}" for d in tflm_tree.include_dirs(runtime.kernels or "")[1:]]},
    }
    return json.dumps(manifest, indent=2) + "\n"


def _model_sources(request: RenderRequest) -> dict[str, str]:
    labels = list(request.labels) if request.labels else None
    extra = dict(request.feature_defines) or None
    files = {"src/model_settings.h": cgen.model_settings(request.info, labels, extra, source=request.source_name)}
    for name, text in request.frontend_files:
        files[f"src/{name}"] = banner_lines(request, "//") + "\n" + text
    for name, text in request.runtime.files.items():
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


def write_project(files: dict[str, str | bytes | Path], directory: Path) -> list[Path]:
    """Write ``files`` below ``directory`` with LF line ends, in sorted order (a Path value is copied)."""
    written = []
    for rel, content in sorted(files.items()):
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="\n")
        written.append(path)
    return written
