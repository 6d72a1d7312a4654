"""``tinykeras tune``: the most accurate model that fits a board, searched with Keras Tuner."""

from __future__ import annotations

from pathlib import Path

import click

from tinykeras.commands.report import html_option, require_html_model, write_html


def _bytes(value: str | None) -> int | None:
    """'200000', '192K', '1M' -> bytes (K = 1024)."""
    if value is None:
        return None
    text = value.strip().upper().rstrip("B")
    scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
    try:
        return int(float(text[:-1] if scale != 1 else text) * scale)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a byte count (e.g. 196608, 192K, 1M)") from None


@click.command()
@click.argument("recipe")
@click.option("--board", required=True, help="Board whose limits (RAM, flash minus reserved) every trial must meet.")
@click.option("--max-ram", help="Tighter RAM limit in bytes (K/M suffixes): arena + runtime + benchmark buffers.")
@click.option("--max-flash", help="Tighter flash limit in bytes (K/M suffixes): model + runtime estimate.")
@click.option("--max-latency-ms", type=float,
              help="Latency limit: qemu_m4 instructions per inference at the board's clock (an estimate).")
@click.option("--objective", default="accuracy", show_default=True, type=click.Choice(["accuracy", "auc"]),
              help="What the search maximises: of the int8 model on the validation split.")
@click.option("--max-trials", type=int, default=10, show_default=True, help="Trials in the whole search.")
@click.option("--algorithm", default="bayesian", show_default=True,
              type=click.Choice(["bayesian", "hyperband", "random"]), help="Keras Tuner oracle.")
@click.option("--quick", is_flag=True, help="The recipe's small dataset and few epochs (tests, smoke checks).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Dataset directory in the recipe's layout (default: synthesised into the cache).")
@click.option("--epochs", type=int, help="Maximum epochs per trial (early stopping may end sooner).")
@click.option("--patience", type=int, help="Early-stopping patience in epochs (default: the recipe's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--space", type=click.Path(path_type=Path),
              help="Search-space TOML replacing the recipe's (tinykeras/recipes/RECIPE_space.toml).")
@click.option("--model-fn", help="module:function (or path/file.py:function) building a tf_keras model from "
                                 "Keras Tuner's hp; replaces the recipe's search space.")
@click.option("--chief", "role", flag_value="chief", help="Run the oracle for distributed workers (no trials).")
@click.option("--worker", "role", flag_value="worker", help="Run trials for the chief at --oracle.")
@click.option("--oracle", metavar="HOST:PORT", help="The chief's address (sets KERASTUNER_ORACLE_IP/_PORT).")
@click.option("--worker-timeout", type=float, default=300.0, show_default=True,
              help="Chief: seconds without a heartbeat after which a worker's trial is recorded as failed.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Search directory (default: out/tune-RECIPE-BOARD). Rerun with the same one to resume.")
@html_option("the best trial's model and every trial (Pareto fronts); needs a trial that fits")
def tune(recipe: str, board: str, max_ram: str | None, max_flash: str | None, max_latency_ms: float | None,
         objective: str, max_trials: int, algorithm: str, quick: bool, data_dir: Path | None, epochs: int | None,
         patience: int | None, seed: int, space: Path | None, model_fn: str | None, role: str | None,
         oracle: str | None, worker_timeout: float, out_dir: Path | None, html_page: Path | None) -> None:
    """Search RECIPE's space (or --model-fn) for the most accurate int8 model that fits BOARD.

    Every trial trains with early stopping, converts to int8 as the board's library needs it (per-tensor
    FULLY_CONNECTED where it computes per-channel wrongly), checks ops, arena and flash as `tinykeras build
    --board BOARD` does (the board's default runtime), measures instructions per inference on qemu_m4 and
    scores the int8 model on the validation split (TFLite-Micro host interpreter). Trials that break a limit
    are recorded with the figure that broke it and never win. OUT gets tune.json (every trial), pareto.png and
    best/ (model.keras, model.tflite, rep.npz, settings.json, metrics.json) for `tinykeras build --board BOARD
    --model OUT/best/model.tflite`; OUT/search is Keras Tuner's state.

    \b
    Example:
      tinykeras tune kws --board nano33ble --max-trials 12 --data data/kws -o out/tune-kws
      tinykeras build --board qemu_m4 --model out/tune-kws/best/model.tflite --run
      tinykeras tune gesture --board pico --max-latency-ms 5 --algorithm random --quick
    \b
    Distributed (same command on every machine, Keras Tuner's gRPC oracle):
      tinykeras tune kws --board nano33ble -o shared/t --chief --oracle 10.0.0.1:8000
      tinykeras tune kws --board nano33ble -o shared/t --worker --oracle 10.0.0.1:8000   # on each worker
      (or set KERASTUNER_TUNER_ID=chief|tuner1, KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT)
    """
    from rich.table import Table

    from tinykeras.commands.console import console
    from tinykeras.tune import Progress, TuneOptions, require_feasible, summary_rows
    from tinykeras.tune import tune as run_tune

    require_html_model(None, html_page)
    options = TuneOptions(recipe=recipe, board=board, out=out_dir or Path("out") / f"tune-{recipe}-{board}",
                          max_ram=_bytes(max_ram), max_flash=_bytes(max_flash), max_latency_ms=max_latency_ms,
                          objective=objective, max_trials=max_trials, algorithm=algorithm, quick=quick,
                          data_dir=data_dir, epochs=epochs, patience=patience, seed=seed, model_fn=model_fn,
                          space=space, role=role or "local", oracle=oracle, worker_timeout=worker_timeout)
    result = run_tune(options, Progress())
    if result.role == "worker":
        click.echo(f"worker done: the chief at {oracle or 'KERASTUNER_ORACLE_IP'} has the results")
        return
    report = result.report
    table = Table(title=f"tune {recipe} --board {board}: {report['trials_total']} trials "
                        f"({report['trials_feasible']} fit, {report['trials_failed']} failed)")
    for column in ("trial", report["objective"], "RAM B", "flash B", "instructions", "fits"):
        table.add_column(column, justify="left" if column in ("trial", "fits") else "right")
    for row in summary_rows(report):
        table.add_row(*row)
    console().print(table)
    click.echo(f"wrote {result.out_dir}/tune.json, pareto.png" + (", best/" if result.best_dir else ""))
    if result.best_dir is not None:
        click.echo(f"next: tinykeras build --board {board} --model {result.best_dir}/model.tflite")
        if html_page is not None:
            write_html(result.best_dir / "model.tflite", html_page, [result.out_dir / "tune.json"])
    elif html_page is not None:
        click.echo(f"--html: no trial fits, so there is no best model to report on ({html_page} not written)",
                   err=True)
    require_feasible(report)
