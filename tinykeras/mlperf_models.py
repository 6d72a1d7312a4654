"""Which MLPerf Tiny benchmark a model is (by content, or as the user says) and that benchmark's input and
output conventions, as the reference API (mlcommons/tiny ``th_load_tensor`` / ``th_results``) defines them.

The table is data: ``tinykeras/data/mlperf_models.toml``. The host-side mirrors here (:func:`load_tensor`,
:func:`results_line`) compute exactly what the firmware's ``tk_bench.c`` does, so a board's replies can be
compared with the TFLM host interpreter's outputs byte for byte. No TensorFlow.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import DataError, ModelError
from tinykeras.types import ModelInfo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TABLE = Path(__file__).resolve().parent / "data" / "mlperf_models.toml"
IDS = ("kws01", "vww01", "ic01", "ad01", "sww01")
# Codes of the conventions in tk_bench.h (TK_MLPERF_INPUT_* / TK_MLPERF_RESULTS_*).
INPUT_CODES = {"int8": 0, "uint8": 1, "float32": 2}
RESULTS_CODES = {"scores": 0, "mse": 1}


@dataclass(frozen=True)
class MlperfModel:
    """One published MLPerf Tiny model file and the conventions of its benchmark."""

    id: str
    file: str
    bytes: int
    sha256: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input: str    # "int8" | "uint8" | "float32"
    results: str  # "scores" | "mse"


@dataclass(frozen=True)
class Conventions:
    """What the firmware does with ``db`` bytes and how it prints ``m-results``; ``id`` None: not MLPerf."""

    id: str | None
    input: str = "int8"
    results: str = "scores"

    def db_bytes(self, input_nbytes: int) -> int:
        """Bytes a complete ``db load`` holds for an int8 input tensor of ``input_nbytes`` elements."""
        return input_nbytes * (4 if self.input == "float32" else 1)


@lru_cache(maxsize=1)
def table() -> tuple[MlperfModel, ...]:
    data = tomllib.loads(TABLE.read_text(encoding="utf-8"))
    return tuple(MlperfModel(id=m["id"], file=m["file"], bytes=int(m["bytes"]), sha256=m["sha256"],
                             input_shape=tuple(m["input_shape"]), output_shape=tuple(m["output_shape"]),
                             input=m["input"], results=m["results"]) for m in data["model"])


def identify(model: bytes) -> MlperfModel | None:
    """The published MLPerf Tiny model these bytes are (SHA-256 and size), else None."""
    digest = hashlib.sha256(model).hexdigest()
    return next((m for m in table() if m.sha256 == digest and m.bytes == len(model)), None)


def conventions(model: bytes, info: ModelInfo, requested: str | None = None) -> Conventions:
    """The benchmark of ``model``: the one ``requested`` (``--mlperf-model``), else the one its content is, else
    none (int8 bytes in, every output printed). A requested id must fit the model's tensor shapes."""
    known = identify(model)
    if requested is None:
        return Conventions(None) if known is None else Conventions(known.id, known.input, known.results)
    if requested not in IDS:
        raise DataError(f"--mlperf-model {requested!r} is not an MLPerf Tiny model id; choose one of {', '.join(IDS)}")
    if known is not None and known.id != requested:
        raise ModelError(f"the model is the published MLPerf Tiny {known.id} model ({known.file}); "
                         f"drop --mlperf-model {requested} or pass --mlperf-model {known.id}")
    entry = next(m for m in table() if m.id == requested)
    ins, outs = info.input_tensors(), info.output_tensors()
    got_in = tuple(ins[0].shape) if ins else ()
    got_out = tuple(outs[0].shape) if outs else ()
    if (got_in, got_out) != (entry.input_shape, entry.output_shape):
        raise ModelError(f"--mlperf-model {requested}: the model maps {list(got_in)} -> {list(got_out)}, but "
                         f"{requested} maps {list(entry.input_shape)} -> {list(entry.output_shape)}; "
                         "pass the id of the benchmark whose inputs this model takes")
    return Conventions(entry.id, entry.input, entry.results)


def dut_name(board_name: str, emulated: bool, detail: str = "") -> str:
    """The text of ``m-name-dut-[...]``: the board, and on an emulator that it is one (no ``]``)."""
    text = f"tinykeras {board_name}"
    if emulated:
        text += f" (emulator{': ' + detail if detail else ''}; times are instruction counts at 1 ns each)"
    return text.replace("]", ")").replace("[", "(")


