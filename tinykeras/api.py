"""The Python API: the same stages as the command line, on in-memory Keras models and numpy arrays.

    import tinykeras
    result = tinykeras.quantize(keras_model, x_rep, test_data=(x_test, y_test), out_dir="out/int8")
    report = tinykeras.validate(result, (x_test, y_test), keras=keras_model, min_top1=0.9)
    build = tinykeras.build(result, board="qemu_m4", runtime="aot", run=True)

``import tinykeras`` stays cheap: these functions are imported on first use, and TensorFlow only when a
Keras model is converted.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _loaded(model: Any, custom_objects: Any = None, name: str = "model") -> Any:
    from tinykeras.keras_io import LoadedModel, from_keras, load_model

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model, custom_objects=custom_objects)
    return from_keras(model, name=name)


def _split(data: Any) -> tuple[Any, Any]:
    """(inputs, labels) from an (x, y) tuple, a dict/.npz path, or bare inputs."""
    if isinstance(data, (str, Path)):
        from tinykeras.keras_io import load_arrays

        data = load_arrays(data)
    if isinstance(data, tuple) and len(data) == 2:
        return data[0], data[1]
    return data, None


def quantize(model: Any, representative_data: Any = None, *, test_data: Any = None, out_dir: str | Path | None = None,
             name: str | None = None, also: tuple[str, ...] = (), labels: list[str] | None = None,
             task: str = "auto", custom_objects: Any = None) -> Any:
    """Full-integer int8 conversion of a Keras model (object, path or LoadedModel).

    ``representative_data``: an array (one input), a list in input order or a dict keyed by input name.
    ``test_data``: held-out ``(x, y)`` (or x alone) for the float-vs-int8 metrics. ``out_dir``: also write
    model.tflite, the C array, settings.json and report.json there. Returns a
    :class:`tinykeras.convert.Conversion` (``.data`` bytes, ``.info``, ``.comparison``, names).
    """
    from tinykeras.convert import quantize_model, write_outputs
    from tinykeras.keras_io import model_labels, model_name

    loaded = _loaded(model, custom_objects, name or "model")
    x_test, y_test = _split(test_data) if test_data is not None else (None, None)
    y_list = None
    if y_test is not None:
        y_list = (model_labels(y_test, loaded.output_names) if isinstance(y_test, dict)
                  else list(y_test) if isinstance(y_test, list) else [np.asarray(y_test)])
    elif isinstance(x_test, dict):
        y_list = model_labels(x_test, loaded.output_names)
    conversions = quantize_model(loaded, representative_data, also, test_data=x_test, test_labels=y_list, task=task)
    display = name or (model_name(loaded.path) if isinstance(model, (str, Path)) else "model")
    conversions[0].name = display  # type: ignore[attr-defined]
    if out_dir is not None:
        from tinykeras.fsutil import atomic_output_dir

        with atomic_output_dir(Path(out_dir)) as tmp:
            write_outputs(conversions, tmp, source=str(loaded.path), labels=labels, name=display)
    return conversions[0]


def _tflite_bytes(model: Any) -> bytes:
    if hasattr(model, "data") and isinstance(model.data, (bytes, bytearray)):
        return bytes(model.data)
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    from tinykeras.inspect import read_model_bytes

    return read_model_bytes(model)


def validate(model: Any, data: Any, *, keras: Any = None, board: str | None = None, task: str = "auto",
             samples: int | None = None, **thresholds: float | None) -> dict[str, Any]:
    """Per-output metrics of an int8 model (Conversion, bytes or .tflite path) on held-out ``data``
    (``(x, y)``, a dict or an .npz path), on the host or on ``board`` ("qemu_m4"). ``thresholds``:
    min_top1, min_agreement, max_mae, max_rmse, min_r2, min_cosine; the report's ``passed`` says whether
    they held (see :func:`tinykeras.validation.validate`)."""
    from tinykeras.validation import validate as run

    keras_model = _loaded(keras) if keras is not None and not callable(getattr(keras, "predict_all", None)) \
        else keras
    x, y = _split(data)
    return run(_tflite_bytes(model), x, y, keras=keras_model, board=board, task=task, samples=samples,
               thresholds=thresholds, input_norm=_input_norm(model))


def _input_norm(model: Any) -> list[Any] | None:
    """The input normalisation of a Conversion, or the one recorded beside a .tflite path."""
    if hasattr(model, "input_norm"):
        return list(model.input_norm)
    if isinstance(model, (str, Path)):
        from tinykeras.input_norm import beside
        from tinykeras.inspect import load_model_info

        return beside(model, len(load_model_info(model).inputs))
    return None


def emulate(model: Any, x: np.ndarray | None = None, y: np.ndarray | None = None, **kwargs: Any) -> Any:
    """:func:`tinykeras.emulate.emulate` on a Conversion, bytes or path."""
    from tinykeras.emulate import emulate as run
    from tinykeras.emulate import load

    return run(load(model) if hasattr(model, "data") or isinstance(model, (str, Path)) else _tflite_bytes(model),
               x, y, **kwargs)


def build(model: Any, board: str, *, runtime: str | None = None, out: str | Path | None = None,
          name: str | None = None, run: bool = False, compile: bool = False, runs: int = 10,
          representative_data: Any = None) -> Any:
    """A firmware project for ``board`` from an int8 model (Conversion, bytes, .tflite path) or a Keras model
    (quantized first with ``representative_data``). Returns :class:`tinykeras.pipeline.BuildResult`."""
    from tinykeras.pipeline import BuildOptions
    from tinykeras.pipeline import build as run_build

    if not isinstance(model, (bytes, bytearray, str, Path)) and not hasattr(model, "data"):
        model = quantize(model, representative_data, name=name)
    display = name or getattr(model, "name", None) or "model"
    if isinstance(model, (str, Path)) and Path(model).suffix == ".tflite":
        return run_build(BuildOptions(board=board, model=Path(model), runtime=runtime, out=Path(out) if out else None,
                                      name=name, run=run, compile=compile, runs=runs))
    with tempfile.TemporaryDirectory(prefix="tinykeras-api-") as tmp:
        path = Path(tmp) / f"{display}.tflite"
        path.write_bytes(_tflite_bytes(model))
        return run_build(BuildOptions(board=board, model=path, runtime=runtime, out=Path(out) if out else None,
                                      name=display, run=run, compile=compile, runs=runs))
