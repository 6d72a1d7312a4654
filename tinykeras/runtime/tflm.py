"""The ``tflm`` runtime: a TFLite-Micro library (the board's pinned one) + a generated adapter, the arena measured
on the TFLM host interpreter with a margin (:mod:`tinykeras.arena`), and its flash/RAM costs. A target (a
PlatformIO board, the bare-metal emulated board) takes its :class:`RuntimeSources` and places the files; neither
knows how the other is made. No TensorFlow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jinja2

from tinykeras import cgen
from tinykeras.arena import ArenaPlan, plan_arena
from tinykeras.errors import BoardError
from tinykeras.libraries import Library, find_tflm_tree
from tinykeras.resources import templates_dir
from tinykeras.runtime import tflm_tree
from tinykeras.runtime.base import Banner, RuntimePlan, RuntimeSources
from tinykeras.runtime.support import require_model_supported
from tinykeras.types import ModelInfo

# Flash/RAM estimates of the runtime code, used by the fit check before anything is built. They are estimates,
# stated as such in the report: TFLM's interpreter, allocator and flatbuffer reader take about 16-22 KB on a
# Cortex-M (tensorflow.org, TFLM overview); reference kernels add a few KB each.
CORE_FLASH = 32 * 1024
FLASH_PER_OP = 6 * 1024
RAM_OVERHEAD = 2 * 1024          # interpreter object, resolver tables (outside the arena)

def resolver_entries(info: ModelInfo, library: Library) -> list[dict[str, str]]:
    """The model's distinct ops with their kernel registration and parser in ``library``, sorted by name.
    Raises UnsupportedOpError (one line: op, index, library, reason, fix) for an op the library lacks or runs
    wrongly (its known gaps, e.g. per-channel FULLY_CONNECTED): never firmware that computes wrong results."""
    require_model_supported(info, library)
    ops = library.ops
    return [{"name": name, **ops[name]} for name in sorted(set(info.op_names))]


def _render(template: str, **context: Any) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "runtime" / "tflm")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return env.get_template(template).render(**context)


def tflm_sources(model: bytes, info: ModelInfo, library: Library, arena: ArenaPlan, banner: Banner, *,
                 source_name: str, kernels: str | None = None, tflm_dir: Path | str | None = None,
                 profile: bool = False) -> RuntimeSources:
    """The adapter, the model array and (delivery "tree") the TFLM sources selected from a TFLM tree.
    ``profile``: the adapter hands TFLM a MicroProfiler that adds each op's counter delta to
    ``tk_profile_counts`` (the profile firmware's ``tk_profile_now``)."""
    kernels = kernels or library.default_kernels
    if kernels not in library.kernels:
        raise BoardError(f"{library.label} has {', '.join(library.kernels)} kernels, not '{kernels}'; "
                         f"choose --kernels {' or '.join(library.kernels)}")
    resolver = resolver_entries(info, library)
    context = {"banner": banner, "library": library, "kernels": kernels, "arena": arena, "resolver": resolver,
               "resolver_headers": sorted({op["header"] for op in resolver}), "profile": profile,
               "num_ops": len(info.ops)}
    files = {"tk_model_tflm.cpp": _render("tk_model_tflm.cpp.j2", **context)}
    if library.api["debug_log_provider"] == "project":
        files["tk_tflm_platform.cc"] = _render("tk_tflm_platform.cc.j2", **context)
    files.update(cgen.model_array(model, info, "g_model", source=source_name).files)
    library_files: dict[str, Path] = {}
    if library.delivery["kind"] == "tree":
        library_files = tflm_tree.select(find_tflm_tree(library, tflm_dir), kernels)
    return RuntimeSources(name="tflm", files=dict(sorted(files.items())), arena=arena, library=library,
                          kernels=kernels, library_files=library_files)


def with_kernel_arena(arena: ArenaPlan, library: Library, info: ModelInfo, kernels: str, core: str) -> ArenaPlan:
    """The host-measured plan plus what ``kernels`` take on ``core`` beyond the host's reference kernels (the
    library file's ``[[kernel_arena]]``), rounded up to 16 B."""
    extra, why = library.kernel_arena_bytes(info, kernels, core)
    if not extra:
        return arena
    planned = -(-(arena.planned_bytes + extra) // 16) * 16
    return dataclasses.replace(arena, planned_bytes=planned, margin_rule=f"{arena.margin_rule}; {'; '.join(why)}")


def plan(model: bytes, info: ModelInfo, board: Any, *, name: str = "model", kernels: str | None = None,
         arena: ArenaPlan | None = None, profile: bool = False) -> RuntimePlan:
    """Check the model against the board's pinned library (every op, its known gaps), measure the arena on the
    host interpreter (unless ``arena``, the same model's plan, is given: it does not depend on the board) and
    state the costs. Kernels: ``kernels`` or the board's."""
    library = board.tflm.lib
    if profile and library.api["interpreter"] != "arena":
        raise BoardError(f"the per-op profile needs a MicroInterpreter that takes a profiler; {library.label} "
                         "has the older ErrorReporter API")
    kernels = kernels or board.tflm.kernels or library.default_kernels
    if kernels not in library.kernels:
        raise BoardError(f"{library.label} has {', '.join(library.kernels)} kernels, not '{kernels}'; "
                         f"choose --kernels {' or '.join(library.kernels)}")
    resolver_entries(info, library)   # the pinned library runs every op correctly, before the arena probes
    arena = with_kernel_arena(arena or plan_arena(model, info), library, info, kernels, board.mcu.core)
    return RuntimePlan(name="tflm", arena=arena, model_flash=info.model_bytes,
                       runtime_flash=CORE_FLASH + FLASH_PER_OP * len(info.op_names), runtime_ram=RAM_OVERHEAD,
                       library=library, kernels=kernels, profile=profile)


def sources(p: RuntimePlan, model: bytes, info: ModelInfo, *, source_name: str, banner: Banner,
            tflm_dir: Path | str | None = None) -> RuntimeSources:
    """The planned model's adapter, model array and (delivery "tree") library sources."""
    assert p.library is not None
    return tflm_sources(model, info, p.library, p.arena, banner, source_name=source_name, kernels=p.kernels,
                        tflm_dir=tflm_dir, profile=p.profile)
