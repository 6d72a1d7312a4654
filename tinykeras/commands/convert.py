"""``tinykeras quantize`` and ``tinykeras carray``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinykeras.commands.params import force_option


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--rep-data", type=click.Path(path_type=Path),
              help="Representative inputs (.npz with 'x', or .npy): 100-500 real samples calibrate int8 scales.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("out"), show_default=True,
              help="Output directory.")
@click.option("--also", multiple=True, type=click.Choice(["float32", "dynamic"]),
              help="Also write model_float32.tflite / model_dynamic.tflite for comparison.")
@click.option("--labels", type=click.Path(path_type=Path), help="Text file, one class label per line.")
@click.option("--per-tensor-dense", is_flag=True,
              help="One weight scale per FULLY_CONNECTED layer (not per output channel): needed by TFLM libraries "
                   "without per-channel FULLY_CONNECTED, e.g. the nano33ble's (see `tinykeras libraries`).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@force_option
def quantize(model: Path, rep_data: Path | None, out_dir: Path, also: tuple[str, ...], labels: Path | None,
             per_tensor_dense: bool, as_json: bool) -> None:
    """Convert MODEL (.keras, .h5 or SavedModel dir) to a full-integer int8 .tflite and C array.

    Writes OUT/model.tflite, model_data.h, model_data.cc, model_settings.h and report.json
    (sizes, float-vs-int8 top-1 agreement and max dequantized difference on the representative data).

    \b
    Example:
      tinykeras quantize model.keras --rep-data rep.npz -o out/ --also float32 --also dynamic
      tinykeras quantize model.keras --rep-data rep.npz -o out/ --per-tensor-dense
    """
    from tinykeras.convert import quantize_model, write_outputs
    from tinykeras.fsutil import atomic_output_dir
    from tinykeras.keras_io import load_arrays, load_model, split_xy

    label_list = _read_labels(labels)
    x = None
    if rep_data is not None:
        x, _ = split_xy(load_arrays(rep_data), str(rep_data))
    loaded = load_model(model)
    conversions = quantize_model(loaded, x, also, per_tensor_dense=per_tensor_dense)
    with atomic_output_dir(out_dir) as tmp:
        report = write_outputs(conversions, tmp, source=str(model), labels=label_list)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    comp = report["comparison"]
    click.echo(f"wrote {out_dir}/model.tflite ({report['tflite_bytes']['int8']:,} B int8)")
    for kind, size in report["tflite_bytes"].items():
        if kind != "int8":
            click.echo(f"      {out_dir}/model_{kind}.tflite ({size:,} B)")
    click.echo(f"      {out_dir}/model_data.h, model_data.cc, model_settings.h, report.json")
    agreement = comp.get("top1_agreement")
    click.echo(f"float vs int8 on {comp['samples']} samples: top-1 agreement "
               f"{'n/a' if agreement is None else f'{agreement:.1%}'}, max |diff| {comp['max_abs_diff']:.4g}")


def _read_labels(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    from tinykeras.datacheck import read_text_lines

    return read_text_lines(path)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Output directory.")
@click.option("--name", default="g_model", show_default=True, help="C name of the array.")
@click.option("--labels", type=click.Path(path_type=Path), help="Text file, one class label per line.")
def carray(model: Path, out_dir: Path, name: str, labels: Path | None) -> None:
    """Write MODEL.tflite as model_data.h/.cc (alignas(16) array + length) and model_settings.h.

    \b
    Example:
      tinykeras carray out/model.tflite -o firmware/src --name g_model
    """
    from tinykeras.cgen import c_sources
    from tinykeras.datacheck import require_not_keyword
    from tinykeras.fsutil import atomic_output_dir
    from tinykeras.inspect import inspect_bytes, read_model_bytes

    require_not_keyword(name)
    data = read_model_bytes(model)
    info = inspect_bytes(data, path=str(model))
    files = c_sources(data, info, name=name, labels=_read_labels(labels))
    with atomic_output_dir(out_dir, replace=False) as tmp:  # adds its files to a source folder
        files.write(tmp)
    click.echo(f"wrote {', '.join(str(out_dir / n) for n in sorted(files.files))}")
