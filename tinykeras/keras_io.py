"""Load Keras models and array data. The one place TensorFlow is imported and set up for Keras 2.

tfmot rejects Keras 3 models, so tinykeras runs TensorFlow with ``TF_USE_LEGACY_KERAS=1`` and uses
``tf_keras`` throughout. A model saved by Keras 3 is loaded through Keras 3 and exported to a SavedModel
for conversion; paths that need tfmot (pruning, QAT) explain how to re-save it.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import DataError, InputFileError, ModelError

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
class LoadedModel:
    """A model ready to convert: a tf_keras model, or a SavedModel directory exported from Keras 3."""

    path: Path
    keras_model: Any | None  # tf_keras.Model when loadable as Keras 2
    saved_model_dir: Path | None  # set when the model came from Keras 3 or a non-Keras SavedModel
    origin: str  # "keras2", "keras3" or "saved_model"
    predict: Any  # callable: np.ndarray (float32, batched) -> np.ndarray
    input_shape: tuple[int | None, ...] = ()  # with the batch axis first


def _saved_by_keras3(path: Path) -> bool:
    """A .keras zip whose metadata names Keras 3."""
    try:
        with zipfile.ZipFile(path) as archive:
            import json

            meta = json.loads(archive.read("metadata.json"))
        return str(meta.get("keras_version", "2")).startswith("3")
    except (KeyError, zipfile.BadZipFile, ValueError, OSError):
        return False


def load_model(path: Path | str) -> LoadedModel:
    """Load a ``.keras``, ``.h5`` or SavedModel directory. Raises InputFileError or ModelError."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file or directory")
    tf = import_tf()
    keras = tf_keras()
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelError(f"{path}: a directory, but not a SavedModel (no saved_model.pb); "
                             "pass a .keras, .h5 or SavedModel directory")
        try:
            model = keras.models.load_model(path, compile=False)
            return _from_keras2(path, model, "keras2")
        except Exception:
            pass
        try:
            loaded = tf.saved_model.load(str(path))
            fn = loaded.signatures["serving_default"]
        except Exception as exc:
            raise ModelError(f"{path}: cannot load the SavedModel ({_first_line(exc)})") from exc
        return _from_signature(path, fn, path, "saved_model")
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(f"{path}: unknown model format '{suffix}'; pass a .keras, .h5 or SavedModel directory")
    if suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a .keras archive (corrupt, truncated or another format); "
                         "re-save it with model.save('model.keras')")
    if suffix == ".keras" and _saved_by_keras3(path):
        return _load_keras3(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        if suffix == ".keras":
            try:
                return _load_keras3(path)
            except ModelError:
                pass
        reason = _first_line(exc)
        hint = "re-save it with model.save()"
        if "unknown" in reason.lower() or "custom" in reason.lower():
            hint = ("it uses custom layers or objects: load it in Python with custom_objects and call "
                    "tinykeras.convert.quantize_model() on the loaded model")
        raise ModelError(f"{path}: cannot load the Keras model ({reason}); {hint}") from exc
    return _from_keras2(path, model, "keras2")


def _from_keras2(path: Path, model: Any, origin: str) -> LoadedModel:
    shape: tuple[int | None, ...] = ()
    if getattr(model, "inputs", None):
        shape = tuple(model.inputs[0].shape)
    else:  # a subclassed model revived from a SavedModel: ask its saved call signature
        try:
            spec = model.save_spec()
            first = spec[0][0] if spec else None
            shape = tuple(first.shape) if first is not None else ()
        except Exception:
            shape = ()
    return LoadedModel(path=path, keras_model=model, saved_model_dir=None, origin=origin,
                       predict=lambda x: np.asarray(model(x, training=False)), input_shape=shape)


def _load_keras3(path: Path) -> LoadedModel:
    """Load with Keras 3 and export a SavedModel the TFLite converter accepts."""
    import tempfile

    try:
        import keras as keras3

        model = keras3.saving.load_model(path, compile=False)
        export_dir = Path(tempfile.mkdtemp(prefix="tinykeras-k3-"))
        model.export(str(export_dir / "saved_model"), format="tf_saved_model", verbose=False)
    except Exception as exc:
        raise ModelError(
            f"{path}: saved by Keras 3 and not loadable here ({_first_line(exc)}). Re-save it from Keras 3 "
            "with model.export('DIR') and pass DIR, or rebuild it with tf_keras"
        ) from exc
    tf = import_tf()
    fn = tf.saved_model.load(str(export_dir / "saved_model")).signatures["serving_default"]
    return _from_signature(path, fn, export_dir / "saved_model", "keras3")


def _from_signature(path: Path, fn: Any, saved_dir: Path, origin: str) -> LoadedModel:
    tf = import_tf()
    spec = list(fn.structured_input_signature[1].values())
    if len(spec) != 1:
        raise ModelError(f"{path}: the SavedModel signature has {len(spec)} inputs; tinykeras handles one")
    in_name = list(fn.structured_input_signature[1].keys())[0]

    def predict(x: np.ndarray) -> np.ndarray:
        out = fn(**{in_name: tf.constant(x, dtype=spec[0].dtype)})
        return np.asarray(list(out.values())[0])

    return LoadedModel(path=path, keras_model=None, saved_model_dir=saved_dir, origin=origin, predict=predict,
                       input_shape=tuple(spec[0].shape))


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
