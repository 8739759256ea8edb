#!/usr/bin/env python3
"""Writes activations.json: PyTorch reference values for every Ember activation.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_activations.py

The output follows the `ember-parity/1` format (PARITY.md); `ember parity
tests/parity/activations.json` checks it, and so does `cargo test` (tests/parity.rs).
Cases cover every activation and option in f32 and f64: kink points, tiny inputs
(where expm1/log1p matter), large and extreme inputs (±20, ±100, ±1000), non-finite
inputs, several shapes and dims, and random output gradients.
"""
import os

import torch
from parity_common import enc, write

torch.manual_seed(0)
HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"f32": torch.float32, "f64": torch.float64}

SPECIAL = [0.0, 1e-12, -1e-12, 1e-7, -1e-7, 1e-3, -1e-3, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0,
           1.5, -1.5, 2.0, -2.0, 3.0, -3.0, 5.0, -5.0, 10.0, -10.0, 19.99, 20.0, 20.01, -20.0,
           30.0, -30.0, 88.0, -88.0, 100.0, -100.0, 710.0, -710.0, 1000.0, -1000.0, -0.0]
NONFINITE = [float("nan"), float("inf"), float("-inf"), 0.0, 1.0, -1.0]



def module(name, cfg, dtype):
    """The torch module for an Ember activation name and config."""
    if name == "prelu":
        # Built in the working dtype, so init=0.1 is 0.1 in f64, not f32's 0.100000001.
        return torch.nn.PReLU(num_parameters=cfg.get("num_parameters", 1), init=cfg.get("init", 0.25), dtype=dtype)
    ctor = {
        "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU,
        "leaky_relu": torch.nn.LeakyReLU, "elu": torch.nn.ELU, "selu": torch.nn.SELU,
        "gelu": torch.nn.GELU, "silu": torch.nn.SiLU, "softplus": torch.nn.Softplus,
        "mish": torch.nn.Mish, "hardtanh": torch.nn.Hardtanh, "softmax": torch.nn.Softmax,
        "log_softmax": torch.nn.LogSoftmax,
    }[name]
    return ctor(**cfg)


cases = []


def case(cid, name, cfg, x, dname, grad_output=True):
    dtype = DTYPES[dname]
    m = module(name, cfg, dtype)
    x = torch.tensor(x, dtype=dtype) if not isinstance(x, torch.Tensor) else x.to(dtype)
    x = x.clone().requires_grad_(True)
    y = m(x)
    inputs = {"input": enc(x)}
    if grad_output:
        g = torch.randn(y.shape, dtype=dtype)
        inputs["grad_output"] = enc(g)
    else:
        g = torch.ones_like(y)
    y.backward(g)
    expected = {"output": enc(y), "grad_input": enc(x.grad)}
    if name == "prelu":
        expected["grad_weight"] = enc(m.weight.grad)
    cases.append({
        "id": f"{name}/{cid}/{dname}", "kind": "activation", "name": name, "config": cfg,
        "dtype": dname, "inputs": inputs, "expected": expected,
    })


def grid(extra=()):
    vals = SPECIAL + list(extra)
    return torch.tensor(vals, dtype=torch.float64)


ELEMENTWISE = {
    "sigmoid": [{}], "tanh": [{}], "relu": [{}], "selu": [{}], "silu": [{}], "mish": [{}],
    "leaky_relu": [{}, {"negative_slope": 0.2}, {"negative_slope": -0.5}],
    "elu": [{}, {"alpha": 0.5}, {"alpha": 2.0}],
    "gelu": [{}, {"approximate": "none"}, {"approximate": "tanh"}],
    "softplus": [{}, {"beta": 2.0, "threshold": 10.0}, {"beta": 0.5, "threshold": 5.0}],
    "hardtanh": [{}, {"min_val": -2.0, "max_val": 3.0}],
}

for dname in DTYPES:
    for name, cfgs in ELEMENTWISE.items():
        for i, cfg in enumerate(cfgs):
            extra = []
            if name == "softplus":
                beta = cfg.get("beta", 1.0)
                t = cfg.get("threshold", 20.0)
                extra = [t / beta, t / beta * 1.001, t / beta * 0.999]
            if name == "hardtanh":
                extra = [cfg.get("min_val", -1.0), cfg.get("max_val", 1.0)]
            tag = "default" if not cfg else "-".join(f"{k}{v}" for k, v in cfg.items())
            case(f"{tag}/grid", name, cfg, grid(extra), dname)
            case(f"{tag}/random3d", name, cfg, torch.randn(2, 3, 4, dtype=torch.float64) * 3, dname)
            case(f"{tag}/ones-grad", name, cfg, torch.randn(5, dtype=torch.float64), dname, grad_output=False)
            if not (name == "gelu" and cfg.get("approximate", "none") == "none" and dname == "f32"):
                # Skipped: torch's vectorised f32 erf gives gelu(+inf) = nan on x86 CPUs, where
                # its f64 path (and Ember, in both dtypes) gives the limit, +inf.
                case(f"{tag}/nonfinite", name, cfg, NONFINITE, dname)
        case("scalar", name, {}, torch.tensor(0.75, dtype=torch.float64), dname)

    # PReLU: one shared slope on any shape; one slope per channel along dim 1.
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    x[0, 0, :2] = 0.0
    case("default", "prelu", {}, x, dname)
    case("channels3-init0.1", "prelu", {"num_parameters": 3, "init": 0.1}, x, dname)
    case("channels3-2d", "prelu", {"num_parameters": 3, "init": -0.3}, torch.randn(4, 3, dtype=torch.float64), dname)
    case("grid", "prelu", {"init": 0.5}, grid(), dname)

    # Softmax and log-softmax: explicit and implicit dims, extreme logits.
    extreme = torch.tensor([[1000.0, -1000.0, 0.0, 999.0],
                            [-1000.0, -1000.0, -999.5, -1000.0],
                            [1e-7, -1e-7, 0.0, 1.0],
                            [30.0, 20.0, 10.0, 0.0]], dtype=torch.float64)
    for name in ("softmax", "log_softmax"):
        case("dim1/extreme", name, {"dim": 1}, extreme, dname)
        case("dim0/extreme", name, {"dim": 0}, extreme, dname)
        case("dim-1/3d", name, {"dim": -1}, torch.randn(2, 3, 5, dtype=torch.float64) * 4, dname)
        case("dim1/3d", name, {"dim": 1}, torch.randn(2, 3, 5, dtype=torch.float64) * 4, dname)
        case("dim2/4d", name, {"dim": 2}, torch.randn(2, 3, 4, 2, dtype=torch.float64), dname)
        case("implicit/1d", name, {}, torch.randn(6, dtype=torch.float64), dname)
        case("implicit/2d", name, {}, torch.randn(3, 4, dtype=torch.float64), dname)
        case("implicit/3d", name, {}, torch.randn(2, 3, 4, dtype=torch.float64), dname)
        case("implicit/4d", name, {}, torch.randn(2, 3, 2, 2, dtype=torch.float64), dname)
        case("dim0/scalar", name, {"dim": 0}, torch.tensor(3.0, dtype=torch.float64), dname)

write(HERE, "activations.json", "gen_activations.py", cases)
