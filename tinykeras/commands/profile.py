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
              help="Board to measure on (an emulated core: qemu_m3, qemu_m4, qemu_m7, qemu_m33, qemu_m55).")
@click.option("--runtime", type=click.Choice(RUNTIME_NAMES), default="aot", show_default=True,
              help="Runtime to profile (tflm: TFLite-Micro through its MicroProfiler interface, from a TFLM "
                   "tree: --tflm-dir or $TINYKERAS_TFLM_DIR).")
@click.option("--kernels", type=click.Choice(["reference", "cmsis-nn"]),
              help="TFLM kernels for --runtime tflm (default: the board's).")
@click.option("--tflm-dir", type=click.Path(path_type=Path), help="The TFLM tree for --runtime tflm.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path),
              help="Write profile.json, timeline.png (memory timeline) and layers.png (per-layer bars) here "
                   "(default: profile-<model> beside the model).")
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON instead of the table.")
@click.option("--no-benchmark", is_flag=True,
              help="Skip the separate benchmark build that gives the undisturbed whole-model count.")
@html_option("the model and this profile (per-layer bars, arena timeline)")
def profile(model: Path, board: str, runtime: str, kernels: str | None, tflm_dir: Path | None,
            out_dir: Path | None, as_json: bool, no_benchmark: bool, html_page: Path | None) -> None:
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
      tinykeras profile model.tflite --board qemu_m33 --runtime tflm --kernels cmsis-nn
    """
    from tinykeras.cgen import c_identifier
    from tinykeras.fsutil import check_output_dir
    from tinykeras.inspect import load_model_info, read_model_bytes, require_int8
    from tinykeras.keras_io import model_name
    from tinykeras.profile import profile as run_profile
    from tinykeras.profile import profile_summary, profile_table, write_profile
    from tinykeras.recipes.frontend import settings_beside

    require_html_model(model, html_page)

    info = load_model_info(model)
    require_int8(info)
    target = out_dir or model.resolve().parent / f"profile-{model.stem}"
    check_output_dir(target)  # a bad -o fails now, not after the QEMU runs
    data = read_model_bytes(model)
    settings = settings_beside(model)
    name = c_identifier(str((settings or {}).get("name") or "") or model_name(model))  # out/kws/int8/model -> kws
    if runtime != "tflm" and (kernels or tflm_dir):
        raise click.UsageError("--kernels and --tflm-dir apply to --runtime tflm")
    result = run_profile(data, info, board=board, runtime=runtime, name=name, benchmark=not no_benchmark,
                         kernels=kernels, tflm_dir=tflm_dir)
    paths = write_profile(result, target)
    if html_page is not None:
        write_html(model, html_page, [paths["json"]])
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return
    from tinykeras.commands.console import console as table_console

    console = table_console(highlight=False)
    console.print(profile_table(result))
    for line in profile_summary(result):
        console.print(line)
    console.print(f"wrote {paths['json']}, {paths['timeline'].name}, {paths['layers'].name}")
