"""Run a .tflite on the host with TFLite-Micro's own kernels (or the aot runtime) and say how it behaves.

Reports accuracy (with labels), top-1 agreement and the largest dequantized deviation against the float Keras
model and against ``tf.lite`` without delegates, bit-exactness between int8 runtimes, the arena bytes TFLM
really needs, and host microseconds per inference. Without data it runs seeded random int8 inputs.

TensorFlow is imported only inside :func:`run_tflite` (through ``keras_io.import_tf``) and when a Keras model
is loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import DataError, ModelError
from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs
from tinykeras.types import RUNTIME_NAMES, ModelInfo, TensorInfo

DEFAULT_RANDOM_SAMPLES = 32
RANDOM_SEED = 0


@dataclass(frozen=True)
class Model:
    """A .tflite held in memory with its inspected info, and the input normalisation applied before it
    (``tinykeras.input_norm``: from the Conversion, or the settings.json beside the file; None per input)."""

    data: bytes
    info: ModelInfo
    input_norm: tuple[Any, ...] = ()

    @property
    def input(self) -> TensorInfo:
        return self.info.input_tensors()[0]

    @property
    def output(self) -> TensorInfo:
        return self.info.output_tensors()[0]


def load(source: Any) -> Model:
    """A Model from .tflite bytes, a path (with the input normalisation recorded in the settings.json beside
    it) or a ``Conversion`` (with its own). Raises InputFileError or ModelError."""
    from tinykeras import input_norm
    from tinykeras.inspect import inspect_bytes, read_model_bytes

    if isinstance(source, Model):
        return source
    norm: list[Any] | None = None
    if hasattr(source, "data") and isinstance(getattr(source, "data", None), (bytes, bytearray)):
        norm = list(getattr(source, "input_norm", None) or [])
        source = source.data
    if isinstance(source, (bytes, bytearray)):
        data, path = bytes(source), None
    else:
        data, path = read_model_bytes(source), str(source)
    info = inspect_bytes(data, path=path)
    if not info.inputs:
        raise ModelError(f"{path or 'model'}: the model has no inputs")
    if norm is None:
        norm = input_norm.beside(path, len(info.inputs))
    return Model(data, info, tuple(norm) if any(norm) else ())


def count(xq: Any) -> int:
    """Samples in a batch (an array, or a list with one array per input)."""
    return len(xq[0]) if isinstance(xq, list) else len(xq)


def take(xq: Any, k: int) -> Any:
    """Sample ``k`` with a batch axis of 1 (a list for several inputs)."""
    return [a[k:k + 1] for a in xq] if isinstance(xq, list) else xq[k:k + 1]


def head(xq: Any, n: int) -> Any:
    return [a[:n] for a in xq] if isinstance(xq, list) else xq[:n]


def random_inputs(model: Model, samples: int = DEFAULT_RANDOM_SAMPLES, seed: int = RANDOM_SEED) -> Any:
    """Seeded random inputs in the input tensor's dtype and shape (uniform over the int8 range; int32 index
    inputs within the table they index). A list with one batch per input for several inputs."""
    if len(model.info.inputs) > 1:
        return [_random_one(model, t, k, samples, seed + k) for k, t in enumerate(model.info.input_tensors())]
    return _random_one(model, model.input, 0, samples, seed)


def _random_one(model: Model, t: TensorInfo, index: int, samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (samples,) + tuple(t.shape[1:])
    if t.dtype in ("float32", "float16"):
        return rng.standard_normal(shape).astype(t.dtype)
    if t.dtype == "int32":  # token ids: keep them inside the table they index
        return rng.integers(0, _index_limit(model, index), size=shape).astype(np.int32)
    info = np.iinfo(np.dtype(t.dtype))
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(t.dtype)


def _index_limit(model: Model, k: int = 0) -> int:
    """Rows of the table an int32 input indexes (GATHER params: the Embedding's vocabulary), else 2."""
    from tinykeras.types import index_limit

    return index_limit(model.info, k) or 2


def _several(model: Model, x: Any) -> list[np.ndarray]:
    from tinykeras.keras_io import InputSpec, model_inputs
    from tinykeras.tflite_io import io_names

    names = io_names(model.data, model.info.inputs, model.info.outputs)[0]
    specs = [InputSpec(n, tuple(t.shape), "int32" if t.dtype == "int32" else "float32")
             for n, t in zip(names, model.info.input_tensors(), strict=True)]
    return model_inputs(x, specs, "data")


def quantized_inputs(model: Model, x: Any) -> Any:
    """Float data quantized with the input's scale and zero point, or data already in its dtype. Several
    inputs: a list in input order or a dict keyed by input name, returned as a list."""
    from tinykeras.input_norm import apply

    if len(model.info.inputs) > 1:
        return [prepare_inputs(a, t) for a, t in zip(apply(list(model.input_norm), _several(model, x)),
                                                      model.info.input_tensors(), strict=True)]
    try:
        return prepare_inputs(apply(list(model.input_norm), [np.asarray(x)])[0], model.input)
    except ModelError as exc:
        raise DataError(str(exc)) from exc


def float_inputs(model: Model, x: Any) -> Any:
    """Inputs for a float (Keras) model: float data as given, integer data dequantized (and, where the input
    normalisation is applied outside the model, mapped back to the raw features)."""
    from tinykeras.input_norm import unapply

    norm = list(model.input_norm) + [None] * len(model.info.inputs)
    if len(model.info.inputs) > 1:
        parts = x if isinstance(x, list) and all(isinstance(a, np.ndarray) for a in x) else _several(model, x)
        return [a.astype(np.float32) if a.dtype.kind == "f" or t.dtype == "int32" else unapply(e, dequantize(a, t))
                for a, t, e in zip(parts, model.info.input_tensors(), norm, strict=False)]
    x = np.asarray(x)
    xf = x.astype(np.float32) if x.dtype.kind == "f" else unapply(norm[0], dequantize(x, model.input))
    per_sample = tuple(model.input.shape[1:])
    if xf.ndim > 1 and xf.shape[1:] != per_sample and int(np.prod(xf.shape[1:])) == int(np.prod(per_sample)):
        xf = xf.reshape((len(xf),) + per_sample)
    return xf


# ---------------------------------------------------------------------------------------------- runners


@dataclass
class RunOutput:
    """First-output values of every sample in the runtime's dtype, and host time per inference."""

    raw: np.ndarray
    us_per_inference: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_tflm(model: Model, xq: np.ndarray, progress: Callable[[Iterable[int]], Iterator[int]] | None = None,
             ) -> RunOutput:
    """The TFLM host interpreter over every sample of ``xq`` (prepared with :func:`quantized_inputs`)."""
    runner = TflmRunner(model.data, model.info)
    indices: Iterable[int] = range(count(xq))
    if progress is not None:
        indices = progress(indices)
    outs, spent = [], 0.0
    for k in indices:
        out = runner.invoke(take(xq, k))
        spent += runner.last_seconds  # measured inside the interpreter's child process
        outs.append(out)
    every = [np.concatenate([o[j] for o in outs], axis=0) for j in range(len(model.info.outputs))]
    return RunOutput(every[0], 1e6 * spent / max(1, count(xq)), {"outputs": every})


def run_aot(model: Model, xq: np.ndarray) -> RunOutput:
    """The aot runtime (generated C compiled with the host gcc) over every sample of ``xq``."""
    from tinykeras.aot.host import AotHostRunner

    runner = AotHostRunner(model.data, model.info)
    start = time.perf_counter()
    raw = runner.run_all(xq)
    spent = time.perf_counter() - start
    n = count(xq)
    us = runner.time_us(take(xq, 0), runs=20) if n else None
    return RunOutput(raw.reshape((n,) + tuple(model.output.shape[1:])), us,
                     {"arena_bytes": runner.arena_bytes, "wall_us_per_inference": 1e6 * spent / max(1, n)})


def run_tflite(model: Model, xq: np.ndarray) -> RunOutput:
    """``tf.lite`` without default delegates (XNNPACK rounds differently by one LSB): the TensorFlow reference."""
    import warnings

    from tinykeras.keras_io import import_tf

    tf = import_tf()
    try:
        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT) is not for our users
            warnings.simplefilter("ignore")
            interp = tf.lite.Interpreter(
                model_content=model.data,
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
    except Exception as exc:
        raise ModelError(f"{model.info.path or 'model'}: tf.lite cannot load it ({str(exc).strip()[:300]})") from exc
    inputs = list(model.info.inputs)  # tf.lite addresses tensors by their subgraph index
    out = model.info.outputs[0]
    outs, spent = [], 0.0
    for k in range(count(xq)):
        sample = take(xq, k)
        for j, part in enumerate(sample if isinstance(sample, list) else [sample]):
            interp.set_tensor(inputs[j], np.ascontiguousarray(part))
        start = time.perf_counter()
        interp.invoke()
        spent += time.perf_counter() - start
        outs.append(np.array(interp.get_tensor(out)))
    return RunOutput(np.concatenate(outs, axis=0), 1e6 * spent / max(1, count(xq)))


def run_runtime(runtime: str, model: Model, xq: np.ndarray, progress: Any = None) -> RunOutput:
    if runtime == "tflm":
        return run_tflm(model, xq, progress)
    if runtime == "aot":
        return run_aot(model, xq)
    if runtime == "tflite":
        return run_tflite(model, xq)
    raise ValueError(f"unknown runtime {runtime!r}; choose tflm, aot or tflite")


def keras_predict(keras_model: Any, x: np.ndarray) -> np.ndarray:
    """Float outputs of a Keras model: a LoadedModel, a tf_keras Model, a path or any callable."""
    from tinykeras.keras_io import LoadedModel, load_model

    if isinstance(keras_model, (str, Path)):
        keras_model = load_model(keras_model)
    if isinstance(keras_model, LoadedModel):
        loaded = keras_model

        def fn(batch: Any) -> np.ndarray:
            return loaded.predict_all(batch if isinstance(batch, list) else [batch])[0]
    elif hasattr(keras_model, "predict") and hasattr(keras_model, "layers"):
        def fn(batch: np.ndarray) -> np.ndarray:
            return np.asarray(keras_model(batch, training=False))
    elif callable(keras_model):
        fn = keras_model
    else:
        raise ModelError(f"cannot run {type(keras_model).__name__} as a Keras model")
    batches = [np.asarray(fn([a[k:k + 256] for a in x] if isinstance(x, list) else x[k:k + 256]), dtype=np.float32)
               for k in range(0, count(x), 256)]
    return np.concatenate(batches, axis=0) if batches else np.zeros((0,), np.float32)


# ------------------------------------------------------------------------------------------ comparisons


def top1(values: np.ndarray) -> np.ndarray | None:
    """Argmax per sample over the flattened output, or None for a single-value (regression) output."""
    flat = values.reshape(len(values), -1)
    return None if flat.shape[1] < 2 else np.argmax(flat, axis=1)


def compare(a: np.ndarray, b: np.ndarray, *, a_tensor: TensorInfo | None, b_tensor: TensorInfo | None,
            ) -> dict[str, Any]:
    """Top-1 agreement and max |dequantized difference| of two output batches; bit-exactness when both are
    raw values of the same dtype."""
    if a.size != b.size:
        raise ModelError(f"outputs differ in size ({a.shape} vs {b.shape}); are they the same model?")
    b = b.reshape(a.shape)
    fa = dequantize(a, a_tensor) if a_tensor is not None else a.astype(np.float32)
    fb = dequantize(b, b_tensor) if b_tensor is not None else b.astype(np.float32)
    ta, tb = top1(fa), top1(fb)
    out: dict[str, Any] = {
        "agreement": None if ta is None or tb is None or not len(ta) else float(np.mean(ta == tb)),
        "max_abs_deviation": float(np.max(np.abs(fa - fb))) if a.size else 0.0,
    }
    if a_tensor is not None and b_tensor is not None and a.dtype == b.dtype and a.dtype.kind in "iu":
        diff = a != b
        out["bit_exact"] = bool(not diff.any())
        out["mismatches"] = int(diff.sum())
        out["max_abs_lsb"] = int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)))) if a.size else 0
    if ta is not None and tb is not None:
        out["disagreeing_samples"] = [int(k) for k in np.flatnonzero(ta != tb)[:20]]
    return out


