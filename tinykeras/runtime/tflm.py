"""The two runtimes as sources for any target: ``tflm`` (a TFLite-Micro library + a generated adapter) and
``aot`` (tinykeras' generated C). A target (a PlatformIO board, the bare-metal emulated board) takes a
:class:`RuntimeSources` and places its files; neither knows how the other is made. No TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from tinykeras import cgen
from tinykeras.arena import ArenaPlan
from tinykeras.errors import BoardError
from tinykeras.libraries import Library, find_tflm_tree, require_model_supported
from tinykeras.resources import templates_dir
from tinykeras.runtime import tflm_tree
from tinykeras.types import ModelInfo

Banner = Callable[[str], str]   # comment prefix -> banner lines without the final newline


@dataclass(frozen=True)
class RuntimeSources:
    """What a runtime puts into a project."""

    name: str                                    # "tflm" | "aot"
    files: dict[str, str]                        # generated sources, relative to the project's src/
    arena: ArenaPlan
    library: Library | None = None
    kernels: str | None = None                   # "reference" | "cmsis-nn" | "esp-nn" (tflm only)
    library_files: dict[str, Path] = field(default_factory=dict)  # copied from a TFLM tree (delivery "tree")
    code_bytes: int | None = None                # aot: weights + constants in flash
    program: Any = None                          # aot: the AotProgram

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runtime": self.name}
        if self.library is not None:
            out.update({"library": self.library.id, "library_commit": self.library.commit, "kernels": self.kernels,
                        "library_delivery": self.library.delivery["kind"]})
        return out


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
                 source_name: str, kernels: str | None = None, tflm_dir: Path | str | None = None) -> RuntimeSources:
    """The adapter, the model array and (delivery "tree") the TFLM sources selected from a TFLM tree."""
    kernels = kernels or library.default_kernels
    if kernels not in library.kernels:
        raise BoardError(f"{library.label} has {', '.join(library.kernels)} kernels, not '{kernels}'; "
                         f"choose --kernels {' or '.join(library.kernels)}")
    resolver = resolver_entries(info, library)
    context = {"banner": banner, "library": library, "kernels": kernels, "arena": arena, "resolver": resolver,
               "resolver_headers": sorted({op["header"] for op in resolver})}
    files = {"tk_model_tflm.cpp": _render("tk_model_tflm.cpp.j2", **context)}
    if library.api["debug_log_provider"] == "project":
        files["tk_tflm_platform.cc"] = _render("tk_tflm_platform.cc.j2", **context)
    files.update(cgen.model_array(model, info, "g_model", source=source_name).files)
    library_files: dict[str, Path] = {}
    if library.delivery["kind"] == "tree":
        library_files = tflm_tree.select(find_tflm_tree(library, tflm_dir), kernels)
    return RuntimeSources(name="tflm", files=dict(sorted(files.items())), arena=arena, library=library,
                          kernels=kernels, library_files=library_files)


def aot_sources(model: bytes, info: ModelInfo, name: str) -> RuntimeSources:
    """tinykeras' generated C and its static memory plan."""
    from tinykeras.aot import generate

    program = generate(model, info, name=name)
    arena = ArenaPlan(measured_bytes=None, planned_bytes=int(program.arena_bytes),
                      method="tinykeras aot static memory plan (computed at build time)",
                      margin_rule="none: the plan is exact, no interpreter structures live in the arena")
    return RuntimeSources(name="aot", files=dict(sorted(program.files.items())), arena=arena,
                          code_bytes=int(program.weights_bytes), program=program)
