"""``tinykeras validate``: per-output metrics of an int8 .tflite on held-out data, with CI thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinykeras.commands.report import html_option, require_html_model, write_html
from tinykeras.types import RUNTIME_NAMES


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="Held-out data (.npz): inputs ('x', or one array per input name) and labels ('y', or "
                   "'y_<output>' per output). Float inputs are quantized with the model's scale; int8 used as is.")
@click.option("--keras", "keras_path", type=click.Path(path_type=Path),
              help="The float model (.keras/.h5/SavedModel): agreement, MAE, RMSE, R², cosine against it.")
@click.option("--board", type=click.Choice(["qemu_m4"]),
              help="Run on the emulated board (aot runtime) and read output 0 back over serial.")
@click.option("--runtime", type=click.Choice(RUNTIME_NAMES), default="tflm", show_default=True,
              help="Host runtime (without --board): TFLite-Micro, or tinykeras' aot C checked against it.")
@click.option("--task", type=click.Choice(["auto", "classification", "binary", "regression"]), default="auto",
              show_default=True, help="Metrics per output; auto: from the output op (SOFTMAX...), shape, labels.")
@click.option("--samples", type=click.IntRange(min=1),
              help="Use N samples: the same number from every class when the labels are classes, else evenly "
                   "spaced; the report says which (--board default: 50).")
@click.option("--custom-objects", help="Python file or import path defining the Keras model's custom layers.")
@click.option("--min-top1", type=float, help="Fail unless top-1 accuracy (vs labels) >= this, every output.")
@click.option("--min-agreement", type=float, help="Fail unless top-1 agreement with --keras >= this.")
@click.option("--max-mae", type=float, help="Fail unless MAE (vs --keras, else vs labels) <= this.")
@click.option("--max-rmse", type=float, help="Fail unless RMSE (vs --keras, else vs labels) <= this.")
@click.option("--min-r2", type=float, help="Fail unless R² (vs --keras, else vs labels) >= this.")
@click.option("--min-cosine", type=float, help="Fail unless mean cosine similarity >= this.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-o", "--out", "out_json", type=click.Path(path_type=Path), help="Also write the JSON report here.")
@html_option("the model and these metrics (confusion matrices included); the JSON goes to -o, else beside it")
def validate(model: Path, data_path: Path, keras_path: Path | None, board: str | None, runtime: str, task: str,
             samples: int | None, custom_objects: str | None, min_top1: float | None, min_agreement: float | None,
             max_mae: float | None, max_rmse: float | None, min_r2: float | None, min_cosine: float | None,
             as_json: bool, out_json: Path | None, html_page: Path | None) -> None:
    """Validate MODEL.tflite on held-out data: metrics for every output, thresholds that fail CI.

    Classifiers get top-1 accuracy and agreement with the float model; regression and reconstruction
    outputs get MAE, RMSE, R² and cosine similarity. An int8 output that collapsed (near-constant while the
    float output varies) is flagged. Exit code 12 when a threshold fails.

    \b
    Example:
      tinykeras validate out/model.tflite --data test.npz --keras model.keras --min-top1 0.9
      tinykeras validate out/model.tflite --data test.npz --board qemu_m4 --min-r2 0.95 --json
    """
    from tinykeras.keras_io import load_arrays, load_model
    from tinykeras.validation import THRESHOLD_EXIT_CODE, write_report
    from tinykeras.validation import validate as run

    require_html_model(model, html_page)
    if html_page is not None and out_json is None:
        out_json = html_page.with_name(f"{html_page.stem}-validate.json")
    if out_json is not None:
        from tinykeras.fsutil import check_output_file

        check_output_file(out_json)  # before the model runs (on the board: minutes)
    arrays = load_arrays(data_path)
    keras = load_model(keras_path, custom_objects=custom_objects) if keras_path is not None else None
    thresholds = {"min_top1": min_top1, "min_agreement": min_agreement, "max_mae": max_mae, "max_rmse": max_rmse,
                  "min_r2": min_r2, "min_cosine": min_cosine}
    report = run(model, arrays, keras=keras, board=board, runtime=runtime, task=task, samples=samples,
                 thresholds=thresholds, path=str(model))
    if out_json is not None:
        write_report(report, out_json)
    for line in report["warnings"]:
        click.echo(line, err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        from tinykeras.commands.convert import metrics_line

        click.echo(f"{report['model']} on {report['samples']} samples ({report['sampling']}), {report['where']}"
                   + (f", vs {report['reference']}" if report.get("reference") else ""))
        for m in report["outputs"]:
            click.echo(f"  {metrics_line(m)}" + (f" ({m['note']})" if m.get("note") else ""))
        if "bit_exact_vs_tflm" in report:
            click.echo(f"  aot bit-exact with TFLM: {'yes' if report['bit_exact_vs_tflm'] else 'NO'}")
        if report.get("board"):
            b = report["board"]
            click.echo(f"  board output 0 vs host TFLM: max |diff| {b['max_abs_diff_vs_host_tflm']:.4g} "
                       f"({'matches' if b['matches_host_tflm'] else 'DIFFERS'} to the 3 decimals read back)")
        click.echo("PASS" if report["passed"] else "FAIL")
    if html_page is not None and out_json is not None:
        write_html(model, html_page, [out_json])
    for line in report["failures"]:
        click.echo(f"threshold failed: {line}", err=True)
    if not report["passed"]:
        raise SystemExit(THRESHOLD_EXIT_CODE)
