#!/usr/bin/env python3
"""Generate ``libraries/ops/<id>.json`` from each library's own sources: the builtin ops its
``MicroMutableOpResolver`` registers (method -> ``BuiltinOperator_X``) and the SHA-256 of the fingerprint
files named in ``libraries/<id>.toml`` (used to refuse a tree at another version).

    python scripts/gen_libraries.py --third-party ../shared/third_party

Never typed by hand: rerun it when a library pin changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinykeras.libraries import LIBRARIES_DIR, list_libraries, load_library  # noqa: E402

# `TfLiteStatus AddConv2D(const TFLMRegistration& registration = Register_CONV_2D()) {
#     return AddBuiltin(BuiltinOperator_CONV_2D, registration, ParseConv2D); }`
_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\((.*?)\)\s*\{(.*?)\n  \}", re.S)
_REGISTER = re.compile(r"((?:\w+::)*Register_\w+)\(\)")   # older TFLM: tflite::ops::micro::Register_RESHAPE
_ADD_BUILTIN = re.compile(r"AddBuiltin\(\s*BuiltinOperator_(\w+),\s*.*?,\s*(\w+)\)", re.S)
REFERENCE_LIBRARY = "tflm-90b983c"   # whose resolver header maps ops for trees that lack one


def resolver_ops(header: Path) -> dict[str, dict[str, str]]:
    """Builtin op -> {method, register, parser}, parsed from a micro_mutable_op_resolver.h."""
    ops: dict[str, dict[str, str]] = {}
    for method, signature, body in _METHOD.findall(header.read_text(encoding="utf-8", errors="replace")):
        register, builtin = _REGISTER.search(signature + body), _ADD_BUILTIN.search(body)
        if register and builtin:
            qualified = register.group(1).removeprefix("tflite::")   # relative to namespace tflite
            ops.setdefault(builtin.group(1), {"method": method, "register": qualified, "parser": builtin.group(2)})
    return dict(sorted(ops.items()))


def declared_names(tree: Path, header_name: str, prefix: str) -> set[str]:
    """Function names starting with ``prefix`` declared in every ``header_name`` of ``tree``."""
    names: set[str] = set()
    for header in tree.rglob(header_name):
        names |= set(re.findall(rf"\b({prefix}\w+)\s*\(", header.read_text(encoding="utf-8", errors="replace")))
    return names


def library_ops(tree: Path, reference_tree: Path) -> tuple[dict[str, dict[str, str]], str]:
    """The ops ``tree`` registers, and where the mapping was read from."""
    header = next(iter(sorted(tree.rglob("micro_mutable_op_resolver.h"))), None)
    if header is not None:
        return resolver_ops(header), header.relative_to(tree).as_posix()
    # This tree ships no resolver header: keep the reference mapping's ops whose kernel (micro_ops.h) and
    # parser (flatbuffer_conversions.h) this tree declares.
    ref_header = next(iter(sorted(reference_tree.rglob("micro_mutable_op_resolver.h"))))
    registers = declared_names(tree, "micro_ops.h", "Register_")
    parsers = declared_names(tree, "flatbuffer_conversions.h", "Parse")
    ops = {op: e for op, e in resolver_ops(ref_header).items()
           if e["register"].split("::")[-1] in registers and e["parser"] in parsers}
    return ops, f"{REFERENCE_LIBRARY} resolver header, filtered by this tree's micro_ops.h + flatbuffer_conversions.h"


def with_headers(tree: Path, ops: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Add to each op the header (relative to the include root) that declares its Register_ function:
    kernels/micro_ops.h when it does, else the kernel's own header."""
    include_root = next(iter(sorted(tree.rglob("micro_interpreter.h")))).parents[3]
    headers = sorted(include_root.glob("tensorflow/lite/micro/kernels/*.h"))
    micro_ops = include_root / "tensorflow/lite/micro/kernels/micro_ops.h"
    texts = {h: h.read_text(encoding="utf-8", errors="replace") for h in [micro_ops] + headers if h.exists()}
    out = {}
    for op, entry in ops.items():
        pattern = re.compile(rf"\b{entry['register'].split('::')[-1]}\s*\(\s*\)\s*;")
        header = next((h for h, text in texts.items() if pattern.search(text)), None)
        if header is not None:
            out[op] = {**entry, "header": header.relative_to(include_root).as_posix()}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--third-party", type=Path, required=True, help="folder holding the library trees")
    parser.add_argument("--out", type=Path, default=LIBRARIES_DIR / "ops",
                        help="where to write <id>.json (default: libraries/ops; tests compare a fresh copy)")
    args = parser.parse_args()
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    for lib in list_libraries():
        tree = args.third_party / lib.tree
        reference_tree = args.third_party / load_library(REFERENCE_LIBRARY).tree
        ops, mapping = library_ops(tree, reference_tree)
        ops = with_headers(tree, ops)
        record = {
            "_comment": f"Generated by scripts/gen_libraries.py from {lib.tree} ({lib.origin} {lib.commit}); "
                        "do not edit.",
            "id": lib.id, "commit": lib.commit,
            "ops_from": mapping,
            "fingerprint": {p: hashlib.sha256((tree / p).read_bytes()).hexdigest() for p in lib.fingerprint_paths},
            "ops": ops,
        }
        (out_dir / f"{lib.id}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"{lib.id}: {len(record['ops'])} ops")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
