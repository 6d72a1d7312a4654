"""Input normalisation moved out of the quantized graph.

An in-model ``Normalization`` (or Rescaling, or a user's own standardisation layer) applied straight to a
float input whose features have very different scales makes the int8 model collapse: the input tensor has
one int8 scale, so the small features round to zero before the layer could rescale them. When such a layer
is found, tinykeras converts the model with that layer as the identity, so the int8 input takes the
*normalised* values, and the affine map ``z = x * scale + offset`` (float, per input element) becomes a step
of the input path: applied here for calibration, comparison, emulate/validate/testing, recorded in
``settings.json`` (``input_normalization``) and ``model_settings.h`` (``TK_INPUTk_NORM_*``), and applied by
the generated firmware helper ``tk_input_norm.c`` before ``tk_invoke``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.keras_io import all_layers

SETTINGS_KEY = "input_normalization"
MAX_ELEMENTS = 4096          # per-element scale/offset tables larger than this stay inside the model
MIN_STEPS_PER_STD = 8.0      # move the layer out when a feature's spread is below this many int8 input steps
BUILTIN_AFFINE = ("Normalization", "Rescaling")


def _candidates(target: Any) -> list[Any]:
    """Layers that may be an input standardisation: Normalization/Rescaling, or a user's own layer without
    trainable weights."""
    found = []
    for layer in all_layers(target):
        name = type(layer).__name__
        module = type(layer).__module__
        builtin = module.startswith(("keras", "tf_keras", "tensorflow"))
        if name in BUILTIN_AFFINE and builtin or not builtin and not getattr(layer, "trainable_weights", None) \
                and not getattr(layer, "layers", None):
            found.append(layer)
    return found


@contextlib.contextmanager
def identity(layers: list[Any]) -> Iterator[None]:
    """Within the block, each of ``layers`` returns its input unchanged (an instance-level ``call``)."""
    saved = []
    for layer in layers:
        saved.append((layer, layer.__dict__.get("call")))

        def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            return inputs

        object.__setattr__(layer, "call", call)
    try:
        yield
    finally:
        for layer, old in saved:
            if old is None:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", old)


def _affine_of(layer: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, offset) per input element when ``layer(x) == x * scale + offset`` on ``x`` (a least-squares
    fit per element over the samples, in float64; elements constant in ``x`` probed at 0 and 1), else None."""
    shape = (1,) + x.shape[1:]
    try:
        at0 = np.asarray(layer(np.zeros(shape, np.float32)), dtype=np.float64).reshape(-1)
        at1 = np.asarray(layer(np.ones(shape, np.float32)), dtype=np.float64).reshape(-1)
        got = np.asarray(layer(x), dtype=np.float64)
    except Exception:  # a layer that does not take this input: not a candidate
        return None
    if got.shape != x.shape or at0.size != int(np.prod(shape)):
        return None
    xf = x.reshape(len(x), -1).astype(np.float64)
    gf = got.reshape(len(x), -1)
    dx = xf - xf.mean(axis=0)
    var = (dx * dx).sum(axis=0)
    varies = var > 0
    scale = np.where(varies, (dx * (gf - gf.mean(axis=0))).sum(axis=0) / np.where(varies, var, 1.0), at1 - at0)
    offset = np.where(varies, gf.mean(axis=0) - scale * xf.mean(axis=0), at0)
    want = xf * scale + offset
    if not np.all(np.isfinite(want)) or np.max(np.abs(gf - want)) > 1e-4 * (1.0 + np.max(np.abs(gf))) \
            or np.max(np.abs(at0 - offset)) > 1e-2 * (1.0 + np.max(np.abs(at0))):
        return None
    return scale.astype(np.float32), offset.astype(np.float32)


