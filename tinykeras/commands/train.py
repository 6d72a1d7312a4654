"""``tinykeras train`` and ``tinykeras data synth``."""

from __future__ import annotations

from pathlib import Path

import click

from tinykeras.commands.params import EPOCHS, SEED, force_option
from tinykeras.recipes import RECIPES


@click.command()
@click.argument("recipe", type=click.Choice(RECIPES))
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Dataset directory in the recipe's layout. Default: synthesise one into the cache "
                   "($TINYKERAS_CACHE or ~/.cache/tinykeras).")
@click.option("--epochs", type=EPOCHS, help="Maximum epochs (early stopping may end sooner). Default: the recipe's.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for data splits, init and shuffling.")
@click.option("--quick", is_flag=True, help="A small subset for a few epochs: for tests and smoke checks.")
@click.option("--model", "variant", help="Model variant (kws: dscnn, dscnn-small).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory. Default: out/<recipe>.")
@click.option("--prune", type=float,
              help="Then optimize: magnitude pruning to this sparsity (0-1), see `tinykeras optimize`.")
@click.option("--structured", metavar="2:4|channels[:FRACTION]", help="Then optimize: 2:4 or channel pruning.")
@click.option("--qat", is_flag=True, help="Then optimize: quantization-aware training before int8.")
@click.option("--optimize-epochs", type=EPOCHS, default=4, show_default=True,
              help="Fine-tuning epochs per optimization stage.")
@click.option("--per-tensor-dense", is_flag=True,
              help="Then optimize: one weight scale per FULLY_CONNECTED in the int8 model (see `tinykeras quantize`).")
@force_option
def train(recipe: str, data_dir: Path | None, epochs: int | None, seed: int, quick: bool, variant: str | None,
          out_dir: Path | None, prune: float | None, structured: str | None, qat: bool,
          optimize_epochs: int, per_tensor_dense: bool) -> None:
    """Train RECIPE (kws, gesture or sensor) into OUT: model.keras, test.npz, rep.npz, history.csv,
    training_curves.png, confusion_matrix.png (roc.png for sensor), metrics.json and settings.json.

    \b
    Example:
      tinykeras data synth kws data/kws --per-word 200
      tinykeras train kws --data data/kws --epochs 40 -o out/kws
      tinykeras quantize out/kws/model.keras --rep-data out/kws/rep.npz -o out/kws/int8
      tinykeras train kws --prune 0.75 --qat -o out/kws     # + out/kws/optimized/ (stage report)
    """
    from tinykeras.train import train as run_training

    options = None
    if per_tensor_dense and not (prune is not None or structured or qat):
        raise click.UsageError("--per-tensor-dense applies to the optimized int8 model: add --prune, --structured "
                               "or --qat, or run `tinykeras quantize MODEL.keras --per-tensor-dense` after training")
    if prune is not None or structured or qat:
        from tinykeras.optimize import OptimizeOptions

        options = OptimizeOptions(prune=prune, structured=structured, qat=qat, epochs=optimize_epochs, seed=seed,
                                  per_tensor_dense=per_tensor_dense)
        options.validate()  # bad options fail before training starts
    out_dir = out_dir or Path("out") / recipe
    from tinykeras.fsutil import check_output_dir

    check_output_dir(out_dir)  # a bad -o fails now, not after the data is loaded and TensorFlow started
    result = run_training(recipe, out_dir, data_dir=data_dir, epochs=epochs, seed=seed, quick=quick,
                          variant=variant)
    m = result.metrics
    click.echo(f"{recipe}: test {m['metric']} {m['value']:.4f} ({m['samples']['test']} test samples, "
               f"{m['epochs_run']} epochs, {result.seconds:.0f} s)")
    click.echo(f"wrote {out_dir}/: {', '.join(sorted(p.name for p in Path(out_dir).iterdir() if p.is_file()))}")
    click.echo(f"model.keras is a tf_keras (Keras 2) model: in Python, tf_keras.models.load_model("
               f"\"{Path(out_dir) / 'model.keras'}\") (Keras 3's keras.models.load_model cannot read it)")
    if options is not None:
        from tinykeras.commands.console import console
        from tinykeras.optimize import dataset_from_recipe, optimize_to_dir, stage_table

        optimized = Path(out_dir) / "optimized"
        outcome = optimize_to_dir(result.model, dataset_from_recipe(result.data), options, optimized,
                                  source=str(Path(out_dir) / "model.keras"), labels=list(result.data.classes),
                                  log=lambda msg: click.echo(f"optimize: {msg}", err=True))
        console().print(stage_table(outcome))
        click.echo(f"wrote {optimized}/: model.tflite (int8), model_data.h, model_data.cc, model_settings.h, "
                   "optimize.json, optimize.png")


@click.group()
def data() -> None:
    """Make offline datasets in the layouts the recipes read.

    \b
    Example:
      tinykeras data synth kws data/kws --per-word 200
      tinykeras data synth gesture data/gesture
      tinykeras data synth sensor data/sensor
    """


@data.command()
@click.argument("recipe", type=click.Choice(RECIPES))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--per-word", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="kws: clips per keyword.")
@click.option("--unknown", type=click.IntRange(0, 1_000_000), default=400, show_default=True,
              help="kws: clips of non-keywords, spread over 25 words.")
@click.option("--per-class", type=click.IntRange(1, 100_000), default=80, show_default=True,
              help="gesture: windows per class per subject.")
@click.option("--normal", type=click.IntRange(1, 100_000), default=200, show_default=True,
              help="sensor: normal training clips.")
@click.option("--seed", type=SEED, default=0, show_default=True)
def synth(recipe: str, dest: Path, per_word: int, unknown: int, per_class: int, normal: int, seed: int) -> None:
    """Synthesise a RECIPE dataset into DEST (kws needs espeak-ng and sox).

    \b
    kws:     Speech Commands v2 layout; test = held-out accents (en-gb-scotland, en-029),
             validation = en-us-nyc, training = en-us, en-gb, en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd
             and English read by the de, nl, it, pl, af and es voices
    gesture: <class>/<subject>_<k>.csv (128 x ax,ay,az in g, 25 Hz); held-out subjects for val/test
    sensor:  train/normal, test/normal, test/anomaly WAVs of a synthetic rotating machine

    \b
    Example:
      tinykeras data synth kws data/kws --per-word 200
    """
    from tinykeras.errors import DataError, OutputError
    from tinykeras.fsutil import atomic_output_dir, check_output_location

    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{dest}: exists and is not a directory; give DEST as a new directory for the dataset")
    check_output_location(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DataError(f"{dest}: not empty; pick a new directory for the synthesised dataset")
    with atomic_output_dir(dest) as tmp:
        if recipe == "kws":
            from tinykeras.datasets.kws_synth import KwsSynthConfig, synthesize

            counts = synthesize(tmp, KwsSynthConfig(per_word=per_word, unknown_total=unknown, seed=seed))
        elif recipe == "gesture":
            from tinykeras.datasets.gesture_synth import GestureSynthConfig
            from tinykeras.datasets.gesture_synth import synthesize as synth_gesture

            counts = synth_gesture(tmp, GestureSynthConfig(per_class=per_class, seed=seed))
        else:
            from tinykeras.datasets.sensor_synth import SensorSynthConfig
            from tinykeras.datasets.sensor_synth import synthesize as synth_sensor

            counts = synth_sensor(tmp, SensorSynthConfig(train_normal=normal, seed=seed))
    click.echo(f"wrote {dest}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
