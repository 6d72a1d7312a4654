"""``tinykeras build``: one linear, readable orchestration of the stages.

    board file -> model (.tflite, or .keras quantized to int8) -> checks (int8, ops of the runtime)
    -> runtime (TFLM: op resolver + measured arena; aot: generated C + static plan)
    -> fit check (flash, RAM) -> project written atomically -> optional compile / upload / monitor / run.

Nothing is written before every check has passed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinykeras import cgen, fsutil, input_norm, mlperf_models
from tinykeras.arena import ArenaPlan
from tinykeras.boards import Board, load_board
from tinykeras.cgen import c_identifier
from tinykeras.convert import quantize_model
from tinykeras.device import collect
from tinykeras.errors import BoardError, DataError, DoesNotFitError, InputFileError, ModelError, ToolchainError
from tinykeras.inspect import inspect_bytes, read_model_bytes, require_int8
from tinykeras.keras_io import load_arrays, load_model, model_name
from tinykeras.recipes import RECIPES
from tinykeras.recipes.frontend import feature_defines, frontend_sources, settings_beside
from tinykeras.resources import models_dir, templates_dir
from tinykeras.runtime import runtime_module
from tinykeras.runtime.base import RuntimePlan, RuntimeSources
from tinykeras.target import pio as toolchain
from tinykeras.target import qemu
from tinykeras.target.platformio import RenderRequest, render_platformio, write_project
from tinykeras.types import ModelInfo

REPORT_NAME = "tinykeras_build.json"
MODEL_SUFFIXES = (".tflite", ".keras", ".h5", ".hdf5")
BENCH_REPORT_NAME = "bench.json"

# What the benchmark main (firmware_templates/runtime/bench) adds to any runtime, for the fit check.
BENCH_FLASH = 6 * 1024                # tk_bench.c + board glue
BENCH_RAM = 1024                      # MLPerf command and input buffers


@dataclass(frozen=True)
class BuildOptions:
    board: str
    model: Path | None = None
    recipe: str = "kws"
    runtime: str | None = None
    runs: int = 10
    warmup: int = 2
    out: Path | None = None
    rep_data: Path | None = None
    kernels: str | None = None            # tflm: "reference" | "cmsis-nn" | "esp-nn" (default: the board's)
    tflm_dir: Path | None = None          # tflm libraries copied from a TFLM tree: where the tree is
    compile: bool = False
    upload: bool = False
    port: str | None = None
    monitor: bool = False
    run: bool = False
    name: str | None = None  # project/report name (default: settings.json "name", else the model's file/dir)
    custom_objects: str | None = None  # module defining a Keras model's custom layers
    mlperf_model: str | None = None    # MLPerf Tiny id for `profile%` (default: recognised by content)


@dataclass
class BuildResult:
    project_dir: Path
    board: Board
    runtime: str
    model_name: str
    source_name: str
    info: ModelInfo
    arena: ArenaPlan
    fit: dict[str, Any]
    files: list[str]
    actions: list[str] = field(default_factory=list)
    bench: dict[str, Any] | None = None
    qemu: dict[str, Any] | None = None
    frontend: dict[str, Any] | None = None
    library: dict[str, Any] | None = None
    mlperf_model: str | None = None  # the MLPerf Tiny benchmark the firmware announces (None: no benchmark's)

    def report(self) -> dict[str, Any]:
        """The build report written to the project (no absolute paths, no timestamps).

        ``frontend`` is recorded only when the project has one, so reports of models without a
        settings.json stay as they were; ``to_json`` always carries it (null when there is none)."""
        front = {"frontend": self.frontend} if self.frontend is not None else {}
        if self.mlperf_model is not None:
            front["mlperf_model"] = self.mlperf_model
        return {
            "board": self.board.name,
            "board_kind": self.board.kind,
            "runtime": self.runtime,
            "model": self.model_name,
            "model_source": self.source_name,
            "model_sha256": self.info.sha256,
            "model_bytes": self.info.model_bytes,
            "macs": self.info.macs,
            "ops": self.info.op_names,
            "arena_bytes": self.arena.planned_bytes,
            "arena": self.arena.to_json(),
            "fit": self.fit,
            "tflm_library": self.library,
            "files": self.files,
            **front,
        }

    def to_json(self) -> dict[str, Any]:
        """What ``tinykeras build --json`` prints."""
        out = {"project_dir": str(self.project_dir), "frontend": None, **self.report(), "actions": self.actions}
        if self.bench is not None:
            out["bench"] = self.bench
        if self.qemu is not None:
            out["qemu"] = self.qemu
        return out


def resolve_model(options: BuildOptions) -> Path:
    """The model to build: ``--model``, or the recipe's shipped model in ``models/<recipe>/model.tflite``."""
    if options.model is not None:
        path = Path(options.model)
        if not path.exists():
            raise InputFileError(f"{options.model}: no such model file")
        if path.is_file() and path.suffix.lower() not in MODEL_SUFFIXES:  # before TensorFlow loads or warns
            raise ModelError(f"{path}: unknown model format '{path.suffix}'; pass a .tflite, .keras, .h5 or "
                             "SavedModel directory")
        return path
    if options.recipe not in RECIPES:
        raise InputFileError(f"unknown recipe '{options.recipe}'; choose one of {', '.join(RECIPES)}")
    path = models_dir() / options.recipe / "model.tflite"
    if not path.exists():
        raise InputFileError(f"no shipped model for recipe '{options.recipe}' ({path} is missing); "
                             "pass your own with --model M.tflite (or M.keras)")
    return path