def needs_moving(x: np.ndarray) -> bool:
    """True when one int8 scale for the whole input leaves some feature fewer than MIN_STEPS_PER_STD steps."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    step = (max(flat.max(), 0.0) - min(flat.min(), 0.0)) / 255.0
    std = flat.std(axis=0)
    std = std[std > 0]
    return bool(step > 0 and std.size and (std / step).min() < MIN_STEPS_PER_STD)


def apply(norm: list[dict[str, Any] | None], xs: list[np.ndarray]) -> list[np.ndarray]:
    """Float inputs -> what the int8 model takes: ``x * scale + offset`` for each input with a recorded
    normalisation (float32, the firmware's arithmetic); other inputs unchanged."""
    out = []
    for entry, x in zip(list(norm) + [None] * (len(xs) - len(norm)), xs, strict=False):
        x = np.asarray(x)
        if entry is None or x.dtype.kind != "f":
            out.append(x)
            continue
        scale = np.asarray(entry["scale"], np.float32)
        offset = np.asarray(entry["offset"], np.float32)
        per_sample = int(np.prod(x.shape[1:]))
        if per_sample != scale.size:
            from tinykeras.errors import DataError

            raise DataError(f"input '{entry['input']}': samples have {per_sample} values, but its normalisation "
                            f"(settings.json {SETTINGS_KEY}) has {scale.size}")
        flat = x.reshape(len(x), -1).astype(np.float32)
        out.append((flat * scale + offset).astype(np.float32).reshape(x.shape))
    return out


def unapply(entry: dict[str, Any] | None, z: np.ndarray) -> np.ndarray:
    """The raw features behind normalised values ``z`` (the float model's input): ``(z - offset) / scale``."""
    if entry is None:
        return z
    scale = np.asarray(entry["scale"], np.float64)
    offset = np.asarray(entry["offset"], np.float64)
    flat = z.reshape(len(z), -1).astype(np.float64)
    safe = np.where(scale != 0, scale, 1.0)
    return ((flat - offset) / safe).astype(np.float32).reshape(z.shape)


def find(model: Any, xs: list[np.ndarray]) -> tuple[list[dict[str, Any] | None], list[Any]]:
    """Per input: the normalisation to move out of the graph (dict: input, layer, class, scale, offset) or
    None; and the layers to convert as the identity. Only layers applied straight to a float input whose
    features need it (:func:`needs_moving`), and only when the float model with the layer as identity, fed
    the normalised input, gives the same outputs (so the move never changes what the model computes)."""
    target = model.keras_model if model.keras_model is not None else model.keras3_model
    result: list[dict[str, Any] | None] = [None] * len(model.inputs)
    moved: list[Any] = []
    if target is None:
        return result, moved
    candidates = _candidates(target)
    if not candidates:
        return result, moved
    reference = None
    for k, (spec, x) in enumerate(zip(model.inputs, xs, strict=True)):
        if spec.is_integer or x.dtype.kind != "f" or int(np.prod(x.shape[1:])) > MAX_ELEMENTS \
                or not needs_moving(x):
            continue
        probe = x[:64]
        for layer in candidates:
            if any(layer is m for m in moved):
                continue
            affine = _affine_of(layer, probe)
            if affine is None:
                continue
            entry = {"input": spec.name, "layer": layer.name, "class": type(layer).__name__,
                     "scale": affine[0].ravel().tolist(), "offset": affine[1].ravel().tolist()}
            if reference is None:
                reference = model.predict_all([a[:64] for a in xs])
            trial = [a[:64] for a in xs]
            trial[k] = apply([entry], [probe])[0]
            with identity(moved + [layer]):
                got = model.predict_all(trial)
            same = all(np.allclose(np.asarray(g, np.float64), np.asarray(r, np.float64), rtol=1e-3,
                                   atol=1e-3 * (1.0 + float(np.max(np.abs(r)))))
                       for g, r in zip(got, reference, strict=True))
            if same:
                result[k] = entry
                moved.append(layer)
                break
    return result, moved


def summary(norm: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The settings.json form: one entry per moved normalisation."""
    return [{k: entry[k] for k in ("input", "layer", "class", "scale", "offset")} | {"index": k}
            for k, entry in enumerate(norm) if entry is not None]


def from_settings(settings: dict[str, Any] | None, n_inputs: int) -> list[dict[str, Any] | None]:
    """Per input index, the recorded normalisation (or None) from a settings.json dict."""
    out: list[dict[str, Any] | None] = [None] * n_inputs
    for entry in (settings or {}).get(SETTINGS_KEY) or []:
        k = int(entry.get("index", 0))
        if 0 <= k < n_inputs:
            out[k] = entry
    return out


def beside(model_path: str | Path | None, n_inputs: int) -> list[dict[str, Any] | None]:
    """The normalisation recorded in the settings.json beside a .tflite file (all None without one)."""
    if model_path is None:
        return [None] * n_inputs
    path = Path(model_path).with_name("settings.json")
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError):
        return [None] * n_inputs
    return from_settings(settings if isinstance(settings, dict) else None, n_inputs)


def _c_floats(values: list[float]) -> str:
    from tinykeras.c_literals import c_float as _c_float

    return "{ " + ", ".join(_c_float(float(np.float32(v))) for v in values) + " }"


def c_defines(norm: list[dict[str, Any] | None]) -> dict[str, str]:
    """``model_settings.h`` macros: TK_INPUTk_NORM (1), TK_INPUTk_NORM_SCALE / _OFFSET (float initialisers)."""
    out: dict[str, str] = {}
    for k, entry in enumerate(norm):
        if entry is None:
            continue
        out[f"TK_INPUT{k}_NORM"] = "1"
        out[f"TK_INPUT{k}_NORM_SCALE"] = _c_floats(entry["scale"])
        out[f"TK_INPUT{k}_NORM_OFFSET"] = _c_floats(entry["offset"])
    return out


def firmware_sources(norm: list[dict[str, Any] | None], info: Any) -> dict[str, str]:
    """``tk_input_norm.c/.h`` (firmware_templates/runtime/input_norm) and the generated
    ``tk_input_norm_tables.h`` for input 0's normalisation; {} without one. Only input 0 is supported on the
    device (the benchmark fills input 0)."""
    from tinykeras.resources import templates_dir

    entry = norm[0] if norm else None
    if entry is None:
        return {}
    t = info.input_tensors()[0]
    if t.dtype != "int8" or t.quantization is None or t.num_elements != len(entry["scale"]):
        return {}
    n = len(entry["scale"])
    tables = "\n".join([
        f"/* generated by tinykeras: input '{entry['input']}' normalisation (layer '{entry['layer']}', "
        f"{entry['class']}) */",
        "#ifndef TK_INPUT_NORM_TABLES_H_", "#define TK_INPUT_NORM_TABLES_H_", "",
        f"#define TK_INPUT_NORM_ELEMENTS {n}u",
        f"#define TK_INPUT_NORM_QSCALE {float(t.quantization.scale)!r}  /* the int8 input's scale (double) */",
        f"#define TK_INPUT_NORM_ZERO_POINT ({int(t.quantization.zero_point)})", "",
        f"static const float tk_input_norm_scale[{n}] = {_c_floats(entry['scale'])};",
        f"static const float tk_input_norm_offset[{n}] = {_c_floats(entry['offset'])};", "",
        "#endif /* TK_INPUT_NORM_TABLES_H_ */", ""])
    directory = templates_dir() / "runtime" / "input_norm"
    return {"tk_input_norm.h": (directory / "tk_input_norm.h").read_text(),
            "tk_input_norm.c": (directory / "tk_input_norm.c").read_text(),
            "tk_input_norm_tables.h": tables}


def db_bytes(norm: list[dict[str, Any] | None], input_bytes: int) -> int:
    """Bytes the benchmark's ``db`` buffer must hold: the int8 input, or input 0's raw float32 features."""
    entry = norm[0] if norm else None
    return max(input_bytes, 4 * len(entry["scale"]) if entry is not None else 0)
