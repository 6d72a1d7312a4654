"""``tinykeras inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _quant_text(t: dict | None) -> str:
    if not t or t["scale"] is None:
        return "-"
    text = f"s={t['scale']:.3g} z={t['zero_point']}"
    return text + (f" ({t['num_scales']} ch)" if t["num_scales"] > 1 else "")


def _shape_text(t: dict | None) -> str:
    if not t:
        return "-"
    return f"{t['dtype']}{t['shape']}"


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {ops: [...], totals: {...}, libraries: {...}}.")
@click.option("--check", is_flag=True,
              help="Exit non-zero unless the model is full-integer int8 and the TFLite-Micro library (of --board "
                   "or --library; default: TFLM itself) runs every op correctly.")
@click.option("--board", "-b", help="Check against the TFLite-Micro library this board pins (see `tinykeras boards`).")
@click.option("--library", "library_id",
              help="Check against this TFLite-Micro library (see `tinykeras libraries`).")
def inspect(model: Path, as_json: bool, check: bool, board: str | None, library_id: str | None) -> None:
    """Explain MODEL.tflite: per-op shapes, quantization, params, MACs, memory, TFLM support.

    \b
    Example:
      tinykeras inspect out/model.tflite
      tinykeras inspect out/model.tflite --json | jq .libraries
      tinykeras inspect out/model.tflite --check                    # in CI: int8 and TFLM-ready?
      tinykeras inspect out/model.tflite --check --board nano33ble  # ... on the library that board pins?
    """
    from tinykeras.inspect import load_model_info, summary
    from tinykeras.libraries import load_library, reference_library
    from tinykeras.runtime.support import check_model, require_model_supported, support_summary

    if board and library_id:
        raise click.UsageError("give --board or --library, not both")
    lib = load_library(library_id) if library_id else None
    model_info = load_model_info(model)
    aot_only = False
    if board:  # an aot-only board: the aot runtime is checked there, TFLM itself is shown below
        lib = _board_library_or_aot(board, model, model_info, check)
        aot_only = lib is None
    lib = lib or reference_library()
    if check:
        require_model_supported(model_info, lib)
    problems = check_model(model_info, lib)
    info = summary(model_info)
    info["libraries"] = support_summary(model_info)
    info["checked_library"] = {"id": lib.id, "label": lib.label, "board": board,
                               "problems": [p.to_json() for p in problems]}
    latency = _latency(board, model_info) if board else []
    if board:
        info["latency"] = [e.to_json() for e in latency]
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title=f"{model.name}  ({info['totals']['model_bytes']:,} bytes, sha256 {info['sha256'][:12]})")
    for column in ("#", "op", "v", "inputs", "outputs", "quantization (out)", "params", "MACs", "act. bytes"):
        table.add_column(column, justify="right" if column in ("#", "v", "params", "MACs", "act. bytes") else "left")
    for op in info["ops"]:
        activations = [t for t in op["inputs"] if t and not t["constant"]]
        weights = [t for t in op["inputs"] if t and t["constant"]]
        inputs = ", ".join(_shape_text(t) for t in activations)
        if weights:
            inputs += f" | w {_shape_text(weights[0])} {_quant_text(weights[0])}"
        first_out = op["outputs"][0] if op["outputs"] else None
        table.add_row(str(op["index"]), op["op"], str(op["version"]), inputs,
                      ", ".join(_shape_text(t) for t in op["outputs"]), _quant_text(first_out),
                      f"{op['params']:,}", f"{op['macs']:,}", f"{op['activation_bytes']:,}")
    console.print(table)
    totals = info["totals"]
    console.print(f"inputs:  {', '.join(_shape_text(t) + ' ' + _quant_text(t) for t in info['inputs'])}")
    console.print(f"outputs: {', '.join(_shape_text(t) + ' ' + _quant_text(t) for t in info['outputs'])}")
    console.print(f"totals:  {totals['ops']} ops, {totals['params']:,} params (weights and biases in the .tflite; "
                  "a Keras count is higher by the BatchNorm parameters folded into them), "
                  f"{totals['macs']:,} MACs, "
                  f"model {totals['model_bytes']:,} B, peak activations ~{totals['activation_peak_bytes']:,} B")
    if aot_only:
        console.print(f"board {board} runs tinykeras' aot runtime, not TFLite-Micro"
                      + (": the aot runtime supports every op" if check else ""))
    if problems:
        listed = "; ".join(str(p) for p in problems)
        words = "not supported by TFLite-Micro" if any(p.kind == "missing-op" for p in problems) else "problems"
        console.print(f"[bold red]{lib.label}, {words}:[/] {listed}")
    else:
        console.print(f"TFLite-Micro ({lib.label}): all ops supported")
    for e in latency:
        console.print(f"latency on {board} ({e.runtime}): {e.text()}", highlight=False)


def _latency(board: str, info: object) -> list:
    """The board's latency estimates (tinykeras/latency.py), both runtimes; none for the emulated board."""
    from tinykeras.boards import load_board
    from tinykeras.latency import estimates

    return estimates(info, [load_board(board)])


def _board_library_or_aot(board: str, path: Path, info: object, check: bool) -> object:
    """The board's TFLM library; for an aot-only board, check the aot runtime instead and return None."""
    from tinykeras.boards import load_board
    from tinykeras.libraries import board_library

    b = load_board(board)
    lib = board_library(b)
    if lib is None and check:
        from tinykeras.aot import generate
        from tinykeras.inspect import read_model_bytes

        generate(read_model_bytes(path), info)  # raises UnsupportedOpError naming op and index
    return lib
