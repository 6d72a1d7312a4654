"""Structured channel pruning that really shrinks a tf_keras model.

1. Walk the functional graph and group tensors whose channel axes are coupled ("channel spaces"): a Conv or
   Dense layer starts a new space; BatchNormalization, activations, pooling, dropout and DepthwiseConv2D
   (depth_multiplier 1) carry their input's space; an Add (or other elementwise merge) joins the spaces of all
   its inputs, so residual branches are pruned together; Flatten keeps the space but spreads each channel over
   the spatial positions. Spaces that reach a model output, the model input, or a layer we do not understand
   (Reshape, Concatenate, Lambda, custom layers...) stay whole.
2. Rank the channels of every prunable space by importance: the L1 norm of each producing filter (and of the
   depthwise filters in the space), each layer normalised by its mean, or the BatchNorm |gamma| (``bn``).
3. Remove the same fraction of channels from every prunable space (or search the fraction that brings MACs to
   ``target_macs`` of the original), rebuild a smaller model from the edited config and copy the kept weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinykeras.errors import ModelError
from tinykeras.keras_io import tf_keras

# Layers without weights whose output channel i depends only on input channel i.
PASS_THROUGH = (
    "Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU", "Softmax", "Dropout", "SpatialDropout1D",
    "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D", "ZeroPadding2D",
    "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "Identity",
)
MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
PER_CHANNEL = ("BatchNormalization", "LayerNormalization")


@dataclass
class Group:
    """One prunable channel space."""

    root: int
    channels: int
    producers: list[str] = field(default_factory=list)  # Conv/Dense layers whose filters create it
    members: list[str] = field(default_factory=list)  # every layer with per-channel weights in it
    keep: np.ndarray | None = None


@dataclass
class ChannelPlan:
    groups: list[Group]
    fixed_reasons: dict[str, str]
    fraction: float
    macs_before: int
    macs_after: int

    def notes(self) -> list[str]:
        removed = sum(g.channels - len(g.keep) for g in self.groups if g.keep is not None)
        total = sum(g.channels for g in self.groups)
        notes = [f"removed {removed} of {total} channels ({self.fraction:.0%} of each of {len(self.groups)} "
                 f"prunable groups); Keras-estimated MACs {self.macs_before:,} -> {self.macs_after:,}"]
        for g in self.groups:
            if len(g.producers) > 1:
                notes.append(f"pruned together (joined by Add): {', '.join(g.producers)}")
        for what, why in sorted(self.fixed_reasons.items()):
            notes.append(f"kept whole: {what} ({why})")
        return notes


class _Spaces:
    """Union-find over channel spaces."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.channels: list[int] = []
        self.fixed: dict[int, str] = {}

    def new(self, channels: int, fixed: str | None = None) -> int:
        self.parent.append(len(self.parent))
        self.channels.append(channels)
        if fixed:
            self.fixed[len(self.parent) - 1] = fixed
        return len(self.parent) - 1

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.fixed:
                self.fixed.setdefault(ra, self.fixed[rb])
        return ra

    def fix(self, s: int, why: str) -> None:
        self.fixed.setdefault(self.find(s), why)

    def is_fixed(self, s: int) -> bool:
        return self.find(s) in self.fixed


def as_functional(model: Any) -> Any:
    """A functional copy of a Sequential model (same weights); functional models pass through."""
    keras = tf_keras()
    if not isinstance(model, keras.Sequential):
        return model
    inp = keras.Input(batch_shape=model.inputs[0].shape, name="input")
    x = inp
    fresh = []
    for layer in model.layers:
        new = layer.__class__.from_config(layer.get_config())
        x = new(x)
        fresh.append((new, layer))
    func = keras.Model(inp, x, name=model.name)
    for new, old in fresh:
        new.set_weights(old.get_weights())
    return func


def _class(layer: Any) -> str:
    return type(layer).__name__


