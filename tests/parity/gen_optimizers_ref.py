#!/usr/bin/env python3
"""Writes optimizers_ref.json: reference trajectories for `lamb`, `lars` and `adan` from
the `pytorch-optimizer` package (pytorch_optimizer.Lamb, LARS and Adan).

Run from the repository root with torch and pytorch-optimizer installed (CI never needs
them):

    pip install pytorch-optimizer
    python3 tests/parity/gen_optimizers_ref.py

Same problem and conventions as gen_optimizers_more.py (PARITY.md, kind `optimizer`):
each case minimises f(x) = sum(a x^2) + sum(b x) from x0, with the gradient
g = 2 a x + b evaluated in the working dtype before every step, and records x after each
step. The optimizers run with their default `foreach=None`, which on the CPU takes their
batched (`_step_foreach`) path, except Lamb with `rectify`, which always takes its
per-parameter path; Ember reproduces those paths. f64 cases run with torch's default
dtype set to f64.

Cases cover the defaults and the options Ember exposes: Lamb's weight decay (decoupled,
fixed, coupled), betas, eps, grad_averaging, adam, adam_debias, maximize and the
rectified variant (rectify, degenerated_to_sgd, n_sma_threshold; steps below the
threshold skip the update or take an SGD step), a weight norm above the clamp (10) and a
zero parameter (trust ratio 1); LARS' trust ratio on matrices and 3-D tensors (vectors
and scalars take plain SGD), weight decay, trust_coefficient, momentum, dampening,
nesterov and maximize, a zero matrix (trust ratio 1); Adan's betas, eps, coupled and
decoupled weight decay and maximize (whose first step keeps the reference's
previous_grad = -grad, taken before the negation). Shapes: 0-d, vector, matrix, 3-D.
"""
import importlib.metadata
import json
import os

import pytorch_optimizer
import torch
from parity_common import DTYPES, optimizer_cases

torch.manual_seed(7)
HERE = os.path.dirname(os.path.abspath(__file__))
OPTIMIZERS = {"lamb": pytorch_optimizer.Lamb, "lars": pytorch_optimizer.LARS, "adan": pytorch_optimizer.Adan}
TUPLES = ("betas",)
STEPS = 15

cases = []


def make(name, cfg):
    """The reference optimizer of an Ember name and config, for quadratic_trajectory."""
    kwargs = {k: (tuple(v) if k in TUPLES else v) for k, v in cfg.items()}
    return lambda params: OPTIMIZERS[name](params, **kwargs)


def problem(shape, scale=2.0, zero=False):
    x0 = torch.zeros(shape, dtype=torch.float64) if zero else torch.randn(shape, dtype=torch.float64) * scale
    a = torch.rand(shape, dtype=torch.float64) * 2 + 0.05
    b = torch.randn(shape, dtype=torch.float64)
    return x0.tolist(), a.tolist(), b.tolist()


PROBLEMS = {
    "scalar": problem(()),
    "vector": problem((6,)),
    "matrix": problem((3, 4)),
    "tensor3d": problem((2, 3, 2)),
    # A weight norm above Lamb's clamp of 10.
    "big": problem((5,), scale=8.0),
    # A zero parameter: a weight norm of 0 gives a trust ratio of 1.
    "zeros": problem((2, 3), zero=True),
}


def case(name, shape, cfg, steps=STEPS):
    tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default"
    x0, a, b = PROBLEMS[shape]
    cases.extend(optimizer_cases(f"{shape}/{tag}", name, cfg, x0, a, b, steps, make(name, cfg)))


LAMB = [
    {},
    {"lr": 0.05},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.1, "fixed_decay": True},
    {"lr": 0.05, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 0.02, "betas": [0.5, 0.9], "eps": 1e-3, "grad_averaging": False},
    {"lr": 0.05, "adam": True, "weight_decay": 0.05},
    {"lr": 0.05, "adam_debias": True},
    {"lr": 0.05, "maximize": True, "weight_decay": 0.1, "weight_decouple": False},
    # Rectified: steps 1-5 are below the threshold 5 (beta2 0.999), and skip the update.
    {"lr": 0.05, "rectify": True},
    {"lr": 0.05, "rectify": True, "degenerated_to_sgd": True, "weight_decay": 0.1},
    {"lr": 0.05, "rectify": True, "n_sma_threshold": 7, "betas": [0.8, 0.99], "weight_decay": 0.1,
     "weight_decouple": False},
    {"lr": 0.05, "rectify": True, "degenerated_to_sgd": True, "adam": True, "maximize": True},
]
LARS = [
    {},
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.0},
    {"lr": 0.05, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.1},
    {"lr": 0.05, "nesterov": True, "weight_decay": 0.05, "maximize": True},
]
# Large rates (LARS' usual regime: the trust ratio scales the step down) for matrices.
LARS_BIG = [
    {"lr": 5.0},
    {"lr": 10.0, "weight_decay": 0.1},
    {"lr": 2.0, "trust_coefficient": 0.02, "weight_decay": 0.01, "momentum": 0.8},
    {"lr": 5.0, "nesterov": True, "dampening": 0.2, "weight_decay": 0.05},
    {"lr": 5.0, "maximize": True, "momentum": 0.0, "weight_decay": 0.2},
]
ADAN = [
    {},
    {"lr": 0.05},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 0.02, "betas": [0.9, 0.5, 0.999], "eps": 1e-4},
    {"lr": 0.05, "betas": [0.3, 0.7, 0.8]},
    {"lr": 0.05, "maximize": True},
    {"lr": 0.05, "maximize": True, "weight_decay": 0.05, "weight_decouple": True},
]

for shape in ["vector", "matrix"]:
    for cfg in LAMB:
        case("lamb", shape, cfg)
for shape in ["scalar", "tensor3d", "big", "zeros"]:
    for cfg in [LAMB[i] for i in (0, 1, 4, 10)]:
        case("lamb", shape, cfg)

for shape in ["scalar", "vector", "matrix", "tensor3d", "zeros"]:
    for cfg in LARS:
        case("lars", shape, cfg)
for shape in ["matrix", "tensor3d"]:
    for cfg in LARS_BIG:
        case("lars", shape, cfg)

for shape in ["vector", "matrix"]:
    for cfg in ADAN:
        case("adan", shape, cfg)
for shape in ["scalar", "tensor3d"]:
    for cfg in [ADAN[i] for i in (0, 1, 2, 6)]:
        case("adan", shape, cfg)

version = importlib.metadata.version("pytorch-optimizer")
doc = {
    "format": "ember-parity/1",
    "source": f"torch {torch.__version__}, pytorch-optimizer {version}, tests/parity/gen_optimizers_ref.py",
    "cases": cases,
}
with open(os.path.join(HERE, "optimizers_ref.json"), "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to tests/parity/optimizers_ref.json")
