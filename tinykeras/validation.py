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

from tinykeras import pipeline
from tinykeras.aot.host import AotHostRunner
from tinykeras.boards import load_board
from tinykeras.device import open_port
from tinykeras.device.mlperf import MlperfDut, MlperfStop
from tinykeras.errors import DataError, ModelError, SerialError, ToolchainError
from tinykeras.fsutil import write_text_atomic
from tinykeras.inspect import inspect_bytes, read_model_bytes
from tinykeras.keras_io import InputSpec, LoadedModel, load_model, model_inputs, model_labels
from tinykeras.metrics import check_thresholds, collapse_warnings, detect_task, output_metrics
from tinykeras.tflite_io import io_names
from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs
from tinykeras.types import ModelInfo

BOARDS = ("qemu_m4",)
BOARD_DEFAULT_SAMPLES = 50
THRESHOLD_EXIT_CODE = 10


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
              work_dir: Path | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Output 0 of every sample of ``xq`` (int8, one input) computed by the aot runtime on the emulated board,
    read back over serial (dequantized, rounded to 3 decimals by the firmware): the benchmark firmware built by
    the driver (:func:`tinykeras.pipeline.assemble`), driven as an MLPerf Tiny DUT (``db``, ``infer``)."""
    if len(info.inputs) != 1 or info.input_tensors()[0].dtype != "int8":
        raise ModelError(f"--board {board_name} reads one int8 input over serial; this model has "
                         f"{len(info.inputs)} input(s) of {', '.join(t.dtype for t in info.input_tensors())}; "
                         "validate it on the host (without --board)")
    board = load_board(board_name)
    if board.kind != "qemu":
        raise ModelError(f"--board {board_name}: validate runs on the emulated board (qemu_m4) only; for a real "
                         "board use tinykeras bench")
    planned = pipeline.plan_build(board, data, runtime="aot", info=info, name=name)
    with tempfile.TemporaryDirectory(prefix="tinykeras-validate-") as tmp:
        firmware = pipeline.assemble(planned, data, Path(work_dir) if work_dir else Path(tmp), name=name, runs=1,
                                     warmup=0)
        values = []
        with pipeline.running(firmware) as url:
            port = open_port(url, board.baud)
            try:
                dut = MlperfDut(port, timeout=60.0)
                dut.boot()
                for k in range(len(xq)):
                    dut.load(np.ascontiguousarray(xq[k], dtype=np.int8).tobytes())
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
                 "read_back": "output 0 over serial (MLPerf Tiny results%, dequantized, 3 decimals)"}


def validate(model: bytes | str | Path, x: Any, y: Any = None, *, keras: Any = None, board: str | None = None,
             runtime: str = "tflm", task: str = "auto", samples: int | None = None,
             thresholds: dict[str, float | None] | None = None, path: str | None = None) -> dict[str, Any]:
    """Run the int8 ``model`` on held-out ``x`` (array, list or dict keyed by input name; float or raw int8)
    and report per-output metrics against ``keras`` (LoadedModel, path or callable) and labels ``y``
    (an array for output 0, a list per output, or None). ``report['passed']`` is False when a threshold
    failed; ``report['failures']`` says which."""
    data = bytes(model) if isinstance(model, (bytes, bytearray)) else read_model_bytes(model)
    where = path or (str(model) if isinstance(model, (str, Path)) else "model")
    info = inspect_bytes(data, path=where)
    in_names, out_names = io_names(data, info.inputs, info.outputs)
    arrays = x if isinstance(x, dict) else None
    xs = model_inputs(x, _specs(info, in_names), "data")
    if samples is None and board is not None:
        samples = BOARD_DEFAULT_SAMPLES
    if samples is not None:
        xs = [v[:samples] for v in xs]
    n = len(xs[0])
    if n == 0:
        raise DataError("data: no samples")
    if y is None and arrays is not None:
        labels = model_labels(arrays, out_names)
    elif isinstance(y, list):
        labels = [None if v is None else np.asarray(v) for v in y]
    else:
        labels = [None if y is None else np.asarray(y)]
    labels = [None if v is None else v[:n] for v in labels] + [None] * (len(out_names) - len(labels))
    for j, v in enumerate(labels):
        if v is not None and len(v) != n:
            raise DataError(f"data: {n} samples but {len(v)} labels for output '{out_names[j]}'")
    xq = [prepare_inputs(v, t) for v, t in zip(xs, info.input_tensors(), strict=True)]
    float_x = [v if v.dtype != np.int8 else dequantize(v, t) for v, t in zip(xs, info.input_tensors(), strict=True)]

    host = run_host(data, info, xq, "tflm")
    got = [dequantize(h, t) for h, t in zip(host, info.output_tensors(), strict=True)]
    report: dict[str, Any] = {"model": where, "model_sha256": info.sha256[:16], "samples": n, "inputs": in_names,
                              "where": f"host ({'TFLite-Micro' if runtime == 'tflm' else 'aot C runtime'})"}
    if board is not None:
        board_out, board_info = run_board(data, info, xq[0], board)
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


def write_report(report: dict[str, Any], path: Path) -> None:
    write_text_atomic(Path(path), json.dumps(report, indent=2) + "\n")