def load_int8_model(path: Path, rep_data: Path | None, log: Callable[[str], None],
                    custom_objects: str | None = None) -> tuple[bytes, str]:
    """Bytes of an int8 .tflite from ``path``: read as is, or quantized from a Keras model first."""
    if path.suffix == ".tflite":
        return read_model_bytes(path), path.name
    x = None
    if rep_data is not None:
        x = load_arrays(rep_data)
    else:
        log("warning: no --rep-data: int8 scales are calibrated on random noise; pass --rep-data rep.npz")
    conversion = quantize_model(load_model(path, custom_objects=custom_objects), x)[0]
    return conversion.data, f"{path.stem}.tflite"


def check_fit(board: Board, plan: RuntimePlan, info: ModelInfo) -> dict[str, Any]:
    """Flash: model (or aot weights) + runtime estimate + benchmark main; RAM: arena + runtime state + main.
    Raise DoesNotFitError naming what is over and the fixes."""
    fit, problems = fit_figures(board, plan, info)
    if problems:
        raise DoesNotFitError(f"model '{info.path or 'model'}' does not fit board '{board.name}': "
                              + "; ".join(problems) + ". Shrink the model (tinykeras optimize), try "
                              "--runtime aot, or pick a larger board (tinykeras boards)")
    return fit


def fit_figures(board: Board, plan: RuntimePlan, info: ModelInfo) -> tuple[dict[str, Any], list[str]]:
    """The figures of :func:`check_fit` and the limits they exceed (empty when the model fits), never raising."""
    runtime, arena_bytes = plan.name, plan.arena.planned_bytes
    runtime_flash = plan.runtime_flash + BENCH_FLASH
    model_flash = plan.model_flash
    ram = arena_bytes + plan.runtime_ram + BENCH_RAM
    flash = model_flash + runtime_flash
    limits = board.limits
    fit = {
        "flash_needed": flash, "flash_model": model_flash, "flash_runtime_estimate": runtime_flash,
        "flash_available": limits.app_flash_bytes, "ram_needed": ram, "ram_arena": arena_bytes,
        "ram_available": limits.app_ram_bytes,
        "note": "runtime sizes are estimates; the compiler's map file has the real numbers",
    }
    problems = []
    if flash > limits.app_flash_bytes:
        problems.append(f"flash needs {flash:,} B (model {model_flash:,} + {runtime} runtime estimate "
                        f"{runtime_flash:,}) but {limits.app_flash_bytes:,} B are free "
                        f"({limits.flash_bytes:,} minus {limits.reserved_flash_bytes:,} for the framework)"
                        + _largest(info, constant=True))
    if ram > limits.app_ram_bytes:
        problems.append(f"RAM needs {ram:,} B (arena {arena_bytes:,} + runtime {ram - arena_bytes:,}) but "
                        f"{limits.app_ram_bytes:,} B are free ({limits.ram_bytes:,} minus "
                        f"{limits.reserved_ram_bytes:,} for the framework)" + _largest(info, constant=False))
    return fit, problems


