"""``tinykeras quantize`` and ``tinykeras carray``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinykeras.commands.params import force_option

CUSTOM_OBJECTS_HELP = ("Python file (my_layers.py) or import path (pkg.layers) defining the model's custom or "
                       "registered layers, models and functions.")


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--rep-data", type=click.Path(path_type=Path),
              help="Representative inputs (.npz with 'x', or .npy; several inputs: one array per input name or in "
                   "input order): 100-500 real samples calibrate int8 scales.")
@click.option("--data", "test_data", type=click.Path(path_type=Path),
              help="Held-out inputs (+ labels 'y', or 'y_<output>') to compare float and int8 on; without it the "
                   "comparison runs on the calibration data.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory. Default: 'int8' beside MODEL (MODEL.int8 for a SavedModel directory).")
@click.option("--also", multiple=True, type=click.Choice(["float32", "dynamic"]),
              help="Also write model_float32.tflite / model_dynamic.tflite for comparison.")
@click.option("--labels", type=click.Path(path_type=Path), help="Text file, one class label per line.")
@click.option("--per-tensor-dense", is_flag=True,
              help="One weight scale per FULLY_CONNECTED layer (not per output channel): needed by TFLM libraries "
                   "without per-channel FULLY_CONNECTED, e.g. the nano33ble's (see `tinykeras libraries`).")
@click.option("--name", help="Model name for projects and reports (default: from the model's file or directory).")
@click.option("--custom-objects", help=CUSTOM_OBJECTS_HELP)
@click.option("--task", type=click.Choice(["auto", "classification", "binary", "regression"]), default="auto",
              show_default=True, help="Metrics per output: auto detects from the output op, shape and labels.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@force_option
def quantize(model: Path, rep_data: Path | None, test_data: Path | None, out_dir: Path | None, also: tuple[str, ...],
             labels: Path | None, per_tensor_dense: bool, name: str | None, custom_objects: str | None, task: str,
             as_json: bool) -> None:
    """Convert MODEL (.keras, .h5 or SavedModel dir) to a full-integer int8 .tflite and C array.

    Writes OUT/model.tflite, model_data.h, model_data.cc, model_settings.h, settings.json (the settings.json
    beside MODEL carried over, plus name, labels, input and output names) and report.json (sizes and per-output
    float-vs-int8 metrics: top-1 agreement for classifiers, MAE/RMSE/R²/cosine for regression).

    \b
    Example:
      tinykeras quantize model.keras --rep-data rep.npz --data test.npz -o out/ --also float32
      tinykeras quantize model.keras --rep-data rep.npz -o out/ --per-tensor-dense
    """
    from tinykeras.convert import quantize_model, write_outputs
    from tinykeras.fsutil import atomic_output_dir, check_output_dir
    from tinykeras.keras_io import load_arrays, load_model, model_labels, model_name
    from tinykeras.recipes.frontend import settings_beside

    out_dir = out_dir or (model.parent / "int8" if not model.is_dir() else model.with_name(f"{model.name}.int8"))
    check_output_dir(out_dir)  # a bad -o fails now, not after TensorFlow converted the model
    label_list = _read_labels(labels)
    settings = settings_beside(model) if model.is_file() else None
    if settings is None and model.is_dir():
        settings = settings_beside(model / "saved_model.pb")
    if label_list is None and isinstance((settings or {}).get("labels"), list):
        label_list = [str(v) for v in settings["labels"]]
    rep = load_arrays(rep_data) if rep_data is not None else None
    held_out = load_arrays(test_data) if test_data is not None else None
    loaded = load_model(model, custom_objects=custom_objects)
    test_labels = model_labels(held_out, loaded.output_names) if held_out is not None else None
    conversions = quantize_model(loaded, rep, also, test_data=held_out, test_labels=test_labels, task=task,
                                 per_tensor_dense=per_tensor_dense)
    display = name or (settings or {}).get("name") or model_name(model)
    with atomic_output_dir(out_dir) as tmp:
        report = write_outputs(conversions, tmp, source=str(model), labels=label_list, name=display,
                               settings=settings)
    comp = report["comparison"]
    for line in comp.get("warnings", []):
        click.echo(line, err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"wrote {out_dir}/model.tflite ({report['tflite_bytes']['int8']:,} B int8, model '{display}')")
    for kind, size in report["tflite_bytes"].items():
        if kind != "int8":
            click.echo(f"      {out_dir}/model_{kind}.tflite ({size:,} B)")
    click.echo(f"      {out_dir}/model_data.h, model_data.cc, model_settings.h, settings.json, report.json")
    click.echo(f"float vs int8 on {comp['samples']} samples of the {comp['data']}:")
    for m in comp["outputs"]:
        click.echo(f"  {metrics_line(m)}")
    for line in comp.get("input_normalization", []):
        click.echo(f"  note: {line}")


def metrics_line(m: dict) -> str:
    """One line of the figures of one output (see tinykeras.metrics.output_metrics)."""
    parts = [f"output '{m['name']}' ({m['task']})"]
    for key, label, fmt in (("accuracy", "accuracy", ".1%"), ("reference_accuracy", "float accuracy", ".1%"),
                            ("agreement", "top-1 agreement", ".1%"), ("mae", "MAE", ".4g"), ("rmse", "RMSE", ".4g"),
                            ("r2", "R²", ".4f"), ("cosine", "cosine", ".4f"), ("labels_rmse", "RMSE vs labels", ".4g"),
                            ("labels_r2", "R² vs labels", ".4f"), ("reference_labels_r2", "float R² vs labels", ".4f"),
                            ("max_abs_diff", "max |diff|", ".4g")):
        value = m.get(key)
        if value is not None:
            parts.append(f"{label} {format(value, fmt)}")
    if m.get("collapsed"):
        parts.append("COLLAPSED")
    return ", ".join(parts)


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
