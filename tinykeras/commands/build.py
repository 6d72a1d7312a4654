"""``tinykeras build`` and ``tinykeras boards``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tinykeras.commands.params import force_option
from tinykeras.commands.report import html_option, require_html_model, write_html
from tinykeras.recipes import RECIPES
from tinykeras.types import RUNTIME_NAMES


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the boards as JSON.")
@click.option("--model", "-m", type=click.Path(path_type=Path, dir_okay=False),
              help="An int8 .tflite: list every board's latency estimate for it (both runtimes).")
def boards(as_json: bool, model: Path | None) -> None:
    """List the boards tinykeras can build for (one TOML file each in boards/).

    \b
    Example:
      tinykeras boards
      tinykeras boards --json
      tinykeras boards --model model.tflite     # milliseconds per inference on each board, before flashing
    """
    from tinykeras.boards import list_boards
    from tinykeras.libraries import board_library

    all_boards = list_boards()
    if model is not None:
        _latency_table(model, all_boards, as_json)
        return
    libs = {b.name: board_library(b) for b in all_boards}
    if as_json:
        click.echo(json.dumps([dict(b.summary(), library=getattr(libs[b.name], "id", None)) for b in all_boards],
                              indent=2))
        return
    rows = [("board", "kind", "core", "MHz", "flash KiB", "RAM KiB", "timer", "runtimes", "TFLM library",
             "proven on (emulator)")]
    for b in all_boards:
        runtimes = ", ".join(r + ("*" if r == b.default_runtime else "") for r in b.runtimes)
        rows.append((b.name, b.kind, b.mcu.core, f"{b.mcu.clock_hz / 1e6:g}", str(b.limits.flash_bytes // 1024),
                     str(b.limits.ram_bytes // 1024), b.timer.api, runtimes, getattr(libs[b.name], "id", "-"),
                     b.proven_on))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo("(* = default runtime)")


def _latency_table(model: Path, all_boards: list, as_json: bool) -> None:
    from tinykeras.inspect import load_model_info
    from tinykeras.latency import calibrations, core_class, estimates

    info = load_model_info(model)
    rows = estimates(info, all_boards)
    if as_json:
        click.echo(json.dumps([e.to_json() for e in rows], indent=2))
        return
    by_name = {b.name: b for b in all_boards}
    table = [("board", "core", "MHz", "runtime", "estimate")]
    for e in rows:
        b = by_name[e.board]
        table.append((e.board, b.mcu.core, f"{b.mcu.clock_hz / 1e6:g}", e.runtime, e.text()))
    widths = [max(len(r[k]) for r in table) for k in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{info.path}: {info.macs:,} MACs. Instructions per inference on the emulator of each board's core "
               "(measured for this model, or MACs x the median per-MAC count of the models measured there; Xtensa: "
               "the Cortex-M4 stand-in) x cycles per instruction calibrated on public figures counted on that core:")
    used = {core_class(b) for b in all_boards}
    for core, cal in sorted(calibrations().items()):
        if core in used:
            err = f"±{cal.loo_error * 100:.0f}% leave-one-out" if cal.loo_error is not None else "no error measurable"
            click.echo(f"  {core}: CPI {cal.cpi:.2f} per {cal.counts_core} instruction from {cal.figures} figure(s), "
                       f"{err}: {cal.board} ({cal.source})")
    click.echo("  cortex-m0plus, cortex-m7: no public TFLM figure found to calibrate on, so no estimate "
               "(tinykeras/data/latency.toml).")


@click.command()
@click.option("--board", "-b", required=True, help="Board name (see `tinykeras boards`).")
@click.option("--model", "-m", type=click.Path(path_type=Path),
              help="An int8 .tflite, or a .keras/.h5 model (quantized first). Default: the recipe's shipped model.")
@click.option("--recipe", type=click.Choice(RECIPES), default="kws", show_default=True,
              help="Which shipped model to use when --model is not given.")
@click.option("--runtime", type=click.Choice(RUNTIME_NAMES),
              help="tflm (TFLite-Micro; default on PlatformIO boards) or aot (tinykeras' generated C; "
                   "default on qemu_m4).")
@click.option("--kernels", type=click.Choice(["reference", "cmsis-nn", "esp-nn"]),
              help="TFLite-Micro kernels (--runtime tflm; default: the board's, see `tinykeras boards`).")
@click.option("--tflm-dir", type=click.Path(path_type=Path, file_okay=False),
              help="A TFLite-Micro tree at the board library's pinned commit, for boards that copy TFLM into the "
                   "project (pico, nucleo_l4r5zi, qemu_m4 --runtime tflm). Default: $TINYKERAS_TFLM_DIR, else a "
                   "pinned clone cached in ~/.cache/tinykeras (online).")
@click.option("--runs", type=click.IntRange(0, 10_000), default=10, show_default=True,
              help="Timed inferences the firmware reports at boot (0: none, only the MLPerf Tiny commands).")
@click.option("--warmup", type=click.IntRange(0, 10_000), default=2, show_default=True,
              help="Untimed warm-up inferences before them.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path),
              help="Project directory (default: out/BOARD-MODEL-RUNTIME).")
@click.option("--rep-data", type=click.Path(path_type=Path),
              help="Representative inputs (.npz with 'x' or .npy) to quantize a Keras --model.")
@click.option("--compile", "do_compile", is_flag=True, help="Compile the project (pio run / make).")
@click.option("--upload", is_flag=True, help="Compile and flash it (pio run -t upload).")
@click.option("--port", help="Serial port of the board (upload, monitor, run).")
@click.option("--monitor", is_flag=True, help="Open the serial monitor after flashing (pio device monitor).")
@click.option("--run", "do_run", is_flag=True,
              help="Run the benchmark and print its report (qemu_m4: in QEMU; PlatformIO boards: flash, then "
                   "read --port).")
@click.option("--name", help="Name of the project and its reports (default: the model's settings.json name, "
                             "else its file or directory name): out/BOARD-NAME-RUNTIME.")
@click.option("--custom-objects", help="Python file or import path defining a Keras model's custom layers.")
@click.option("--mlperf", is_flag=True,
              help="MLPerf Tiny mode: no boot benchmark (--runs 0); the board only answers the runner's commands.")
@click.option("--mlperf-model", type=click.Choice(["kws01", "vww01", "ic01", "ad01", "sww01"]),
              help="The MLPerf Tiny benchmark the model is for (its input/output conventions and `m-model-[...]`); "
                   "default: recognised by content for the published reference models.")
@click.option("--json", "as_json", is_flag=True, help="Print the build result as JSON.")
@html_option("the model, this build (fit, library) and, with --run, its benchmark")
@force_option
def build(board: str, model: Path | None, recipe: str, runtime: str | None, kernels: str | None,
          tflm_dir: Path | None, runs: int, warmup: int,
          out: Path | None, rep_data: Path | None, do_compile: bool, upload: bool, port: str | None,
          monitor: bool, do_run: bool, name: str | None, custom_objects: str | None, mlperf: bool,
          mlperf_model: str | None, as_json: bool, html_page: Path | None) -> None:
    """Render a firmware project for BOARD that benchmarks the model over serial.

    Checks that the model is int8, that the runtime has its ops and that it fits the board's flash and RAM
    before writing anything; then writes the project (PlatformIO, or a Makefile for qemu_m4) and, if asked,
    compiles, flashes, monitors or runs it.

    \b
    Example:
      tinykeras build --board esp32 --model out/model.tflite -o fw/esp32
      tinykeras build --board nano33ble --model model.keras --rep-data rep.npz --upload --monitor
      tinykeras build --board qemu_m4 --runtime aot --model out/model.tflite --run
      tinykeras build --board qemu_m4 --runtime tflm --kernels cmsis-nn --tflm-dir ~/tflite-micro --run
      tinykeras build --board qemu_m4 --model kws_standin.tflite --mlperf --mlperf-model kws01 --compile
    """
    from tinykeras.pipeline import BuildOptions, resolve_model
    from tinykeras.pipeline import build as run_build

    if mlperf:
        from click.core import ParameterSource

        if click.get_current_context().get_parameter_source("runs") != ParameterSource.DEFAULT and runs != 0:
            from tinykeras.errors import DataError

            raise DataError(f"--mlperf builds firmware without a boot benchmark: drop --runs {runs} or --mlperf")
        runs = 0
    require_html_model(model, html_page)
    options = BuildOptions(board=board, model=model, recipe=recipe, runtime=runtime, kernels=kernels,
                           tflm_dir=tflm_dir, runs=runs, warmup=warmup,
                           out=out, rep_data=rep_data, compile=do_compile, upload=upload, port=port,
                           monitor=monitor, run=do_run, name=name, custom_objects=custom_objects,
                           mlperf_model=mlperf_model)
    result = run_build(options, log=lambda msg: click.echo(msg, err=True))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        _print(result, do_compile, upload, do_run)
    if html_page is not None:
        write_html(resolve_model(options), html_page, [result.project_dir])
    if result.bench is not None and not result.bench.get("complete"):
        from tinykeras.errors import IncompleteRunError

        # a board that died, reset or disconnected before all runs is a failed build --run
        raise IncompleteRunError(f"incomplete benchmark: {result.bench.get('message')}; "
                                 f"partial report and raw log saved in {result.project_dir}")


def _print(result: Any, do_compile: bool, upload: bool, do_run: bool) -> None:
    arena = result.arena
    measured = f", {arena.measured_bytes:,} B measured on the host" if arena.measured_bytes is not None else ""
    fit = result.fit
    click.echo(f"wrote {result.project_dir} ({result.board.name}, runtime {result.runtime})")
    click.echo(f"  model {result.source_name}: {result.info.model_bytes:,} B, ops {', '.join(result.info.op_names)}")
    click.echo(f"  arena {arena.planned_bytes:,} B planned{measured}")
    if result.library is not None:
        lib = result.library
        click.echo(f"  TFLite-Micro: {lib['library']} ({lib['library_commit'][:7]}), {lib['kernels']} kernels, "
                   f"delivered as {lib['library_delivery']}")
    click.echo(f"  flash {fit['flash_needed']:,} / {fit['flash_available']:,} B, "
               f"RAM {fit['ram_needed']:,} / {fit['ram_available']:,} B (runtime sizes estimated)")
    if result.board.kind != "qemu":
        from tinykeras.latency import estimate

        click.echo(f"  latency on {result.board.name}: {estimate(result.info, result.board, result.runtime).text()}")
    if result.bench is not None:
        from tinykeras.commands.console import console
        from tinykeras.report import bench_summary, bench_table

        console().print(bench_table(result.bench))
        for line in bench_summary(result.bench):
            click.echo(line)
    if result.qemu is not None and result.qemu.get("instructions_per_inference"):
        q = result.qemu
        click.echo(f"  {q['instructions_per_inference']:,} instructions per inference; "
                   f"{q['estimate_ms']} ms ({q['estimate_label']})")
    if result.qemu is not None and result.qemu.get("sizes"):
        s = result.qemu["sizes"]
        click.echo(f"  ELF: flash {s['flash']:,} B (.text {s['text']:,}, .rodata {s['rodata']:,}), "
                   f"RAM {s['ram']:,} B (.data {s['data']:,}, .bss {s['bss']:,})")
    if not (do_compile or upload or do_run) and result.board.kind == "platformio":
        click.echo(f"next: pio run -d {result.project_dir} -t upload   (or rerun with --upload --monitor)")
