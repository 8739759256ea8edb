#!/usr/bin/env python3
"""Writes optimizers_lion.json: reference trajectories for `lion` from the `lion-pytorch`
package (lion_pytorch.Lion, its default per-parameter update, not the Triton one).

Run from the repository root with torch and lion-pytorch installed (CI never needs
them):

    pip install lion-pytorch
    python3 tests/parity/gen_optimizers_lion.py

Same problem and conventions as gen_optimizers_more.py (PARITY.md, kind `optimizer`):
each case minimises f(x) = sum(a x^2) + sum(b x) from x0, with the gradient
g = 2 a x + b evaluated in the working dtype before every step, and records x after each
step. f64 cases run with torch's default dtype set to f64.

Cases cover the defaults (lr 1e-4), larger rates, betas (beta1 = 0: the sign of the
gradient itself), weight decay p <- p (1 - lr wd), decoupled_weight_decay (wd divided by
the configured lr), a matrix parameter, and coordinates that start at their optimum
(gradient 0: sign 0, no move). lion-pytorch has no `maximize`.
"""
import importlib.metadata
import json
import os

import torch
from lion_pytorch import Lion
from parity_common import optimizer_cases

torch.manual_seed(11)
HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 20

cases = []


def make(cfg):
    """lion_pytorch.Lion of an Ember config, for quadratic_trajectory."""
    kwargs = {k: (tuple(v) if k == "betas" else v) for k, v in cfg.items()}
    return lambda params: Lion(params, **kwargs)


def case(cid, cfg, x0, a, b):
    cases.extend(optimizer_cases(cid, "lion", cfg, x0, a, b, STEPS, make(cfg)))


def problem(shape):
    x0 = torch.randn(shape, dtype=torch.float64) * 2
    a = torch.rand(shape, dtype=torch.float64) * 2 + 0.05
    b = torch.randn(shape, dtype=torch.float64)
    return x0.tolist(), a.tolist(), b.tolist()


VECTOR = problem(6)
MATRIX = problem((2, 3))
# Two coordinates at their optimum (x = 0, b = 0): a zero gradient every step.
AT_OPTIMUM = ([0.0, 1.5, 0.0, -0.7], [0.5, 1.0, 2.0, 0.3], [0.0, 0.4, 0.0, -0.2])

CONFIGS = [
    {},
    {"lr": 0.05},
    {"lr": 0.05, "betas": [0.8, 0.9]},
    {"lr": 0.1, "betas": [0.0, 0.5]},
    {"lr": 0.02, "betas": [0.5, 0.999]},
    {"lr": 0.05, "weight_decay": 0.5},
    {"lr": 0.02, "betas": [0.95, 0.98], "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.02, "decoupled_weight_decay": True},
    {"lr": 0.01, "weight_decay": 0.005, "decoupled_weight_decay": True, "betas": [0.7, 0.95]},
    {"lr": 0.05, "decoupled_weight_decay": True},
]

for cfg in CONFIGS:
    tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default"
    case(tag, cfg, *VECTOR)
for cfg in [CONFIGS[1], CONFIGS[5], CONFIGS[7]]:
    tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "")
    case(f"matrix/{tag}", cfg, *MATRIX)
    case(f"at_optimum/{tag}", cfg, *AT_OPTIMUM)

version = importlib.metadata.version("lion-pytorch")
doc = {
    "format": "ember-parity/1",
    "source": f"torch {torch.__version__}, lion-pytorch {version}, tests/parity/gen_optimizers_lion.py",
    "cases": cases,
}
with open(os.path.join(HERE, "optimizers_lion.json"), "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to tests/parity/optimizers_lion.json")
