"""``tinykeras validate``: per-output metrics of an int8 .tflite on held-out data, on the host or on the
emulated board, with thresholds for CI (in the spirit of ``stedgeai validate``).

Host: the TFLite-Micro host interpreter (or the aot C runtime, compiled with the host gcc). Board: the aot
runtime on qemu_m4; each sample is loaded over the emulated UART with the MLPerf Tiny commands
(``db load``/``db``/``infer``) and output 0 is read back with ``results%`` (dequantized, 3 decimals).
Every output is compared against the float Keras model (``--keras``) and/or the labels in the data.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras import input_norm as norms
from tinykeras import pipeline
from tinykeras.aot.host import AotHostRunner
from tinykeras.boards import load_board
from tinykeras.device import open_port
from tinykeras.device.mlperf import MlperfDut, MlperfStop
from tinykeras.errors import DataError, ModelError, SerialError, ThresholdError, ToolchainError
from tinykeras.fsutil import write_text_atomic
from tinykeras.inspect import inspect_bytes, read_model_bytes
from tinykeras.keras_io import InputSpec, LoadedModel, load_model, model_inputs, model_labels
from tinykeras.metrics import check_thresholds, collapse_warnings, detect_task, output_metrics
from tinykeras.tflite_io import io_names
from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs
from tinykeras.types import ModelInfo, index_limit

BOARDS = ("qemu_m3", "qemu_m4", "qemu_m7", "qemu_m33", "qemu_m55")
BOARD_DEFAULT_SAMPLES = 50
THRESHOLD_EXIT_CODE = ThresholdError.exit_code


def _specs(info: ModelInfo, names: list[str]) -> list[InputSpec]:
    return [InputSpec(n, tuple(t.shape), "int32" if t.dtype == "int32" else "float32")
            for n, t in zip(names, info.input_tensors(), strict=True)]


def run_host(data: bytes, info: ModelInfo, xq: list[np.ndarray], runtime: str = "tflm") -> list[np.ndarray]:
    """Raw outputs (every output, every sample) on the host with ``runtime`` (tflm or aot)."""
    n = len(xq[0])
    if runtime == "aot":
        runner = AotHostRunner(data, info)
        per = runner.invoke_many(xq if len(xq) > 1 else xq[0])
    else:
        tflm = TflmRunner(data, info)
        per = [tflm.invoke([x[k:k + 1] for x in xq]) for k in range(n)]
    return [np.concatenate([np.asarray(s[j]).reshape((1,) + tuple(t.shape[1:])) for s in per], axis=0)
            for j, t in enumerate(info.output_tensors())]


def run_board(data: bytes, info: ModelInfo, xq: np.ndarray, board_name: str = "qemu_m4", name: str = "model",
              work_dir: Path | None = None, input_norm: list[Any] | None = None,
              x_float: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Output 0 of every sample of ``xq`` (one input: int8, or int32 token ids) computed by the aot runtime on
    the emulated board, read back over serial (dequantized, rounded to 3 decimals by the firmware): the
    benchmark firmware built by the driver (:func:`tinykeras.pipeline.assemble`), driven as an MLPerf Tiny DUT
    (``db``, ``infer``). With ``input_norm`` (input 0 normalised outside the model) and the raw float samples
    ``x_float``, the board gets the raw features and normalises and quantizes them itself (tk_input_norm.c)."""
    t_in = info.input_tensors()[0]
    if len(info.inputs) != 1 or (t_in.dtype != "int8" and index_limit(info, 0) is None):
        raise ModelError(f"--board {board_name} reads one int8 (or int32 token-id) input over serial; this model has "
                         f"{len(info.inputs)} input(s) of {', '.join(t.dtype for t in info.input_tensors())}; "
                         "validate it on the host (without --board)")
    board = load_board(board_name)
    if board.kind != "qemu":
        raise ModelError(f"--board {board_name}: validate runs on the emulated boards (qemu_m3 ... qemu_m55) only; "
                         "for a real board use tinykeras bench")
    planned = pipeline.plan_build(board, data, runtime="aot", info=info, name=name)
    norm_files = norms.firmware_sources(input_norm or [], info) if x_float is not None else {}
    with tempfile.TemporaryDirectory(prefix="tinykeras-validate-") as tmp:
        firmware = pipeline.assemble(planned, data, Path(work_dir) if work_dir else Path(tmp), name=name, runs=1,
                                     warmup=0, extra_files=norm_files,
                                     db_bytes=norms.db_bytes(input_norm or [], t_in.nbytes) if norm_files else None,
                                     mlperf=False)  # quantized samples in, every output back, whatever the model
        values = []
        with pipeline.running(firmware) as url:
            port = open_port(url, board.baud)
            try:
                dut = MlperfDut(port, timeout=60.0)
                dut.boot()
                for k in range(len(xq)):
                    raw = (np.asarray(x_float[k], np.float32).astype("<f4").tobytes() if norm_files and x_float
                           is not None else np.asarray(xq[k]).astype(np.dtype(t_in.dtype).newbyteorder("<")).tobytes())
                    dut.load(raw)
                    result = dut.infer(1, 0)
                    if not result:
                        raise ToolchainError(f"sample {k}: the board printed no m-results line")
                    values.append(result)
            except MlperfStop as stop:
                raise SerialError(f"--board {board_name}: the board stopped answering ({stop.status}: "
                                  f"{stop.detail})") from stop
            finally:
                port.close()
    out_t = info.output_tensors()[0]
    out = np.asarray(values, dtype=np.float32).reshape((len(xq),) + tuple(out_t.shape[1:]))
    return out, {"board": board_name, "runtime": "aot", "arena_bytes": planned.arena_bytes,
                 "sent": "raw float features, normalised and quantized on the board (tk_input_norm.c)"
                 if norm_files else "the quantized input",
                 "read_back": "output 0 over serial (MLPerf Tiny results%, dequantized, 3 decimals)"}


