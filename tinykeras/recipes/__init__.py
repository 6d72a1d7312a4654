"""Training recipes: keyword spotting (kws), gestures (gesture) and machine-sound anomaly detection (sensor).

Each recipe module defines a :class:`tinykeras.recipes.base.Recipe` subclass that owns its data loading,
features, augmentation, model, training configuration and evaluation. Importing this package does not import
TensorFlow.
"""

from __future__ import annotations

import importlib

from tinykeras.errors import DataError

RECIPES = ("kws", "gesture", "sensor")


def get_recipe(name: str):  # -> Recipe
    """The recipe object for ``name`` (kws, gesture or sensor)."""
    if name not in RECIPES:
        raise DataError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)}")
    module = importlib.import_module(f"tinykeras.recipes.{name}")
    return module.RECIPE
