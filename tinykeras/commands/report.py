"""``tinykeras report``: one self-contained HTML page of a model on its boards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--out", "page", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True,
              help="The HTML file to write; the JSON it is computed from goes to <name>-data/ beside it.")
@click.option("--from", "sources", multiple=True, type=click.Path(path_type=Path),
              help="Output folder (or JSON file) of another command to show: build --run projects (bench.json), "
                   "profile -o, validate -o, bench -o, tune -o. Repeat it; several benchmarks are compared.")
@click.option("--data", "data_path", type=click.Path(path_type=Path),
              help="Held-out data (.npz) for the int8 quality section (as for `tinykeras validate`).")
@click.option("--keras", "keras_path", type=click.Path(path_type=Path),
              help="The float model: int8 vs float agreement, MAE, RMSE, R² (needs --data).")
@click.option("--boards", default="all", show_default=True,
              help="Boards to check the fit on: 'all' or a comma-separated list (tinykeras boards).")
@click.option("--no-fit", is_flag=True, help="Leave out the fit check on the boards.")
@click.option("--run", is_flag=True,
              help="Also build and run the benchmark on the emulated qemu_m4 (aot) and profile it per layer.")
@click.option("--custom-objects", help="Python file or import path defining the Keras model's custom layers.")
def report(model: Path, page: Path, sources: tuple[Path, ...], data_path: Path | None, keras_path: Path | None,
           boards: str, no_fit: bool, run: bool, custom_objects: str | None) -> None:
    """Write one self-contained HTML page about MODEL.tflite: the model and its graph, int8 quality, every
    board (fits or not, library, what it cannot run and the fix, latency where measured), per-layer time
    and the arena timeline, benchmark statistics and comparisons, tune trials' Pareto front.

    The page needs no network (inline CSS, JS and SVG). Every figure comes from a JSON file: the ones
    given with --from and the ones this command computes into <page>-data/ first. Same inputs, same bytes.

    \b
    Example:
      tinykeras report models/kws/model.tflite --data models/kws/test.npz --keras models/kws/model.keras -o kws.html
      tinykeras report model.tflite --boards qemu_m4,esp32 --run -o report.html
      tinykeras report model.tflite --from out/qemu_m4-kws-aot --from out/qemu_m4-kws-tflm --from prof/ -o r.html
    """
    from tinykeras.htmlreport import write_report

    if keras_path is not None and data_path is None:
        from tinykeras.errors import InputFileError

        raise InputFileError("--keras needs --data: the float model is compared with the int8 one on that data")
    write_report(model, page, sources=list(sources), boards=boards, data=data_path, keras=keras_path, run=run,
                 fit=not no_fit, custom_objects=custom_objects, log=lambda m: click.echo(m, err=True))


def html_option(what: str) -> Any:
    """``--html PAGE`` for the commands whose outputs the report shows."""
    return click.option("--html", "html_page", type=click.Path(path_type=Path),
                        help=f"Also write a self-contained HTML report of {what} here (as `tinykeras report`; "
                             "its own JSON goes to <page>-data/ beside it).")


def write_html(model: Path, page: Path, sources: list[Path]) -> None:
    """The report page of ``model`` showing ``sources`` (no board fit check, nothing rerun)."""
    from tinykeras.htmlreport import write_report

    write_report(model, page, sources=sources, fit=False, log=lambda m: click.echo(m, err=True))


def require_html_model(model: Path | None, page: Path | None) -> None:
    """``--html`` reads the model's .tflite: refuse anything else before the command does its work."""
    if page is None:
        return
    from tinykeras.errors import InputFileError

    if model is not None and Path(model).suffix != ".tflite":
        raise InputFileError(f"--html: the report reads an int8 .tflite, not {model}; quantize it first and pass "
                             "the .tflite, or run `tinykeras report` on it afterwards")
    if Path(page).suffix.lower() not in (".html", ".htm"):
        raise InputFileError(f"--html {page}: the report is one HTML file; name it e.g. report.html")