@dataclass
class _Graph:
    config: dict[str, Any]
    layers: dict[str, Any]
    inputs: dict[str, list[str]]  # layer -> inbound layer names (in order)
    space: dict[str, tuple[int, int | None]]  # layer output -> (space, flatten spatial size or None)
    spaces: _Spaces
    in_space: dict[str, tuple[int, int | None]]  # weighted layer -> its input space


def analyse(model: Any) -> _Graph:
    """Channel spaces of a functional tf_keras model."""
    config = model.get_config()
    layers = {layer.name: layer for layer in model.layers}
    inputs: dict[str, list[str]] = {}
    for entry in config["layers"]:
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise ModelError(f"layer '{entry['name']}' is called {len(nodes)} times (a shared layer); channel "
                             "pruning needs every layer used once")
        names = []
        for node in nodes:
            if not isinstance(node, list):
                raise ModelError(f"layer '{entry['name']}': unexpected config format for channel pruning")
            for inbound in node:
                if not isinstance(inbound, list) or inbound[1] != 0 or inbound[2] != 0:
                    names.append(None)
                else:
                    names.append(inbound[0])
        inputs[entry["name"]] = names

    spaces = _Spaces()
    space: dict[str, tuple[int, int | None]] = {}
    in_space: dict[str, tuple[int, int | None]] = {}
    for entry in config["layers"]:
        name = entry["name"]
        layer = layers[name]
        kind = _class(layer)
        ins = [space.get(n) if n else None for n in inputs[name]]
        out_channels = _channels(layer.output_shape)

        def fix_inputs(why: str, ins: list = ins) -> None:
            for s in ins:
                if s is not None:
                    spaces.fix(s[0], why)

        if kind == "InputLayer":
            space[name] = (spaces.new(out_channels, "model input"), None)
            continue
        if any(s is None for s in ins) or not ins:
            fix_inputs(f"{name}: unsupported connection")
            space[name] = (spaces.new(out_channels, f"{name}: unsupported connection"), None)
            continue
        channels_last = layer.get_config().get("data_format", "channels_last") in (None, "channels_last")
        src = ins[0]
        if kind in ("Conv1D", "Conv2D") and channels_last and layer.get_config().get("groups", 1) == 1:
            if src[1] is not None:
                spaces.fix(src[0], f"{name}: convolution over a flattened tensor")
            in_space[name] = src
            space[name] = (spaces.new(int(layer.filters)), None)
        elif kind == "Dense":
            in_space[name] = src
            space[name] = (spaces.new(int(layer.units)), None)
        elif kind in ("DepthwiseConv1D", "DepthwiseConv2D") and channels_last and src[1] is None:
            in_space[name] = src
            if int(layer.depth_multiplier) == 1:
                space[name] = src
            else:
                spaces.fix(src[0], f"{name}: depth_multiplier {layer.depth_multiplier}")
                space[name] = (spaces.new(out_channels, f"{name}: depth_multiplier > 1"), None)
        elif kind in PER_CHANNEL and src[1] is None and _per_channel_axis(layer):
            in_space[name] = src
            space[name] = src
        elif kind in PASS_THROUGH and not layer.weights and channels_last:
            space[name] = src
        elif kind == "Flatten":
            shape = layer.input_shape
            if src[1] is not None:
                space[name] = src
            elif None in shape[1:]:
                spaces.fix(src[0], f"{name}: flatten of an unknown shape")
                space[name] = (spaces.new(out_channels, "flatten"), None)
            else:
                space[name] = (src[0], int(np.prod(shape[1:-1])))
        elif kind in MERGES and all(s[1] is None for s in ins):
            root = ins[0][0]
            for s in ins[1:]:
                root = spaces.union(root, s[0])
            space[name] = (root, None)
        else:
            why = f"{name} ({kind}) is not understood by channel pruning"
            fix_inputs(why)
            space[name] = (spaces.new(out_channels, why), None)
    for out in config["output_layers"]:
        spaces.fix(space[out[0]][0], f"model output '{out[0]}'")
    return _Graph(config, layers, inputs, space, spaces, in_space)


