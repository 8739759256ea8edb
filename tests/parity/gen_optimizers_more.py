#!/usr/bin/env python3
"""Writes optimizers_more.json: PyTorch reference trajectories for `rprop` and `asgd`.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_optimizers_more.py

Same problem and conventions as gen_optimizers.py (PARITY.md, kind `optimizer`): each
case minimises f(x) = sum(a x^2) + sum(b x) from x0, with the gradient g = 2 a x + b
evaluated in the working dtype before every step, and records x after each step. f64
cases run with torch's default dtype set to f64, so ASGD's eta and mu (0-d tensors of
the default dtype) are kept in f64; f32 cases keep them in f32, as PyTorch does by
default. Cases cover the defaults and every option (Rprop's etas, step_sizes and
maximize; ASGD's lambd, alpha, t0 small enough that averaging starts, weight_decay and
maximize), plus the seed's 2-D problem f = 0.1 x1^2 + 2 x2^2 from (-5, -2).
"""
import os

import torch
from parity_common import DTYPES, optimizer_cases, write

torch.manual_seed(2)
HERE = os.path.dirname(os.path.abspath(__file__))
OPTIMIZERS = {"rprop": torch.optim.Rprop, "asgd": torch.optim.ASGD}
TUPLES = ("etas", "step_sizes")

cases = []


def make(name, cfg):
    """The torch optimizer of an Ember name and config, for quadratic_trajectory."""
    kwargs = {k: (tuple(v) if k in TUPLES else v) for k, v in cfg.items()}
    return lambda params: OPTIMIZERS[name](params, foreach=False, **kwargs)


def case(cid, name, cfg, x0, a, b, steps):
    cases.extend(optimizer_cases(cid, name, cfg, x0, a, b, steps, make(name, cfg)))


X0 = (torch.randn(6, dtype=torch.float64) * 2).tolist()
A = (torch.rand(6, dtype=torch.float64) * 2 + 0.05).tolist()
B = torch.randn(6, dtype=torch.float64).tolist()

CONFIGS = {
    # Rprop: step sizes grow while the gradient keeps its sign and shrink (with a skipped
    # move) when it flips; 25 steps overshoot and oscillate on every coordinate.
    "rprop": [{}, {"lr": 0.1}, {"lr": 0.1, "etas": [0.3, 1.5]}, {"lr": 0.5, "step_sizes": [0.01, 0.6]},
              {"lr": 0.05, "maximize": True},
              {"lr": 0.2, "etas": [0.7, 1.1], "step_sizes": [0.001, 1.0], "maximize": True},
              {"lr": 1.0, "etas": [0.25, 2.0], "step_sizes": [0.05, 3.0]}],
    # ASGD: t0 = 3.0 or 5.0 starts the averaging (mu < 1) within the run.
    "asgd": [{}, {"lr": 0.1}, {"lr": 0.1, "lambd": 0.05, "alpha": 0.5}, {"lr": 0.1, "t0": 3.0},
             {"lr": 0.2, "lambd": 0.1, "alpha": 1.0, "t0": 5.0, "weight_decay": 0.05},
             {"lr": 0.05, "weight_decay": 0.1}, {"lr": 0.01, "maximize": True, "t0": 2.0},
             {"lr": 0.02, "lambd": 0.5, "alpha": 2.0, "maximize": True, "weight_decay": 0.2}],
}

for name, cfgs in CONFIGS.items():
    for cfg in cfgs:
        tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default"
        case(tag, name, cfg, X0, A, B, steps=25 if name == "rprop" else 15)

# The seed's problem: f = 0.1 x1^2 + 2 x2^2 from (-5, -2), 20 steps.
SEED = {"rprop": [{"lr": 0.4}], "asgd": [{"lr": 0.2, "t0": 4.0}]}
for name, cfgs in SEED.items():
    for cfg in cfgs:
        tag = "-".join(f"{k}{v}" for k, v in cfg.items())
        case(f"seed2d/{tag}", name, cfg, [-5.0, -2.0], [0.1, 2.0], [0.0, 0.0], steps=20)

write(HERE, "optimizers_more.json", "gen_optimizers_more.py", cases)
