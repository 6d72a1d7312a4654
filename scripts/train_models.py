#!/usr/bin/env python3
"""Regenerate the shipped default models: models/<recipe>/{model.tflite, model.keras, metrics.json,
settings.json, rep.npz, test.npz}.

For each recipe: train it (``tinykeras.train.train``; synthesised data unless --data-<recipe> is given),
convert it to full-integer int8 with ``tinykeras.convert.quantize_model`` (calibrated on rep.npz), measure the
int8 model on the TFLite-Micro host interpreter over the test split, and measure the C feature front end
against the Python features (host gcc). Timings go to --report (JSON), never into models/.

    .venv/bin/python scripts/train_models.py                       # all three, full training
    .venv/bin/python scripts/train_models.py --recipes gesture --quick
    .venv/bin/python scripts/train_models.py --recipes kws --data-kws data/kws --epochs 60
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


def int8_metrics(recipe_name: str, result: Any, tflite: bytes, info: Any) -> dict[str, Any]:
    """The int8 model on the TFLM host interpreter: test accuracy (classifiers) or AUC (anomaly detection)."""
    from tinykeras.recipes.base import roc_auc
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
        auc = roc_auc(scores, data.extra["test_labels"])[0]
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
    conversion = quantize_model(loaded, rep)[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["int8"] = int8_metrics(recipe_name, result, conversion.data, conversion.info)
    metrics["int8"]["float_vs_int8_on_rep"] = conversion.comparison
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
    for name in ("kws", "gesture", "sensor"):
        parser.add_argument(f"--data-{name}", type=Path, default=None, help=f"{name} dataset (default: synthesise)")
    args = parser.parse_args()
    rows = [ship(name, args, args.work) for name in args.recipes]
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(rows, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
