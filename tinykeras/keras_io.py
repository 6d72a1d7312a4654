"""Load Keras models and array data. The one place TensorFlow is imported and set up for Keras 2.

tfmot rejects Keras 3 models, so tinykeras runs TensorFlow with ``TF_USE_LEGACY_KERAS=1`` and uses
``tf_keras`` throughout. A model saved by Keras 3 is loaded through Keras 3 and exported to a SavedModel
for conversion; paths that need tfmot (pruning, QAT) explain how to re-save it.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import DataError, InputFileError, ModelError, TinyKerasError

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def import_tf() -> Any:
    """Import TensorFlow quietly, with legacy (Keras 2) Keras. Raises ModelError if Keras 3 is active."""
    import logging
    import warnings

    from tinykeras.stdio import capture_native_stderr

    if not os.path.exists("/proc/driver/nvidia/version"):  # no NVIDIA driver: skip CUDA probing and its noise
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    with capture_native_stderr():  # absl start-up noise
        import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
    version = getattr(tf.keras, "__version__", "2")
    if not str(version).startswith("2"):
        raise ModelError(
            f"tf.keras is Keras {version}; tinykeras needs Keras 2 (tf_keras). "
            "Set TF_USE_LEGACY_KERAS=1 before TensorFlow is imported and `pip install tf-keras`"
        )
    return tf


def tf_keras() -> Any:
    import_tf()
    import tf_keras as keras

    return keras


@dataclass
class InputSpec:
    """One model input: its name, shape (batch axis first, None when free) and numpy dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"

    @property
    def is_integer(self) -> bool:
        return np.dtype(self.dtype).kind in "iub"


@dataclass
class LoadedModel:
    """A model ready to convert: a tf_keras model, a Keras 3 model, or a SavedModel signature.

    ``predict`` maps one float batch to the first output (kept for single-output callers);
    ``predict_all`` maps a list of input batches (model input order) to every output in Keras order.
    """

    path: Path
    keras_model: Any | None  # tf_keras.Model when loadable as Keras 2
    saved_model_dir: Path | None  # set when the model is a non-Keras SavedModel
    origin: str  # "keras2", "keras3" or "saved_model"
    predict: Any  # callable: np.ndarray (batched) -> np.ndarray (first output)
    input_shape: tuple[int | None, ...] = ()  # of input 0, with the batch axis first
    inputs: list[InputSpec] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    predict_all: Any = None  # callable: list[np.ndarray] -> list[np.ndarray]
    keras3_model: Any | None = None
    signature: Any | None = None  # the SavedModel's serving function (origin "saved_model")
    loaded_object: Any | None = None  # what tf.saved_model.load returned (keeps the variables alive)

    def __post_init__(self) -> None:
        model = self.keras_model if self.keras_model is not None else self.keras3_model
        if not self.inputs:
            if model is not None:
                self.inputs = keras_inputs(model)
            elif self.input_shape:
                self.inputs = [InputSpec("input", tuple(self.input_shape))]
        if not self.input_shape and self.inputs:
            self.input_shape = self.inputs[0].shape
        if not self.output_names and model is not None:
            self.output_names = keras_output_names(model)
        if self.predict_all is None:
            if model is not None:
                self.predict_all = _keras_predict_all(model, len(self.inputs))
            else:
                single = self.predict
                self.predict_all = lambda xs: [np.asarray(single(xs[0]))]
        if not self.output_names:
            self.output_names = ["output_0"]

    @property
    def name(self) -> str:
        """The model's name for projects and reports: the file stem (the directory for model.* files)."""
        return model_name(self.path)


def model_name(path: Path | str) -> str:
    """``out/kws/model.keras`` -> ``kws``; ``mnist_mlp.h5`` -> ``mnist_mlp``; a SavedModel dir -> its name."""
    path = Path(path)
    stem = path.name if path.is_dir() else path.stem
    if stem in ("model", "saved_model", "int8", "float32") and path.parent.name not in ("", "."):
        parent = path.parent
        while parent.name in ("int8", "float32", "quantized", "out") and parent.parent.name not in ("", "."):
            parent = parent.parent
        stem = parent.name
    return stem or "model"


def _safe_name(name: str, index: int, prefix: str) -> str:
    import re

    clean = re.sub(r"[^A-Za-z0-9_]", "_", str(name or "")).strip("_")
    return clean or f"{prefix}_{index}"


