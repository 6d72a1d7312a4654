"""Bounded click parameter types shared by the commands: every numeric option has a range."""

from __future__ import annotations

import math
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
FRACTION_OPEN = Finite(0.0, 1.0, min_open=True, max_open=True)
