#!/usr/bin/env python3
"""Writes optimizers.json: PyTorch reference trajectories for every Ember optimizer.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_optimizers.py

Format `ember-parity/1` (PARITY.md): each case minimises f(x) = sum(a x^2) + sum(b x)
from x0, with the gradient g = 2 a x + b evaluated in the working dtype before every
step, and records x after each step. Cases cover every optimizer and option in f32 and
f64 (f64 cases run with torch's default dtype set to f64, so optimizer scalars such as
NAdam's mu_product are kept in f64), plus the seed's 2-D problem f = 0.1 x1^2 + 2 x2^2
from (-5, -2).
"""
import os

import torch
from parity_common import DTYPES, optimizer_cases, write

torch.manual_seed(2)
HERE = os.path.dirname(os.path.abspath(__file__))
OPTIMIZERS = {
    "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax, "nadam": torch.optim.NAdam, "radam": torch.optim.RAdam,
}

cases = []


def make(name, cfg):
    """The torch optimizer of an Ember name and config, for quadratic_trajectory."""
    kwargs = {k: (tuple(v) if k == "betas" else v) for k, v in cfg.items()}
    return lambda params: OPTIMIZERS[name](params, **kwargs)


def case(cid, name, cfg, x0, a, b, steps=12):
    cases.extend(optimizer_cases(cid, name, cfg, x0, a, b, steps, make(name, cfg)))


X0 = (torch.randn(6, dtype=torch.float64) * 2).tolist()
A = (torch.rand(6, dtype=torch.float64) * 2 + 0.05).tolist()
B = torch.randn(6, dtype=torch.float64).tolist()

CONFIGS = {
    "sgd": [{}, {"lr": 0.1}, {"lr": 0.1, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.9, "dampening": 0.5},
            {"lr": 0.1, "momentum": 0.9, "nesterov": True}, {"lr": 0.1, "weight_decay": 0.1},
            {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.2, "nesterov": True}, {"lr": 0.01, "maximize": True},
            {"lr": 0.02, "momentum": 0.3, "maximize": True, "weight_decay": 0.1}],
    "adagrad": [{}, {"lr": 0.5}, {"lr": 0.5, "lr_decay": 0.1}, {"lr": 0.5, "weight_decay": 0.1},
                {"lr": 0.5, "initial_accumulator_value": 0.3}, {"lr": 0.1, "eps": 1e-3}, {"lr": 0.1, "maximize": True}],
    "rmsprop": [{}, {"lr": 0.05}, {"lr": 0.05, "alpha": 0.9}, {"lr": 0.05, "momentum": 0.9},
                {"lr": 0.05, "centered": True}, {"lr": 0.02, "centered": True, "momentum": 0.5, "weight_decay": 0.1},
                {"lr": 0.05, "alpha": 0.3}, {"lr": 0.01, "maximize": True, "eps": 1e-4}],
    "adam": [{}, {"lr": 0.1}, {"lr": 0.1, "betas": [0.8, 0.99]}, {"lr": 0.1, "weight_decay": 0.1},
             {"lr": 0.1, "amsgrad": True}, {"lr": 0.1, "eps": 1e-3}, {"lr": 0.05, "maximize": True},
             {"lr": 0.1, "betas": [0.3, 0.5]}, {"lr": 0.1, "amsgrad": True, "weight_decay": 0.2, "betas": [0.5, 0.9]}],
    "adamw": [{}, {"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.5, "amsgrad": True}, {"lr": 0.1, "weight_decay": 0.0},
              {"lr": 0.05, "maximize": True, "betas": [0.3, 0.6]}],
    "adadelta": [{}, {"lr": 0.5, "rho": 0.5}, {"weight_decay": 0.1}, {"eps": 1e-3}, {"lr": 0.1, "maximize": True}],
    "adamax": [{}, {"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.1, "betas": [0.5, 0.9]}, {"lr": 0.05, "maximize": True}],
    "nadam": [{}, {"lr": 0.1}, {"lr": 0.1, "momentum_decay": 0.01}, {"lr": 0.1, "weight_decay": 0.1},
              {"lr": 0.1, "weight_decay": 0.1, "decoupled_weight_decay": True}, {"lr": 0.05, "maximize": True}],
    "radam": [{}, {"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.1}, {"lr": 0.1, "weight_decay": 0.1, "decoupled_weight_decay": True},
              {"lr": 0.1, "betas": [0.9, 0.9]}, {"lr": 0.05, "maximize": True, "betas": [0.8, 0.95]}],
}

for name, cfgs in CONFIGS.items():
    for cfg in cfgs:
        tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default"
        case(tag, name, cfg, X0, A, B, steps=20 if name == "radam" else 12)

# The seed's problem: f = 0.1 x1^2 + 2 x2^2 from (-5, -2), 20 steps.
SEED = {"sgd": [{"lr": 0.4}, {"lr": 0.6, "momentum": 0.5}], "adagrad": [{"lr": 0.4}],
        "rmsprop": [{"lr": 0.4, "alpha": 0.9}], "adam": [{"lr": 0.16}]}
for name, cfgs in SEED.items():
    for cfg in cfgs:
        tag = "-".join(f"{k}{v}" for k, v in cfg.items())
        case(f"seed2d/{tag}", name, cfg, [-5.0, -2.0], [0.1, 2.0], [0.0, 0.0], steps=20)

write(HERE, "optimizers.json", "gen_optimizers.py", cases)