def keras_inputs(model: Any) -> list[InputSpec]:
    """Input names, shapes and dtypes of a tf_keras or Keras 3 model (subclassed: from its build shape)."""
    tensors = list(getattr(model, "inputs", None) or [])
    specs = []
    for k, t in enumerate(tensors):
        name = getattr(t, "name", "") or ""
        name = _history_name(t) or name
        name = name.split(":")[0]
        dtype = np.dtype(getattr(getattr(t, "dtype", None), "name", None) or str(getattr(t, "dtype", "float32")))
        specs.append(InputSpec(_safe_name(name, k, "input"), tuple(t.shape), dtype.name))
    if specs:
        return specs
    try:  # a subclassed tf_keras model: its saved call signature
        spec = model.save_spec()
        first = spec[0][0] if spec else None
        if first is not None:
            return [InputSpec("input", tuple(first.shape), np.dtype(first.dtype.name).name)]
    except Exception:
        pass
    shape = getattr(model, "_build_shapes_dict", None) or {}
    if isinstance(shape, dict) and len(shape) == 1:
        return [InputSpec("input", tuple(next(iter(shape.values()))))]
    return []


def _history_name(tensor: Any) -> str | None:
    """The name of the layer that produced a Keras 2 or Keras 3 symbolic tensor."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    owner = getattr(history, "layer", None) or getattr(history, "operation", None)
    if owner is None and isinstance(history, tuple) and history:
        owner = history[0]
    return getattr(owner, "name", None)


def keras_output_names(model: Any) -> list[str]:
    names = list(getattr(model, "output_names", None) or [])
    if not names:
        names = [_history_name(t) or "" for t in (getattr(model, "outputs", None) or [])]
    count = len(getattr(model, "outputs", None) or []) or len(names) or 1
    names = (names + [f"output_{k}" for k in range(len(names), count)])[:count]
    return [_safe_name(n, k, "output") for k, n in enumerate(names)]


def _as_list(out: Any, names: list[str] | None = None) -> list[Any]:
    if isinstance(out, dict):
        keys = [n for n in (names or []) if n in out] or list(out)
        return [out[k] for k in keys]
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def _keras_predict_all(model: Any, n_inputs: int) -> Any:
    raw_names = list(getattr(model, "output_names", None) or [])

    def predict_all(xs: list[np.ndarray]) -> list[np.ndarray]:
        arg = list(xs) if n_inputs > 1 else xs[0]
        return [np.asarray(o) for o in _as_list(model(arg, training=False), raw_names)]

    return predict_all


def load_custom_objects(spec: str | Path | None) -> dict[str, Any]:
    """Import ``module.py`` (a path) or ``package.module`` (an import path) and return its classes and
    functions by name; importing it also runs its ``register_keras_serializable`` decorators."""
    if spec is None:
        return {}
    import importlib
    import importlib.util
    import sys

    text = str(spec)
    try:
        if text.endswith(".py") or Path(text).exists():
            path = Path(text)
            if not path.exists():
                raise InputFileError(f"{path}: no such custom-objects module")
            name = f"tinykeras_custom_{abs(hash(str(path.resolve())))}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise ModelError(f"{path}: not a Python module")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(text)
    except TinyKerasError:
        raise
    except Exception as exc:
        raise ModelError(f"--custom-objects {text}: importing it failed ({type(exc).__name__}: "
                         f"{_first_line(exc)})") from exc
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and callable(v)}


def _saved_by_keras3(path: Path) -> bool:
    """A .keras zip whose metadata names Keras 3."""
    try:
        with zipfile.ZipFile(path) as archive:
            import json

            meta = json.loads(archive.read("metadata.json"))
        return str(meta.get("keras_version", "2")).startswith("3")
    except (KeyError, zipfile.BadZipFile, ValueError, OSError):
        return False


def _saved_by_keras3_h5(path: Path) -> bool:
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            version = handle.attrs.get("keras_version", b"2")
        version = version.decode() if isinstance(version, bytes) else str(version)
        return version.startswith("3")
    except Exception:
        return False


def _is_keras_model(obj: Any) -> bool:
    return callable(obj) and hasattr(obj, "layers") and hasattr(obj, "get_config")


def load_model(path: Path | str, custom_objects: dict[str, Any] | str | Path | None = None) -> LoadedModel:
    """Load a ``.keras``, ``.h5`` or SavedModel directory (Keras 2 or 3, ``model.export()`` too).

    ``custom_objects``: a dict of classes/functions, or a module path / import path to read them from.
    Raises InputFileError or ModelError.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file or directory")
    custom = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)
    tf = import_tf()
    keras = tf_keras()
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelError(f"{path}: a directory, but not a SavedModel (no saved_model.pb); "
                             "pass a .keras, .h5 or SavedModel directory")
        try:
            with keras.utils.custom_object_scope(custom):
                model = keras.models.load_model(path, compile=False)
            if _is_keras_model(model) and (getattr(model, "inputs", None) or hasattr(model, "save_spec")):
                return _from_keras2(path, model, "keras2")
        except Exception:
            pass
        try:
            loaded = tf.saved_model.load(str(path))
            fn = loaded.signatures["serving_default"]
        except KeyError as exc:
            raise ModelError(f"{path}: the SavedModel has no 'serving_default' signature; export it with "
                             "model.export(DIR) (Keras 3) or tf.saved_model.save(model, DIR)") from exc
        except Exception as exc:
            raise ModelError(f"{path}: cannot load the SavedModel ({_first_line(exc)})") from exc
        return _from_signature(path, fn, path, "saved_model", loaded)
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(f"{path}: unknown model format '{suffix}'; pass a .keras, .h5 or SavedModel directory")
    if suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a .keras archive (corrupt, truncated or another format); "
                         "re-save it with model.save('model.keras')")
    if (suffix == ".keras" and _saved_by_keras3(path)) or (suffix != ".keras" and _saved_by_keras3_h5(path)):
        return _load_keras3(path, custom)
    try:
        with keras.utils.custom_object_scope(custom):
            model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        try:
            return _load_keras3(path, custom)
        except ModelError:
            pass
        reason = _first_line(exc)
        hint = "re-save it with model.save('model.keras')"
        if "lambda" in reason.lower() and "safe_mode" in str(exc):
            raise ModelError(f"{path}: the model has a Lambda layer holding Python code, which tinykeras does not "
                             "run from a file (unsafe deserialization); replace it with built-in layers, or load "
                             "the model yourself and call tinykeras.quantize(model, data) from Python") from exc
        if "unknown" in reason.lower() or "custom" in reason.lower() or "not found" in reason.lower():
            hint = ("it uses custom layers or objects: pass the module defining them with --custom-objects "
                    "my_layers.py (or an import path), or from Python call tinykeras.quantize(model, data)")
        raise ModelError(f"{path}: cannot load the Keras model ({reason}); {hint}") from exc
    return _from_keras2(path, model, "keras2")


