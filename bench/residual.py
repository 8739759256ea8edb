"""The PyTorch side of Ember's `[[model.layers]]` models: `Residual`, the module Ember's
`residual` layer matches (same forward, same state_dict names `body.N...` and
`shortcut.N...`), and `build(layers, input_shape)`, which turns an Ember-style layer list
(dicts with "name" and PyTorch's constructor arguments, as in a run config's
`[[model.layers]]`) into the equivalent `nn.Sequential`, children labelled 0, 1, ... as
Ember labels them. Arguments the per-example input shape implies may be left out, as in
Ember: in_features (last dim), in_channels, num_features, num_channels (dim 0),
normalized_shape (for [D] examples only).

    import sys; sys.path.insert(0, "bench")
    from residual import build
    model = build([{"name": "conv2d", "out_channels": 8, "kernel_size": 3},
                   {"name": "residual", "body": [{"name": "relu"}]}], [1, 28, 28])
"""
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.shortcut = nn.Sequential(*shortcut) if shortcut else None

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


LAYERS = {
    "linear": nn.Linear, "conv1d": nn.Conv1d, "conv2d": nn.Conv2d,
    "max_pool2d": nn.MaxPool2d, "avg_pool2d": nn.AvgPool2d, "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d,
    "batch_norm1d": nn.BatchNorm1d, "batch_norm2d": nn.BatchNorm2d, "layer_norm": nn.LayerNorm,
    "group_norm": nn.GroupNorm, "embedding": nn.Embedding, "flatten": nn.Flatten, "dropout": nn.Dropout,
    "identity": nn.Identity,
    # Activations, which Ember also accepts as layers.
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus, "mish": nn.Mish, "hardtanh": nn.Hardtanh,
    "selu": nn.SELU, "softmax": nn.Softmax, "log_softmax": nn.LogSoftmax, "prelu": nn.PReLU,
}
# The argument each layer may leave out, and where in the per-example shape it comes from.
INFERRED = {
    "linear": ("in_features", -1), "conv1d": ("in_channels", 0), "conv2d": ("in_channels", 0),
    "batch_norm1d": ("num_features", 0), "batch_norm2d": ("num_features", 0), "group_norm": ("num_channels", 0),
}


def build(layers, input_shape):
    """`layers` (Ember-style dicts) as an nn.Sequential for examples of shape `input_shape`
    (the batch dimension left out)."""
    return nn.Sequential(*build_layers(layers, input_shape, "layers")[0])


def build_layers(layers, shape, path="layers"):
    """The modules `layers` describe, each for the previous one's output, and the shape of
    one output; `path` names the list in errors."""
    shape, modules = list(shape), []
    for i, table in enumerate(layers):
        module, shape = build_layer(table, shape, f"{path}[{i}]")
        modules.append(module)
    return modules, shape


def build_layer(table, shape, path):
    """One layer dict as (module, per-example output shape)."""
    table = dict(table)
    name = table.pop("name", None)
    if name == "sequential":
        modules, out = build_layers(table.get("layers", []), shape, f"{path}.layers")
        return nn.Sequential(*modules), out
    if name == "residual":
        body, out = build_layers(table.get("body", []), shape, f"{path}.body")
        shortcut, short_out = None, list(shape)
        if table.get("shortcut"):
            shortcut, short_out = build_layers(table["shortcut"], shape, f"{path}.shortcut")
        if out != short_out:
            raise ValueError(f"{path}: the body's output shape {out} differs from the shortcut's {short_out}")
        return Residual(body, shortcut), out
    if name not in LAYERS:
        raise ValueError(f"{path}: unknown layer {name!r}; known: {', '.join(sorted(LAYERS))}, sequential, residual")
    if name in INFERRED:
        key, dim = INFERRED[name]
        table.setdefault(key, shape[dim])
    if name == "layer_norm" and "normalized_shape" not in table:
        if len(shape) != 1:
            raise ValueError(f"{path}: layer_norm needs normalized_shape for examples of shape {shape}")
        table["normalized_shape"] = shape
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    module = LAYERS[name](**kwargs)
    # The output shape, from a forward pass on one zero example (eval mode, so batch
    # norm accepts a batch of one and keeps its running statistics).
    dummy = torch.zeros([1, *shape], dtype=torch.long if name == "embedding" else torch.float32)
    module.eval()
    with torch.no_grad():
        out = module(dummy)
    module.train()
    return module, list(out.shape[1:])