def _largest(info: ModelInfo, constant: bool) -> str:
    """', largest ...: operator #k OP, tensor 'name' N B' for the biggest weight (or activation) tensor."""
    used = {t: op for op in info.ops for t in (op.inputs if constant else op.outputs) if t >= 0}
    tensors = [info.tensors[t] for t in used if info.tensors[t].is_constant == constant]
    if not tensors:
        return ""
    big = max(tensors, key=lambda t: (t.nbytes, -t.index))
    op = used[big.index]
    total = len(tensors)
    return (f"; largest {'weight' if constant else 'activation'} (of {total}): operator #{op.index} {op.op}, tensor "
            f"#{big.index} '{big.name}' {list(big.shape)}, {big.nbytes:,} B")


@dataclass(frozen=True)
class BuildPlan:
    """A model checked for a board and runtime, as ``build`` checks it, before anything is written."""

    board: Board
    info: ModelInfo
    runtime: RuntimePlan
    fit: dict[str, Any]     # check_fit's figures: flash/RAM needed and available

    @property
    def flash_bytes(self) -> int:
        return int(self.fit["flash_needed"])

    @property
    def ram_bytes(self) -> int:
        return int(self.fit["ram_needed"])

    @property
    def arena_bytes(self) -> int:
        return self.runtime.arena.planned_bytes


def choose_runtime(board: Board, runtime: str | None) -> str:
    """``runtime``, or the board's default; BoardError when the board cannot build it."""
    runtime = runtime or board.default_runtime
    if runtime not in board.runtimes:
        raise BoardError(f"board '{board.name}' does not support --runtime {runtime}; "
                         f"choose one of {', '.join(board.runtimes)}")
    return runtime


def plan_build(board: Board | str, model: bytes, *, runtime: str | None = None, info: ModelInfo | None = None,
               name: str = "model", kernels: str | None = None, profile: bool = False) -> BuildPlan:
    """Would ``model`` (int8 .tflite bytes) build for ``board`` with ``runtime``, and at what flash/RAM cost?

    Runs exactly the checks ``build`` runs (int8; the runtime's ops: the board's pinned TFLM library and its
    known gaps, or aot's op set; the arena plan; the fit check) and writes nothing. Raises what ``build``
    raises (UnsupportedOpError, DoesNotFitError, BoardError, ModelError). ``profile``: plan the per-op
    profiling build (aot) instead of the plain one."""
    board = load_board(board) if isinstance(board, str) else board
    runtime = choose_runtime(board, runtime)
    info = info if info is not None else inspect_bytes(model)
    require_int8(info, allow_index_inputs=True)
    planned = runtime_module(runtime).plan(model, info, board, name=name, kernels=kernels, profile=profile)
    return BuildPlan(board=board, info=info, runtime=planned, fit=check_fit(board, planned, info))


def _model_settings(model_path: Path) -> dict[str, Any] | None:
    """The settings.json beside the model (labels, feature parameters), as ``tinykeras train`` and the
    shipped models/<recipe>/ have it; None when there is none."""
    settings = settings_beside(model_path)
    return settings if isinstance(settings, dict) else None


def _project_name(options: BuildOptions, settings: dict[str, Any] | None, model_path: Path) -> str:
    """``--name``, else the name settings.json carries, else the model's file or directory name."""
    return options.name or str((settings or {}).get("name") or "") or model_name(model_path)


def _labels(settings: dict[str, Any] | None) -> tuple[str, ...] | None:
    labels = (settings or {}).get("labels")
    return tuple(str(label) for label in labels) if isinstance(labels, list) else None


@dataclass(frozen=True)
class FrontEnd:
    """The C feature front end of a model whose settings name its features (tinykeras.recipes.frontend)."""

    kind: str
    parameters: dict[str, Any]
    defines: dict[str, str]   # TK_FE_* macros for model_settings.h
    files: dict[str, str]     # tk_frontend.c/.h, tk_frontend_tables.h -> text

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "parameters": self.parameters, "files": sorted(f"src/{n}" for n in self.files)}


