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
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {ops: [...], totals: {...}, ...}.")
@click.option("--check", is_flag=True,
              help="Exit non-zero unless the model is full-integer int8 and every op runs on TFLite-Micro.")
def inspect(model: Path, as_json: bool, check: bool) -> None:
    """Explain MODEL.tflite: per-op shapes, quantization, params, MACs, memory, TFLM support.

    \b
    Example:
      tinykeras inspect out/model.tflite
      tinykeras inspect out/model.tflite --json | jq .totals
      tinykeras inspect out/model.tflite --check   # in CI: int8 and TFLM-ready?
    """
    from tinykeras.inspect import load_model_info, require_int8, require_tflm_ops, summary

    model_info = load_model_info(model)
    if check:
        require_tflm_ops(model_info)
        require_int8(model_info)
    info = summary(model_info)
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
    console.print(f"totals:  {totals['ops']} ops, {totals['params']:,} params, {totals['macs']:,} MACs, "
                  f"model {totals['model_bytes']:,} B, peak activations ~{totals['activation_peak_bytes']:,} B")
    if info["tflm_unsupported"]:
        listed = ", ".join(f"{u['op']} (#{u['index']})" for u in info["tflm_unsupported"])
        console.print(f"[bold red]not supported by TFLite-Micro:[/] {listed}")
    else:
        console.print("TFLite-Micro: all ops supported")
