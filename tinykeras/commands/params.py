"""Bounded click parameter types shared by the commands: every numeric option has a range."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import click

MAX_SEED = 2**32 - 1
MAX_EPOCHS = 10_000


class Finite(click.FloatRange):
    """A FloatRange that also refuses NaN and infinities (click's range checks let NaN through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number is not None and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


SEED = click.IntRange(0, MAX_SEED)
EPOCHS = click.IntRange(1, MAX_EPOCHS)


def force_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--force``: the command may replace an output directory that tinykeras did not make (put it directly
    above the ``def``)."""

    @functools.wraps(f)
    def wrapper(*args: Any, force: bool = False, **kwargs: Any) -> Any:
        from tinykeras.fsutil import forcing

        with forcing(force):
            return f(*args, **kwargs)

    return click.option("--force", is_flag=True,
                        help="Replace the output directory even if it is not an earlier tinykeras output.")(wrapper)