def front_end(settings: dict[str, Any] | None, model_path: Path) -> FrontEnd | None:
    """The front end for ``settings`` (from :func:`_model_settings`), or None when they name no features."""
    if not settings or not isinstance(settings.get("features"), dict):
        return None
    features = settings["features"]
    try:
        defines = feature_defines(settings)
        files = frontend_sources(settings) if defines else {}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{model_path.with_name('settings.json')}: bad feature parameters ({exc!r}); "
                        "regenerate it with `tinykeras train`") from exc
    if not defines:
        return None
    return FrontEnd(kind=str(features.get("kind")), defines=defines, files=files,
                    parameters={k: features[k] for k in sorted(features) if k != "kind"})


# The firmware mains: the benchmark (build, bench, measure, validate --board: MLPerf commands), the per-op
# profile (profile) and the on-device bit-exactness check (device_check). Only the main differs between them.
FIRMWARE_MAINS = {"bench": None, "profile": "runtime/profile/tk_profile_main.c",
                  "check": "runtime/check/tk_check_main.c"}


@dataclass(frozen=True)
class Firmware:
    """A rendered project: where it is, what was planned and the runtime's sources in it."""

    project: Path
    plan: BuildPlan
    sources: RuntimeSources


def assemble(plan: BuildPlan, model: bytes, project: Path, *, name: str, source_name: str | None = None,
             main: str = "bench", main_defines: str = "", runs: int = 10, warmup: int = 2,
             tflm_dir: Path | str | None = None, frontend: FrontEnd | None = None,
             labels: tuple[str, ...] | None = None, extra_files: dict[str, str] | None = None,
             extra_defines: dict[str, str] | None = None, db_bytes: int | None = None,
             mlperf_model: str | None = None, mlperf: bool = True) -> Firmware:
    """The planned model's runtime sources placed by the board's target into ``project``, with the firmware
    ``main`` (:data:`FIRMWARE_MAINS`; ``main_defines``: C lines put before it). ``extra_files`` go into
    ``src/`` beside the front end (e.g. the input normalisation, a check's input table), ``extra_defines`` into
    model_settings.h (PlatformIO), ``db_bytes``: the MLPerf ``db`` buffer (default: input 0's bytes);
    ``mlperf_model``: the MLPerf Tiny id the command loop announces, ``mlperf`` False: int8 bytes in and every
    output printed, whatever the model (validate --board). The one place a firmware is put together."""
    board, info = plan.board, plan.info
    source_name = source_name or f"{name}.tflite"
    files = {**(frontend.files if frontend else {}), **(extra_files or {})}
    defines = {**(frontend.defines if frontend else {}), **(extra_defines or {})}
    if main not in FIRMWARE_MAINS:
        raise BoardError(f"unknown firmware main '{main}'; choose one of {', '.join(FIRMWARE_MAINS)}")
    if main != "bench" and board.kind != "qemu":
        raise BoardError(f"the {main} firmware runs on the emulated board for now; '{board.name}' is a {board.kind} "
                         "board (use --board qemu_m4)")
    sources = runtime_module(plan.runtime.name).sources(
        plan.runtime, model, info, source_name=source_name, tflm_dir=tflm_dir,
        banner=lambda c: cgen.banner(source_name, info.sha256, c).rstrip())
    if board.kind == "qemu":
        main_source = None
        if FIRMWARE_MAINS[main] is not None:
            main_source = main_defines + (templates_dir() / FIRMWARE_MAINS[main]).read_text()
        qemu.render_project(board, model, info, project, runtime_files=sources.files, runs=runs, warmup=warmup,
                            name=name, arena_bytes=plan.arena_bytes, runtime=sources.name, frontend_files=files or None,
                            db_bytes=db_bytes, library=sources.library, kernels=sources.kernels,
                            library_files=sources.library_files, main_source=main_source,
                            mlperf_model=mlperf_model, mlperf=mlperf)
    else:
        rendered = render_platformio(RenderRequest(
            board=board, runtime=sources, model=model, info=info, model_name=name,
            source_name=source_name, runs=runs, warmup=warmup, labels=labels,
            frontend_files=tuple(sorted(files.items())), feature_defines=tuple(sorted(defines.items())),
            mlperf_model=mlperf_model))
        write_project(rendered, project)
    return Firmware(project=Path(project), plan=plan, sources=sources)


