"""``tinykeras bench`` (read a board's serial benchmark) and ``tinykeras bench compare``. No TensorFlow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click

from tinykeras.commands.params import Finite
from tinykeras.errors import DataError, InputFileError


@click.group(invoke_without_command=True)
@click.option("--port", default="auto", show_default=True,
              help="Serial port or pyserial URL: /dev/ttyUSB0, COM3, auto, socket://HOST:PORT, rfc2217://HOST:PORT.")
@click.option("--baud", default=115200, show_default=True, type=click.IntRange(50, 20_000_000), help="Baud rate.")
@click.option("--runs", type=click.IntRange(1, 10_000), help="Stop after N runs (default: as the firmware announces).")
@click.option("--timeout", default=30.0, show_default=True, type=Finite(0.1, 86_400.0),
              help="Give up after this many seconds without a benchmark record.")
@click.option("--replay", type=click.Path(path_type=Path), help="Parse a saved raw log instead of a port.")
@click.option("--protocol", type=click.Choice(["tk", "mlperf"]), default="tk", show_default=True,
              help="tk: read `@tk` records (docs/protocol.md); mlperf: drive the MLPerf Tiny DUT commands.")
@click.option("--model", "model_path", type=click.Path(path_type=Path),
              help="The .tflite the board runs, for MACs (time and cycles per MAC) when the firmware omits them.")
@click.option("--iterations", default=1, show_default=True, type=click.IntRange(1, 1_000_000),
              help="mlperf: inferences per `infer` command (one run = their mean).")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(0, 1_000_000),
              help="mlperf: warm-up inferences before the first run.")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="mlperf: int8 input to load with `db` (.npy/.npz first sample, or raw .bin bytes).")
@click.option("--dataset", type=click.Path(path_type=Path, file_okay=False),
              help="mlperf: an MLPerf Tiny dataset directory (y_labels.csv and its files, the official runner's "
                   "format; or its parent holding <model id>/): run every input once, report accuracy and AUC.")
@click.option("-o", "--out", "out_json", type=click.Path(path_type=Path), default=Path("bench/report.json"),
              show_default=True, help="Report JSON; the CSV, latency PNG and raw .log are written beside it.")
@click.option("--json", "as_json", is_flag=True, help="Print the report JSON instead of the table.")
@click.pass_context
def bench(ctx: click.Context, port: str, baud: int, runs: int | None, timeout: float, replay: Path | None,
          protocol: str, model_path: Path | None, iterations: int, warmup: int, input_path: Path | None,
          dataset: Path | None, out_json: Path, as_json: bool) -> None:
    """Read a benchmark from a board over serial and report latency statistics computed on the host.

    Writes OUT (JSON), OUT.csv (one row per run), OUT_latency.png (histogram) and OUT.log (every byte
    received). An incomplete benchmark (reset, disconnect, timeout, firmware error) still writes them
    and exits non-zero.

    \b
    Example:
      tinykeras bench --port /dev/ttyUSB0 --runs 100 -o esp32.json
      tinykeras bench --port socket://127.0.0.1:4321 --timeout 60 -o qemu.json
      tinykeras bench --replay esp32.log --model out/model.tflite -o esp32.json
      tinykeras bench --protocol mlperf --port /dev/ttyACM0 --iterations 10 --runs 20
      tinykeras bench --protocol mlperf --port /dev/ttyACM0 --dataset datasets/kws01 -o kws01.json
      tinykeras bench compare esp32.json qemu.json
    """
    if ctx.invoked_subcommand is not None:
        return
    import tinykeras.device as reader
    from tinykeras.report import bench_paths, bench_summary, bench_table, write_bench

    if dataset is not None:
        _run_dataset(port, baud, timeout, protocol, dataset, input_path, replay, out_json, as_json)
        return
    macs = _model_macs(model_path) if model_path is not None else None
    paths = bench_paths(out_json)
    if replay is not None:
        report = _replay(replay, protocol, runs, macs)
        if replay.resolve() != paths["log"].resolve():
            paths["log"].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(replay, paths["log"])
    elif protocol == "mlperf":
        report = reader.collect_mlperf(port, baud=baud, runs=runs or 10, iterations=iterations, warmup=warmup,
                                       timeout=timeout, raw_log=paths["log"], macs=macs,
                                       input_bytes=_input_bytes(input_path))
    else:
        report = _collect_live(port, baud, runs, timeout, paths["log"], macs)
    if macs is None and report.effective_macs() is None:
        report.macs = _shipped_model_macs(report.hello or {})
    data = report.to_json()
    write_bench(data, out_json)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        from tinykeras.commands.console import console as table_console

        console = table_console(highlight=False)
        console.print(bench_table(data))
        for line in bench_summary(data):
            console.print(line)
        console.print(f"wrote {paths['json']}, {paths['csv'].name}, {paths['png'].name}, {paths['log'].name}")
    report.raise_if_incomplete(saved=str(paths["json"].parent))


def _run_dataset(port: str, baud: int, timeout: float, protocol: str, dataset: Path, input_path: Path | None,
                 replay: Path | None, out_json: Path, as_json: bool) -> None:
    """``--dataset``: the runner's accuracy mode without the runner; writes OUT (JSON) and OUT.log."""
    from tinykeras.device.mlperf import collect_mlperf_dataset
    from tinykeras.fsutil import write_text_atomic
    from tinykeras.mlperf_data import LABELS

    if protocol != "mlperf" or input_path is not None or replay is not None:
        raise DataError("--dataset drives the MLPerf Tiny commands: use it with --protocol mlperf, without "
                        "--input or --replay")
    if not dataset.is_dir():
        raise InputFileError(f"{dataset}: no such dataset directory")
    if not (dataset / LABELS).is_file():
        subdirs = sorted(d for d in dataset.iterdir() if (d / LABELS).is_file())
        if len(subdirs) != 1:
            raise InputFileError(f"{dataset}: no {LABELS}; give the benchmark's own directory (e.g. datasets/kws01)")
        dataset = subdirs[0]
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    result = collect_mlperf_dataset(port, dataset, baud=baud, timeout=timeout,
                                    raw_log=out_json.with_suffix(".log"))
    write_text_atomic(out_json, json.dumps(result, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"{result['model']} on {result['board']}: {len(result['files'])} files")
        click.echo(f"Top 1% = {result['accuracy']:2.1f}")
        click.echo(f"AUC = {result['auc']:.3f}")
        click.echo(f"wrote {out_json}")


def _collect_live(port: str, baud: int, runs: int | None, timeout: float, log: Path, macs: int | None) -> Any:
    """Read with a live progress line on stderr (runs received so far)."""
    import sys

    import tinykeras.device as reader

    if not sys.stderr.isatty():
        return reader.collect(port, baud=baud, runs=runs, timeout=timeout, raw_log=log, macs=macs)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"reading {port}", total=runs)

        def on_event(event: Any) -> None:
            rec = event.record or {}
            if rec.get("event") == "hello" and runs is None and isinstance(rec.get("runs"), int):
                progress.update(task, total=rec["runs"])
            elif rec.get("event") == "run":
                progress.advance(task)

        return reader.collect(port, baud=baud, runs=runs, timeout=timeout, raw_log=log, macs=macs,
                              on_event=on_event)


