#!/usr/bin/env python3
"""Writes regularizers.json: PyTorch reference values for Ember's deterministic
regularizers (l1, l2, elastic_net penalties with their gradients; max_norm as
torch.renorm).

    python3 tests/parity/gen_regularizers.py

Format `ember-parity/1` (PARITY.md). Definitions: l1 = lambda*sum(|w|);
l2 = lambda/2*sum(w^2); elastic_net = lambda*(l1_ratio*sum(|w|) + (1-l1_ratio)/2*sum(w^2));
max_norm = torch.renorm(w, 2, dim, max_norm).
"""
import os

import torch
from parity_common import write

torch.manual_seed(4)
HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"f32": torch.float32, "f64": torch.float64}
cases = []


def penalty(name, cfg, w):
    lam = cfg["lambda"]
    if name == "l1":
        return lam * w.abs().sum()
    if name == "l2":
        return lam / 2 * (w ** 2).sum()
    r = cfg.get("l1_ratio", 0.5)
    return lam * (r * w.abs().sum() + (1 - r) / 2 * (w ** 2).sum())


def add(cid, name, cfg, w64):
    for dname, dtype in DTYPES.items():
        w = w64.to(dtype).clone().requires_grad_(True)
        if name == "max_norm":
            out = torch.renorm(w.detach(), 2, cfg.get("dim", 0), cfg["max_norm"])
            expected = {"output": out.tolist()}
        else:
            p = penalty(name, cfg, w)
            p.backward()
            expected = {"penalty": p.item(), "grad_input": w.grad.tolist()}
        cases.append({"id": f"{name}/{cid}/{dname}", "kind": "regularizer", "name": name, "config": cfg,
                      "dtype": dname, "inputs": {"input": w.detach().tolist()}, "expected": expected})


w = torch.randn(4, 5, dtype=torch.float64)
w[0, 0] = 0.0
w[2, 3] = 0.0
for name, cfgs in {"l1": [{"lambda": 0.1}, {"lambda": 2.0}], "l2": [{"lambda": 0.1}, {"lambda": 3.0}],
                   "elastic_net": [{"lambda": 0.1}, {"lambda": 0.5, "l1_ratio": 0.2}, {"lambda": 1.0, "l1_ratio": 1.0},
                                   {"lambda": 1.0, "l1_ratio": 0.0}]}.items():
    for cfg in cfgs:
        tag = "-".join(f"{k}{v}" for k, v in cfg.items())
        add(f"{tag}/2d", name, cfg, w)
        add(f"{tag}/1d", name, cfg, torch.randn(7, dtype=torch.float64))

rows = torch.randn(5, 4, dtype=torch.float64) * torch.tensor([[0.1], [1.0], [3.0], [0.5], [2.0]], dtype=torch.float64)
for cfg in [{"max_norm": 1.0}, {"max_norm": 2.0, "dim": 0}, {"max_norm": 1.5, "dim": 1}, {"max_norm": 0.5, "dim": -1}]:
    tag = "-".join(f"{k}{v}" for k, v in cfg.items())
    add(tag, "max_norm", cfg, rows)
add("3d", "max_norm", {"max_norm": 1.0, "dim": 1}, torch.randn(2, 3, 4, dtype=torch.float64))

write(HERE, "regularizers.json", "gen_regularizers.py", cases)
