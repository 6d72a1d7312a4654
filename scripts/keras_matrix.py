#!/usr/bin/env python3
"""Course-style Keras models x tinykeras stages: which reach the board, and why not. Writes JSON.

Families (each built with Keras 3 and with tf_keras, tiny, trained for a few epochs on seeded synthetic data):
mlp (Flatten/Dense), functional (2 inputs, 2 outputs, residual, shared layer), subclassed, normalization
(adapted Normalization, inputs on scales 0.01..1000, regression), cnn (BatchNorm + Dropout), conv1d,
simplernn, lstm, gru, embedding (+ pooling, int32 token ids), mobilenetv2 (alpha 0.35, 32x32, random weights,
no download), activations (LeakyReLU, hard-swish, ELU), autoencoder (UpSampling2D + Conv2DTranspose),
regression (Dense(1) head); lstm_long (the LSTM(32) over 50 steps that failed to load in TFLM), text (int32
token ids -> Embedding(1000, 16), through the board), tabular_classifier (Functional) and wide_deep (subclassed
regressor), both with an adapted Normalization over features on scales 0.001..5000, which used to collapse to a
constant int8 output (now normalised outside the int8 graph). These four are trained without the test split.

Stages run through the command line, as a user would: quantize (with held-out data), inspect --check,
emulate --runtime tflm, emulate --runtime aot (bit-exact with TFLM), validate, build qemu_m4 --run (aot, or
TFLM chosen by build itself for a model aot cannot run: recorded as qemu_runtime),
build esp32 (PlatformIO + TFLM; rendered, not compiled: no network here).

Each cell: ``works`` / ``reason`` (a clear one-line refusal, exit code 1..9) / ``defect`` (internal error,
crash, a hang, or a wrong result: aot not bit-exact), with the first line of the message. Every model runs in
its own process, so a converter crash is recorded as a defect of that model only.

Usage:
    .venv/bin/python scripts/keras_matrix.py [--out keras_matrix.json] [--only mlp,lstm] [--flavour keras3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("mlp", "functional", "subclassed", "normalization", "cnn", "conv1d", "simplernn", "lstm", "gru",
            "embedding", "mobilenetv2", "activations", "autoencoder", "regression", "lstm_long", "text",
            "tabular_classifier", "wide_deep")
FLAVOURS = ("keras3", "tf_keras")
HELD_OUT = ("lstm_long", "text", "tabular_classifier", "wide_deep")  # trained without the test split
STAGES = ("quantize", "inspect", "emulate_tflm", "emulate_aot", "validate", "build_qemu_m4_run", "build_esp32")
SEED = 0
TF_SUBCLASS_MODULE = '''
import tf_keras as K


class WideDeep2(K.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = K.layers.Normalization()
        self.h1 = K.layers.Dense(32, activation="relu")
        self.h2 = K.layers.Dense(16, activation="relu")
        self.head = K.layers.Dense(1)

    def call(self, t):
        z = self.norm(t)
        return self.head(K.layers.concatenate([z, self.h2(self.h1(z))]))
'''

SUBCLASS_MODULE = '''
import keras


@keras.saving.register_keras_serializable(package="matrix")
class WideDeep(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.Normalization()
        self.h1 = keras.layers.Dense(32, activation="relu")
        self.h2 = keras.layers.Dense(16, activation="relu")
        self.concat = keras.layers.Concatenate()
        self.head = keras.layers.Dense(1)

    def call(self, x):
        z = self.norm(x)
        return self.head(self.concat([z, self.h2(self.h1(z))]))


@keras.saving.register_keras_serializable(package="matrix")
class SmallNet(keras.Model):
    def __init__(self, classes=4, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(classes, activation="softmax")

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}
'''


# ------------------------------------------------------------------------------------------------ models


def _data(family: str, n: int = 240) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs by name, labels by output name) for a family; learnable targets."""
    rng = np.random.default_rng(SEED)
    if family in ("mlp",):
        x = rng.random((n, 8, 8), dtype=np.float32)
        return {"x": x}, {"y": (x[:, :4].mean(axis=(1, 2)) * 4).astype(np.int64).clip(0, 3)}
    if family in ("cnn", "mobilenetv2", "activations"):
        side = 32 if family == "mobilenetv2" else 12
        x = rng.random((n, side, side, 3), dtype=np.float32)
        return {"x": x}, {"y": (x[:, : side // 2, :, 0].mean(axis=(1, 2)) > 0.5).astype(np.int64)
                          + 2 * (x[:, :, : side // 2, 1].mean(axis=(1, 2)) > 0.5)}
    if family in ("conv1d", "simplernn", "lstm", "gru"):
        x = rng.normal(size=(n, 16, 3)).astype(np.float32)
        return {"x": x}, {"y": (x[:, :8, 0].mean(axis=1) > 0).astype(np.int64) + 2 * (x[:, 8:, 1].mean(axis=1) > 0)}
    if family == "lstm_long":  # the LSTM(32) over 50 steps
        x = rng.normal(size=(n, 50, 1)).astype(np.float32)
        return {"x": x}, {"y": (x[:, :25, 0].mean(axis=1) > 0).astype(np.int64) + (x[:, 25:, 0].mean(axis=1) > 0)}
    if family == "text":  # Input((20,), int32) -> Embedding(1000, 16) -> pooling -> Dense
        x = rng.integers(0, 1000, size=(n, 20)).astype(np.int32)
        return {"x": x}, {"y": ((x < 500).mean(axis=1) > 0.5).astype(np.int64)}
    if family in ("tabular_classifier", "wide_deep"):  # features on scales 0.001..5000 (collapsed before)
        scales = np.array([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 5000.0, 0.001], np.float32)
        x = (rng.normal(size=(n, 8)) * scales + 3 * scales).astype(np.float32)
        z = (x - 3 * scales) / scales
        if family == "tabular_classifier":
            return {"x": x}, {"y": (z[:, 0] + z[:, 7] > 0).astype(np.int64) + 2 * (z[:, 4] - z[:, 1] > 0)}
        return {"x": x}, {"y": (z[:, 0] + 0.5 * z[:, 5] - z[:, 3]).astype(np.float32)[:, None]}
    if family == "embedding":
        x = rng.integers(0, 40, size=(n, 12)).astype(np.int32)
        return {"x": x}, {"y": ((x < 20).mean(axis=1) > 0.5).astype(np.int64)}
    if family == "functional":
        a = rng.normal(size=(n, 8)).astype(np.float32)
        b = rng.normal(size=(n, 8)).astype(np.float32)
        return ({"a": a, "b": b}, {"y_label": ((a[:, 0] + b[:, 1]) > 0).astype(np.int64) + 2 * (a[:, 2] > 0),
                                   "y_score": (a[:, 3] - b[:, 4]).astype(np.float32)[:, None]})
    if family == "subclassed":
        x = rng.normal(size=(n, 10)).astype(np.float32)
        return {"x": x}, {"y": (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)}
    if family == "normalization":
        scales = np.array([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0], np.float32)
        x = (rng.normal(size=(n, 6)) * scales + scales).astype(np.float32)
        z = (x - scales) / scales
        return {"x": x}, {"y": (z[:, 0] + 0.5 * z[:, 5] - z[:, 3]).astype(np.float32)[:, None]}
    if family == "autoencoder":
        base = rng.random((n, 1, 1, 1), dtype=np.float32)
        grid = np.linspace(0, 1, 16, dtype=np.float32)
        x = (base * grid[None, :, None, None] * grid[None, None, :, None]).astype(np.float32)
        return {"x": x}, {"y": x}
    if family == "regression":
        x = rng.normal(size=(n, 6)).astype(np.float32)
        return {"x": x}, {"y": (x[:, 0] * 2 - x[:, 1] + 0.5 * x[:, 2] ** 2).astype(np.float32)[:, None]}
    raise ValueError(family)


def _build(family: str, flavour: str, inputs: dict[str, np.ndarray], work: Path) -> tuple[Any, str]:
    """The compiled model and the loss used; ``work`` holds helper modules (subclassed)."""
    if flavour == "keras3":
        import keras as K
    else:
        import tf_keras as K
    L = K.layers
    K.utils.set_random_seed(SEED)
    x = inputs.get("x")
    if family == "mlp":
        model = K.Sequential([K.Input((8, 8)), L.Flatten(), L.Dense(32, activation="relu"),
                              L.Dense(16, activation="relu"), L.Dense(4, activation="softmax")])
    elif family == "functional":
        a, b = K.Input((8,), name="a"), K.Input((8,), name="b")
        shared = L.Dense(8, activation="relu", name="shared")
        ha, hb = shared(a), shared(b)
        h = L.Add()([L.Concatenate()([ha, hb]), L.Dense(16)(L.Concatenate()([a, b]))])  # residual
        h = L.Activation("relu")(h)
        model = K.Model([a, b], [L.Dense(4, activation="softmax", name="label")(h), L.Dense(1, name="score")(h)])
    elif family == "subclassed":
        if flavour == "keras3":
            sys.path.insert(0, str(work))
            (work / "matrix_layers.py").write_text(SUBCLASS_MODULE)
            import matrix_layers

            model = matrix_layers.SmallNet()
        else:
            class SmallNet2(K.Model):
                def __init__(self) -> None:
                    super().__init__()
                    self.hidden = L.Dense(16, activation="relu")
                    self.out = L.Dense(4, activation="softmax")

                def call(self, t: Any) -> Any:
                    return self.out(self.hidden(t))

            model = SmallNet2()
        model(x[:1])
    elif family == "lstm_long":
        model = K.Sequential([K.Input((50, 1)), L.LSTM(32), L.Dense(3, activation="softmax")])
    elif family == "text":
        model = K.Sequential([K.Input((20,), dtype="int32"), L.Embedding(1000, 16), L.GlobalAveragePooling1D(),
                              L.Dense(2, activation="softmax")])
    elif family == "tabular_classifier":
        norm = L.Normalization()
        norm.adapt(x)
        inp = K.Input((8,))
        t = L.Dense(16, activation="relu")(L.Dense(32, activation="relu")(norm(inp)))
        model = K.Model(inp, L.Dense(4, activation="softmax")(t))
    elif family == "wide_deep":
        if flavour == "keras3":
            sys.path.insert(0, str(work))
            (work / "matrix_layers.py").write_text(SUBCLASS_MODULE)
            import matrix_layers

            model = matrix_layers.WideDeep()
            model.norm.adapt(x)
        else:   # a tf_keras SavedModel: its class is given back with --custom-objects below
            sys.path.insert(0, str(work))
            (work / "matrix_layers_tf.py").write_text(TF_SUBCLASS_MODULE)
            from matrix_layers_tf import WideDeep2

            model = WideDeep2()
            model.norm.adapt(x)
        model(x[:1])
    elif family == "normalization":
        norm = L.Normalization()
        norm.adapt(x)
        model = K.Sequential([K.Input((6,)), norm, L.Dense(16, activation="relu"), L.Dense(1)])
    elif family == "cnn":
        model = K.Sequential([K.Input((12, 12, 3)), L.Conv2D(8, 3, padding="same"), L.BatchNormalization(),
                              L.Activation("relu"), L.MaxPooling2D(), L.Dropout(0.2), L.Conv2D(8, 3),
                              L.BatchNormalization(), L.ReLU(), L.GlobalAveragePooling2D(), L.Dropout(0.2),
                              L.Dense(4, activation="softmax")])
    elif family == "conv1d":
        model = K.Sequential([K.Input((16, 3)), L.Conv1D(8, 3, activation="relu"), L.MaxPooling1D(),
                              L.Conv1D(8, 3, activation="relu"), L.GlobalAveragePooling1D(),
                              L.Dense(4, activation="softmax")])
    elif family in ("simplernn", "lstm", "gru"):
        layer = {"simplernn": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU}[family]
        model = K.Sequential([K.Input((16, 3)), layer(12), L.Dense(4, activation="softmax")])
    elif family == "embedding":
        model = K.Sequential([K.Input((12,), dtype="int32"), L.Embedding(40, 8), L.GlobalAveragePooling1D(),
                              L.Dense(2, activation="softmax")])
    elif family == "mobilenetv2":
        base = K.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
        model = K.Sequential([base, L.GlobalAveragePooling2D(), L.Dense(4, activation="softmax")])
    elif family == "activations":
        inp = K.Input((12, 12, 3))
        t = L.LeakyReLU()(L.Conv2D(8, 3)(inp))
        t = L.Conv2D(8, 3)(t)
        if flavour == "keras3":
            t = L.Activation("hard_swish")(t)
        else:  # tf_keras has no hard_swish activation: x * relu6(x + 3) / 6 from built-in layers
            t = L.Multiply()([t, L.Rescaling(1.0 / 6.0)(L.ReLU(max_value=6.0)(L.Rescaling(1.0, offset=3.0)(t)))])
        t = L.GlobalAveragePooling2D()(L.Conv2D(8, 3, activation="elu")(t))
        model = K.Model(inp, L.Dense(4, activation="softmax")(t))
    elif family == "autoencoder":
        model = K.Sequential([K.Input((16, 16, 1)), L.Conv2D(8, 3, padding="same", activation="relu"),
                              L.MaxPooling2D(), L.Conv2D(4, 3, padding="same", activation="relu"),
                              L.UpSampling2D(), L.Conv2DTranspose(8, 3, padding="same", activation="relu"),
                              L.Conv2D(1, 3, padding="same", activation="sigmoid")])
    elif family == "regression":
        model = K.Sequential([K.Input((6,)), L.Dense(16, activation="relu"), L.Dense(8, activation="relu"),
                              L.Dense(1)])
    else:
        raise ValueError(family)
    return model, flavour


def _save(model: Any, family: str, flavour: str, work: Path) -> Path:
    if family in ("subclassed", "wide_deep") and flavour == "tf_keras":
        path = work / f"{family}_savedmodel"
        model.save(path, save_format="tf")
        return path
    path = work / f"{family}_{flavour}.keras"
    model.save(path)
    return path


def _fit(model: Any, family: str, inputs: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
    names = list(inputs)
    xs = [inputs[k] for k in names]
    ys = list(labels.values())
    if family == "functional":
        model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    elif family in ("normalization", "regression", "autoencoder", "wide_deep"):
        model.compile("adam", "mse")
    else:
        model.compile("adam", "sparse_categorical_crossentropy")
    epochs = 20 if family in ("tabular_classifier", "wide_deep") else 3
    if family in HELD_OUT:  # the test split (samples 140..) stays out of training
        xs, ys = [v[:140] for v in xs], [v[:140] for v in ys]
    model.fit(xs if len(xs) > 1 else xs[0], ys if len(ys) > 1 else ys[0], epochs=epochs, batch_size=32, verbose=0)


# ------------------------------------------------------------------------------------------------ stages


def _cell(result: Any, seconds: float, check: Any = None) -> dict[str, Any]:
    text = (result.output or "").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("error:", "internal error:"))]
    message = (errors or lines[-1:] or [""])[0][:300]
    if result.exit_code == 0:
        cell = {"status": "works", "seconds": round(seconds, 1)}
        if check is not None:
            problem = check(result)
            if problem:
                cell = {"status": "defect", "message": problem, "seconds": round(seconds, 1)}
        return cell
    if result.exit_code == 70 or "Traceback" in text or result.exception and not isinstance(result.exception,
                                                                                              SystemExit):
        exc = result.exception
        return {"status": "defect", "message": message or f"{type(exc).__name__}: {exc}"[:300],
                "exit_code": result.exit_code}
    return {"status": "reason", "message": message, "exit_code": result.exit_code}


def run_one(family: str, flavour: str, work: Path) -> dict[str, Any]:
    """Build, train, save one model and run every stage on it through the CLI."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    sys.path.insert(0, str(REPO))
    from click.testing import CliRunner

    from tinykeras.cli import cli
    from tinykeras.keras_io import import_tf

    import_tf()
    runner = CliRunner()
    inputs, labels = _data(family)
    start = time.perf_counter()
    model, _ = _build(family, flavour, inputs, work)
    _fit(model, family, inputs, labels)
    path = _save(model, family, flavour, work)
    row: dict[str, Any] = {"family": family, "flavour": flavour, "model": path.name,
                           "params": int(model.count_params()), "train_seconds": round(time.perf_counter() - start, 1)}
    n_rep = 100
    rep = {k: v[:n_rep] for k, v in inputs.items()}
    test = {k: v[n_rep + 40:] for k, v in inputs.items()}
    single = len(inputs) == 1
    for k, v in labels.items():
        test[k if not single else "y"] = v[n_rep + 40:]
    np.savez(work / "rep.npz", **rep)
    np.savez(work / "test.npz", **test)
    custom = ["--custom-objects", str(work / "matrix_layers.py")] if family in ("subclassed", "wide_deep") and \
        flavour == "keras3" else []
    if family == "wide_deep" and flavour == "tf_keras":   # revived without its class, the Normalization stays
        custom = ["--custom-objects", str(work / "matrix_layers_tf.py")]
    out = work / "q"
    cells: dict[str, Any] = {}

    def invoke(args: list[str]) -> tuple[Any, float]:
        t0 = time.perf_counter()
        res = runner.invoke(cli, args)
        return res, time.perf_counter() - t0

    res, sec = invoke(["quantize", str(path), "--rep-data", str(work / "rep.npz"), "--data", str(work / "test.npz"),
                       "-o", str(out), "--json", *custom])
    cells["quantize"] = _cell(res, sec)
    if cells["quantize"]["status"] != "works":
        row["cells"] = {s: cells.get(s, {"status": "skipped", "message": "quantize did not produce a model"})
                        for s in STAGES}
        return row
    report = json.loads(res.stdout[res.stdout.index("{"):])
    row["ops"] = report["ops"]
    row["tflite_bytes"] = report["tflite_bytes"]["int8"]
    keys = ("name", "task", "agreement", "accuracy", "reference_accuracy", "r2", "rmse", "collapsed")
    row["quantize_metrics"] = [{k: o.get(k) for k in keys} for o in report["comparison"]["outputs"]]
    row["warnings"] = report["comparison"].get("warnings", [])
    tflite = str(out / "model.tflite")

    res, sec = invoke(["inspect", tflite, "--check"])
    cells["inspect"] = _cell(res, sec)
    res, sec = invoke(["emulate", tflite, "--data", str(work / "test.npz"), "--keras", str(path), "--json",
                       "--no-tflite"] if single else ["emulate", tflite, "--json", "--no-tflite"])
    cells["emulate_tflm"] = _cell(res, sec)

    def not_exact(r: Any) -> str | None:
        data = json.loads(r.stdout[r.stdout.index("{"):])
        return None if data.get("bit_exact") else f"aot not bit-exact with TFLM ({data.get('mismatches')} values)"

    res, sec = invoke(["emulate", tflite, "--runtime", "aot", "--json", "--no-tflite", "--samples", "8"])
    cells["emulate_aot"] = _cell(res, sec, not_exact)
    # thresholds: every classifier output agrees with the float model on >= 90 % of the held-out samples,
    # every regression output keeps R² >= 0.9 against it (a collapsed int8 output fails here)
    tasks = {o["task"] for o in report["comparison"]["outputs"]}
    limits = (["--min-agreement", "0.9"] if tasks & {"classification", "binary"} else []) + \
        (["--min-r2", "0.9"] if "regression" in tasks else [])
    res, sec = invoke(["validate", tflite, "--data", str(work / "test.npz"), "--keras", str(path), "--json",
                       *limits, *custom])
    cells["validate"] = _cell(res, sec)
    if res.exit_code == 10:
        cells["validate"]["message"] = "threshold failed: " + "; ".join(
            json.loads(res.stdout[res.stdout.index("{"):res.stdout.rindex("}") + 1])["failures"])
    if res.exit_code in (0, 10):
        data = json.loads(res.stdout[res.stdout.index("{"):])
        row["validate_metrics"] = [{k: o.get(k) for k in ("name", "task", "accuracy", "agreement", "r2", "rmse",
                                                            "labels_r2", "collapsed")} for o in data["outputs"]]
    # no --runtime: build takes aot, or TFLite-Micro by itself (saying so) for a model aot cannot run
    res, sec = invoke(["build", "--board", "qemu_m4", "--model", tflite, "--run", "--runs", "2",
                       "-o", str(work / "qemu"), "--json"])
    cells["build_qemu_m4_run"] = _cell(res, sec)
    if res.exit_code == 0:
        data = json.loads(res.stdout[res.stdout.index("{"):])
        row["qemu_instructions"] = (data.get("qemu") or {}).get("instructions_per_inference")
        row["qemu_runtime"] = json.loads((work / "qemu" / "tinykeras_build.json").read_text()).get("runtime")
    res, sec = invoke(["build", "--board", "esp32", "--model", tflite, "-o", str(work / "esp32"), "--json"])
    cells["build_esp32"] = _cell(res, sec)
    row["cells"] = cells
    return row


def _child(family: str, flavour: str, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"tk-matrix-{family}-") as tmp:
        code = (f"import json, sys; sys.path.insert(0, {str(REPO / 'scripts')!r}); import keras_matrix as m; "
                f"from pathlib import Path; print('@@' + json.dumps(m.run_one({family!r}, {flavour!r}, "
                f"Path({tmp!r}))))")
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="3",
                   MPLBACKEND="Agg", PYTHONPATH=str(REPO))
        try:
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                                  env=env, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {"family": family, "flavour": flavour, "error": f"timed out after {timeout:g} s",
                    "cells": {s: {"status": "defect", "message": "timeout"} for s in STAGES}}
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@")), None)
        if line is None:
            tail = (proc.stderr or "").strip().splitlines()[-3:]
            return {"family": family, "flavour": flavour,
                    "error": f"process died (exit {proc.returncode}): {' | '.join(tail)[:400]}",
                    "cells": {s: {"status": "defect", "message": f"process died (exit {proc.returncode})"}
                              for s in STAGES}}
        return json.loads(line[2:])


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: one row per model, one column per stage."""
    short = {"works": "ok", "reason": "reason", "defect": "DEFECT", "skipped": "-"}
    head = "| model | " + " | ".join(STAGES) + " |\n|" + "---|" * (len(STAGES) + 1) + "\n"
    body = ""
    for r in rows:
        cells = r.get("cells", {})
        body += f"| {r['family']} ({r['flavour']}) | " + " | ".join(
            short.get(cells.get(s, {}).get("status", "skipped"), "?") for s in STAGES) + " |\n"
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("keras_matrix.json"))
    parser.add_argument("--only", help="comma-separated families")
    parser.add_argument("--flavour", choices=FLAVOURS, action="append")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per model")
    parser.add_argument("--merge", type=Path, help="an earlier JSON: keep its rows for the models not run now")
    args = parser.parse_args()
    families = args.only.split(",") if args.only else list(FAMILIES)
    rows = []
    for family in families:
        for flavour in args.flavour or FLAVOURS:
            t0 = time.perf_counter()
            row = _child(family, flavour, args.timeout)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            states = {s: row.get("cells", {}).get(s, {}).get("status") for s in STAGES}
            print(f"{family:13s} {flavour:8s} {row['seconds']:6.1f}s  "
                  + " ".join(f"{s}={v}" for s, v in states.items()), flush=True)
    if args.merge is not None and args.merge.exists():
        done = {(r["family"], r["flavour"]) for r in rows}
        old = [r for r in json.loads(args.merge.read_text())["rows"] if (r["family"], r["flavour"]) not in done]
        rows = sorted(old + rows, key=lambda r: (FAMILIES.index(r["family"]), FLAVOURS.index(r["flavour"])))
    summary = {s: {k: sum(1 for r in rows if r.get("cells", {}).get(s, {}).get("status") == k)
                   for k in ("works", "reason", "defect", "skipped")} for s in STAGES}
    result = {"script": "scripts/keras_matrix.py", "stages": list(STAGES), "summary": summary, "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
