#!/usr/bin/env python3
"""Writes average.json: PyTorch reference values for Ember's weight averaging
(`train.average`, `ember_nn::AveragedWeights`), the `average` kind of PARITY.md.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_average.py

Each case trains a small model (Linear(3, 4), BatchNorm1d(4), Linear(4, 2)) for a few
SGD steps on fixed random data in f32 or f64, and after every step feeds the model to
`torch.optim.swa_utils.AveragedModel`: EMA (`multi_avg_fn=get_ema_multi_avg_fn(decay)`)
or SWA (the default running mean), with and without `use_buffers`. The inputs are the
model's parameters and buffers after each step; the expected values the averaged
module's state_dict after each `update_parameters` call.
"""
import os
import zlib

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from parity_common import DTYPES, enc, write

HERE = os.path.dirname(os.path.abspath(__file__))


def tensors(named):
    out = {}
    for name, t in named:
        t = t.detach()
        out[name] = enc(t) if t.is_floating_point() else {"dtype": "i64", "data": enc(t)}
    return out


def case(cid, name, cfg, dname, steps):
    dtype = DTYPES[dname]
    torch.manual_seed(zlib.crc32(cid.encode()))
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).to(dtype)
    x, y = torch.randn(8, 3, dtype=dtype), torch.randn(8, 2, dtype=dtype)
    if name == "ema":
        avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.get("decay", 0.999)),
                            use_buffers=cfg.get("use_buffers", False))
    else:
        avg = AveragedModel(model, use_buffers=cfg.get("use_buffers", False))
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    params, buffers, expected = [], [], []
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        avg.update_parameters(model)
        params.append(tensors(model.named_parameters()))
        buffers.append(tensors(model.named_buffers()))
        expected.append(tensors(avg.module.state_dict().items()))
    return {"id": f"{cid}/{dname}", "kind": "average", "name": name, "config": cfg, "dtype": dname,
            "inputs": {"params": params, "buffers": buffers}, "expected": {"average": expected}}


def main():
    configs = [
        ("ema", {}),
        ("ema", {"decay": 0.9}),
        ("ema", {"decay": 0.5}),
        ("ema", {"decay": 0.3, "use_buffers": True}),
        ("ema", {"decay": 0.0}),
        ("ema", {"decay": 1.0}),
        ("swa", {}),
        ("swa", {"use_buffers": True}),
    ]
    cases = []
    for name, cfg in configs:
        cid = name + "/" + (",".join(f"{k}={v}" for k, v in cfg.items()) or "default")
        for dname in DTYPES:
            cases.append(case(cid, name, cfg, dname, steps=6))
    write(HERE, "average.json", "gen_average.py", cases)


if __name__ == "__main__":
    main()