def _channels(shape: Any) -> int:
    if isinstance(shape, list):
        shape = shape[0]
    return int(shape[-1]) if shape and shape[-1] is not None else 0


def _per_channel_axis(layer: Any) -> bool:
    axis = layer.get_config().get("axis", -1)
    axis = axis if isinstance(axis, (list, tuple)) else [axis]
    rank = len(layer.input_shape)
    return [a % rank for a in axis] == [rank - 1]


def groups_of(graph: _Graph) -> tuple[list[Group], dict[str, str]]:
    """The prunable groups and, for the others, why they stay whole."""
    spaces = graph.spaces
    by_root: dict[int, Group] = {}
    for name, layer in graph.layers.items():
        kind = _class(layer)
        if kind in ("Conv1D", "Conv2D", "Dense") and name in graph.in_space:
            root = spaces.find(graph.space[name][0])
            group = by_root.setdefault(root, Group(root, spaces.channels[root]))
            group.producers.append(name)
            group.members.append(name)
    for name in graph.in_space:
        kind = _class(graph.layers[name])
        if kind in ("DepthwiseConv1D", "DepthwiseConv2D") + PER_CHANNEL:
            root = spaces.find(graph.space[name][0])
            if root in by_root:
                by_root[root].members.append(name)
    prunable, reasons = [], {}
    for root, group in by_root.items():
        if spaces.is_fixed(root):
            reasons[", ".join(group.producers)] = spaces.fixed[root]
        elif group.channels >= 2:
            prunable.append(group)
    return prunable, reasons


def channel_scores(graph: _Graph, group: Group, method: str = "l1") -> np.ndarray:
    """Per-channel score: mean over layers of (per-channel L1 norm / its mean), or BatchNorm |gamma|."""
    scores = []
    for name in group.members:
        layer = graph.layers[name]
        kind = _class(layer)
        if method == "bn" and kind == "BatchNormalization" and layer.scale:
            values = np.abs(layer.gamma.numpy())
        elif method == "l1" and kind in ("Conv1D", "Conv2D", "Dense"):
            kernel = layer.kernel.numpy()
            values = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
        elif method == "l1" and kind.startswith("Depthwise"):
            kernel = layer.depthwise_kernel.numpy()  # [..., C, 1]
            values = np.abs(np.moveaxis(kernel, -2, 0)).reshape(kernel.shape[-2], -1).sum(axis=1)
        else:
            continue
        scores.append(values / (values.mean() + 1e-12))
    if not scores:
        return channel_scores(graph, group, "l1") if method == "bn" else np.ones(group.channels)
    return np.mean(scores, axis=0)


def _keep_count(channels: int, fraction: float) -> int:
    return max(1, int(round(channels * (1.0 - fraction))))


def keras_macs(graph: _Graph, keep: dict[int, int]) -> int:
    """MACs of Conv, DepthwiseConv and Dense layers, with ``keep`` (space root -> kept channels) applied."""
    spaces = graph.spaces

    def width(s: tuple[int, int | None]) -> int:
        root = spaces.find(s[0])
        c = keep.get(root, spaces.channels[root])
        return c * (s[1] or 1)

    total = 0
    for name, layer in graph.layers.items():
        kind = _class(layer)
        if name not in graph.in_space:
            continue
        out_shape = layer.output_shape
        positions = int(np.prod([d for d in out_shape[1:-1] if d is not None])) if len(out_shape) > 2 else 1
        cin = width(graph.in_space[name])
        if kind in ("Conv1D", "Conv2D"):
            total += positions * int(np.prod(layer.kernel_size)) * cin * width(graph.space[name])
        elif kind.startswith("Depthwise"):
            total += positions * int(np.prod(layer.kernel_size)) * cin * int(layer.depth_multiplier)
        elif kind == "Dense":
            total += positions * cin * width(graph.space[name])
    return total