def validate(model: bytes | str | Path, x: Any, y: Any = None, *, keras: Any = None, board: str | None = None,
             runtime: str = "tflm", task: str = "auto", samples: int | None = None,
             thresholds: dict[str, float | None] | None = None, path: str | None = None,
             input_norm: list[Any] | None = None) -> dict[str, Any]:
    """Run the int8 ``model`` on held-out ``x`` (array, list or dict keyed by input name; float or raw int8)
    and report per-output metrics against ``keras`` (LoadedModel, path or callable) and labels ``y``
    (an array for output 0, a list per output, or None). ``report['passed']`` is False when a threshold
    failed; ``report['failures']`` says which. ``input_norm``: the input normalisation applied outside the
    model (``Conversion.input_norm``; default: the settings.json beside a model path)."""
    data = bytes(model) if isinstance(model, (bytes, bytearray)) else read_model_bytes(model)
    where = path or (str(model) if isinstance(model, (str, Path)) else "model")
    info = inspect_bytes(data, path=where)
    in_names, out_names = io_names(data, info.inputs, info.outputs)
    norm = list(input_norm) if input_norm is not None else \
        norms.beside(model if isinstance(model, (str, Path)) else None, len(info.inputs))
    arrays = x if isinstance(x, dict) else None
    xs = model_inputs(x, _specs(info, in_names), "data")
    if samples is None and board is not None:
        samples = BOARD_DEFAULT_SAMPLES
    total = len(xs[0])
    if total == 0:
        raise DataError("data: no samples")
    if y is None and arrays is not None:
        labels = model_labels(arrays, out_names)
    elif isinstance(y, list):
        labels = [None if v is None else np.asarray(v) for v in y]
    else:
        labels = [None if y is None else np.asarray(y)]
    labels = labels + [None] * (len(out_names) - len(labels))
    for j, v in enumerate(labels):
        if v is not None and len(v) != total:
            raise DataError(f"data: {total} samples but {len(v)} labels for output '{out_names[j]}'")
    chosen, sampling = choose_samples(total, samples, labels[0])
    xs = [v[chosen] for v in xs]
    labels = [None if v is None else v[chosen] for v in labels]
    n = len(chosen)
    xq = [prepare_inputs(v, t) for v, t in zip(norms.apply(norm, xs), info.input_tensors(), strict=True)]
    float_x = [v if v.dtype != np.int8 else norms.unapply(e, dequantize(v, t))
               for v, t, e in zip(xs, info.input_tensors(), norm + [None] * len(xs), strict=False)]

    host = run_host(data, info, xq, "tflm")
    got = [dequantize(h, t) for h, t in zip(host, info.output_tensors(), strict=True)]
    report: dict[str, Any] = {"model": where, "model_sha256": info.sha256[:16], "samples": n,
                              "samples_available": total, "sampling": sampling, "inputs": in_names,
                              "where": f"host ({'TFLite-Micro' if runtime == 'tflm' else 'aot C runtime'})"}
    if any(norm):
        report["input_normalization"] = [f"input '{e['input']}': x * scale + offset (layer '{e['layer']}') "
                                         "applied before quantizing" for e in norm if e is not None]
    if board is not None:
        board_out, board_info = run_board(data, info, xq[0], board, input_norm=norm,
                                          x_float=xs[0] if norm and norm[0] is not None and xs[0].dtype.kind == "f"
                                          else None)
        diff = float(np.max(np.abs(board_out.reshape(n, -1) - got[0].reshape(n, -1))))
        q = info.output_tensors()[0].quantization
        board_info["max_abs_diff_vs_host_tflm"] = diff
        board_info["matches_host_tflm"] = bool(diff <= 0.00051)  # 3 printed decimals
        board_info["output_scale"] = q.scale if q is not None else None
        report["board"] = board_info
        report["where"] = f"{board} (aot runtime, read back over serial)"
        got[0] = board_out
    elif runtime == "aot":
        aot = run_host(data, info, xq, "aot")
        exact = all(np.array_equal(a, h) for a, h in zip(aot, host, strict=True))
        report["bit_exact_vs_tflm"] = exact
        got = [dequantize(a, t) for a, t in zip(aot, info.output_tensors(), strict=True)]
    refs: list[np.ndarray | None] = [None] * len(got)
    if keras is not None:
        loaded = load_model(keras) if isinstance(keras, (str, Path)) else keras
        if isinstance(loaded, LoadedModel):
            outs = loaded.predict_all(float_x)
        else:
            outs = loaded(float_x if len(float_x) > 1 else float_x[0])
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
        refs = [np.asarray(o, dtype=np.float32) for o in outs] + [None] * max(0, len(got) - len(outs))
        report["reference"] = "float Keras model"
    outputs = []
    for j, g in enumerate(got):
        kind = detect_task(info, j, g.shape, labels[j], task)
        metrics = output_metrics(g, refs[j], labels[j], task=kind, name=out_names[j])
        if board is not None and j > 0:
            metrics["note"] = "computed on the host (TFLite-Micro): the board reads back output 0 only"
        outputs.append(metrics)
    report["outputs"] = outputs
    report["warnings"] = collapse_warnings(outputs)
    limits = {k: v for k, v in (thresholds or {}).items() if v is not None}
    report["thresholds"] = limits
    report["failures"] = check_thresholds(outputs, limits)
    report["passed"] = not report["failures"]
    return report


