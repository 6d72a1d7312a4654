"""Hostile .tflite files: the verifier names what is wrong; native crashes stay in a child process."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinykeras.errors import ModelError, UnsupportedOpError
from tinykeras.fuzz.models import pack
from tinykeras.inspect import inspect_bytes

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(REPO.glob("models/*/model.tflite"))
KWS = REPO / "models" / "kws" / "model.tflite"


def _schema():  # type: ignore[no-untyped-def]
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _mutated(change) -> bytes:  # type: ignore[no-untyped-def]
    model = _schema().ModelT.InitFromPackedBuf(KWS.read_bytes(), 0)
    change(model)
    return pack(model)


def _first_conv(model):  # type: ignore[no-untyped-def]
    return model.subgraphs[0].operators[0]


@pytest.mark.parametrize(("change", "words"), [
    (lambda m: setattr(m.subgraphs[0].tensors[0], "buffer", 65558), "names buffer 65558"),
    (lambda m: (setattr(_first_conv(m), "builtinOptionsType", 0), setattr(_first_conv(m), "builtinOptions", None)),
     "has no Conv2DOptions"),
    (lambda m: setattr(m.subgraphs[0].tensors[0], "shape", np.array([1, 49, 10], dtype=np.int32)),
     "shape signature"),
    (lambda m: (setattr(m.subgraphs[0].tensors[0], "shape", np.array([1, 49, 10], dtype=np.int32)),
                setattr(m.subgraphs[0].tensors[0], "shapeSignature", None)), "expected rank 4"),
    (lambda m: setattr(m.subgraphs[0], "inputs", np.array([999], dtype=np.int32)), "input 999 does not exist"),
    (lambda m: setattr(_first_conv(m), "outputs", np.array([], dtype=np.int32)), "has no output"),
    (lambda m: setattr(_first_conv(m), "inputs", np.array([0, -1, 20], dtype=np.int32)), "lacks its input 1"),
    (lambda m: setattr(_first_conv(m), "opcodeIndex", 77), "names opcode 77"),
    (lambda m: setattr(_first_conv(m).builtinOptions, "strideH", 2**31 - 1), "strideH = 2147483647"),
    (lambda m: setattr(m.subgraphs[0].tensors[0].quantization, "scale", np.array([np.nan], dtype=np.float32)),
     "scale nan"),
    (lambda m: setattr(m.subgraphs[0].tensors[0], "shape", np.array([1, 49, 10, 2**31 - 1], dtype=np.int32)),
     "MiB limit"),
])
def test_verifier_names_the_fault(change, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelError, match=words.replace("[", r"\[")):
        inspect_bytes(_mutated(change), path="bad.tflite")


def test_shipped_models_pass_the_verifier() -> None:
    assert SHIPPED
    for path in SHIPPED:
        assert inspect_bytes(path.read_bytes(), str(path)).ops


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_inspect_refuses_non_regular_files_at_once(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        target = tmp_path / "pipe.tflite"
        os.mkfifo(target)
    else:
        target = Path("/dev/zero")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tinykeras", "inspect", str(target)], capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert time.monotonic() - start < 30
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "not a regular file" in done.stderr


def _crashing_model() -> bytes:
    """A model TFLite-Micro's loader aborts on (softmax beta 0: SIGABRT), as the verifier would refuse it."""
    def change(m):  # type: ignore[no-untyped-def]
        m.subgraphs[0].operators[-1].builtinOptions.beta = 0.0
    return _mutated(change)


def test_native_crash_is_a_model_error() -> None:
    from tinykeras.tflm_host import TflmRunner

    info = inspect_bytes(KWS.read_bytes(), str(KWS))
    with pytest.raises(ModelError, match="crashed with SIG"):
        TflmRunner(_crashing_model(), info)
    # and the verifier alone refuses it before any native code
    with pytest.raises(ModelError, match="softmax beta 0.0"):
        inspect_bytes(_crashing_model())


def test_runner_still_works_after_a_crash() -> None:
    from tinykeras.native import Child
    from tinykeras.tflm_host import TflmRunner

    data = KWS.read_bytes()
    info = inspect_bytes(data, str(KWS))
    with Child("tinykeras.tflm_host") as child:
        with pytest.raises(ModelError):
            TflmRunner(_crashing_model(), info, child=child)
        out = TflmRunner(data, info, child=child).invoke(np.zeros(info.input_tensors()[0].shape, np.int8))
    assert out[0].shape == tuple(info.output_tensors()[0].shape)