@contextmanager
def running(firmware: Firmware) -> Iterator[str]:
    """Compile an emulated board's project and run it in QEMU; yields the serial URL (read it with
    :mod:`tinykeras.device`). Real boards are run by ``build --upload/--run`` and ``bench``."""
    board = firmware.plan.board
    if board.kind != "qemu":
        raise BoardError(f"board '{board.name}' is a {board.kind} board: flash it with `tinykeras build --upload` "
                         "and read it with `tinykeras bench`")
    elf = qemu.compile_project(firmware.project)
    with qemu.qemu_session(elf, board) as url:
        yield url


def measure(model: bytes, info: ModelInfo, work_dir: Path, *, name: str = "model", runs: int = 3,
            warmup: int = 1, timeout: float = 120.0, board: Board | None = None, runtime: str = "aot",
            kernels: str | None = None, tflm_dir: Path | str | None = None) -> dict[str, Any]:
    """Instructions per inference of a runtime on the emulated board (default qemu_m4; ``aot``, or ``tflm``
    with ``kernels`` from the TFLM tree ``tflm_dir``): plan, assemble, compile, run the benchmark main.

    Returns :func:`tinykeras.target.qemu.summary` plus ``runs`` (the instruction counts of every run),
    ``macs``, ``arena_used`` (what the firmware reports), ``weights_bytes`` and ``runtime``. Used by profile,
    tune and scripts/bench_*.py. Raises like the stages it runs."""
    planned = plan_build(board or "qemu_m4", model, runtime=runtime, info=info, name=name, kernels=kernels)
    firmware = assemble(planned, model, Path(work_dir), name=name, runs=runs, warmup=warmup, tflm_dir=tflm_dir)
    elf = qemu.compile_project(firmware.project)
    report = qemu.run_benchmark(elf, planned.board, runs=runs, timeout=timeout,
                                raw_log=firmware.project / "serial.log")
    report.raise_if_incomplete(saved=str(firmware.project))
    sources = firmware.sources
    out = qemu.summary(report, planned.board, qemu.elf_sizes(elf), planned.arena_bytes)
    out["macs"] = info.macs
    out["runs"] = [r.instructions for r in report.runs]
    out["arena_used"] = (report.hello or {}).get("arena_used")
    out["weights_bytes"] = sources.code_bytes
    out["runtime"] = sources.summary()
    return out


def _fallback_runtime(board: Board, asked: str | None, runtime: str, info: ModelInfo,
                      log: Callable[[str], None]) -> str:
    """With no --runtime, a board whose default is aot builds a model with ops aot lacks (e.g. the fused
    UNIDIRECTIONAL_SEQUENCE_LSTM) with TFLite-Micro when it can, and says so in one line."""
    if asked is not None or runtime != "aot" or "tflm" not in board.runtimes:
        return runtime
    from tinykeras.aot import SUPPORTED_OPS

    missing = sorted({op.op for op in info.ops if op.op not in SUPPORTED_OPS})
    if not missing:
        return runtime
    log(f"note: the aot runtime has no {', '.join(missing)}: building with --runtime tflm (TFLite-Micro) instead")
    return "tflm"


