"""Select the TFLite-Micro sources a project needs from a TFLM tree, as TFLM's create_tflm_tree.py does:
the core, the kernels (reference, with CMSIS-NN's replacing their namesakes when asked), the headers and the
third-party code, laid out as ``tensorflow/...`` and ``third_party/<name>/...``. No TensorFlow.

Accepted trees: a TFLM checkout whose third-party code was downloaded by its Makefile
(``tensorflow/lite/micro/tools/make/downloads/``), or a create_tflm_tree.py output (``third_party/``).
The platform files (``debug_log.cc``, ``micro_time.cc``) are left out: the project's port provides them
(``tk_tflm_platform.cc``), so the same tree serves every board.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from tinykeras.errors import ToolchainError

DOWNLOADS = "tensorflow/lite/micro/tools/make/downloads"
PLATFORM_FILES = frozenset({"debug_log.cc", "micro_time.cc"})
# Folders below tensorflow/lite/micro that are not library code for this build.
SKIP_MICRO_DIRS = frozenset({"tools", "examples", "python", "integration_tests", "benchmarks", "testing",
                             "docs", "models", "compression", "cortex_m_generic"})
KERNEL_DIRS = {"cmsis-nn": "cmsis_nn"}
THIRD_PARTY_HEADERS = ("flatbuffers/include", "gemmlowp", "ruy", "kissfft")
CMSIS_NN_PARTS = ("cmsis_nn/Include", "cmsis_nn/Source")
# -I folders of a selected tree (relative to its root), in the order TFLM's Makefile uses.
INCLUDE_DIRS = (".", "third_party/gemmlowp", "third_party/flatbuffers/include", "third_party/kissfft",
                "third_party/ruy")
CMSIS_NN_INCLUDE_DIRS = ("third_party/cmsis_nn", "third_party/cmsis_nn/Include")
LICENSES = ("LICENSE", "COPYING")


def _third_party_root(tree: Path) -> tuple[Path, str]:
    for rel in (DOWNLOADS, "third_party"):
        if (tree / rel / "flatbuffers").is_dir():
            return tree / rel, rel
    raise ToolchainError(f"{tree} has no third-party code (flatbuffers, gemmlowp, ruy...): in a TFLM checkout "
                         "run `make -f tensorflow/lite/micro/tools/make/Makefile third_party_downloads` once")


def _is_test(name: str) -> bool:
    return name.endswith(("_test.cc", "_test.c", "_test.h"))


def _keep_tensorflow(rel: PurePosixPath, kernels: str) -> bool:
    parts = rel.parts
    if _is_test(rel.name) or "testdata" in parts or rel.as_posix().startswith(DOWNLOADS):
        return False
    if parts[:3] == ("tensorflow", "lite", "micro") and len(parts) > 4:
        sub = parts[3]
        if sub in SKIP_MICRO_DIRS:
            return False
        if sub == "kernels" and len(parts) > 5 and parts[4] != KERNEL_DIRS.get(kernels):
            return False  # another vendor's kernels (xtensa, arc_mli, ceva, ...)
    if parts[:3] == ("tensorflow", "lite", "micro") and len(parts) == 4 and rel.name in PLATFORM_FILES:
        return False
    return True


def select(tree: Path, kernels: str = "cmsis-nn") -> dict[str, Path]:
    """{project-relative path: source file} for a build with ``kernels`` ("reference" | "cmsis-nn")."""
    tree = Path(tree)
    if kernels not in ("reference", "cmsis-nn"):
        raise ToolchainError(f"kernels '{kernels}' are not in a TFLM tree; choose reference or cmsis-nn")
    if not (tree / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        raise ToolchainError(f"{tree} is not a TFLite-Micro tree (tensorflow/lite/micro/micro_interpreter.h "
                             "is missing)")
    files: dict[str, Path] = {}
    for top in ("tensorflow", "signal"):
        for path in sorted((tree / top).rglob("*")):
            rel = PurePosixPath(path.relative_to(tree).as_posix())
            if path.is_file() and path.suffix in (".h", ".cc", ".c") and _keep_tensorflow(rel, kernels):
                files[rel.as_posix()] = path
    if kernels == "cmsis-nn":  # CMSIS-NN's kernels replace the reference ones of the same name
        kernel_dir = "tensorflow/lite/micro/kernels"
        for rel in [r for r in files if r.startswith(kernel_dir + "/cmsis_nn/") and r.endswith(".cc")]:
            files.pop(f"{kernel_dir}/{PurePosixPath(rel).name}", None)
    root, _ = _third_party_root(tree)
    parts = THIRD_PARTY_HEADERS + (CMSIS_NN_PARTS + ("cmsis/CMSIS/Core/Include",) if kernels == "cmsis-nn" else ())
    for part in parts:
        for path in sorted((root / part).rglob("*")):
            suffix_ok = path.suffix in (".h", ".hpp") or (part.endswith("Source") and path.suffix == ".c")
            if path.is_file() and suffix_ok and not _is_test(path.name) and "_f16" not in path.name:
                files[f"third_party/{path.relative_to(root).as_posix()}"] = path
    for name in LICENSES:
        if (tree / name).is_file():
            files[f"{name}"] = tree / name
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if (sub / name).is_file() and any(f.startswith(f"third_party/{sub.name}/") for f in files):
                files[f"third_party/{sub.name}/{name}"] = sub / name
    return dict(sorted(files.items()))


def include_dirs(kernels: str) -> list[str]:
    """-I folders relative to the selected tree's root."""
    return list(INCLUDE_DIRS) + (list(CMSIS_NN_INCLUDE_DIRS) + ["third_party/cmsis/CMSIS/Core/Include"]
                                 if kernels == "cmsis-nn" else [])


def sources(files: dict[str, Path]) -> list[str]:
    """The compilable files of a selection (.cc and .c), sorted."""
    return sorted(rel for rel in files if rel.endswith((".cc", ".c")))