def firmware_values(model: bytes, info: ModelInfo, requested: str | None, dut: str, *, enabled: bool = True,
                    min_db_bytes: int = 0) -> dict[str, Any]:
    """Template values of the firmware's MLPerf Tiny command loop (tk_bench.h): the benchmark's conventions
    (``mlperf``), the `db` buffer size (at least ``min_db_bytes``: raw float features of an input normalised on
    the device), the DUT name and the input quantization. ``enabled`` False: plain int8 bytes in, every output
    printed, whatever the model (``validate --board`` sends quantized samples)."""
    conv = conventions(model, info, requested) if enabled else Conventions(None)
    inputs = info.input_tensors()
    q = inputs[0].quantization if inputs else None
    db = max(conv.db_bytes(inputs[0].nbytes if inputs else 1), min_db_bytes, 1)
    return {"mlperf": conv, "dut_name": dut, "db_bytes": db,
            "input_format": INPUT_CODES[conv.input], "results_format": RESULTS_CODES[conv.results],
            "input_scale_value": q.scale if q else 1.0, "input_zero_point": int(q.zero_point) if q else 0}


# ------------------------------------------------------------------------------------------ host mirrors


def load_tensor(conv: Conventions, data: bytes, elements: int, scale: float, zero_point: int) -> np.ndarray:
    """The int8 input tensor the firmware builds from ``db`` bytes (``th_load_tensor``). DataError on a wrong size."""
    want = conv.db_bytes(elements)
    if len(data) != want:
        raise DataError(f"the input has {len(data)} bytes; {conv.id or 'this model'} needs exactly {want}")
    if conv.input == "int8":
        return np.frombuffer(data, dtype=np.int8).copy()
    if conv.input == "uint8":
        return (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128).astype(np.int8)
    return quantize(np.frombuffer(data, dtype="<f4"), scale, zero_point)


def quantize(values: Any, scale: float, zero_point: int) -> np.ndarray:
    """float32 -> int8 as the reference ``QuantizeFloatToInt8``: round(v / scale) half away from zero, plus the
    zero point, clamped; the division in float32 (tk_bench.c ``quantize_input``)."""
    x = np.asarray(values, dtype=np.float32) / np.float32(scale)
    x = np.clip(np.where(np.isnan(x), np.float32(-1000.0), x), np.float32(-1000.0), np.float32(1000.0))
    r = np.trunc(x)
    frac = (x - r).astype(np.float32)
    r = r + (frac >= 0.5) - (frac <= -0.5)
    return np.clip(r.astype(np.int32) + int(zero_point), -128, 127).astype(np.int8)


def fixed3(value: Any) -> str:
    """``printf("%0.3f", (double)value)`` of a float32: correctly rounded, ties to even (tk_bench.c out_fixed3)."""
    v = float(np.float32(value))
    if not np.isfinite(v) or abs(v) >= 1e12:
        return "nan" if not np.isfinite(v) else ("-" if v < 0 else "") + "inf"
    return ("-" if v < 0 else "") + f"{abs(v):.3f}"


def dequantize(values: Any, scale: float, zero_point: int) -> np.ndarray:
    """``DequantizeInt8ToFloat``: (q - zero_point) * scale in float32."""
    q = np.asarray(values, dtype=np.int32).ravel()
    return (q - int(zero_point)).astype(np.float32) * np.float32(scale)


def anomaly_score(output: Any, scale: float, zero_point: int, input_float: Any) -> np.float32:
    """The ad01 score: mean of (dequantized output - float input)^2, summed in float32 in order, as the reference."""
    deq = dequantize(output, scale, zero_point)
    x = np.asarray(input_float, dtype=np.float32).ravel()
    total = np.float32(0.0)
    for c, v in zip(deq, x, strict=True):
        d = np.float32(c - v)
        total = np.float32(total + np.float32(d * d))
    return np.float32(total / np.float32(len(deq)))


def results_line(conv: Conventions, output: Any, scale: float, zero_point: int, data: bytes | None = None) -> str:
    """What the firmware prints after ``infer``/``results%`` for ``output`` (int8) and the loaded ``data``."""
    if conv.results == "mse":
        if data is None:
            raise DataError("the ad01 score needs the float input the output is compared with")
        return f"m-results-[{fixed3(anomaly_score(output, scale, zero_point, np.frombuffer(data, '<f4')))}]"
    return "m-results-[" + ",".join(fixed3(v) for v in dequantize(output, scale, zero_point)) + "]"