def build(options: BuildOptions, log: Callable[[str], None] | None = None) -> BuildResult:
    """Check everything, render the project atomically, then run the requested actions."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    board = load_board(options.board)
    runtime = choose_runtime(board, options.runtime)
    if options.runs < 0 or options.warmup < 0:
        raise DataError(f"--runs and --warmup must be >= 0 (got {options.runs}, {options.warmup})")
    if options.runs == 0 and options.run:
        raise DataError("--run reads the boot benchmark, and --runs 0 (--mlperf) builds firmware without one: drop "
                        "--run and drive the board with `tinykeras bench --protocol mlperf` or the MLPerf Tiny runner")

    model_path = resolve_model(options)
    model, source_name = load_int8_model(model_path, options.rep_data, log, options.custom_objects)
    info = inspect_bytes(model, path=source_name)
    require_int8(info, allow_index_inputs=True)  # token ids: the benchmark feeds valid ids (TK_INPUT0_ID_LIMIT)
    runtime = _fallback_runtime(board, options.runtime, runtime, info, log)
    if runtime != "tflm" and (options.kernels or options.tflm_dir):
        raise BoardError("--kernels and --tflm-dir choose the TFLite-Micro build: use them with --runtime tflm")
    mlperf = mlperf_models.conventions(model, info, options.mlperf_model)  # a wrong --mlperf-model fails here
    settings = _model_settings(model_path)
    model_name = c_identifier(options.recipe if options.model is None else _project_name(options, settings, model_path))
    frontend = front_end(settings, model_path)
    norm = input_norm.from_settings(settings, len(info.inputs))
    norm_files = input_norm.firmware_sources(norm, info)  # tk_input_norm.c: normalise, quantize, then tk_invoke
    norm_defines = {**input_norm.c_defines(norm),
                    **({"TK_INPUT0_DB_BYTES": f"{input_norm.db_bytes(norm, 0)}u"} if norm_files else {})}

    try:
        planned = plan_build(board, model, runtime=runtime, info=info, name=model_name, kernels=options.kernels)
    except DoesNotFitError as exc:
        if options.runtime is not None or runtime != "aot" or "tflm" not in board.runtimes:
            raise
        try:  # aot keeps a copy of shared weights per operator (an unrolled RNN): TFLM may fit where aot cannot
            planned = plan_build(board, model, runtime="tflm", info=info, name=model_name, kernels=options.kernels)
        except DoesNotFitError:
            raise exc from None
        log(f"note: the aot build does not fit {board.name}; building with --runtime tflm (TFLite-Micro) instead")
        runtime = "tflm"
    arena, fit = planned.runtime.arena, planned.fit

    out = Path(options.out) if options.out else Path("out") / f"{board.name}-{model_name}-{runtime}"
    result = BuildResult(project_dir=out.resolve(), board=board, runtime=runtime, model_name=model_name,
                         source_name=source_name, info=info, arena=arena, fit=fit, files=[],
                         frontend=frontend.to_json() if frontend else None, mlperf_model=mlperf.id)
    with fsutil.atomic_output_dir(out) as tmp:
        sources = assemble(planned, model, tmp, name=model_name, source_name=source_name, runs=options.runs,
                           warmup=options.warmup, tflm_dir=options.tflm_dir, frontend=frontend,
                           labels=_labels(settings), extra_files=norm_files, extra_defines=norm_defines,
                           db_bytes=input_norm.db_bytes(norm, info.input_tensors()[0].nbytes),
                           mlperf_model=options.mlperf_model).sources
        result.library = sources.summary() if sources.library is not None else None
        result.files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        result.files.append(REPORT_NAME)
        result.files.sort()
        fsutil.write_text_atomic(tmp / REPORT_NAME, json.dumps(result.report(), indent=2) + "\n")

    _actions(options, result, log)
    return result


def _actions(options: BuildOptions, result: BuildResult, log: Callable[[str], None]) -> None:
    board, project = result.board, result.project_dir
    if board.kind == "qemu":
        if options.upload or options.monitor:
            raise ToolchainError(f"board '{board.name}' is emulated: use --run instead of --upload/--monitor")
        if not (options.compile or options.run):
            return

        elf = qemu.compile_project(project)
        result.actions.append("compile")
        sizes = qemu.elf_sizes(elf)
        if options.run:
            report = qemu.run_benchmark(elf, board, runs=options.runs, raw_log=project / "serial.log")
            result.actions.append("run")
            result.bench = report.to_json()
            result.qemu = qemu.summary(report, board, sizes, result.arena.planned_bytes)
            fsutil.write_text_atomic(project / BENCH_REPORT_NAME,
                                     json.dumps({**result.bench, "qemu": result.qemu}, indent=2) + "\n")
        else:
            result.qemu = {"sizes": sizes}
        return


    if options.run and not options.port:
        raise ToolchainError(f"--run on board '{board.name}' reads the benchmark from the board: "
                             "give its serial port with --port (e.g. /dev/ttyUSB0)")
    if options.compile and not options.upload and not options.run:
        toolchain.compile_project(board, project)
        result.actions.append("compile")
    if options.upload or options.run:
        toolchain.upload(board, project, options.port)
        result.actions.append("upload")
    if options.run:
        report = collect(options.port, baud=board.baud, runs=options.runs, raw_log=project / "serial.log")
        result.actions.append("run")
        result.bench = report.to_json()
        fsutil.write_text_atomic(project / BENCH_REPORT_NAME, json.dumps(result.bench, indent=2) + "\n")
    if options.monitor:
        log(f"opening the serial monitor at {board.baud} baud (Ctrl-C to leave)")
        toolchain.monitor(board, project, options.port)
        result.actions.append("monitor")
