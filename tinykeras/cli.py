"""The ``tinykeras`` command: a click group that loads each subcommand only when it is used.

Subcommands live in ``tinykeras/commands/``; none of them imports TensorFlow at module level, so
``tinykeras --help`` and ``tinykeras bench --help`` answer quickly.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from tinykeras import __version__
from tinykeras.errors import TinyKerasError

# name -> "module:attribute", in the order a user meets them in the pipeline.
COMMANDS = {
    "train": "tinykeras.commands.train:train",
    "data": "tinykeras.commands.train:data",
    "optimize": "tinykeras.commands.optimize:optimize",
    "tune": "tinykeras.commands.tune:tune",
    "quantize": "tinykeras.commands.convert:quantize",
    "inspect": "tinykeras.commands.inspect:inspect",
    "emulate": "tinykeras.commands.emulate:emulate",
    "validate": "tinykeras.commands.validate:validate",
    "carray": "tinykeras.commands.convert:carray",
    "boards": "tinykeras.commands.build:boards",
    "libraries": "tinykeras.commands.libraries:libraries",
    "build": "tinykeras.commands.build:build",
    "bench": "tinykeras.commands.bench:bench",
    "profile": "tinykeras.commands.profile:profile",
    "report": "tinykeras.commands.report:report",
}

SHORT_HELP = {
    "train": "Train a recipe (kws, gesture, sensor) into a Keras model.",
    "data": "Make offline datasets (synthesised keywords, gestures, machine sounds).",
    "optimize": "Prune, quantization-aware train and convert, with a stage-by-stage report.",
    "tune": "Search (Keras Tuner) for the most accurate model that fits a board's limits.",
    "quantize": "Convert a Keras model to a full-integer int8 .tflite and C array.",
    "inspect": "Explain a .tflite: ops, quantization, MACs, memory, TFLM support.",
    "emulate": "Run a .tflite on the host with TFLite-Micro kernels (or the aot runtime).",
    "validate": "Per-output metrics of an int8 .tflite on held-out data (host or qemu_m4), CI thresholds.",
    "carray": "Write a .tflite as an aligned C array plus a settings header.",
    "boards": "List the boards tinykeras can build for.",
    "libraries": "List the TFLite-Micro libraries boards pin: commit, kernels, ops, known gaps.",
    "build": "Render (and optionally compile, flash, run) a firmware project for a board.",
    "bench": "Read a serial benchmark from a board and report latency statistics.",
    "profile": "Per-layer instructions, share, instructions per MAC and arena on the emulated board.",
    "report": "One self-contained HTML page: model, int8 quality, every board, time, memory, benchmarks.",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, with one error policy for all of them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in COMMANDS]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TinyKerasError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except OSError as exc:  # a full disk or a read-only/forbidden path: one line and its own exit code
            import errno

            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
                self._internal(ctx, exc)
            from tinykeras.fsutil import os_error

            error = os_error(exc, "a file")
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except Exception as exc:  # an unexpected failure: a short report, the traceback only on request
            self._internal(ctx, exc)

    @staticmethod
    def _internal(ctx: click.Context, exc: BaseException) -> None:
        if os.environ.get("TINYKERAS_DEBUG"):
            traceback.print_exc()
        where = traceback.extract_tb(exc.__traceback__)[-1]
        click.echo(
            f"internal error: {type(exc).__name__}: {str(exc).strip()[:300]} "
            f"(at {os.path.basename(where.filename)}:{where.lineno}). "
            "Rerun with TINYKERAS_DEBUG=1 for the traceback and please report it.",
            err=True,
        )
        ctx.exit(70)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="tinykeras")
def cli() -> None:
    """tinykeras: Keras model -> int8 .tflite -> checked, emulated -> firmware -> serial benchmark.

    \b
    Typical flow:
      tinykeras quantize model.keras --rep-data rep.npz -o out/
      tinykeras inspect out/model.tflite
      tinykeras emulate out/model.tflite --data test.npz --keras model.keras
      tinykeras build --board qemu_m4 --runtime aot --model out/model.tflite --run
      tinykeras build --board esp32 --model out/model.tflite --upload --monitor
    """


def _exit_on_signal(signum: int, frame: Any) -> None:
    """SIGTERM/SIGHUP unwind like an exception, so every ``finally`` runs (QEMU and workers are killed,
    temporary output directories removed) before tinykeras exits with 128 + the signal number."""
    raise SystemExit(128 + signum)


def main() -> None:
    import signal

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit_on_signal)
    cli.main(prog_name="tinykeras")


if __name__ == "__main__":
    sys.exit(main())
