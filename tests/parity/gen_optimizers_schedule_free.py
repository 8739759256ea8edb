#!/usr/bin/env python3
"""Writes optimizers_schedule_free.json: reference trajectories for `schedule_free_adamw`
and `schedule_free_sgd` from the `schedulefree` package (AdamWScheduleFree and
SGDScheduleFree).

Run from the repository root with torch and schedulefree installed (CI never needs them):

    pip install schedulefree
    python3 tests/parity/gen_optimizers_schedule_free.py

Same problem and conventions as gen_optimizers_more.py (PARITY.md, kind `optimizer`):
each case minimises f(x) = sum(a x^2) + sum(b x) from x0, with the gradient
g = 2 a x + b evaluated in the working dtype before every step. The optimizers run with
foreach=False (their per-parameter path, which Ember reproduces) in train mode, so the
parameter holds y, the point where gradients are taken: `trajectory` is y after each
step. `eval_trajectory` is the evaluation point after each step, what the package's
`optimizer.eval()` puts in the parameter (x = lerp(y, z, 1 - 1/beta1)); it is read from
a deep copy of the optimizer and its parameter, so the trajectory never goes through an
eval()/train() round trip (which perturbs y by rounding; the script reports how much).

Cases cover the defaults and every argument: warmup_steps, weight_decay, r,
weight_lr_power, betas / momentum (including a beta1 below 2/3, where the evaluation
weight 1 - 1/beta1 is below -1/2 and torch's lerp takes its other form), eps, and lr = 0
(a zero weight sum, which the package's ZeroDivisionError branch turns into ckp1 = 0).
"""
import copy
import importlib.metadata
import json
import os

import schedulefree
import torch
from parity_common import DTYPES, enc

torch.manual_seed(11)
HERE = os.path.dirname(os.path.abspath(__file__))
OPTIMIZERS = {"schedule_free_adamw": schedulefree.AdamWScheduleFree, "schedule_free_sgd": schedulefree.SGDScheduleFree}
STEPS = 20

cases = []
round_trip = {"f32": 0.0, "f64": 0.0}


def make(name, cfg):
    """The reference optimizer of an Ember name and config."""
    kwargs = {k: (tuple(v) if k == "betas" else v) for k, v in cfg.items()}
    return lambda params: OPTIMIZERS[name](params, foreach=False, **kwargs)


def trajectories(make_opt, x0, a, b, steps, dname):
    """y (the parameter in train mode) and the eval() point after each step."""
    dtype = DTYPES[dname]
    torch.set_default_dtype(dtype)
    try:
        x = torch.tensor(x0, dtype=dtype, requires_grad=True)
        a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
        opt = make_opt([x])
        opt.train()
        ys, evals = [], []
        for _ in range(steps):
            with torch.no_grad():
                x.grad = 2 * a * x + b
            opt.step()
            ys.append(x.detach().clone())
            twin = copy.deepcopy(opt)
            twin.eval()
            evals.append(twin.param_groups[0]["params"][0].detach().clone())
            assert torch.equal(x, ys[-1]), "the copy's eval() touched the original parameter"
            # How far an eval()/train() round trip (on another copy) moves y.
            other = copy.deepcopy(opt)
            other.eval()
            other.train()
            moved = (other.param_groups[0]["params"][0] - ys[-1]).abs().max().item()
            round_trip[dname] = max(round_trip[dname], moved)
        return [enc(y) for y in ys], [enc(e) for e in evals]
    finally:
        torch.set_default_dtype(torch.float32)


def problem(shape, a_max):
    x0 = torch.randn(shape, dtype=torch.float64) * 2
    a = torch.rand(shape, dtype=torch.float64) * a_max + 0.05
    b = torch.randn(shape, dtype=torch.float64)
    return x0.tolist(), a.tolist(), b.tolist()


# Curvatures small enough that SGD's default lr = 1.0 stays stable for 20 steps (an
# unstable trajectory would amplify rounding past the f64 tolerance).
PROBLEMS = {"vector": problem((6,), 2.0), "matrix": problem((3, 4), 2.0), "gentle": problem((6,), 0.4)}

CONFIGS = {
    "schedule_free_adamw": [
        ("vector", {}),
        ("matrix", {}),
        ("vector", {"lr": 0.05}),
        ("vector", {"lr": 0.05, "warmup_steps": 5}),
        ("vector", {"lr": 0.05, "weight_decay": 0.1}),
        ("vector", {"lr": 0.05, "r": 1.0, "weight_lr_power": 0.0}),
        ("vector", {"lr": 0.05, "r": 0.5, "weight_lr_power": 1.0, "warmup_steps": 3}),
        ("vector", {"lr": 0.1, "betas": [0.5, 0.9]}),
        ("matrix", {"lr": 0.05, "betas": [0.95, 0.99], "eps": 1e-6, "weight_decay": 0.05, "warmup_steps": 4}),
        ("vector", {"lr": 0.0}),
    ],
    "schedule_free_sgd": [
        ("gentle", {}),
        ("vector", {"lr": 0.1}),
        ("matrix", {"lr": 0.1, "momentum": 0.5}),
        ("vector", {"lr": 0.1, "momentum": 0.3}),
        ("vector", {"lr": 0.2, "warmup_steps": 5}),
        ("vector", {"lr": 0.1, "weight_decay": 0.1}),
        ("vector", {"lr": 0.1, "r": 2.0, "weight_lr_power": 1.0, "warmup_steps": 2}),
        ("gentle", {"lr": 0.5, "momentum": 0.95, "weight_decay": 0.05, "r": 0.5, "weight_lr_power": 0.0}),
        ("vector", {"lr": 0.0}),
    ],
}

for name, configs in CONFIGS.items():
    for shape, cfg in configs:
        tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default"
        x0, a, b = PROBLEMS[shape]
        for dname, dtype in DTYPES.items():
            x0d, ad, bd = (torch.tensor(v, dtype=dtype).tolist() for v in (x0, a, b))
            ys, evals = trajectories(make(name, cfg), x0d, ad, bd, STEPS, dname)
            cases.append({
                "id": f"{name}/{shape}/{tag}/{dname}", "kind": "optimizer", "name": name, "config": cfg,
                "dtype": dname, "inputs": {"x0": x0d, "a": ad, "b": bd, "steps": STEPS},
                "expected": {"trajectory": ys, "eval_trajectory": evals},
            })

version = importlib.metadata.version("schedulefree")
print(f"largest change of y by an eval()/train() round trip: f64 {round_trip['f64']:.3g}, f32 {round_trip['f32']:.3g}")
doc = {
    "format": "ember-parity/1",
    "source": f"torch {torch.__version__}, schedulefree {version}, tests/parity/gen_optimizers_schedule_free.py",
    "cases": cases,
}
with open(os.path.join(HERE, "optimizers_schedule_free.json"), "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to tests/parity/optimizers_schedule_free.json")
