#!/usr/bin/env python3
"""Writes signum.json: reference trajectories for the `signum` optimizer, from the
reference implementation itself, pytorch-optimizer's SignSGD (its default path, which
on the CPU is the batched `foreach` one).

    pip install torch pytorch-optimizer
    python3 plugins/signum/tests/gen_signum.py

Format `ember-parity/1` (PARITY.md, kind `optimizer`): f(x) = sum(a x^2) + sum(b x), the
gradient g = 2 a x + b set before each step, in the working dtype (f32 or f64, also
torch's default dtype while the case runs, so the optimizer's state takes it too), and x
recorded after every step. Cases: the defaults, plain signSGD (momentum 0), momenta on
both sides of 0.5 (torch's lerp computes differently there), decoupled and coupled weight
decay, maximize, and coordinates that start at their optimum (gradient 0, sign 0: no move).
"""
import importlib.metadata
import json
import os

import torch
from pytorch_optimizer import SignSGD

torch.manual_seed(9)
HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 20


def trajectory(cfg, x0, a, b, dtype):
    torch.set_default_dtype(dtype)
    try:
        x = torch.tensor(x0, dtype=dtype, requires_grad=True)
        a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
        opt = SignSGD([x], **cfg)
        out = []
        for _ in range(STEPS):
            with torch.no_grad():
                x.grad = 2 * a * x + b
            opt.step()
            out.append(x.detach().clone().tolist())
        return out
    finally:
        torch.set_default_dtype(torch.float32)


X0 = (torch.randn(6, dtype=torch.float64) * 2).tolist()
A = (torch.rand(6, dtype=torch.float64) * 2 + 0.05).tolist()
B = torch.randn(6, dtype=torch.float64).tolist()
# Two coordinates at their optimum (x = 0, b = 0): a zero gradient every step.
AT_OPTIMUM = ([0.0, 1.5, 0.0, -0.7], [0.5, 1.0, 2.0, 0.3], [0.0, 0.4, 0.0, -0.2])

CONFIGS = [
    {},
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.0},
    {"lr": 0.05, "momentum": 0.5},
    {"lr": 0.1, "momentum": 0.3},
    {"lr": 0.05, "weight_decay": 0.5},
    {"lr": 0.05, "weight_decay": 0.5, "weight_decouple": False},
    {"lr": 0.02, "momentum": 0.0, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 0.05, "maximize": True},
    {"lr": 0.05, "maximize": True, "weight_decay": 0.2, "weight_decouple": False},
]

cases = []
for problem, x0, a, b in [("", X0, A, B), ("at_optimum/", *AT_OPTIMUM)]:
    for cfg in CONFIGS if problem == "" else CONFIGS[1:3]:
        tag = problem + ("-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default")
        for dname, dtype in {"f32": torch.float32, "f64": torch.float64}.items():
            x0d, ad, bd = (torch.tensor(v, dtype=dtype).tolist() for v in (x0, a, b))
            cases.append({"id": f"signum/{tag}/{dname}", "kind": "optimizer", "name": "signum", "config": cfg,
                          "dtype": dname, "inputs": {"x0": x0d, "a": ad, "b": bd, "steps": STEPS},
                          "expected": {"trajectory": trajectory(cfg, x0d, ad, bd, dtype)}})

version = importlib.metadata.version("pytorch-optimizer")
doc = {"format": "ember-parity/1",
       "source": f"torch {torch.__version__}, pytorch-optimizer {version} SignSGD, plugins/signum/tests/gen_signum.py",
       "cases": cases}
with open(os.path.join(HERE, "signum.json"), "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to plugins/signum/tests/signum.json")
