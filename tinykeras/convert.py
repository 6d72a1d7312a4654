"""Keras model -> .tflite: full-integer int8 post-training quantization (and float32/dynamic for comparison)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import DataError, ModelError
from tinykeras.inspect import inspect_bytes
from tinykeras.keras_io import LoadedModel, import_tf, match_input_shape
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


def random_representative(shape: tuple[int | None, ...], samples: int = RANDOM_REP_SAMPLES,
                          seed: int = 0) -> np.ndarray:
    """Uniform [-1, 1) calibration data. Warns loudly: int8 scales calibrated on noise are usually wrong."""
    message = (
        "NO REPRESENTATIVE DATA: calibrating int8 scales on random noise. Accuracy on real inputs will "
        "likely suffer; pass --rep-data with ~100-500 real samples (.npz with 'x' or .npy)"
    )
    print(f"WARNING: {message}", file=sys.stderr)
    dims = tuple(d if d is not None else 1 for d in shape[1:])
    return np.random.default_rng(seed).uniform(-1, 1, size=(samples,) + dims).astype(np.float32)


def _converter(model: LoadedModel) -> Any:
    tf = import_tf()
    if model.keras_model is not None:
        return tf.lite.TFLiteConverter.from_keras_model(model.keras_model)
    return tf.lite.TFLiteConverter.from_saved_model(str(model.saved_model_dir))


def convert(model: LoadedModel, kind: str = "int8", rep_data: np.ndarray | None = None,
            per_tensor_dense: bool = False) -> Conversion:
    """Convert ``model`` to a .tflite of ``kind`` (int8, float32 or dynamic). int8 needs ``rep_data``.

    ``per_tensor_dense``: one weight scale per FULLY_CONNECTED layer instead of one per output channel, for
    TFLM libraries without per-channel FULLY_CONNECTED (``[[gaps]]`` in libraries/*.toml)."""
    if kind not in KINDS:
        raise ModelError(f"unknown conversion kind '{kind}'; choose one of {', '.join(KINDS)}")
    tf = import_tf()
    converter = _converter(model)
    if kind in ("int8", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "int8":
        if rep_data is None:
            raise DataError("int8 conversion needs representative data")
        samples = rep_data.astype(np.float32)

        def representative() -> Any:
            for k in range(len(samples)):
                yield [samples[k:k + 1]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if per_tensor_dense:
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    from tinykeras.stdio import capture_native_stderr

    try:
        with capture_native_stderr() as log:
            data = bytes(converter.convert())
    except Exception as exc:
        reason = _converter_reason(exc, log.text)
        raise ModelError(f"{model.path}: TFLite conversion to {kind} failed: {reason}") from exc
    return Conversion(kind=kind, data=data, info=inspect_bytes(data, path=f"model_{kind}.tflite"))


def _converter_reason(exc: BaseException, native_log: str = "") -> str:
    """Keep the converter's lines that name ops or layers, drop the MLIR stack noise."""
    lines = [line.strip() for line in (str(exc) + "\n" + native_log).splitlines() if line.strip()]
    useful = [line for line in lines if "error:" in line or "op" in line.lower() or "layer" in line.lower()]
    text = "; ".join(dict.fromkeys(useful or lines))[:600]
    hint = ""
    if "int8" in text.lower() or "quantiz" in text.lower():
        hint = " (a layer without an int8 kernel; replace it or try --kind dynamic)"
    return (text or type(exc).__name__) + hint


def compare_int8(model: LoadedModel, conversion: Conversion, x: np.ndarray) -> dict[str, Any]:
    """Float Keras vs int8 on the TFLM host interpreter: top-1 agreement and max |dequantized difference|."""
    from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs

    info = conversion.info
    float_out = np.asarray(model.predict(x.astype(np.float32)), dtype=np.float32)
    runner = TflmRunner(conversion.data, info)
    q_out = runner.run_all(prepare_inputs(x, info.input_tensors()[0]))
    deq = dequantize(q_out, info.output_tensors()[0]).reshape(float_out.shape)
    flat_f = float_out.reshape(len(x), -1)
    flat_q = deq.reshape(len(x), -1)
    result: dict[str, Any] = {
        "samples": int(len(x)),
        "max_abs_diff": float(np.max(np.abs(flat_f - flat_q))) if flat_f.size else 0.0,
        "mean_abs_diff": float(np.mean(np.abs(flat_f - flat_q))) if flat_f.size else 0.0,
        "reference": "float Keras vs int8 on the TFLite-Micro host interpreter",
    }
    result["top1_agreement"] = (
        float(np.mean(np.argmax(flat_f, axis=1) == np.argmax(flat_q, axis=1))) if flat_f.shape[1] > 1 else None
    )
    return result


def quantize_model(model: LoadedModel, rep_data: np.ndarray | None, also: tuple[str, ...] = (),
                   per_tensor_dense: bool = False) -> list[Conversion]:
    """int8 conversion with its float-vs-int8 comparison, plus the ``also`` kinds for size comparison.
    ``per_tensor_dense``: per-tensor FULLY_CONNECTED weights (see :func:`convert`)."""
    if rep_data is None:
        rep_data = random_representative(model.input_shape)
    else:
        rep_data = match_input_shape(np.asarray(rep_data), model.input_shape, "representative data")
        if not np.issubdtype(rep_data.dtype, np.floating):
            raise DataError("representative data must be float (the model's float inputs), "
                            f"got {rep_data.dtype}")
        from tinykeras.datacheck import require_finite_samples

        require_finite_samples(rep_data, "representative data")
    main = convert(model, "int8", rep_data, per_tensor_dense=per_tensor_dense)
    main.comparison = compare_int8(model, main, rep_data)
    conversions = [main]
    for kind in also:
        if kind != "int8":
            conversions.append(convert(model, kind))
    return conversions


def write_outputs(conversions: list[Conversion], out_dir: Path, source: str,
                  labels: list[str] | None = None) -> dict[str, Any]:
    """Write model.tflite, model_data.h/.cc, model_settings.h, other kinds and report.json into ``out_dir``."""
    import json

    from tinykeras.cgen import c_sources

    main = conversions[0]
    (out_dir / "model.tflite").write_bytes(main.data)
    c_sources(main.data, main.info, labels=labels).write(out_dir)
    sizes = {main.kind: len(main.data)}
    for extra in conversions[1:]:
        (out_dir / f"model_{extra.kind}.tflite").write_bytes(extra.data)
        sizes[extra.kind] = len(extra.data)
    report = {
        "source": source,
        "kind": main.kind,
        "sha256": main.info.sha256,
        "files": {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()},
        "tflite_bytes": sizes,
        "ops": main.info.op_names,
        "macs": main.info.macs,
        "params": main.info.params,
        "comparison": main.comparison,
    }
    report["files"]["report.json"] = None  # written last; size unknown while writing
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
