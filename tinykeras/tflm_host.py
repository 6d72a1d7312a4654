"""The TFLite-Micro host interpreter (PyPI ``tflite-micro``): the correctness reference. No TensorFlow."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tinykeras.errors import ModelError, UnsupportedOpError
from tinykeras.types import ModelInfo, TensorInfo


def quantize(x: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Float values -> the tensor's integer type with its scale and zero point (round half away from zero)."""
    if tensor.quantization is None or tensor.dtype in ("float32", "float16"):
        return np.asarray(x, dtype=np.float32)
    info = np.iinfo(np.dtype(tensor.dtype))
    q = np.round(np.asarray(x, dtype=np.float64) / tensor.quantization.scale) + tensor.quantization.zero_point
    return np.clip(q, info.min, info.max).astype(tensor.dtype)


def dequantize(q: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Integer tensor values -> float32 with the tensor's scale and zero point."""
    if tensor.quantization is None or tensor.dtype in ("float32", "float16"):
        return np.asarray(q, dtype=np.float32)
    return ((q.astype(np.float32) - tensor.quantization.zero_point) * tensor.quantization.scale).astype(np.float32)


def prepare_inputs(x: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Accept float data (quantized here) or data already in the tensor's dtype; reshape to its shape."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and tensor.dtype not in ("float32", "float16"):
        x = quantize(x, tensor)
    elif x.dtype != np.dtype(tensor.dtype):
        x = x.astype(tensor.dtype)
    per_sample = tuple(tensor.shape[1:])
    if tuple(x.shape[1:]) != per_sample:
        if int(np.prod(x.shape[1:])) != int(np.prod(per_sample)):
            raise ModelError(f"input samples have shape {list(x.shape[1:])}, the model expects {list(per_sample)}")
        x = x.reshape((x.shape[0],) + per_sample)
    return x


def _ops_without_kernel(info: ModelInfo) -> list[tuple[int, str]]:
    """(index, name) of every op of ``info`` that TFLite-Micro's op resolver has no kernel for."""
    from tinykeras.inspect import tflm_resolver_methods

    known = tflm_resolver_methods()
    return [(op.index, op.op) for op in info.ops if op.op not in known]


class TflmRunner:
    """Run a model sample by sample with TFLM's reference kernels.

    ``arena_size`` defaults to a generous size; ``arena_used_bytes()`` reads what TFLM really used.
    """

    def __init__(self, model: bytes, info: ModelInfo, arena_size: int | None = None):
        from tflite_micro import runtime

        self.info = info
        size = arena_size or max(64 * 1024, 4 * info.activation_peak_bytes + len(model) // 2 + 64 * 1024)
        try:
            self._interp = runtime.Interpreter.from_bytes(model, arena_size=size)
        except Exception as exc:
            missing = _ops_without_kernel(info)
            if missing:  # name the op rather than TFLM's "failed to allocate tensors"
                raise UnsupportedOpError(missing, "TFLite-Micro", "Replace the layer that produces it, or check "
                                         "`tinykeras inspect` for the model's ops") from None
            raise ModelError(f"{info.path or 'model'}: TFLite-Micro cannot load it ({str(exc).strip()[:300]})") from exc

    def invoke(self, sample: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
        """Run one sample (with a batch axis of 1; a list with one array per input for several inputs) and
        return every output as its raw dtype."""
        if hasattr(self._interp, "reset"):  # variable tensors (LSTM states) start from zero for every sample
            self._interp.reset()
        parts = list(sample) if isinstance(sample, (list, tuple)) else [sample]
        for k, part in enumerate(parts):
            self._interp.set_input(np.ascontiguousarray(part), k)
        self._interp.invoke()
        return [np.array(self._interp.get_output(k)) for k in range(len(self.info.outputs))]

    def run(self, x: np.ndarray) -> Iterator[np.ndarray]:
        """Yield the first output for each sample of ``x`` (already prepared with ``prepare_inputs``)."""
        for k in range(len(x)):
            yield self.invoke(x[k:k + 1])[0]

    def run_all(self, x: np.ndarray) -> np.ndarray:
        """First output for every sample, stacked along the batch axis."""
        return np.concatenate([out for out in self.run(x)], axis=0)
