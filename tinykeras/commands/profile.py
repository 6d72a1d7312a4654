"""``tinykeras profile``: per-layer instructions, share, instructions per MAC and arena on the emulated board."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinykeras.commands.report import html_option, require_html_model, write_html
from tinykeras.types import RUNTIME_NAMES


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", default="qemu_m4", show_default=True,
              help="Board to measure on (the emulated qemu_m4 for now).")
@click.option("--runtime", type=click.Choice(RUNTIME_NAMES), default="aot", show_default=True,
              help="Runtime to profile (tflm: not available yet; it plugs in through TFLM's MicroProfiler).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path),
              help="Write profile.json, timeline.png (memory timeline) and layers.png (per-layer bars) here "
                   "(default: profile-<model> beside the model).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON instead of the table.")
@click.option("--no-benchmark", is_flag=True,
              help="Skip the separate benchmark build that gives the undisturbed whole-model count.")
@html_option("the model and this profile (per-layer bars, arena timeline)")
def profile(model: Path, board: str, runtime: str, out_dir: Path | None, as_json: bool, no_benchmark: bool,
            html_page: Path | None) -> None:
    """Profile MODEL.tflite per layer on the emulated board: instructions, share of the total, instructions
    per MAC and arena bytes live for every op, layers off the specialised fast paths marked with '*'.

    The profile firmware reads the board's counter after every op, so it is a separate build from the
    benchmark firmware; the whole-model count comes from the benchmark build. Writes a table (or JSON),
    profile.json, a memory timeline PNG (tensor lifetimes over the schedule, peak marked) and a per-layer
    bar chart PNG.

    \b
    Example:
      tinykeras profile models/kws/model.tflite
      tinykeras profile model.tflite --board qemu_m4 --runtime aot -o prof/ --json
    """
    from tinykeras.inspect import load_model_info, read_model_bytes, require_int8

    require_html_model(model, html_page)
    from tinykeras.profile import profile as run_profile
    from tinykeras.profile import profile_summary, profile_table, write_profile

    info = load_model_info(model)
    require_int8(info)
    data = read_model_bytes(model)
    result = run_profile(data, info, board=board, runtime=runtime, name=model.stem, benchmark=not no_benchmark)
    target = out_dir or model.resolve().parent / f"profile-{model.stem}"
    paths = write_profile(result, target)
    if html_page is not None:
        write_html(model, html_page, [paths["json"]])
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return
    from rich.console import Console

    console = Console(highlight=False)
    console.print(profile_table(result))
    for line in profile_summary(result):
        console.print(line)
    console.print(f"wrote {paths['json']}, {paths['timeline'].name}, {paths['layers'].name}")
