"""``tinykeras optimize``: prune, quantization-aware train and convert, with a stage-by-stage report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinykeras.commands.params import EPOCHS, SEED, Finite, force_option


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="Training data .npz: x_train/y_train (+ x_val/y_val, x_test/y_test), or x/y (split "
                   "80/10/10). Autoencoders: y_test holds anomaly labels (0 normal, 1 anomalous).")
@click.option("--prune", type=float, help="Magnitude pruning to this sparsity, strictly between 0 and 1.")
@click.option("--schedule", type=click.Choice(["polynomial", "constant"]), default="polynomial",
              show_default=True, help="How sparsity ramps up during fine-tuning.")
@click.option("--structured", metavar="2:4|channels[:FRACTION]",
              help="2:4 sparsity, or channel pruning that removes FRACTION (default 0.5) of every prunable "
                   "layer's channels and rebuilds a smaller model.")
@click.option("--target-macs", type=Finite(0.0, 1.0, min_open=True),
              help="With --structured channels: remove channels until MACs fall to this ratio (0.5 = half).")
@click.option("--qat", is_flag=True, help="Quantization-aware training (keeps the pruned zeros) before int8.")
@click.option("--epochs", type=EPOCHS, default=2, show_default=True, help="Fine-tuning epochs per stage.")
@click.option("--qat-epochs", type=EPOCHS, help="QAT epochs (default: --epochs).")
@click.option("--batch-size", type=click.IntRange(1, 65_536), default=32, show_default=True)
@click.option("--lr", "learning_rate", type=Finite(0.0, 10.0, min_open=True), default=5e-4, show_default=True,
              help="Adam learning rate for fine-tuning (QAT uses half).")
@click.option("--metric", type=click.Choice(["auto", "accuracy", "auc", "mse"]), default="auto",
              show_default=True, help="auto: accuracy for classifiers, AUC (or MSE) for autoencoders.")
@click.option("--importance", type=click.Choice(["l1", "bn"]), default="l1", show_default=True,
              help="Channel ranking for --structured channels: filter L1 norm or BatchNorm |gamma|.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--per-tensor-dense", is_flag=True,
              help="int8 stage: one weight scale per FULLY_CONNECTED layer (see `tinykeras quantize --help`).")
@click.option("--labels", type=click.Path(path_type=Path), help="Text file, one class label per line.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory (written atomically). Default: 'optimized' beside MODEL "
                   "(MODEL.optimized for a SavedModel directory).")
@click.option("--custom-objects", help="Python file or import path defining the model's custom layers (tf_keras).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@force_option
def optimize(model: Path, data_path: Path, prune: float | None, schedule: str, structured: str | None,
             target_macs: float | None, qat: bool, epochs: int, qat_epochs: int | None, batch_size: int,
             learning_rate: float, metric: str, importance: str, seed: int, per_tensor_dense: bool,
             labels: Path | None, out_dir: Path | None, custom_objects: str | None, as_json: bool) -> None:
    """Optimize MODEL (.keras, .h5 or SavedModel dir; Keras 2 or 3) and report every stage.

    Stages: float -> channels (with --structured channels) -> pruned (--prune or --structured 2:4) ->
    qat (--qat) -> int8 (evaluated on the TFLite-Micro host interpreter). Each stage reports the metric,
    params, MACs, .tflite and gzip bytes, estimated arena and per-layer sparsity.

    Writes OUT/model.tflite (final int8), model_data.h/.cc, model_settings.h, optimize.json, optimize.png.

    \b
    Example:
      tinykeras optimize model.keras --data train.npz --prune 0.75 --qat -o out/pruned
      tinykeras optimize model.keras --data train.npz --structured channels --target-macs 0.5
    """
    from tinykeras.commands.console import console
    from tinykeras.commands.convert import _read_labels
    from tinykeras.fsutil import atomic_output_dir, check_output_dir
    from tinykeras.optimize import (
        OptimizeOptions,
        load_dataset,
        load_keras_model,
        sparsity_table,
        stage_table,
        write_outputs,
    )
    from tinykeras.optimize import optimize as run_optimize

    options = OptimizeOptions(prune=prune, schedule=schedule, structured=structured, qat=qat, epochs=epochs,
                              qat_epochs=qat_epochs, batch_size=batch_size, learning_rate=learning_rate, metric=metric,
                              target_macs=target_macs, importance=importance, seed=seed,
                              per_tensor_dense=per_tensor_dense)
    options.validate()  # bad options and a bad -o fail before anything slow happens
    out_dir = out_dir or default_out(model)
    check_output_dir(out_dir)
    label_list = _read_labels(labels)
    data = load_dataset(data_path, seed=seed)
    keras_model = load_keras_model(model, custom_objects=custom_objects)
    err = console(stderr=True)
    log = None if as_json else (lambda msg: err.print(f"[dim]{msg}[/dim]"))
    result = run_optimize(keras_model, data, options, log=log)
    with atomic_output_dir(out_dir) as tmp:
        report = write_outputs(result, tmp, source=str(model), labels=label_list)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    out = console()
    out.print(stage_table(result))
    if any(stage.sparsity for stage in result.stages):
        out.print(sparsity_table(result))
    for stage in result.stages:
        for note in stage.notes:
            out.print(f"  {stage.name}: {note}")
    for note in result.notes:
        out.print(f"  {note}")
    click.echo(f"wrote {out_dir}/model.tflite ({len(result.tflite):,} B int8), model_data.h, model_data.cc, "
               "model_settings.h, optimize.json, optimize.png")


def default_out(model: Path) -> Path:
    """``optimized`` beside a model file (out/kws/model.keras -> out/kws/optimized, as ``train --prune`` writes),
    ``MODEL.optimized`` beside a SavedModel directory: never a folder that holds other outputs."""
    return model.parent / "optimized" if not model.is_dir() else model.with_name(f"{model.name}.optimized")