def labels_to_classes(y: np.ndarray, samples: int) -> np.ndarray:
    """Integer class labels from integer labels or one-hot rows."""
    y = np.asarray(y)[:samples]
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=1)
    return y.reshape(len(y)).astype(np.int64)


def _are_class_labels(y: np.ndarray) -> bool:
    if y.ndim == 2 and y.shape[1] > 1:
        return True
    flat = y.reshape(len(y))
    return flat.dtype.kind in "iub" or bool(np.all(np.mod(flat, 1) == 0) and np.all(flat >= 0))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> list[list[int]]:
    n = max(classes, int(y_true.max(initial=0)) + 1, int(y_pred.max(initial=0)) + 1)
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m.tolist()


# ------------------------------------------------------------------------------------------------ emulate


@dataclass
class EmulateResult:
    """The report of one emulation; ``to_json()`` gives the ``--json`` object."""

    data: dict[str, Any]
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # top-1 score per sample, per source
    labels: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.data

    def write_plots(self, directory: Path) -> list[Path]:
        """confusion_matrix.png (with labels) and scores.png, written atomically into ``directory``."""
        from tinykeras.fsutil import atomic_output_dir
        from tinykeras.keras_io import model_name
        from tinykeras.report import confusion_matrix_png, score_histogram_png

        name = model_name(self.data.get("model") or "model")
        written = []
        with atomic_output_dir(directory) as tmp:
            matrix = self.data.get("confusion_matrix")
            if matrix:
                names = self.labels or [str(k) for k in range(len(matrix))]
                names = (names + [str(k) for k in range(len(names), len(matrix))])[:len(matrix)]
                (tmp / "confusion_matrix.png").write_bytes(
                    confusion_matrix_png(matrix, names, f"{name} ({self.data['runtime']}): confusion matrix"))
                written.append(directory / "confusion_matrix.png")
            if self.scores:
                (tmp / "scores.png").write_bytes(score_histogram_png(
                    {k: v.tolist() for k, v in self.scores.items()}, f"{name}: top-1 scores",
                    "dequantized top-1 output"))
                written.append(directory / "scores.png")
        return written