def _from_keras2(path: Path, model: Any, origin: str) -> LoadedModel:
    inputs = keras_inputs(model)
    predict_all = _keras_predict_all(model, max(1, len(inputs)))
    return LoadedModel(path=path, keras_model=model, saved_model_dir=None, origin=origin,
                       predict=lambda x: predict_all([x])[0], inputs=inputs, predict_all=predict_all)


def from_keras(model: Any, name: str = "model") -> LoadedModel:
    """A LoadedModel around an in-memory tf_keras or Keras 3 model (the Python API)."""
    if isinstance(model, LoadedModel):
        return model
    if not _is_keras_model(model):
        raise ModelError(f"expected a Keras model, got {type(model).__name__}")
    import_tf()
    module = type(model).__module__
    is_k3 = not module.startswith("tf_keras") and _is_keras3_object(model)
    path = Path(f"<in-memory model {name}>")
    if is_k3:
        predict_all = _keras_predict_all(model, max(1, len(keras_inputs(model))))
        return LoadedModel(path=path, keras_model=None, saved_model_dir=None, origin="keras3",
                           predict=lambda x: predict_all([x])[0], predict_all=predict_all, keras3_model=model)
    return _from_keras2(path, model, "keras2")


def _is_keras3_object(model: Any) -> bool:
    try:
        import keras as keras3

        return str(keras3.__version__).startswith("3") and isinstance(model, keras3.Model)
    except ImportError:
        return False


