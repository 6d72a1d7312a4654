#!/usr/bin/env python3
"""Regenerate the shipped default models: models/<recipe>/{model.tflite, model.keras, metrics.json,
settings.json, rep.npz, test.npz}.

For each recipe: train it (``tinykeras.train.train``; synthesised data unless --data-<recipe> is given),
convert it to full-integer int8 with ``tinykeras.convert.quantize_model`` (calibrated on rep.npz; per-tensor
FULLY_CONNECTED weights, which every board's pinned TFLM library computes correctly), measure the int8 model on
the TFLite-Micro host interpreter over the test split, and measure the C feature front end against the Python
features (host gcc). Timings go to --report (JSON), never into models/.

``--requantize-only`` trains nothing: it re-quantizes the shipped models/<recipe>/model.keras with the shipped
rep.npz, measures the int8 model on the shipped test.npz and, when the recipe's (re-synthesised or --data)
dataset reproduces that test.npz exactly, on the full test split, and updates model.tflite, metrics.json and
settings.json in place.

    .venv/bin/python scripts/train_models.py                       # all three, full training
    .venv/bin/python scripts/train_models.py --recipes gesture --quick
    .venv/bin/python scripts/train_models.py --recipes kws --data-kws data/kws --epochs 60
    .venv/bin/python scripts/train_models.py --requantize-only     # shipped model.keras -> model.tflite
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinykeras.datasets import note  # noqa: E402

SHIPPED_SAMPLES = 200
FEATURE_ATOL = 1e-5   # re-computed log-mel features differ from the shipped ones by float32 rounding (~2e-6)
PER_TENSOR_DENSE = True   # per-tensor FULLY_CONNECTED weights: see [[gaps]] in libraries/*.toml
QUANTIZATION = ("int8; per-channel CONV_2D/DEPTHWISE_CONV_2D weights, per-tensor FULLY_CONNECTED weights "
                "(tinykeras quantize --per-tensor-dense)")


def int8_metrics(recipe_name: str, result: Any, tflite: bytes, info: Any) -> dict[str, Any]:
    """The int8 model on the TFLM host interpreter: test accuracy (classifiers) or AUC (anomaly detection)."""
    from tinykeras.metrics import roc_auc
    from tinykeras.recipes.sensor import windows
    from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs

    runner = TflmRunner(tflite, info)
    in_t, out_t = info.input_tensors()[0], info.output_tensors()[0]
    data = result.data
    if recipe_name == "sensor":
        frames = data.extra["test_frames"]
        w = windows(frames)
        flat = w.reshape(-1, w.shape[-1]).astype(np.float32)
        recon = dequantize(runner.run_all(prepare_inputs(flat, in_t)), out_t).reshape(flat.shape)
        scores = np.mean((recon - flat) ** 2, axis=1).reshape(w.shape[0], w.shape[1]).mean(axis=1)
        auc = roc_auc(scores, data.extra["test_labels"])
        return {"metric": "auc", "value": round(float(auc), 4), "test_segments": int(len(scores)),
                "evaluated_on": "int8 .tflite on the TFLite-Micro host interpreter"}
    out = dequantize(runner.run_all(prepare_inputs(data.x_test.astype(np.float32), in_t)), out_t)
    pred = np.argmax(out.reshape(len(data.x_test), -1), axis=1)
    return {"metric": "accuracy", "value": round(float(np.mean(pred == data.y_test)), 4),
            "test_samples": int(len(pred)), "evaluated_on": "int8 .tflite on the TFLite-Micro host interpreter"}


def frontend_error(recipe_name: str, result: Any) -> dict[str, Any]:
    """Max |C front end - Python features| over (up to 50) test inputs, compiled with the host gcc."""
    from tinykeras.features import audio_features, normalize
    from tinykeras.recipes.frontend import AudioFeatures, host_features

    settings = result.data.settings
    fe = settings["features"]
    if recipe_name == "kws":
        audio = result.data.extra["test_audio"][:50]
        python = audio_features(audio, AudioFeatures.from_dict(fe))
        inputs = audio
    elif recipe_name == "sensor":
        from tinykeras.recipes.sensor import segments

        files = sorted((Path(result.data.source) / "test" / "anomaly").glob("*.wav"))[:10]
        inputs = np.stack([segments(f)[0] for f in files])
        norm = fe["normalize"]
        python = normalize(audio_features(inputs, AudioFeatures.from_dict(fe)), norm["mean"], norm["std"])
    else:
        raw = result.data.extra["test_raw"][:50]
        inputs = raw
        python = normalize(raw, fe["normalize"]["mean"], fe["normalize"]["std"])
    device = host_features(settings, inputs)
    err = np.abs(device - python.reshape(device.shape))
    return {"max_abs_error": float(f"{err.max():.3g}"), "mean_abs_error": float(f"{err.mean():.3g}"),
            "inputs": int(len(inputs)), "reference": "tinykeras.features (tf.signal) vs C front end, host gcc"}


def subset(arrays: dict[str, np.ndarray], count: int, seed: int) -> dict[str, np.ndarray]:
    n = len(arrays["x"])
    idx = np.sort(np.random.default_rng(seed).permutation(n)[:count])
    return {k: v[idx] for k, v in arrays.items()}


def ship(recipe_name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from tinykeras.convert import quantize_model
    from tinykeras.fsutil import atomic_output_dir
    from tinykeras.keras_io import load_arrays, load_model
    from tinykeras.train import train

    data_dir = getattr(args, f"data_{recipe_name}")
    start = time.monotonic()
    result = train(recipe_name, work / recipe_name, data_dir=data_dir, epochs=args.epochs, seed=args.seed,
                   quick=args.quick, variant=None, verbose=2)
    train_s = time.monotonic() - start
    run_dir = work / recipe_name
    rep = load_arrays(run_dir / "rep.npz")["x"]
    loaded = load_model(run_dir / "model.keras")
    conversion = quantize_model(loaded, rep, per_tensor_dense=PER_TENSOR_DENSE)[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["int8"] = int8_metrics(recipe_name, result, conversion.data, conversion.info)
    metrics["int8"]["float_vs_int8_on_rep"] = conversion.comparison
    metrics["int8"]["quantization"] = QUANTIZATION
    shipped_test = subset(load_arrays(run_dir / "test.npz"), SHIPPED_SAMPLES, args.seed)
    metrics["int8"]["on_shipped_test_npz"] = npz_metric(recipe_name, conversion.data, conversion.info, shipped_test)
    metrics["tflite_bytes"] = len(conversion.data)
    metrics["frontend"] = frontend_error(recipe_name, result)
    metrics["command"] = (f"scripts/train_models.py --recipes {recipe_name} --seed {args.seed}"
                          + (" --quick" if args.quick else "") + (f" --epochs {args.epochs}" if args.epochs else ""))
    readme = Path(result.data.source) / "README.txt"
    if readme.exists():  # synthesised datasets describe how they were made
        metrics["data"] = readme.read_text().strip().splitlines()
    settings = json.loads((run_dir / "settings.json").read_text())
    settings["model_sha256"] = conversion.info.sha256
    test = {k: v for k, v in load_arrays(run_dir / "test.npz").items()}
    with atomic_output_dir(args.models / recipe_name) as tmp:
        tmp.chmod(0o755)
        (tmp / "model.tflite").write_bytes(conversion.data)
        shutil.copyfile(run_dir / "model.keras", tmp / "model.keras")
        np.savez_compressed(tmp / "rep.npz", x=rep[:SHIPPED_SAMPLES])
        np.savez_compressed(tmp / "test.npz", **subset(test, SHIPPED_SAMPLES, args.seed))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        (tmp / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
        for png in ("confusion_matrix.png", "roc.png", "training_curves.png"):
            if (run_dir / png).exists():
                shutil.copyfile(run_dir / png, tmp / png)
    note(f"{recipe_name}: float {metrics['metric']} {metrics['value']}, int8 {metrics['int8']['value']}, "
         f"{len(conversion.data):,} B int8, front end max error {metrics['frontend']['max_abs_error']}")
    total_s = time.monotonic() - start
    return {"recipe": recipe_name, "train_seconds": round(train_s, 1), "total_seconds": round(total_s, 1),
            "float": metrics["value"], "int8": metrics["int8"]["value"], "metric": metrics["metric"],
            "epochs_run": metrics["epochs_run"], "tflite_bytes": len(conversion.data),
            "frontend_max_abs_error": metrics["frontend"]["max_abs_error"]}


def npz_metric(recipe_name: str, tflite: bytes, info: Any, test: dict[str, np.ndarray]) -> dict[str, Any]:
    """The int8 model on a test.npz (TFLM host): accuracy, or for sensor the AUC of the mean reconstruction
    error over the windows of each segment present (as tests/test_recipes_models.py measures it)."""
    from tinykeras.metrics import roc_auc
    from tinykeras.tflm_host import TflmRunner, dequantize, prepare_inputs

    x, y = test["x"].astype(np.float32), test["y"]
    out = dequantize(TflmRunner(tflite, info).run_all(prepare_inputs(x, info.input_tensors()[0])),
                     info.output_tensors()[0]).reshape(len(x), -1)
    where = f"int8 .tflite on the TFLite-Micro host interpreter, models/{recipe_name}/test.npz"
    if recipe_name == "sensor":
        err = np.mean((out - x.reshape(len(x), -1)) ** 2, axis=1)
        segments = np.unique(test["segment"])
        scores = np.array([err[test["segment"] == s].mean() for s in segments])
        labels = np.array([y[test["segment"] == s][0] for s in segments])
        return {"metric": "auc", "value": round(float(roc_auc(scores, labels)), 4), "windows": int(len(x)),
                "segments": int(len(segments)), "evaluated_on": where}
    return {"metric": "accuracy", "value": round(float(np.mean(np.argmax(out, axis=1) == y)), 4),
            "test_samples": int(len(x)), "evaluated_on": where}


def full_split(recipe_name: str, args: argparse.Namespace, shipped_test: dict[str, np.ndarray]) -> Any:
    """The recipe's dataset (--data-<recipe>, else the synthesised one) when its test split reproduces the shipped
    test.npz (labels exactly, float features within float32 rounding); else None (no full-split figure)."""
    from types import SimpleNamespace

    from tinykeras.recipes import get_recipe
    from tinykeras.train import dataset_path

    recipe = get_recipe(recipe_name)
    data = recipe.load(dataset_path(recipe, getattr(args, f"data_{recipe_name}"), False, args.seed), False,
                       args.seed)
    again = subset({k: np.asarray(v) for k, v in recipe.test_arrays(data).items()}, SHIPPED_SAMPLES, args.seed)
    same = set(again) == set(shipped_test) and all(
        again[k].shape == shipped_test[k].shape and (
            np.allclose(again[k], shipped_test[k], rtol=0, atol=FEATURE_ATOL) if again[k].dtype.kind == "f"
            else np.array_equal(again[k], shipped_test[k])) for k in again)
    if not same:
        note(f"{recipe_name}: the dataset does not reproduce models/{recipe_name}/test.npz; "
             "measuring on test.npz only")
        return None
    return SimpleNamespace(data=data)


def requantize(recipe_name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Re-quantize models/<recipe>/model.keras (shipped rep.npz, per-tensor FULLY_CONNECTED) in place."""
    from tinykeras.convert import quantize_model
    from tinykeras.fsutil import atomic_output_dir
    from tinykeras.inspect import inspect_bytes
    from tinykeras.keras_io import load_arrays, load_model

    root = args.models / recipe_name
    rep = load_arrays(root / "rep.npz")["x"]
    test = {k: np.asarray(v) for k, v in load_arrays(root / "test.npz").items()}
    old = (root / "model.tflite").read_bytes()
    conversion = quantize_model(load_model(root / "model.keras"), rep, per_tensor_dense=PER_TENSOR_DENSE)[0]
    metrics = json.loads((root / "metrics.json").read_text())
    settings = json.loads((root / "settings.json").read_text())
    int8 = {"quantization": QUANTIZATION, "float_vs_int8_on_rep": conversion.comparison,
            "on_shipped_test_npz": npz_metric(recipe_name, conversion.data, conversion.info, test)}
    if old != conversion.data:  # what it replaces, measured the same way (kept as is when nothing changes)
        old_info = inspect_bytes(old)
        per_channel_fc = any(op.op == "FULLY_CONNECTED" and len(old_info.tensors[op.inputs[1]].quantization.scales) > 1
                             for op in old_info.ops)
        int8["previous_model"] = dict(npz_metric(recipe_name, old, old_info, test), sha256=old_info.sha256,
                                      tflite_bytes=len(old), per_channel_fully_connected=per_channel_fc)
    elif "previous_model" in metrics.get("int8", {}):
        int8["previous_model"] = metrics["int8"]["previous_model"]
    result = None if args.test_npz_only else full_split(recipe_name, args, test)
    if result is not None:
        int8.update(int8_metrics(recipe_name, result, conversion.data, conversion.info))
        if old != conversion.data:
            int8["previous_model"]["full_test_split"] = int8_metrics(recipe_name, result, old, inspect_bytes(old))
    else:
        int8.update({k: v for k, v in int8["on_shipped_test_npz"].items()})
    metrics["int8"] = int8
    metrics["tflite_bytes"] = len(conversion.data)
    metrics["requantized"] = (f"scripts/train_models.py --requantize-only --recipes {recipe_name} --seed {args.seed}"
                              + (" --test-npz-only" if args.test_npz_only else ""))
    settings["model_sha256"] = conversion.info.sha256
    with atomic_output_dir(root) as tmp:
        tmp.chmod(0o755)
        for f in sorted(root.iterdir()):
            if f.is_file():
                shutil.copyfile(f, tmp / f.name)
        (tmp / "model.tflite").write_bytes(conversion.data)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        (tmp / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    previous = int8.get("previous_model", {})
    note(f"{recipe_name}: int8 {int8['metric']} {int8['value']}; on test.npz {int8['on_shipped_test_npz']['value']} "
         f"(previous model: {previous.get('value')}), {len(old):,} -> {len(conversion.data):,} B")
    return {"recipe": recipe_name, "int8": int8["value"], "metric": int8["metric"],
            "tflite_bytes": len(conversion.data), "previous_tflite_bytes": previous.get("tflite_bytes"),
            "on_shipped_test_npz": int8["on_shipped_test_npz"]["value"],
            "previous_on_shipped_test_npz": previous.get("value"), "sha256": conversion.info.sha256}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=["kws", "gesture", "sensor"],
                        choices=["kws", "gesture", "sensor"])
    parser.add_argument("--models", type=Path, default=REPO / "models", help="where to ship (default: models/)")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "train_models", help="training outputs")
    parser.add_argument("--report", type=Path, default=REPO / "out" / "train_models.json",
                        help="timings and results (JSON)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny data, few epochs")
    parser.add_argument("--requantize-only", action="store_true",
                        help="re-quantize the shipped model.keras files (no training); see above")
    parser.add_argument("--test-npz-only", action="store_true",
                        help="with --requantize-only: measure on the shipped test.npz only (no dataset)")
    for name in ("kws", "gesture", "sensor"):
        parser.add_argument(f"--data-{name}", type=Path, default=None, help=f"{name} dataset (default: synthesise)")
    args = parser.parse_args()
    if args.requantize_only:
        rows = [requantize(name, args) for name in args.recipes]
    else:
        rows = [ship(name, args, args.work) for name in args.recipes]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(rows, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