def _replay(path: Path, protocol: str, runs: int | None, macs: int | None) -> Any:
    import tinykeras.device as reader

    if protocol == "tk":
        return reader.replay(path, runs=runs, macs=macs)
    if not path.exists():
        raise InputFileError(f"{path}: no such log file")
    return reader.parse_mlperf_chunks([path.read_bytes()], runs=runs, source=f"replay:{path.name}", macs=macs)


def _model_macs(path: Path) -> int:
    from tinykeras.inspect import load_model_info

    return load_model_info(path).macs


def _shipped_model_macs(hello: dict[str, Any]) -> int | None:
    """MACs of the shipped model the firmware names, when its sha256 prefix matches."""
    name, sha = hello.get("model"), hello.get("model_sha256")
    if not name or not sha:
        return None
    try:
        from tinykeras.inspect import load_model_info
        from tinykeras.resources import models_dir

        path = models_dir() / str(name) / "model.tflite"
        if not path.exists():
            return None
        info = load_model_info(path)
    except Exception:  # a missing or unreadable shipped model only means no per-MAC figures
        return None
    return info.macs if info.sha256.startswith(str(sha)) else None


def _input_bytes(path: Path | None) -> bytes | None:
    if path is None:
        return None
    if not path.exists():
        raise InputFileError(f"{path}: no such input file")
    if path.suffix in (".npy", ".npz"):
        import numpy as np

        from tinykeras.keras_io import load_arrays, split_xy

        x, _ = split_xy(load_arrays(path), str(path))
        sample = np.asarray(x[0] if x.ndim > 1 else x)
        if sample.dtype not in (np.int8, np.uint8):
            raise DataError(f"{path}: mlperf input must be int8 (got {sample.dtype}); quantize it first")
        return sample.tobytes()
    return path.read_bytes()


@bench.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def compare(a: Path, b: Path, as_json: bool) -> None:
    """Compare two bench reports side by side, with B/A ratios.

    \b
    Example:
      tinykeras bench compare tflm.json aot.json
    """
    from tinykeras.report import compare_rows, compare_table

    da, db = _load_report(a), _load_report(b)
    name_a, name_b = _column(da, a), _column(db, b)
    if name_a == name_b:  # told apart by the shortest path ending that differs (not a full absolute path)
        tail_a, tail_b = _distinct_tails(Path(a), Path(b))
        name_a, name_b = f"{name_a} [{tail_a}]", f"{name_b} [{tail_b}]"
    if as_json:
        rows = [{"metric": m, "a": x, "b": y, "ratio": r} for m, x, y, r in compare_rows(da, db)]
        click.echo(json.dumps({"a": str(a), "b": str(b), "a_label": name_a, "b_label": name_b, "rows": rows},
                              indent=2))
        return
    from tinykeras.commands.console import console as table_console

    table_console(highlight=False).print(compare_table(da, db, name_a, name_b))


def _column(data: dict[str, Any], path: Path) -> str:
    """Which model is which: 'model (board/runtime)' from the report, else the file name."""
    hello = data.get("hello") if isinstance(data.get("hello"), dict) else {}
    model = data.get("model") or hello.get("model")
    board = data.get("board") or hello.get("board")
    runtime = data.get("runtime") or hello.get("runtime")
    if not model:
        return path.stem if path.stem not in ("bench", "report") else str(path)
    where = "/".join(str(v) for v in (board, runtime) if v)
    return f"{model} ({where})" if where else str(model)


def _load_report(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise InputFileError(f"{path}: no such report; write one with `tinykeras bench -o {path}`")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a JSON bench report ({exc})") from exc
    if not isinstance(data, dict) or "latency_us" not in data:
        raise DataError(f"{path}: not a tinykeras bench report (no latency_us); write one with `tinykeras bench`")
    return data


def _distinct_tails(a: Path, b: Path) -> tuple[str, str]:
    """The shortest endings of two paths that differ: a.json/b.json, or run1/bench.json/run2/bench.json."""
    pa, pb = a.resolve().parts, b.resolve().parts
    for n in range(1, max(len(pa), len(pb)) + 1):
        ta, tb = "/".join(pa[-n:]), "/".join(pb[-n:])
        if ta != tb:
            return ta, tb
    return str(a), str(b)