def emulate(model: bytes | str | Path | Model, x: np.ndarray | None = None, y: np.ndarray | None = None, *,
            keras: Any = None, runtime: str = "tflm", samples: int | None = None, tflite: bool = True,
            measure_arena: bool = True, labels: list[str] | None = None,
            progress: Callable[[Iterable[int]], Iterator[int]] | None = None) -> EmulateResult:
    """Run ``model`` over ``x`` (float or already-quantized; random int8 when None) with ``runtime``.

    ``keras``: the float model (path, LoadedModel, tf_keras Model or callable) to compare with.
    ``tflite``: also compare with ``tf.lite`` (imports TensorFlow). Returns an :class:`EmulateResult`.
    """
    if runtime not in RUNTIME_NAMES:
        raise ModelError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIME_NAMES)}")
    m = load(model)
    if x is None:
        xq = random_inputs(m, samples or DEFAULT_RANDOM_SAMPLES)
        source = f"random {m.input.dtype} (seed {RANDOM_SEED})"
        y = None
    elif len(m.info.inputs) > 1:
        x = _several(m, x)
        if samples is not None:
            x = head(x, samples)
            y = None if y is None else np.asarray(y)[:samples]
        if count(x) == 0:
            raise DataError("no samples to run (the data is empty)")
        xq = quantized_inputs(m, x)
        source = f"{len(x)} inputs ({', '.join(str(a.dtype) for a in x)}), quantized with each input's scale"
    else:
        x = np.asarray(x)
        if samples is not None:
            x = x[:samples]
            y = None if y is None else np.asarray(y)[:samples]
        if len(x) == 0:
            raise DataError("no samples to run (the data is empty)")
        xq = quantized_inputs(m, x)
        q = m.input.quantization
        source = (f"float data quantized with scale {q.scale:.6g}, zero point {q.zero_point}"
                  if x.dtype.kind == "f" and q is not None and m.input.dtype not in ("float32", "float16")
                  else f"{x.dtype} data")
    n = count(xq)
    out_t = m.output
    tflm = run_tflm(m, xq, progress)
    outputs = {"tflm": tflm}
    if runtime == "aot":
        outputs["aot"] = run_aot(m, xq)
    main = outputs[runtime]

    comparisons: dict[str, dict[str, Any]] = {}
    scores: dict[str, np.ndarray] = {}
    main_f = dequantize(main.raw, out_t)
    scores[runtime] = main_f.reshape(n, -1).max(axis=1)
    if runtime == "aot":
        comparisons["tflm"] = compare(main.raw, tflm.raw, a_tensor=out_t, b_tensor=out_t)
    if tflite:
        ref = run_tflite(m, xq)
        outputs["tflite"] = ref
        comparisons["tflite"] = compare(main.raw, ref.raw, a_tensor=out_t, b_tensor=out_t)
        if runtime == "aot":
            comparisons["tflm_vs_tflite"] = compare(tflm.raw, ref.raw, a_tensor=out_t, b_tensor=out_t)
    if keras is not None:
        kf = keras_predict(keras, head(float_inputs(m, x if x is not None else xq), n))
        comparisons["keras"] = compare(main.raw, kf, a_tensor=out_t, b_tensor=None)
        scores["keras"] = kf.reshape(n, -1).max(axis=1)

    data: dict[str, Any] = {
        "model": m.info.path,
        "model_sha256": m.info.sha256[:16],
        "runtime": runtime,
        "samples": n,
        "input": source,
        "accuracy": None,
        "agreement": None,
        "max_abs_deviation": None,
    }
    primary = comparisons.get("keras") or comparisons.get("tflite") or comparisons.get("tflm")
    if primary is not None:
        data["agreement"] = primary["agreement"]
        data["max_abs_deviation"] = primary["max_abs_deviation"]
        data["agreement_vs"] = next(k for k in ("keras", "tflite", "tflm") if k in comparisons)
    exact_ref = "tflm" if runtime == "aot" else ("tflite" if "tflite" in comparisons else None)
    if exact_ref is not None:
        data["bit_exact"] = comparisons[exact_ref]["bit_exact"]
        data["mismatches"] = comparisons[exact_ref]["mismatches"]
        data["bit_exact_vs"] = exact_ref
    from tinykeras.metrics import detect_task, output_metrics
    from tinykeras.tflite_io import io_names

    out_names = io_names(m.data, m.info.inputs, m.info.outputs)[1]
    task0 = detect_task(m.info, 0, main.raw.shape, None if y is None else np.asarray(y))
    data["task"] = task0
    every = tflm.extra["outputs"] if runtime == "tflm" else [main.raw] + tflm.extra["outputs"][1:]
    keras_all: list[Any] = []
    if keras is not None:
        keras_all = _keras_all(keras, head(float_inputs(m, x if x is not None else xq), n), kf)
    per_output = []
    for j, raw in enumerate(every):
        t = m.info.output_tensors()[j]
        got = dequantize(raw, t)
        ref = keras_all[j] if j < len(keras_all) else None
        labels_j = None if j > 0 or y is None else np.asarray(y)[:n]
        kind = detect_task(m.info, j, raw.shape, labels_j)
        if labels_j is not None and kind == "regression" and np.asarray(labels_j).size != got.size:
            labels_j = None
        per_output.append(output_metrics(got, ref, labels_j, task=kind, name=out_names[j]))
    data["outputs"] = per_output
    pred = top1(main_f) if task0 in ("classification", "regression") else None
    if task0 == "regression" and y is not None:
        data["labels_note"] = "regression/reconstruction output: see outputs[] for MAE, RMSE, R²"
        y = None
    if y is not None and not _are_class_labels(np.asarray(y)):
        data["labels_note"] = "the labels are not class indices or one-hot rows; accuracy not computed"
        y = None
    if y is not None and pred is not None:
        truth = labels_to_classes(y, n)
        data["accuracy"] = float(np.mean(pred == truth))
        data["confusion_matrix"] = confusion(truth, pred, int(np.prod(out_t.shape[1:])))
        if keras is not None:
            kpred = top1(kf)
            data["keras_accuracy"] = None if kpred is None else float(np.mean(kpred == truth))
    arena: dict[str, Any] = {}
    if measure_arena:
        from tinykeras.arena import measure_arena_bytes, recorded_arena_bytes

        recorded = recorded_arena_bytes(m.data, m.info)
        arena["tflm_recorded_bytes"] = recorded
        arena["tflm_measured_bytes"] = measure_arena_bytes(m.data, m.info, recorded)
    if runtime == "aot":
        arena["aot_bytes"] = outputs["aot"].extra["arena_bytes"]
        data["arena_bytes"] = arena["aot_bytes"]
    else:
        data["arena_bytes"] = arena.get("tflm_measured_bytes")
    data["arena"] = arena
    data["host_us_per_inference"] = main.us_per_inference
    data["host_us"] = {k: v.us_per_inference for k, v in outputs.items()}
    data["comparisons"] = comparisons
    return EmulateResult(data, scores, labels)


def _keras_all(keras_model: Any, x: Any, first: np.ndarray) -> list[np.ndarray]:
    """Every output of the float model (a LoadedModel gives them all; other callables: the first only)."""
    from tinykeras.keras_io import LoadedModel

    if isinstance(keras_model, LoadedModel) and len(keras_model.output_names) > 1:
        xs = x if isinstance(x, list) else [x]
        chunks = [keras_model.predict_all([a[k:k + 256] for a in xs]) for k in range(0, count(xs), 256)]
        outs = [np.concatenate(parts, axis=0) for parts in zip(*chunks, strict=True)]
        return [np.asarray(o, dtype=np.float32) for o in outs]
    return [first]


def bit_exact_check(model: bytes | str | Path | Model, x: np.ndarray, runtime: str = "aot",
                    reference: str = "tflm") -> dict[str, Any]:
    """Compare the raw int8 outputs of two runtimes (tflm, aot, tflite) on the same inputs."""
    m = load(model)
    xq = quantized_inputs(m, x)
    a = run_runtime(runtime, m, xq).raw
    b = run_runtime(reference, m, xq).raw
    return compare(a, b, a_tensor=m.output, b_tensor=m.output)
