"""Keras model -> .tflite: full-integer int8 post-training quantization (and float32/dynamic for comparison).

Every model is exported with a concrete batch-1 signature first (so ``Flatten``/``Conv1D`` become RESHAPE and
CONV_2D instead of SHAPE/STRIDED_SLICE/PACK), inputs and outputs keyed by their Keras names. Recurrent
layers are unrolled over their fixed sequence length, except tf_keras LSTM, which the converter fuses into
UNIDIRECTIONAL_SEQUENCE_LSTM. Integer inputs (token ids for an Embedding) stay int32; everything else is int8.
After conversion the subgraph's inputs and outputs are put back in Keras order.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import DataError, ModelError
from tinykeras.inspect import inspect_bytes
from tinykeras.keras_io import InputSpec, LoadedModel, all_layers, import_tf, model_inputs
from tinykeras.types import ModelInfo

KINDS = ("int8", "float32", "dynamic")
RANDOM_REP_SAMPLES = 100


@dataclass
class Conversion:
    """One converted flatbuffer and what we know about it."""

    kind: str
    data: bytes
    info: ModelInfo
    comparison: dict[str, Any] = field(default_factory=dict)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    # per input: the normalisation moved out of the graph (tinykeras.input_norm), applied before quantizing
    input_norm: list[dict[str, Any] | None] = field(default_factory=list)


def random_representative(shape: tuple[int | None, ...] | list[InputSpec], samples: int = RANDOM_REP_SAMPLES,
                          seed: int = 0) -> Any:
    """Uniform [-1, 1) calibration data (integer inputs: 0..9). Warns loudly: int8 scales calibrated on noise
    are usually wrong. Takes one shape (returns an array) or the input specs (returns a list)."""
    message = (
        "NO REPRESENTATIVE DATA: calibrating int8 scales on random noise. Accuracy on real inputs will "
        "likely suffer; pass --rep-data with ~100-500 real samples (.npz with 'x' or .npy)"
    )
    print(f"WARNING: {message}", file=sys.stderr)
    rng = np.random.default_rng(seed)
    if isinstance(shape, list):
        out = []
        for spec in shape:
            dims = tuple(d if d is not None else 1 for d in spec.shape[1:])
            if spec.is_integer:
                out.append(rng.integers(0, 10, size=(samples,) + dims).astype(np.int32))
            else:
                out.append(rng.uniform(-1, 1, size=(samples,) + dims).astype(np.float32))
        return out
    dims = tuple(d if d is not None else 1 for d in shape[1:])
    return rng.uniform(-1, 1, size=(samples,) + dims).astype(np.float32)


# ------------------------------------------------------------------------------------------------ export


def _is_rnn(layer: Any) -> bool:
    return any(c.__name__ == "RNN" for c in type(layer).__mro__) and hasattr(layer, "cell")


def _fused_lstm(layer: Any) -> bool:
    """tf_keras LSTM: the converter fuses it into UNIDIRECTIONAL_SEQUENCE_LSTM, which TFLM runs."""
    return type(layer).__name__ == "LSTM" and type(layer).__module__.startswith("tf_keras")


def _rnns_to_unroll(model: Any) -> list[Any]:
    return [layer for layer in all_layers(model)
            if _is_rnn(layer) and not getattr(layer, "unroll", False) and not _fused_lstm(layer)]


def _embeddings_to_rewrite(model: Any, keras3: bool) -> list[Any]:
    """Keras 3 Embedding layers: their ``take`` wraps negative ids with LESS/ADD/SELECT, which TFLM lacks;
    Keras 3 UpSampling2D (nearest): ``repeat`` becomes TILE, which TFLM lacks too."""
    found = []
    for layer in all_layers(model):
        if not keras3 or not type(layer).__module__.startswith("keras."):
            continue
        kind = type(layer).__name__
        if kind == "Embedding" or (kind == "UpSampling2D" and getattr(layer, "interpolation", "") == "nearest"
                                   and getattr(layer, "data_format", "channels_last") == "channels_last"):
            found.append(layer)
    return found


def _resize_upsampling_class() -> Any:
    import keras as keras3

    from tinykeras.keras_io import import_tf

    tf = import_tf()

    class ResizeUpSampling2D(keras3.layers.UpSampling2D):  # type: ignore[misc,name-defined]
        """UpSampling2D (nearest) as RESIZE_NEAREST_NEIGHBOR, as tf_keras does: the same pixels."""

        def call(self, inputs: Any) -> Any:
            h, w = int(inputs.shape[1]) * self.size[0], int(inputs.shape[2]) * self.size[1]
            return tf.compat.v1.image.resize_nearest_neighbor(inputs, (h, w), align_corners=False,
                                                               half_pixel_centers=False)

    return ResizeUpSampling2D


def _gather_embedding_class() -> Any:
    import keras as keras3

    from tinykeras.keras_io import import_tf

    tf = import_tf()

    class GatherEmbedding(keras3.layers.Embedding):  # type: ignore[misc,name-defined]
        """Embedding as one GATHER (token ids are never negative on a microcontroller)."""

        def call(self, inputs: Any) -> Any:
            return tf.gather(self.embeddings, tf.cast(inputs, tf.int32))

    return GatherEmbedding


def _micro_friendly(model: Any, inputs: list[InputSpec], shapes: list[tuple[int, ...]], keras3: bool) -> Any:
    """A clone of ``model`` the int8 converter and TFLM can handle: recurrent layers unrolled over the fixed
    sequence length, Keras 3 Embeddings as a plain GATHER. ``model`` itself when nothing needs changing.

    Recurrent loops (TensorList/While) have no int8 TFLite kernels and crash the converter's calibration;
    unrolled, an RNN is FULLY_CONNECTED/TANH/LOGISTIC/MUL/ADD steps, which every runtime has."""
    rnns = _rnns_to_unroll(model)
    embeddings = _embeddings_to_rewrite(model, keras3)
    if not rnns and not embeddings:
        return model
    first = rnns[0] if rnns else embeddings[0]
    if rnns:
        advice = (f"layer '{first.name}' ({type(first).__name__}) runs as a loop the int8 converter cannot "
                  "handle; build it with unroll=True (fixed sequence length) and save the model again")
    else:
        advice = (f"layer '{first.name}' ({type(first).__name__}) needs rebuilding with TFLite-Micro ops, which "
                  "tinykeras does for Sequential and functional models only; use a Sequential or functional model")
    if keras3:
        import keras as K
    else:
        from tinykeras.keras_io import tf_keras

        K = tf_keras()
    is_graph = bool(getattr(model, "_is_graph_network", False)) or type(model).__name__ in ("Sequential",
                                                                                            "Functional")
    if not is_graph:
        raise ModelError(f"{advice} (a subclassed model cannot be rebuilt by tinykeras)")
    gather = _gather_embedding_class() if any(type(e).__name__ == "Embedding" for e in embeddings) else None
    resize = _resize_upsampling_class() if any(type(e).__name__ == "UpSampling2D" for e in embeddings) else None

    def set_unroll(config: dict[str, Any]) -> None:
        if "unroll" in config:
            config["unroll"] = True
        for key in ("layer", "backward_layer"):
            inner = config.get(key)
            if isinstance(inner, dict) and isinstance(inner.get("config"), dict):
                inner["config"]["unroll"] = True

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if _is_rnn(layer) or any(_is_rnn(getattr(layer, a, None)) for a in ("layer", "forward_layer")):
            set_unroll(config)
        if any(layer is e for e in embeddings):
            return (gather if type(layer).__name__ == "Embedding" else resize).from_config(config)
        return layer.__class__.from_config(config)

    try:
        tensors = [K.Input(batch_shape=shape, dtype=spec.dtype, name=spec.name)
                   for spec, shape in zip(inputs, shapes, strict=True)]
        copy = K.models.clone_model(model, input_tensors=tensors if len(tensors) > 1 else tensors[0],
                                    clone_function=clone)
        copy.set_weights(model.get_weights())
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{advice} ({detail})") from exc
    return copy


def concrete_shapes(model: LoadedModel, xs: list[np.ndarray] | None) -> list[tuple[int, ...]]:
    """Batch-1 shapes of every input: free dimensions filled from the data (or 1)."""
    shapes = []
    for k, spec in enumerate(model.inputs):
        dims = list(spec.shape[1:]) if spec.shape else list(xs[k].shape[1:]) if xs else []
        for j, d in enumerate(dims):
            if d is None:
                dims[j] = int(xs[k].shape[1 + j]) if xs is not None and xs[k].ndim > 1 + j else 1
        shapes.append((1,) + tuple(int(d) for d in dims))
    return shapes


def export_saved_model(model: LoadedModel, shapes: list[tuple[int, ...]], directory: Path,
                       identity: tuple[str, ...] = ()) -> list[str]:
    """Write a SavedModel with one batch-1 signature: inputs keyed by Keras input names, outputs by Keras
    output names (in the model's order). Returns the output names. ``identity``: names of layers exported
    as the identity (an input normalisation moved out of the graph, ``tinykeras.input_norm``)."""
    from tinykeras.input_norm import identity as as_identity
    tf = import_tf()
    specs = [tf.TensorSpec(shape, tf.int32 if spec.is_integer else tf.float32, name=spec.name)
             for spec, shape in zip(model.inputs, shapes, strict=True)]
    names = list(model.output_names)

    def outputs(result: Any) -> dict[str, Any]:
        from tinykeras.keras_io import _as_list

        values = _as_list(result, list(getattr(target, "output_names", None) or []) or None)
        if len(values) != len(names):
            names[:] = [f"output_{k}" for k in range(len(values))]
        return {names[k]: v for k, v in enumerate(values)}

    if model.origin == "keras3" and model.keras3_model is not None:
        import keras as keras3

        target = _micro_friendly(model.keras3_model, model.inputs, shapes, keras3=True)

        def call3(*args: Any) -> dict[str, Any]:
            return outputs(target(list(args) if len(args) > 1 else args[0], training=False))

        with as_identity([layer for layer in all_layers(target) if layer.name in identity]):
            archive = keras3.export.ExportArchive()
            archive.track(target)
            archive.add_endpoint("serving_default", call3, input_signature=specs)
            archive.write_out(str(directory), verbose=False)
        return names
    if model.keras_model is not None:
        target = _micro_friendly(model.keras_model, model.inputs, shapes, keras3=False)

        def call2(*args: Any) -> dict[str, Any]:
            return outputs(target(list(args) if len(args) > 1 else args[0], training=False))

        with as_identity([layer for layer in all_layers(target) if layer.name in identity]):
            concrete = tf.function(call2).get_concrete_function(*specs)
            tf.saved_model.save(target, str(directory), signatures=concrete)
        return names
    if model.signature is not None and model.loaded_object is not None:
        fn = model.signature
        keys = list(fn.structured_input_signature[1])
        target = None

        def call_sig(*args: Any) -> dict[str, Any]:
            return outputs(fn(**dict(zip(keys, args, strict=True))))

        concrete = tf.function(call_sig).get_concrete_function(*specs)
        tf.saved_model.save(model.loaded_object, str(directory), signatures=concrete)
        return names
    raise ModelError(f"{model.path}: nothing to convert (no Keras model and no SavedModel signature)")


def _converter(model: LoadedModel, shapes: list[tuple[int, ...]], work: Path,
               identity: tuple[str, ...] = ()) -> tuple[Any, list[str]]:
    tf = import_tf()
    names = export_saved_model(model, shapes, work / "saved_model", identity)
    return tf.lite.TFLiteConverter.from_saved_model(str(work / "saved_model")), names


def _layer_index(model: LoadedModel) -> dict[str, str]:
    target = model.keras_model if model.keras_model is not None else model.keras3_model
    if target is None:
        return {}
    return {layer.name: type(layer).__name__ for layer in all_layers(target)}


def convert(model: LoadedModel, kind: str = "int8", rep_data: Any = None, per_tensor_dense: bool = False,
            identity: tuple[str, ...] = ()) -> Conversion:
    """Convert ``model`` to a .tflite of ``kind`` (int8, float32 or dynamic). int8 needs ``rep_data``
    (an array for one input; a list in input order or a dict keyed by input name for several).

    ``per_tensor_dense``: one weight scale per FULLY_CONNECTED layer instead of one per output channel, for
    TFLM libraries without per-channel FULLY_CONNECTED (``[[gaps]]`` in libraries/*.toml). ``identity``:
    layers converted as the identity (their normalisation is applied outside; ``rep_data`` already has it)."""
    if kind not in KINDS:
        raise ModelError(f"unknown conversion kind '{kind}'; choose one of {', '.join(KINDS)}")
    tf = import_tf()
    xs = None
    if rep_data is not None:
        xs = model_inputs(rep_data, model.inputs, "representative data")
    elif kind == "int8":
        raise DataError("int8 conversion needs representative data")
    shapes = concrete_shapes(model, xs)
    from tinykeras.stdio import capture_native_stderr

    with tempfile.TemporaryDirectory(prefix="tinykeras-export-") as tmp:
        try:
            with capture_native_stderr():
                converter, out_names = _converter(model, shapes, Path(tmp), identity)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{model.path}: cannot export the model with a batch-1 signature: "
                             f"{_converter_reason(exc, '', _layer_index(model), kind)}") from exc
        if kind in ("int8", "dynamic"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if kind == "int8":
            assert xs is not None
            names = [spec.name for spec in model.inputs]

            def representative() -> Any:
                for k in range(len(xs[0])):
                    yield {name: x[k:k + 1] for name, x in zip(names, xs, strict=True)}

            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        if per_tensor_dense:
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        try:
            with capture_native_stderr() as log:
                data = bytes(converter.convert())
        except Exception as exc:
            reason = _converter_reason(exc, log.text, _layer_index(model), kind)
            raise ModelError(f"{model.path}: TFLite conversion to {kind} failed: {reason}") from exc
    from tinykeras.tflite_io import reorder_io, select_to_select_v2

    in_names = [spec.name for spec in model.inputs]
    data = select_to_select_v2(reorder_io(data, in_names, out_names))
    info = inspect_bytes(data, path=f"model_{kind}.tflite")
    from tinykeras.tflite_io import io_names

    got_in, got_out = io_names(data, info.inputs, info.outputs)
    return Conversion(kind=kind, data=data, info=info, input_names=got_in, output_names=got_out)


def _converter_reason(exc: BaseException, native_log: str = "", layers: dict[str, str] | None = None,
                      kind: str = "int8") -> str:
    """One line naming the Keras layer (name and class) and the TensorFlow ops at fault, and what to do.
    Never the converter's MLIR text."""
    text = str(exc) + "\n" + native_log
    ops = list(dict.fromkeys(re.findall(r"'tf\.(\w+)'", text) + re.findall(r"\btf\.(\w+)\b(?! op)", text)))
    ops = [op for op in ops if op[0].isupper()][:4]
    culprit = None
    for name, cls in sorted((layers or {}).items(), key=lambda kv: -len(kv[0])):
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text):
            culprit = (name, cls)
            break
    what = f" (TensorFlow ops {', '.join(ops)})" if ops else ""
    fix = ("replace it with built-in layers that have int8 TFLite kernels, or move it out of the model into "
           "pre/post-processing")
    if any(op.startswith(("TensorList", "While")) for op in ops):
        fix = "a recurrent loop: build the layer with unroll=True (fixed sequence length)"
    if culprit is not None:
        return f"layer '{culprit[0]}' ({culprit[1]}) cannot be converted to {kind}{what}; {fix}"
    if ops:
        return f"the model uses TensorFlow ops without TFLite {kind} kernels{what}; {fix}"
    lines = [line.strip() for line in text.splitlines() if line.strip() and "loc(" not in line
             and "see current operation" not in line and not line.strip().startswith(("%", "^", "<"))]
    first = lines[0][:200] if lines else type(exc).__name__
    return f"{first}; {fix}"


# -------------------------------------------------------------------------------------------- comparison


def require_tflm(conversion: Conversion, model: LoadedModel | None = None) -> None:
    """Raise a ModelError naming the ops TFLite-Micro lacks and the Keras layers they come from."""
    from tinykeras.inspect import unsupported_tflm_ops

    missing = unsupported_tflm_ops(conversion.info)
    if not missing:
        return
    layers = _layer_index(model) if model is not None else {}
    parts = []
    for index, op in missing[:4]:
        names = " ".join(conversion.info.tensors[t].name for t in conversion.info.ops[index].outputs)
        layer = next((f"layer '{n}' ({c})" for n, c in sorted(layers.items(), key=lambda kv: -len(kv[0]))
                      if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", names)), None)
        parts.append(f"{op} (operator #{index}{', from ' + layer if layer else ''})")
    raise ModelError(f"{model.path if model is not None else 'model'}: the int8 model uses ops TFLite-Micro does "
                     f"not have: {', '.join(dict.fromkeys(parts))}; replace those layers with ones that map to "
                     "TFLM ops (docs/supported_ops.md), or keep that step out of the model")


def run_int8(conversion: Conversion, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Every output of the int8 model on the TFLM host interpreter, dequantized, for each sample of ``xs``."""
    from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs

    info = conversion.info
    runner = TflmRunner(conversion.data, info)
    prepared = [prepare_inputs(x, t) for x, t in zip(xs, info.input_tensors(), strict=True)]
    per_output: list[list[np.ndarray]] = [[] for _ in info.outputs]
    for k in range(len(prepared[0])):
        outs = runner.invoke([p[k:k + 1] for p in prepared])
        for j, o in enumerate(outs):
            per_output[j].append(o)
    return [dequantize(np.concatenate(v, axis=0), t) for v, t in zip(per_output, info.output_tensors(),
                                                                      strict=True)]


def compare_int8(model: LoadedModel, conversion: Conversion, x: Any, labels: list[np.ndarray | None] | None = None,
                 source: str = "representative data", task: str = "auto") -> dict[str, Any]:
    """Float Keras vs int8 (TFLM host interpreter) on ``x``: per-output metrics (every output, each with its
    task's metrics), plus the legacy top-level figures of output 0."""
    from tinykeras.metrics import collapse_warnings, detect_task, output_metrics

    xs = model_inputs(x, model.inputs, source)
    require_tflm(conversion, model)
    floats = [np.asarray(f, dtype=np.float32) for f in model.predict_all(xs)]
    from tinykeras.input_norm import apply

    q = run_int8(conversion, apply(conversion.input_norm, xs))
    names = conversion.output_names or model.output_names
    outputs = []
    for j, got in enumerate(q):
        ref = floats[j] if j < len(floats) else None
        y = labels[j] if labels and j < len(labels) else None
        kind = detect_task(conversion.info, j, got.shape, y, task)
        outputs.append(output_metrics(got.reshape((len(got),) + got.shape[1:]), ref, y, task=kind,
                                      name=names[j] if j < len(names) else f"output_{j}"))
    first = outputs[0]
    result: dict[str, Any] = {
        "samples": int(len(xs[0])),
        "data": source,
        "max_abs_diff": first.get("max_abs_diff", 0.0),
        "mean_abs_diff": first.get("mean_abs_diff", 0.0),
        "top1_agreement": first.get("agreement") if first["task"] != "regression" or "agreement" in first
        else None,
        "reference": "float Keras vs int8 on the TFLite-Micro host interpreter",
        "outputs": outputs,
        "warnings": collapse_warnings(outputs),
    }
    return result


def quantize_model(model: LoadedModel, rep_data: Any, also: tuple[str, ...] = (), test_data: Any = None,
                   test_labels: list[np.ndarray | None] | None = None, task: str = "auto",
                   per_tensor_dense: bool = False, move_normalization: bool = True) -> list[Conversion]:
    """int8 conversion with its float-vs-int8 comparison, plus the ``also`` kinds for size comparison.

    ``rep_data`` calibrates (an array, a list in input order or a dict keyed by input name; None: random
    noise, with a warning). The comparison runs on ``test_data`` (held-out samples) when given, else on the
    calibration data (and says so). ``per_tensor_dense``: per-tensor FULLY_CONNECTED weights (see
    :func:`convert`). ``move_normalization``: an input standardisation layer over features of very different
    scales is applied outside the int8 graph (``tinykeras.input_norm``; recorded in ``input_norm``)."""
    if rep_data is None:
        rep = random_representative(model.inputs)
    else:
        rep = model_inputs(rep_data, model.inputs, "representative data")
        from tinykeras.datacheck import require_finite_samples

        for spec, x in zip(model.inputs, rep, strict=True):
            require_finite_samples(x, f"representative data, input '{spec.name}'")
    from tinykeras import input_norm

    norm, moved = input_norm.find(model, rep) if move_normalization else ([], [])
    main = convert(model, "int8", input_norm.apply(norm, rep), per_tensor_dense=per_tensor_dense,
                   identity=tuple(layer.name for layer in moved))
    main.input_norm = norm
    if test_data is not None:
        main.comparison = compare_int8(model, main, test_data, test_labels, "held-out data", task)
    else:
        main.comparison = compare_int8(model, main, rep, None, "representative data (calibration set; pass "
                                       "held-out data for an honest figure)", task)
    main.comparison["warnings"] += _input_scale_advice(model, rep, main.comparison)
    if any(norm):
        main.comparison["input_normalization"] = [
            f"layer '{e['layer']}' ({e['class']}) on input '{e['input']}' is applied outside the int8 model: "
            "float x * scale + offset per feature, then quantized (settings.json input_normalization, "
            "model_settings.h TK_INPUTk_NORM_*, tk_input_norm.c in firmware)" for e in norm if e is not None]
    conversions = [main]
    for kind in also:
        if kind != "int8":
            conversions.append(convert(model, kind, rep))
    return conversions


def _revived(model: Any) -> bool:
    """A tf_keras model loaded from a SavedModel without its Python class (its call is the saved graph)."""
    return any(c.__name__.startswith("Revived") for c in type(model).__mro__)


def _input_scale_advice(model: LoadedModel, xs: list[np.ndarray], comparison: dict[str, Any]) -> list[str]:
    """When an output collapsed and the model normalises its inputs itself (an adapted Normalization layer),
    say why: input features on very different scales share the one int8 scale of the input tensor."""
    if not any(o.get("collapsed") for o in comparison.get("outputs", [])):
        return []
    target = model.keras_model if model.keras_model is not None else model.keras3_model
    norm = next((layer for layer in all_layers(target) if type(layer).__name__ == "Normalization"), None) \
        if target is not None else None
    lines = []
    for spec, x in zip(model.inputs, xs, strict=False):
        if spec.is_integer or x.ndim < 2:
            continue
        spread = np.abs(x.reshape(len(x), -1)).max(axis=0)
        spread = spread[spread > 0]
        if spread.size < 2 or spread.max() / spread.min() < 100:
            continue
        where = f"layer '{norm.name}' (Normalization) inside the model" if norm is not None else "the model"
        fix = ("Normalise in your own code (on the device, in float) and convert the model without that step")
        if norm is not None and _revived(target):
            fix = (f"The model was revived from a SavedModel without its Python class '{type(target).__name__}', "
                   "so tinykeras cannot convert it with that layer left out: pass --custom-objects FILE (the "
                   "module defining the class) and tinykeras moves the normalisation out of the int8 model "
                   "into the firmware's float input path itself")
        lines.append(f"WARNING: input '{spec.name}' holds features from {spread.min():.3g} to {spread.max():.3g} "
                     f"(x{spread.max() / spread.min():.0f}) and {where} rescales them only after the int8 input, "
                     f"whose one scale rounds the small features to zero. {fix}")
    return lines


def write_outputs(conversions: list[Conversion], out_dir: Path, source: str,
                  labels: list[str] | None = None, name: str | None = None,
                  settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write model.tflite, model_data.h/.cc, model_settings.h, other kinds, settings.json and report.json."""
    import json

    from tinykeras.cgen import c_sources

    main = conversions[0]
    (out_dir / "model.tflite").write_bytes(main.data)
    extra = {f"TK_INPUT{k}_NAME": json.dumps(n) for k, n in enumerate(main.input_names)}
    extra.update({f"TK_OUTPUT{k}_NAME": json.dumps(n) for k, n in enumerate(main.output_names)})
    from tinykeras.input_norm import c_defines

    extra.update(c_defines(main.input_norm))
    c_sources(main.data, main.info, labels=labels, extra=extra).write(out_dir)
    sizes = {main.kind: len(main.data)}
    for conv in conversions[1:]:
        (out_dir / f"model_{conv.kind}.tflite").write_bytes(conv.data)
        sizes[conv.kind] = len(conv.data)
    merged = dict(settings or {})
    if name:
        merged["name"] = name
    if labels:
        merged["labels"] = list(labels)
    merged["inputs"] = [{"name": n, "shape": list(t.shape), "dtype": t.dtype}
                        for n, t in zip(main.input_names, main.info.input_tensors(), strict=True)]
    from tinykeras import input_norm

    merged.pop(input_norm.SETTINGS_KEY, None)
    if any(main.input_norm):
        merged[input_norm.SETTINGS_KEY] = input_norm.summary(main.input_norm)
    merged["outputs"] = [{"name": n, "shape": list(t.shape), "dtype": t.dtype}
                         for n, t in zip(main.output_names, main.info.output_tensors(), strict=True)]
    (out_dir / "settings.json").write_text(json.dumps(merged, indent=2) + "\n")
    report = {
        "source": source,
        "name": name,
        "kind": main.kind,
        "sha256": main.info.sha256,
        "files": {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()},
        "tflite_bytes": sizes,
        "ops": main.info.op_names,
        "macs": main.info.macs,
        "params": main.info.params,
        "inputs": merged["inputs"],
        "outputs": merged["outputs"],
        "comparison": main.comparison,
    }
    report["files"]["report.json"] = None  # written last; size unknown while writing
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
