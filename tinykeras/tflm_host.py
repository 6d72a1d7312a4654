"""The TFLite-Micro host interpreter (PyPI ``tflite-micro``): the correctness reference. No TensorFlow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from tinykeras.errors import ModelError, UnsupportedOpError
from tinykeras.types import ModelInfo, TensorInfo

T = TypeVar("T")


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
    """Run a model sample by sample with TFLM's reference kernels, in a child process.

    The interpreter lives in one child process per runner (``native.Child``): a native crash (SIGSEGV,
    SIGABRT, SIGFPE) or a hang there becomes a ``ModelError`` here, never a dead tinykeras. ``arena_size``
    defaults to a generous size. ``last_seconds`` is the time the last ``invoke`` spent in the interpreter.
    """

    def __init__(self, model: bytes, info: ModelInfo, arena_size: int | None = None,
                 timeout: float | None = None, child: Any = None):
        from tinykeras.native import Child

        self.info = info
        self.timeout = timeout
        self.last_seconds = 0.0
        self._child = child if child is not None else Child("tinykeras.tflm_host")  # a shared one: fuzzing
        size = arena_size or default_arena_size(model, info)
        _, self.arena_size = with_growing_arena(lambda n: self._child.call(("load", model, n), self.timeout), size,
                                                lambda exc, n: self._failure(exc, ("load", model, n), "load it"),
                                                grow=arena_size is None and not _ops_without_kernel(info))

    def _call(self, request: tuple, doing: str):  # type: ignore[no-untyped-def,type-arg]
        try:
            return self._child.call(request, self.timeout)
        except Exception as exc:
            raise self._failure(exc, request, doing) from None

    def _failure(self, exc: Exception, request: tuple, doing: str) -> Exception:  # type: ignore[type-arg]
        """The one-line error for a failed request: the op without a TFLM kernel, or TFLM's words."""
        from tinykeras.native import ChildFailed

        if isinstance(exc, ChildFailed):
            self._child.close()
            return ModelError(native_failure_message(self.info, doing, exc))
        missing = _ops_without_kernel(self.info) if request[0] == "load" else []
        if missing:  # name the op rather than TFLM's "failed to allocate tensors"
            return UnsupportedOpError(missing, "TFLite-Micro", "Replace the layer that produces it, or check "
                                      "`tinykeras inspect` for the model's ops")
        size = request[2] if request[0] == "load" else None
        return ModelError(f"{self.info.path or 'model'}: TFLite-Micro cannot {doing}: "
                          f"{describe_failure(self.info, str(exc), size)}")

    def invoke(self, sample: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
        """Run one sample (with a batch axis of 1; a list with one array per input for several inputs) and
        return every output as its raw dtype."""
        parts = [np.ascontiguousarray(p) for p in (sample if isinstance(sample, (list, tuple)) else [sample])]
        outputs, self.last_seconds = self._call(("invoke", parts), "run it")
        return outputs  # type: ignore[no-any-return]

    def run(self, x: np.ndarray) -> Iterator[np.ndarray]:
        """Yield the first output for each sample of ``x`` (already prepared with ``prepare_inputs``)."""
        for k in range(len(x)):
            yield self.invoke(x[k:k + 1])[0]

    def run_all(self, x: np.ndarray) -> np.ndarray:
        """First output for every sample, stacked along the batch axis (one request for the whole batch)."""
        outputs, seconds = self._call(("run_all", np.ascontiguousarray(x)), "run it")
        self.last_seconds = seconds
        return outputs  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the child process (also done when the runner is garbage-collected)."""
        self._child.close()


MAX_HOST_ARENA = 1 << 28      # the host interpreter's arena grows (x4) up to this when TFLM runs out
# TFLM's words when the arena is too small: for a tensor, or for its memory planner's records of thousands of
# buffers (an unrolled RNN; the planner's capacity grows with the arena)
ARENA_EXHAUSTED = ("Failed to allocate", "Too many buffers")


def arena_exhausted(text: str) -> bool:
    """Whether TFLM's error text says the arena was too small."""
    return any(mark in text for mark in ARENA_EXHAUSTED)


def arena_too_small(exc: BaseException) -> bool:
    """Whether a failed load says the host arena was too small: TFLM's own words, or a native crash (TFLM writes
    past an arena too small for the records of thousands of tensors, an unrolled RNN, instead of failing)."""
    from tinykeras.native import ChildFailed

    if isinstance(exc, ChildFailed):
        return exc.reason == "crashed"
    return arena_exhausted(str(exc))


def with_growing_arena(attempt: Callable[[int], T], size: int, failure: Callable[[Exception, int], Exception],
                       grow: bool = True) -> tuple[T, int]:
    """``attempt(size)``, retried with a 4x larger host arena (up to ``MAX_HOST_ARENA``) while it fails for want of
    arena (``arena_too_small``) and ``grow``; returns (its result, the size it worked with). Any other failure, or
    the last, raises ``failure(exc, size)``."""
    while True:
        try:
            return attempt(size), size
        except Exception as exc:
            if grow and size * 4 <= MAX_HOST_ARENA and arena_too_small(exc):
                size *= 4
                continue
            raise failure(exc, size) from None


def describe_failure(info: ModelInfo, text: str, arena_size: int | None = None) -> str:
    """TFLM's error reporter output (captured in the child) as one clause naming the operator, its op name and
    tensor at fault, the bytes it asked for and the arena it had; TFLM's own words only as a last resort."""
    import re

    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    node = next((m for m in (re.search(r"Node (\w+) \(number (\d+)\w*\) failed to (\w+)", ln) for ln in lines) if m),
                None)
    tensor_m = next((m for m in (re.search(r"for tensor (\d+)", ln) for ln in lines) if m), None)
    need = next((m for m in (re.search(r"Requested: (\d+), available (\d+)", ln) for ln in reversed(lines))
                 if m), None)
    check = next((ln for ln in lines if "was not true" in ln or "!=" in ln or "==" in ln), None)
    parts = []
    if node is not None:
        index = int(node.group(2))
        op = info.ops[index] if 0 <= index < len(info.ops) else None
        name = op.op if op is not None else node.group(1)
        out = info.tensors[op.outputs[0]] if op is not None and op.outputs else None
        parts.append(f"operator #{index} {name}" + (f" (output tensor #{out.index} '{out.name}', shape "
                                                     f"{list(out.shape)}, {out.nbytes:,} B)" if out is not None else "")
                     + f" failed to {node.group(3)}")
    if tensor_m is not None:
        k = int(tensor_m.group(1))
        if 0 <= k < len(info.tensors):
            t = info.tensors[k]
            parts.append(f"tensor #{k} '{t.name}' ({t.dtype} {list(t.shape)}, {t.nbytes:,} B) could not be placed")
    if node is None and tensor_m is None and need is not None:
        parts.append(f"TFLM ran out before any operator was prepared, placing its records for the model's "
                     f"{len(info.tensors):,} tensors and {len(info.ops):,} operators")
    if need is not None:
        parts.append(f"TFLM asked for {int(need.group(1)):,} B more"
                     + (f" than the {arena_size:,} B arena holds" if arena_size else ""))
    elif check is not None and node is not None:
        parts.append(f"TFLM check failed: {check[:160]}")
    if not parts:
        return (lines[0] if lines else "TFLM gave no reason")[:300]
    return "; ".join(parts)


def default_arena_size(model: bytes, info: ModelInfo) -> int:
    """A generous arena for host runs: four times the activation peak plus half the model, at least 64 KiB."""
    return max(64 * 1024, 4 * info.activation_peak_bytes + len(model) // 2 + 64 * 1024)


def native_failure_message(info: ModelInfo, doing: str, exc: Any) -> str:
    """One line for a child that crashed, was killed or hung while TFLite-Micro tried to ``doing``."""
    log = " ".join(line.strip() for line in (exc.log or "").splitlines() if line.strip())[-200:]
    return (f"{info.path or 'model'}: the TFLite-Micro host interpreter {exc.detail} while trying to {doing}"
            + (f" (it said: {log})" if log else "")
            + "; the model is malformed or uses something TFLite-Micro cannot handle")


# ---------------------------------------------------------------------------------------------- the child


class _Server:
    """State of the child process: the loaded interpreter."""

    def __init__(self) -> None:
        self.interp: Any = None
        self.outputs = 0

    def handle(self, request: tuple) -> Any:  # type: ignore[type-arg]
        import time

        from tflite_micro import runtime

        kind = request[0]
        if kind == "load":  # TFLM's error reporter text travels with the error (see describe_failure)
            from tinykeras.stdio import capture_native_stderr

            _, model, size = request
            try:
                with capture_native_stderr() as log:
                    self.interp = runtime.Interpreter.from_bytes(model, arena_size=int(size))
            except RuntimeError as exc:
                raise RuntimeError(f"{str(exc).strip()}\n{log.text}") from None
            self.outputs = _count_outputs(model)
            return None
        if kind == "invoke":
            start = time.perf_counter()
            outs = self._invoke(request[1])
            return outs, time.perf_counter() - start
        if kind == "run_all":
            x = request[1]
            start = time.perf_counter()
            firsts = [self._invoke(x[k:k + 1])[0] for k in range(len(x))]
            spent = time.perf_counter() - start
            return (np.concatenate(firsts, axis=0) if firsts else np.zeros((0,))), spent
        if kind == "probe":  # ("probe", model, size, [(shape, dtype), ...]) -> True | False (too small)
            _, model, size, inputs = request
            try:
                _fresh(runtime, model, int(size), inputs)
            except RuntimeError as exc:
                if "allocate" in str(exc).lower():
                    return False
                raise
            return True
        if kind == "record":  # ("record", model, size, inputs) -> text of print_allocations
            from tinykeras.stdio import capture_native_stderr

            _, model, size, inputs = request
            try:
                with capture_native_stderr() as load_log:
                    interp = _fresh(runtime, model, int(size), inputs)
            except RuntimeError as exc:   # TFLM's error reporter text travels with the error
                raise RuntimeError(f"{str(exc).strip()}\n{load_log.text}") from None
            with capture_native_stderr() as log:
                interp.print_allocations()
            return log.text
        raise ValueError(f"unknown request {kind!r}")

    def _invoke(self, sample: np.ndarray) -> list[np.ndarray]:
        if self.interp is None:
            raise RuntimeError("no model loaded")
        if hasattr(self.interp, "reset"):  # variable tensors (LSTM states) start from zero for every sample
            self.interp.reset()
        parts = sample if isinstance(sample, (list, tuple)) else [sample]
        for k, part in enumerate(parts):
            self.interp.set_input(np.ascontiguousarray(part), k)
        self.interp.invoke()
        return [np.array(self.interp.get_output(k)) for k in range(self.outputs)]


def _fresh(runtime: Any, model: bytes, size: int, inputs: list[tuple[tuple[int, ...], str]]) -> Any:
    interp = runtime.Interpreter.from_bytes(model, arena_size=size)
    for k, (shape, dtype) in enumerate(inputs):
        interp.set_input(np.zeros(shape, dtype=np.dtype(dtype)), k)
    interp.invoke()
    return interp


def _count_outputs(model: bytes) -> int:
    from tinykeras.inspect import inspect_bytes

    return len(inspect_bytes(model).outputs)


if __name__ == "__main__":
    from tinykeras.native import serve

    serve(_Server().handle)
