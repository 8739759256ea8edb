#!/usr/bin/env python3
"""Writes optimizers_adafactor.json: PyTorch reference trajectories for Ember's `adafactor`.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_optimizers_adafactor.py

Format `ember-parity/1` (PARITY.md, kind `optimizer`): each case minimises
f(x) = sum(a x^2) + sum(b x) from x0, with the gradient g = 2 a x + b evaluated in the
working dtype before every step, and records x after each step. torch.optim.Adafactor
(single-tensor path, foreach=None) factors the second moment over the last two dims of a
parameter of rank >= 2, and keeps a full one for a vector or a scalar, so the cases cover
a 0-d scalar, a vector, matrices (including 1-row and 1-column ones), a 3-D and a 4-D
tensor, with every option (lr above 1/sqrt(t), maximize, weight_decay, the eps pair, d,
beta2_decay), in f32 and f64 (f64 cases run with torch's default dtype set to f64).
"""
import os

import torch
from parity_common import DTYPES, optimizer_cases, write

torch.manual_seed(21)
HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 12

cases = []


def make(cfg):
    """torch.optim.Adafactor with an Ember config, for quadratic_trajectory."""
    kwargs = {k: (tuple(v) if k == "eps" else v) for k, v in cfg.items()}
    return lambda params: torch.optim.Adafactor(params, **kwargs)


def problem(shape):
    x0 = torch.randn(shape, dtype=torch.float64) * 2
    a = torch.rand(shape, dtype=torch.float64) * 2 + 0.05
    b = torch.randn(shape, dtype=torch.float64)
    return x0.tolist(), a.tolist(), b.tolist()


PROBLEMS = {
    "scalar": problem(()),
    "vector": problem((6,)),
    "matrix": problem((3, 4)),
    "row": problem((1, 5)),
    "column": problem((4, 1)),
    "tensor3d": problem((2, 3, 4)),
    "tensor4d": problem((2, 2, 3, 2)),
}


def case(shape, cfg, steps=STEPS):
    tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default"
    x0, a, b = PROBLEMS[shape]
    cases.extend(optimizer_cases(f"{shape}/{tag}", "adafactor", cfg, x0, a, b, steps, make(cfg)))


CONFIGS = [
    {},
    {"lr": 0.5},
    {"lr": 0.1, "maximize": True},
    {"lr": 0.5, "weight_decay": 0.1},
    {"lr": 0.1, "eps": [0.3, 0.5]},
    {"lr": 0.1, "eps": [2.0, 1e-3]},
    {"lr": 0.1, "eps": [1e-20, 5.0]},
    {"lr": 0.1, "d": 1.5},
    {"lr": 0.1, "d": 1.05},
    {"lr": 0.1, "beta2_decay": -0.5},
    {"lr": 0.1, "beta2_decay": 0.0},
    {"lr": 0.3, "beta2_decay": -0.3, "eps": [1e-4, 1e-2], "d": 1.2, "weight_decay": 0.05, "maximize": True},
]

for shape in ["vector", "matrix"]:
    for cfg in CONFIGS:
        case(shape, cfg)
for cfg in [CONFIGS[i] for i in (0, 1, 5, 8, 11)]:
    case("tensor3d", cfg)
for shape in ["scalar", "row", "column", "tensor4d"]:
    for cfg in [{}, {"lr": 0.5}, {"lr": 0.3, "weight_decay": 0.1, "d": 1.2, "eps": [1e-3, 1e-2]}]:
        case(shape, cfg)

write(HERE, "optimizers_adafactor.json", "gen_optimizers_adafactor.py", cases)