def test_a_collected_child_never_waits_and_ignores_ctrl_c() -> None:
    """A Ctrl-C that lands while a garbage-collected runner waits for its child would be swallowed by Python
    (exceptions in __del__ are ignored): __del__ kills without waiting. The child ignores SIGINT, so a terminal's
    Ctrl-C (sent to the whole process group) is the parent's to handle."""
    import signal
    import time

    from tinykeras.native import Child

    child = Child("tinykeras.tflm_host")
    with pytest.raises(ValueError, match="unknown request"):   # it answers: in its loop, SIGINT ignored
        child.call(("no such request",), timeout=60)
    proc = child._proc
    assert proc is not None and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None, "the child died of SIGINT"

    def no_wait(*args: object, **kwargs: object) -> int:
        raise AssertionError("__del__ waited for the child")

    proc.wait = no_wait  # type: ignore[method-assign]
    child.__del__()
    assert child._proc is None
    for _ in range(100):   # killed (SIGKILL), reaped here
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.returncode == -signal.SIGKILL


def test_killed_arena_probe_is_not_too_small(monkeypatch: pytest.MonkeyPatch) -> None:
    from tinykeras import arena
    from tinykeras.native import Child, ChildFailed

    data = KWS.read_bytes()
    info = inspect_bytes(data, str(KWS))

    def killed(self, request, timeout=None):  # type: ignore[no-untyped-def]
        raise ChildFailed("killed", "was killed (SIGKILL; out of memory?)")

    monkeypatch.setattr(Child, "call", killed)
    with pytest.raises(ModelError, match="SIGKILL"):
        arena.measure_arena_bytes(data, info, recorded=24000)


def test_arena_matches_the_in_process_measurement() -> None:
    from tinykeras.arena import measure_arena_bytes

    data = KWS.read_bytes()
    info = inspect_bytes(data, str(KWS))
    measured = measure_arena_bytes(data, info)
    # smallest working size: it works, 16 bytes less does not
    from tinykeras.arena import _works
    from tinykeras.native import Child

    with Child("tinykeras.tflm_host") as child:
        assert _works(child, data, info, measured)
        assert not _works(child, data, info, measured - 16)


def test_aot_rejects_parameters_outside_int32() -> None:
    from tinykeras.aot import generator
    from tinykeras.aot.declare import Unsupported
    from tinykeras.aot.emit import c_struct

    with pytest.raises(Unsupported, match="pad_h"):
        c_struct("tk_conv_params", "p", {"pad_h": 25769803753})
    data = KWS.read_bytes()
    info = inspect_bytes(data, str(KWS))
    op = info.ops[0]
    bad = dataclasses.replace(op, options={**op.options, "strideH": 2**31 - 1})
    hostile = dataclasses.replace(info, ops=(bad,) + info.ops[1:])
    with pytest.raises(UnsupportedOpError, match="strideH"):
        generator.generate(data, hostile)
    big = copy.copy(info.tensors[op.outputs[0]])
    big = dataclasses.replace(big, shape=(1, 49, 10, 2**27))
    tensors = tuple(big if t.index == big.index else t for t in info.tensors)
    with pytest.raises(UnsupportedOpError, match="MiB per tensor"):
        generator.generate(data, dataclasses.replace(info, tensors=tensors))


def test_fuzz_slice_has_no_internal_errors_or_hangs() -> None:
    """CI slice of the campaign in scripts/fuzz.py: 300 mutants of the shipped models."""
    from tinykeras.fuzz.campaign import run_models

    result = run_models([p.read_bytes() for p in SHIPPED], 300, seed=13, hang_s=10)
    assert result["internal_errors"] == 0, result["examples"]
    assert result["hangs"] == 0, result["examples"]
    assert result["stages"]["inspect"].get("clean", 0) > 50  # the mutants really are hostile
    assert result["stages"]["tflm"].get("accepted", 0) > 10  # and some still run


def test_testing_helpers_fail_instead_of_crashing() -> None:
    from tinykeras import testing

    x = np.zeros((2, 49, 10, 1), dtype=np.int8)
    with pytest.raises(ModelError):
        testing.run_tflm(_crashing_model(), x)
    assert testing.run_tflm(KWS, x).shape == (2, 12)
