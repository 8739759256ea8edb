#!/usr/bin/env python3
"""Writes lion.json: reference trajectories for the `lion` optimizer, from the paper's
pseudo-code (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Program 1)
written out here in torch, in the working dtype.

    python3 plugins/lion/tests/gen_lion.py

Format `ember-parity/1`: f(x) = sum(a x^2) + sum(b x), g = 2 a x + b before each step.
"""
import json
import os

import torch

torch.manual_seed(9)
HERE = os.path.dirname(os.path.abspath(__file__))


def lion(x0, a, b, steps, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, dtype=torch.float64):
    x = torch.tensor(x0, dtype=dtype)
    a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
    m = torch.zeros_like(x)
    beta1, beta2 = betas
    out = []
    for _ in range(steps):
        g = 2 * a * x + b
        c = m * beta1 + g * (1 - beta1)            # interpolation
        x = x * (1 - lr * weight_decay)            # decoupled weight decay
        x = x - torch.sign(c) * lr                 # the sign update
        m = m * beta2 + g * (1 - beta2)            # momentum
        out.append(x.tolist())
    return out


X0 = (torch.randn(5, dtype=torch.float64) * 2).tolist()
A = (torch.rand(5, dtype=torch.float64) + 0.1).tolist()
B = torch.randn(5, dtype=torch.float64).tolist()
cases = []
for cfg in [{}, {"lr": 0.05}, {"lr": 0.05, "betas": [0.8, 0.9]}, {"lr": 0.05, "weight_decay": 0.5}]:
    for dname, dtype in {"f32": torch.float32, "f64": torch.float64}.items():
        x0, a, b = (torch.tensor(v, dtype=dtype).tolist() for v in (X0, A, B))
        kwargs = {k: tuple(v) if k == "betas" else v for k, v in cfg.items()}
        tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default"
        cases.append({"id": f"lion/{tag}/{dname}", "kind": "optimizer", "name": "lion", "config": cfg, "dtype": dname,
                      "inputs": {"x0": x0, "a": a, "b": b, "steps": 15},
                      "expected": {"trajectory": lion(x0, a, b, 15, dtype=dtype, **kwargs)}})
doc = {"format": "ember-parity/1", "source": f"torch {torch.__version__}, plugins/lion/tests/gen_lion.py (paper pseudo-code)",
       "cases": cases}
with open(os.path.join(HERE, "lion.json"), "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to plugins/lion/tests/lion.json")