def channel_prune(model: Any, fraction: float | None = 0.5, target_macs: float | None = None,
                  importance: str = "l1", x_sample: np.ndarray | None = None) -> tuple[Any, ChannelPlan]:
    """Remove ``fraction`` of the channels of every prunable group (or the fraction that brings the MACs to
    ``target_macs`` of the original) and return the smaller model (weights copied, not yet fine-tuned)."""
    keras = tf_keras()
    func = as_functional(model)
    graph = analyse(func)
    groups, reasons = groups_of(graph)
    if not groups:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "no Conv/Dense layers"
        raise ModelError(f"channel pruning found nothing it can remove ({why})")
    before = keras_macs(graph, {})

    def macs_at(f: float) -> int:
        return keras_macs(graph, {g.root: _keep_count(g.channels, f) for g in groups})

    if target_macs is not None:
        low, high = 0.0, 0.95
        if macs_at(high) > target_macs * before:
            raise ModelError(f"channel pruning cannot reach {target_macs:.0%} of the MACs: even removing 95 % of "
                             f"the prunable channels leaves {macs_at(high) / before:.0%} (the rest sits in "
                             "layers that must stay whole)")
        for _ in range(30):
            mid = (low + high) / 2
            low, high = (low, mid) if macs_at(mid) <= target_macs * before else (mid, high)
        fraction = high
    fraction = 0.5 if fraction is None else float(fraction)
    for g in groups:
        order = np.argsort(-channel_scores(graph, g, importance), kind="stable")
        g.keep = np.sort(order[: _keep_count(g.channels, fraction)])
    keep_of = {g.root: g.keep for g in groups}

    config = copy.deepcopy(graph.config)
    for entry in config["layers"]:
        name = entry["name"]
        root = graph.spaces.find(graph.space[name][0])
        if root in keep_of and name in graph.in_space:
            kind = _class(graph.layers[name])
            if kind in ("Conv1D", "Conv2D"):
                entry["config"]["filters"] = len(keep_of[root])
            elif kind == "Dense":
                entry["config"]["units"] = len(keep_of[root])
    try:
        small = keras.Model.from_config(config)
    except Exception as exc:
        raise ModelError(f"channel pruning could not rebuild the model: {str(exc).splitlines()[0][:300]}") from exc

    def index(s: tuple[int, int | None]) -> np.ndarray | None:
        root = graph.spaces.find(s[0])
        if root not in keep_of:
            return None
        kept = keep_of[root]
        if s[1] is None:
            return kept
        channels = graph.spaces.channels[root]  # flattened (h, w, c): position p, channel c -> p * C + c
        return (np.arange(s[1])[:, None] * channels + kept[None, :]).reshape(-1)

    for layer in small.layers:
        old = graph.layers[layer.name]
        weights = old.get_weights()
        name = layer.name
        if name in graph.in_space:
            kind = _class(old)
            cin, cout = index(graph.in_space[name]), index(graph.space[name])
            if kind in ("Conv1D", "Conv2D", "Dense"):
                kernel = weights[0]
                if cin is not None:
                    kernel = np.take(kernel, cin, axis=-2)
                if cout is not None:
                    kernel = np.take(kernel, cout, axis=-1)
                    weights = [kernel] + [np.take(w, cout, axis=-1) for w in weights[1:]]
                else:
                    weights = [kernel] + weights[1:]
            elif kind.startswith("Depthwise") and cin is not None:
                weights = [np.take(weights[0], cin, axis=-2)] + [np.take(w, cin, axis=-1) for w in weights[1:]]
            elif kind in PER_CHANNEL and cin is not None:
                weights = [np.take(w, cin, axis=-1) for w in weights]
        layer.set_weights(weights)
    plan = ChannelPlan(groups, reasons, fraction, before, keras_macs(graph, {r: len(k) for r, k in keep_of.items()}))
    if x_sample is not None:
        np.asarray(small(x_sample.astype(np.float32), training=False))  # fails loudly if shapes are wrong
    return small, plan