def class_ids(labels: np.ndarray | None) -> np.ndarray | None:
    """One class id per sample for integer labels or one-hot rows; None for anything else (regression)."""
    if labels is None or len(labels) == 0:
        return None
    v = np.asarray(labels)
    if v.ndim == 1 and np.issubdtype(v.dtype, np.integer):
        return v
    if v.ndim == 2 and v.shape[1] > 1 and np.isin(v, (0, 1)).all() and (v.sum(axis=1) == 1).all():
        return np.argmax(v, axis=1)
    return None


def choose_samples(total: int, samples: int | None, labels: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Which of ``total`` samples to run, and how they were chosen (said in the report): all of them; else,
    with class labels, the same number from every class in turn (files such as train's test.npz are ordered by
    class, so the first N would be one or two classes); else N evenly spaced ones. In file order."""
    if samples is None or samples >= total:
        return np.arange(total), f"all {total}"
    classes = class_ids(labels)
    if classes is not None:
        rank = np.zeros(total, dtype=np.int64)
        for c in np.unique(classes):
            where = np.flatnonzero(classes == c)
            rank[where] = np.arange(len(where))
        chosen = np.sort(np.lexsort((np.arange(total), rank))[:samples])
        return chosen, (f"stratified by class: {samples} of {total}, from {len(np.unique(classes[chosen]))} "
                        f"classes")
    chosen = np.unique(np.linspace(0, total - 1, samples).round().astype(np.int64))
    return chosen, f"evenly spaced: {len(chosen)} of {total} (no class labels to stratify by)"


def write_report(report: dict[str, Any], path: Path) -> None:
    write_text_atomic(Path(path), json.dumps(report, indent=2) + "\n")
