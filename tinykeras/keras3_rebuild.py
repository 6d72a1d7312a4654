"""Rebuild a model saved by Keras 3 as a tf_keras (Keras 2) model, so tfmot can prune and QAT it.

Works when every layer is a built-in Keras layer that tf_keras also has (Conv, Dense, BatchNormalization,
pooling, activations, Add, ...): the layer configs are translated, the graph is rewired in tf_keras, the
weights are copied and the two models are compared on random inputs. Anything else raises a ModelError that
names the layer and says what to do.
"""

from __future__ import annotations

import inspect as pyinspect
from pathlib import Path
from typing import Any

import numpy as np

from tinykeras.errors import ModelError
from tinykeras.keras_io import tf_keras

BASE_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape",
               "batch_size", "weights", "activity_regularizer", "autocast"}
HARMLESS = (None, False, 0, "", (), [], {})
ADVICE = ("rebuild the model with tf_keras (`import tf_keras as keras`) and save it again, or run "
          "`tinykeras quantize` for post-training int8 without pruning/QAT")


def _clean(value: Any) -> Any:
    """Keras 3 serialized objects ({module, class_name, config, registered_name}) -> tf_keras form."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return value.get("config", {}).get("name", "float32")
        if "class_name" in value and "config" in value:
            return {"class_name": value["class_name"], "config": _clean(value["config"])}
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _translate(layer3: Any) -> Any:
    """A fresh tf_keras layer equivalent to the Keras 3 ``layer3`` (not yet built)."""
    keras = tf_keras()
    kind = type(layer3).__name__
    cls = getattr(keras.layers, kind, None)
    if cls is None or not type(layer3).__module__.startswith("keras."):
        raise ModelError(f"layer '{layer3.name}' ({kind}, from {type(layer3).__module__}) has no tf_keras "
                         f"equivalent, so the Keras 3 model cannot be rebuilt for tfmot; {ADVICE}")
    config = _clean(layer3.get_config())
    for key in [k for k in config if k.endswith("_initializer")]:
        del config[key]  # the weights are copied, so initializers do not matter
    for key, value in list(config.items()):
        if key.endswith(("_regularizer", "_constraint")) and isinstance(value, dict):
            module = keras.regularizers if key.endswith("_regularizer") else keras.constraints
            target = getattr(module, value["class_name"], None)
            if target is None:
                raise ModelError(f"layer '{layer3.name}' ({kind}): {key} {value['class_name']} has no tf_keras "
                                 f"equivalent; {ADVICE}")
            accepted = set(pyinspect.signature(target.__init__).parameters)
            config[key] = {"class_name": value["class_name"],
                           "config": {k: v for k, v in value["config"].items() if k in accepted}}
    allowed = set(BASE_KWARGS)  # named arguments of __init__ along the class hierarchy (kwargs are forwarded)
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            allowed |= {p for p in pyinspect.signature(klass.__init__).parameters if p != "self"}
    for key in sorted(set(config) - allowed):
        value = config.pop(key)
        if value not in HARMLESS and not (key == "seed" or key.endswith("_config")) \
                and not (key == "negative_slope" and kind == "ReLU"):
            raise ModelError(f"layer '{layer3.name}' ({kind}): option {key}={value!r} has no tf_keras "
                             f"equivalent; {ADVICE}")
    try:
        return cls.from_config(config)
    except Exception as exc:
        raise ModelError(f"layer '{layer3.name}' ({kind}): tf_keras rejects its config "
                         f"({str(exc).splitlines()[0][:200]}); {ADVICE}") from exc


def _history(arg: Any) -> list[tuple[str, int, int]]:
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        name, node, index = arg["config"]["keras_history"]
        return [(name, int(node), int(index))]
    if isinstance(arg, (list, tuple)):
        return [h for item in arg for h in _history(item)]
    return []


def rebuild_keras3(path: Path | str) -> Any:
    """Load ``path`` (a .keras file saved by Keras 3) and return an equivalent tf_keras model."""
    path = Path(path)
    keras = tf_keras()
    try:
        import keras as keras3

        model3 = keras3.saving.load_model(path, compile=False)
    except Exception as exc:
        raise ModelError(f"{path}: saved by Keras 3 and not loadable here ({str(exc).splitlines()[0][:200]}); "
                         f"{ADVICE}") from exc
    if len(model3.inputs) != 1 or len(model3.outputs) != 1:
        raise ModelError(f"{path}: {len(model3.inputs)} inputs / {len(model3.outputs)} outputs; tinykeras "
                         "optimizes single-input, single-output models")
    inp = keras.Input(batch_shape=tuple(model3.inputs[0].shape), name="input")
    pairs: list[tuple[Any, Any]] = []
    if isinstance(model3, keras3.Sequential):
        x = inp
        for layer3 in model3.layers:
            layer2 = _translate(layer3)
            x = layer2(x)
            pairs.append((layer2, layer3))
        out = x
    else:
        config = model3.get_config()
        tensors: dict[tuple[str, int, int], Any] = {}
        input_name = config["input_layers"][0][0] if isinstance(config["input_layers"][0], list) \
            else config["input_layers"][0]
        tensors[(input_name, 0, 0)] = inp
        for entry in config["layers"]:
            if entry["class_name"] == "InputLayer":
                continue
            nodes = entry.get("inbound_nodes") or []
            if len(nodes) != 1:
                raise ModelError(f"{path}: layer '{entry['name']}' is used {len(nodes)} times (shared layers are "
                                 f"not rebuilt); {ADVICE}")
            layer3 = model3.get_layer(entry["name"])
            sources = _history(nodes[0].get("args", []))
            try:
                ins = [tensors[s] for s in sources]
            except KeyError as exc:
                raise ModelError(f"{path}: layer '{entry['name']}' has an input tinykeras cannot follow; "
                                 f"{ADVICE}") from exc
            layer2 = _translate(layer3)
            result = layer2(ins if len(ins) > 1 or isinstance(nodes[0]["args"][0], list) else ins[0])
            tensors[(entry["name"], 0, 0)] = result
            pairs.append((layer2, layer3))
        outputs = config["output_layers"]
        out_key = tuple(outputs[0]) if isinstance(outputs[0], list) else tuple(outputs)
        out = tensors[(out_key[0], 0, 0)]
    model2 = keras.Model(inp, out, name=model3.name)
    for layer2, layer3 in pairs:
        weights = [np.asarray(w) for w in layer3.get_weights()]
        try:
            layer2.set_weights(weights)
        except ValueError as exc:
            raise ModelError(f"layer '{layer3.name}': its Keras 3 weights do not fit the tf_keras layer "
                             f"({str(exc).splitlines()[0][:200]}); {ADVICE}") from exc
    shape = tuple(d if d is not None else 1 for d in model3.inputs[0].shape)
    probe = np.random.default_rng(0).normal(size=(4,) + shape[1:]).astype(np.float32)
    want = np.asarray(model3(probe, training=False))
    got = np.asarray(model2(probe, training=False))
    if want.shape != got.shape or not np.allclose(want, got, rtol=1e-4, atol=1e-5 * (1 + np.abs(want).max())):
        raise ModelError(f"{path}: the tf_keras rebuild of the Keras 3 model does not reproduce its outputs "
                         f"(max difference {np.abs(want - got).max() if want.shape == got.shape else 'shape'}); "
                         f"{ADVICE}")
    return model2