def _load_keras3(path: Path, custom: dict[str, Any] | None = None) -> LoadedModel:
    """Load with Keras 3; conversion exports it with a batch-1 signature."""
    try:
        import keras as keras3

        model = keras3.saving.load_model(path, compile=False, custom_objects=custom or None)
    except Exception as exc:
        reason = _first_line(exc)
        import re

        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", reason)
        if missing:
            reason = f"class '{missing.group(1)}' is not registered in this process"
        hint = ("Re-save it from Keras 3 with model.export('DIR') and pass DIR, or rebuild it with tf_keras")
        if missing or "custom" in reason.lower() or "unknown" in reason.lower():
            hint = ("It uses custom layers or objects: pass the module defining them with --custom-objects "
                    "my_layers.py (or an import path)")
        raise ModelError(f"{path}: saved by Keras 3 and not loadable here ({reason}). {hint}") from exc
    import_tf()
    predict_all = _keras_predict_all(model, max(1, len(keras_inputs(model))))
    return LoadedModel(path=path, keras_model=None, saved_model_dir=None, origin="keras3",
                       predict=lambda x: predict_all([x])[0], predict_all=predict_all, keras3_model=model)


def _from_signature(path: Path, fn: Any, saved_dir: Path, origin: str, loaded: Any = None) -> LoadedModel:
    tf = import_tf()
    items = list(fn.structured_input_signature[1].items())
    if not items:
        raise ModelError(f"{path}: the SavedModel signature has no named inputs")
    inputs = [InputSpec(_safe_name(name, k, "input"), tuple(spec.shape), np.dtype(spec.dtype.name).name)
              for k, (name, spec) in enumerate(items)]
    keys = [name for name, _ in items]
    out_keys = list(fn.structured_outputs) if isinstance(fn.structured_outputs, dict) else []

    def predict_all(xs: list[np.ndarray]) -> list[np.ndarray]:
        out = fn(**{k: tf.constant(np.asarray(x), dtype=spec.dtype)
                    for k, x, (_, spec) in zip(keys, xs, items, strict=False)})
        return [np.asarray(o) for o in _as_list(out, out_keys)]

    return LoadedModel(path=path, keras_model=None, saved_model_dir=saved_dir, origin=origin,
                       predict=lambda x: predict_all([x])[0], inputs=inputs,
                       output_names=[_safe_name(k, j, "output") for j, k in enumerate(out_keys)] or ["output_0"],
                       predict_all=predict_all, signature=fn, loaded_object=loaded)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def load_arrays(path: Path | str) -> dict[str, np.ndarray]:
    """Read ``.npz`` (all arrays) or ``.npy`` (as ``x``). Raises DataError on anything else."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    try:
        if path.suffix == ".npy":
            return {"x": np.load(path, allow_pickle=False)}
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {k: archive[k] for k in archive.files}
    except Exception as exc:
        raise DataError(f"{path}: not a readable numpy file ({_first_line(exc)})") from exc
    raise DataError(f"{path}: expected a .npz or .npy file")


def split_xy(arrays: dict[str, np.ndarray], path: str = "data") -> tuple[np.ndarray, np.ndarray | None]:
    """Pick inputs (``x``, ``x_test``, ``x_rep`` or the only array) and labels (``y``, ``y_test``) if any."""
    for key in ("x", "x_test", "x_rep", "inputs", "features"):
        if key in arrays:
            x = arrays[key]
            break
    else:
        if len(arrays) == 1:
            x = next(iter(arrays.values()))
        else:
            raise DataError(f"{path}: cannot tell which array is the input; name it 'x' "
                            f"(found: {', '.join(sorted(arrays))})")
    y = None
    for key in ("y", "y_test", "labels"):
        if key in arrays:
            y = arrays[key]
            break
    if y is not None and len(y) != len(x):
        raise DataError(f"{path}: {len(x)} inputs but {len(y)} labels")
    return x, y


def match_input_shape(x: np.ndarray, shape: tuple[int | None, ...], path: str = "data") -> np.ndarray:
    """Reshape/validate ``x`` to a batch of the model's input ``shape`` (first dim is the batch)."""
    want = tuple(d for d in shape[1:])
    if not shape or tuple(x.shape[1:]) == want:  # unknown input shape: the converter will check
        return x
    if x.shape[1:] and all(d is not None for d in want) and int(np.prod(x.shape[1:])) == int(np.prod(want)):
        return x.reshape((x.shape[0],) + want)
    if tuple(x.shape) == want:  # a single sample without a batch axis
        return x[None, ...]
    raise DataError(f"{path}: samples have shape {list(x.shape[1:])}, but the model expects {list(want)}")


