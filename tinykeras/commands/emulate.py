"""``tinykeras emulate``: run a .tflite on the host with TFLite-Micro kernels (or the aot runtime)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from tinykeras.commands.params import force_option
from tinykeras.types import RUNTIME_NAMES

PROGRESS_FROM = 200  # samples: show a progress bar from this many on


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", "data_path", type=click.Path(path_type=Path),
              help="Inputs (.npz with 'x' and optional 'y' labels, or .npy): float (quantized with the model's "
                   "input scale/zero point) or int8. Without it: seeded random int8 inputs.")
@click.option("--keras", "keras_path", type=click.Path(path_type=Path),
              help="The float model (.keras/.h5/SavedModel) to compare with: top-1 agreement, max deviation.")
@click.option("--runtime", type=click.Choice(RUNTIME_NAMES), default="tflm", show_default=True,
              help="tflm: TFLite-Micro host interpreter; aot: tinykeras' generated C (host gcc), checked "
                   "bit for bit against TFLM.")
@click.option("--samples", type=click.IntRange(1, 1_000_000),
              help="Use the first N samples (random inputs: how many; default 32).")
@click.option("--labels", "labels_path", type=click.Path(path_type=Path),
              help="Text file, one class name per line (confusion matrix axes). Default: the labels in the "
                   "settings.json beside MODEL (as train/quantize write it).")
@click.option("--no-tflite", is_flag=True, help="Skip the tf.lite comparison (saves importing TensorFlow).")
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path),
              help="Write confusion_matrix.png (with labels) and scores.png into this directory.")
@click.option("--custom-objects", help="Python file or import path defining the --keras model's custom layers.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-o", "--out", "out_json", type=click.Path(path_type=Path), help="Also write the JSON report here.")
@force_option
def emulate(model: Path, data_path: Path | None, keras_path: Path | None, runtime: str, samples: int | None,
            labels_path: Path | None, no_tflite: bool, plots_dir: Path | None, custom_objects: str | None,
            as_json: bool, out_json: Path | None) -> None:
    """Run MODEL.tflite on the host with TFLite-Micro's kernels and report how it behaves before flashing.

    Reports accuracy (when the data has labels), top-1 agreement and the largest dequantized deviation
    against the float Keras model and against tf.lite (no delegates), bit-exactness between runtimes, the
    arena bytes TFLM really needs and host microseconds per inference.

    \b
    Example:
      tinykeras emulate out/model.tflite --data test.npz --keras model.keras --plots plots/
      tinykeras emulate out/model.tflite --runtime aot --json
    """
    from tinykeras.emulate import emulate as run
    from tinykeras.fsutil import check_output_dir, check_output_file
    from tinykeras.keras_io import load_arrays, split_xy

    if plots_dir is not None:  # a bad --plots or -o fails now, not after the run
        check_output_dir(plots_dir)
    if out_json is not None:
        check_output_file(out_json)
    x = y = None
    if data_path is not None:
        arrays = load_arrays(data_path)
        from tinykeras.inspect import load_model_info

        if len(load_model_info(model).inputs) > 1:  # several inputs: arrays keyed by input name (or in order)
            from tinykeras.keras_io import LABEL_KEYS

            x = {k: v for k, v in arrays.items() if k not in LABEL_KEYS and not k.startswith("y_")}
            y = next((arrays[k] for k in LABEL_KEYS if k in arrays), None)
        else:
            x, y = split_xy(arrays, str(data_path))
    count = samples if samples is not None else (len(next(iter(x.values())) if isinstance(x, dict) else x)
                                                  if x is not None else None)
    labels = None
    if labels_path is not None:
        from tinykeras.commands.convert import _read_labels

        labels = _read_labels(labels_path)
    else:
        labels = labels_beside(model)
    keras = None
    if keras_path is not None:
        from tinykeras.keras_io import load_model

        keras = load_model(keras_path, custom_objects=custom_objects)
    progress = _progress if (count or 0) >= PROGRESS_FROM else None
    result = run(model, x, y, keras=keras, runtime=runtime, samples=samples, tflite=not no_tflite,
                 labels=labels, progress=progress)
    data = result.to_json()
    if plots_dir is not None:
        data["plots"] = [str(p) for p in result.write_plots(plots_dir)]
    if out_json is not None:
        from tinykeras.report import write_json

        write_json(out_json, data)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from tinykeras.commands.console import console as table_console
    from tinykeras.report import emulate_table

    console = table_console(highlight=False)
    console.print(emulate_table(data))
    for path in data.get("plots", []):
        console.print(f"wrote {path}")


def _progress(indices: Iterable[int]) -> Iterator[int]:
    from rich.console import Console
    from rich.progress import track

    items = list(indices)
    yield from track(items, description="TFLM host", total=len(items), console=Console(stderr=True),
                     transient=True)


def labels_beside(model: Path) -> list[str] | None:
    """The class labels of the settings.json beside ``model`` (``train``, ``quantize``, ``tune`` write one)."""
    from tinykeras.recipes.frontend import settings_beside

    settings = settings_beside(model)
    labels = settings.get("labels") if isinstance(settings, dict) else None
    return [str(label) for label in labels] if isinstance(labels, list) else None
