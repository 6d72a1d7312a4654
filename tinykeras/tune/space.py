"""Search spaces as data (``tinykeras/recipes/<recipe>_space.toml``) and ``--model-fn`` hypermodels."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinykeras.errors import DataError, TinyKerasError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPACE_FIELDS = ("about", "values", "min", "max", "step", "default", "sampling")


def space_path(recipe: str) -> Path:
    return Path(__file__).parents[1] / "recipes" / f"{recipe}_space.toml"


def load_space(recipe: str, path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The validated search space of ``recipe`` (its packaged file, or ``path``): {key: entry}."""
    from tinykeras.recipes import get_recipe

    rec = get_recipe(recipe)
    path = Path(path) if path is not None else space_path(recipe)
    if not path.exists():
        raise DataError(f"{path}: no such search-space file" if path != space_path(recipe) else
                        f"recipe {recipe} has no search space ({path.name}); use --model-fn module:function")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid TOML ({exc})") from exc
    known = rec.search_keys
    space: dict[str, dict[str, Any]] = {}
    for key, entry in raw.items():
        if key not in known:
            raise DataError(f"{path}: unknown search-space key '{key}' for recipe {recipe}"
                            f"{did_you_mean(key, known)} Known keys: {', '.join(known)}")
        if not isinstance(entry, dict):
            raise DataError(f"{path}: [{key}] must be a table with values = [...] or min/max")
        for field in entry:
            if field not in SPACE_FIELDS:
                raise DataError(f"{path}: [{key}] has unknown field '{field}'{did_you_mean(field, SPACE_FIELDS)} "
                                f"Known fields: {', '.join(SPACE_FIELDS)}")
        if "values" in entry:
            values = entry["values"]
            if not isinstance(values, list) or not values or len({type(v) for v in values}) != 1:
                raise DataError(f"{path}: [{key}] values must be a non-empty list of one type")
            if "default" in entry and entry["default"] not in values:
                raise DataError(f"{path}: [{key}] default {entry['default']!r} is not one of its values")
        elif "min" in entry and "max" in entry:
            if entry["min"] > entry["max"]:
                raise DataError(f"{path}: [{key}] min {entry['min']} is above max {entry['max']}")
        else:
            raise DataError(f"{path}: [{key}] needs values = [...] or min and max")
        space[key] = dict(entry)
    if not space:
        raise DataError(f"{path}: an empty search space")
    return space


def declare(hp: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Declare every entry of ``space`` on Keras Tuner's ``hp``; return the trial's values."""
    values: dict[str, Any] = {}
    for key, entry in space.items():
        if "values" in entry:
            values[key] = hp.Choice(key, entry["values"], default=entry.get("default", entry["values"][0]))
        elif all(isinstance(entry[k], int) for k in ("min", "max")) and isinstance(entry.get("step", 1), int):
            values[key] = hp.Int(key, entry["min"], entry["max"], step=entry.get("step", 1),
                                 default=entry.get("default"), sampling=entry.get("sampling", "linear"))
        else:
            values[key] = hp.Float(key, float(entry["min"]), float(entry["max"]), step=entry.get("step"),
                                   default=entry.get("default"), sampling=entry.get("sampling", "linear"))
    return values


def load_model_fn(spec: str) -> Callable[..., Any]:
    """``module:function`` (a module on sys.path or a path/to/file.py) -> the function."""
    if ":" not in spec:
        raise DataError(f"--model-fn '{spec}': expected module:function (e.g. my_models:build)")
    module_name, attr = spec.rsplit(":", 1)
    try:
        if module_name.endswith(".py") or os.sep in module_name:
            file = Path(module_name)
            if not file.exists():
                raise DataError(f"--model-fn: {file}: no such file")
            spec_obj = importlib.util.spec_from_file_location(file.stem, file)
            module = importlib.util.module_from_spec(spec_obj)  # type: ignore[arg-type]
            spec_obj.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except TinyKerasError:
        raise
    except Exception as exc:
        raise DataError(f"--model-fn: cannot import '{module_name}' ({type(exc).__name__}: {exc})") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        names = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
        raise DataError(f"--model-fn: '{module_name}' has no function '{attr}'{did_you_mean(attr, names)}")
    return fn