LABEL_KEYS = ("y", "y_test", "labels", "y_val")


def model_inputs(data: Any, inputs: list[InputSpec], path: str = "data") -> list[np.ndarray]:
    """One batch per model input from ``data``: an array (one input), a list in input order, or a dict
    (an .npz) keyed by input name, ``x`` (one input) or holding the inputs in input order.

    Checks each input's shape and dtype and names the input and the expected shape when they do not fit.
    """
    specs = inputs or [InputSpec("input", ())]
    if isinstance(data, dict):
        arrays = {k: np.asarray(v) for k, v in data.items()}
        if all(s.name in arrays for s in specs):
            parts = [arrays[s.name] for s in specs]
        elif len(specs) == 1:
            parts = [split_xy(arrays, path)[0]]
        else:
            candidates = [k for k in arrays if k not in LABEL_KEYS and not k.startswith("y_")]
            x_keys = [k for k in candidates if k.startswith("x")]
            keys = x_keys if len(x_keys) == len(specs) else candidates
            if len(keys) != len(specs):
                want = ", ".join(f"'{s.name}' {list(s.shape[1:])}" for s in specs)
                raise DataError(f"{path}: the model has {len(specs)} inputs ({want}); name the arrays after "
                                f"them or store exactly {len(specs)} input arrays in input order "
                                f"(found: {', '.join(arrays) or 'none'})")
            parts = [arrays[k] for k in keys]
    elif isinstance(data, (list, tuple)):
        parts = [np.asarray(v) for v in data]
        if len(parts) != len(specs):
            want = ", ".join(f"'{s.name}' {list(s.shape[1:])}" for s in specs)
            raise DataError(f"{path}: {len(parts)} arrays for a model with {len(specs)} inputs ({want})")
    else:
        parts = [np.asarray(data)]
        if len(specs) != 1:
            want = ", ".join(f"'{s.name}' {list(s.shape[1:])}" for s in specs)
            raise DataError(f"{path}: one array for a model with {len(specs)} inputs ({want}); pass an .npz "
                            "keyed by input name or a list in input order")
    out = []
    for spec, x in zip(specs, parts, strict=True):
        where = f"{path}, input '{spec.name}'" if len(specs) > 1 or spec.name != "input" else path
        if x.dtype.kind not in "fiub":
            raise DataError(f"{where}: {x.dtype} data; expected numbers shaped {list(spec.shape[1:])}")
        x = match_input_shape(x, spec.shape, where)
        if spec.is_integer:
            if x.dtype.kind == "f" and not np.all(np.mod(x, 1) == 0):
                raise DataError(f"{where}: the input takes integer indices ({spec.dtype}, e.g. token ids for an "
                                f"Embedding), got fractional {x.dtype} values")
            x = x.astype(np.int32)
        elif x.dtype != np.int8:  # int8 data stays raw: already quantized for an int8 model
            x = x.astype(np.float32)
        out.append(x)
    counts = {len(x) for x in out}
    if len(counts) > 1:
        raise DataError(f"{path}: the inputs have different sample counts ({', '.join(str(len(x)) for x in out)})")
    return out


def model_labels(arrays: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray | None]:
    """Labels per output: ``y_<output name>`` or ``<output name>`` keys, else ``y``/``y_test`` for output 0,
    or ``y0``, ``y1``, ... in output order."""
    labels: list[np.ndarray | None] = []
    for k, name in enumerate(output_names):
        value = None
        for key in (f"y_{name}", name, f"y{k}", f"y_{k}"):
            if key in arrays:
                value = arrays[key]
                break
        if value is None and k == 0:
            value = next((arrays[key] for key in LABEL_KEYS if key in arrays), None)
        labels.append(None if value is None else np.asarray(value))
    return labels


def all_layers(model: Any) -> list[Any]:
    """Every layer of ``model``, nested models and wrappers included (depth first)."""
    seen: list[Any] = []

    def walk(layer: Any) -> None:
        for sub in list(getattr(layer, "layers", None) or []):
            if any(sub is s for s in seen):
                continue
            seen.append(sub)
            walk(sub)
        for attr in ("layer", "forward_layer", "backward_layer"):  # Bidirectional, TimeDistributed
            inner = getattr(layer, attr, None)
            if inner is not None and hasattr(inner, "get_config") and not any(inner is s for s in seen):
                seen.append(inner)
                walk(inner)

    walk(model)
    return seen
