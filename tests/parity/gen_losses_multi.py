#!/usr/bin/env python3
"""Writes losses_multi.json: PyTorch reference values for the losses of three tensors,
gaussian_nll (input, target, var), margin_ranking and cosine_embedding (input1, input2,
target) and triplet_margin (anchor, positive, negative).

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_losses_multi.py

Output format: `ember-parity/1` (PARITY.md): a case's `inputs` hold the loss's arguments
under PyTorch's names, and `expected` holds `output` and `grad_<name>` for each argument
the loss is differentiable in (input and var; input1 and input2; anchor, positive and
negative). Every case runs under reduction none/mean/sum, in f32 and f64 (a random
`grad_output` for `none`). Edge cases: variances at 0 and below eps (clamped, with the
gradient of the clamped value), var of the input's shape, without the last dimension,
with one dimension of size 1, of an unbatched input and 0-d; a target broadcast along the
last dimension; ties and hinges exactly at the kink; zero, parallel and tiny embeddings;
a positive equal to the anchor (a tie under swap; a zero distance with eps = 0).
"""
import os

import torch
from parity_common import enc, write

torch.manual_seed(23)
HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"f32": torch.float32, "f64": torch.float64}
REDUCTIONS = ["none", "mean", "sum"]

# Each loss: the torch module and its arguments, (name, differentiable) in call order.
LOSSES = {
    "gaussian_nll": (torch.nn.GaussianNLLLoss, [("input", True), ("target", False), ("var", True)]),
    "margin_ranking": (torch.nn.MarginRankingLoss, [("input1", True), ("input2", True), ("target", False)]),
    "cosine_embedding": (torch.nn.CosineEmbeddingLoss, [("input1", True), ("input2", True), ("target", False)]),
    "triplet_margin": (torch.nn.TripletMarginLoss, [("anchor", True), ("positive", True), ("negative", True)]),
}

cases = []


def case(cid, name, cfg, tensors, dname):
    dtype = DTYPES[dname]
    ctor, args = LOSSES[name]
    ts = [t.to(dtype).clone().requires_grad_(grad) for t, (_, grad) in zip(tensors, args)]
    y = ctor(**cfg)(*ts)
    inputs = {arg: enc(t) for t, (arg, _) in zip(ts, args)}
    if y.dim() > 0:
        g = torch.randn(y.shape, dtype=dtype)
        inputs["grad_output"] = enc(g)
    else:
        g = torch.ones_like(y)
    y.backward(g)
    expected = {"output": enc(y)}
    for t, (arg, grad) in zip(ts, args):
        if grad:
            expected[f"grad_{arg}"] = enc(t.grad if t.grad is not None else torch.zeros_like(t))
    cases.append({
        "id": f"{name}/{cid}/{cfg.get('reduction', 'mean')}/{dname}", "kind": "loss", "name": name,
        "config": cfg, "dtype": dname, "inputs": inputs, "expected": expected,
    })


def each(cid, name, cfg, *tensors):
    for dname in DTYPES:
        for r in REDUCTIONS:
            case(cid, name, {**cfg, "reduction": r}, list(tensors), dname)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, dtype=torch.float64) * scale


def tag_of(cfg):
    return "-".join(f"{k}{v}" for k, v in cfg.items()) or "default"


def signs(*shape):
    return torch.where(torch.rand(*shape) > 0.5, 1.0, -1.0).double()


# gaussian_nll: variances from softplus-like positives, two of them at 0 and below eps.
gx, gy = randn(4, 3), randn(4, 3)
gv = torch.rand(4, 3, dtype=torch.float64) * 2 + 0.05
gv[0, 0], gv[1, 2] = 0.0, 1e-8
gv_pos = gv.clone()
gv_pos[0, 0], gv_pos[1, 2] = 0.2, 0.7
gx3, gy3 = randn(2, 3, 4), randn(2, 3, 4)
gv3 = torch.rand(2, 1, 4, dtype=torch.float64) + 0.1
gx1, gy1 = randn(5), randn(5)
for cfg in [{}, {"full": True}, {"eps": 0.3}, {"eps": 0.0, "full": True}]:
    tag = tag_of(cfg)
    v = gv_pos if cfg.get("eps") == 0.0 else gv
    each(f"{tag}/hetero", "gaussian_nll", cfg, gx, gy, v)
    each(f"{tag}/var-per-row", "gaussian_nll", cfg, gx, gy, v[:, 1])
    each(f"{tag}/var-last-1", "gaussian_nll", cfg, gx, gy, v[:, 2:3])
    each(f"{tag}/target-broadcast", "gaussian_nll", cfg, gx, gy[:, :1], v)
    each(f"{tag}/3d-var-middle-1", "gaussian_nll", cfg, gx3, gy3, gv3)
    each(f"{tag}/1d", "gaussian_nll", cfg, gx1, gy1, torch.rand(5, dtype=torch.float64) + 0.2)
    each(f"{tag}/1d-var-0d", "gaussian_nll", cfg, gx1, gy1, torch.tensor(0.6, dtype=torch.float64))

# margin_ranking: random scores and labels; scores in steps of 0.5 put terms exactly at
# the kink (ties with margin 0, differences equal to the margin).
rx1, rx2, ry = randn(8), randn(8), signs(8)
kx1 = torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5, 0.0, -1.0, 0.5], dtype=torch.float64)
kx2 = torch.tensor([1.0, 1.0, 0.5, 2.0, 1.0, 0.5, -0.5, 1.5], dtype=torch.float64)
ky = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
for cfg in [{}, {"margin": 0.5}, {"margin": 1.0}, {"margin": -0.5}]:
    tag = tag_of(cfg)
    each(f"{tag}/random", "margin_ranking", cfg, rx1, rx2, ry)
    each(f"{tag}/kinks", "margin_ranking", cfg, kx1, kx2, ky)
    each(f"{tag}/2d", "margin_ranking", cfg, randn(3, 4), randn(3, 4), signs(3, 4))

# cosine_embedding: a zero row (cosine 0: the kink for margin 0), a parallel pair, a tiny
# row (the 1e-12 inside the norms matters), both labels.
ca, cb = randn(6, 5), randn(6, 5)
ca[1] = 0.0
cb[3] = ca[3] * 2.5
ca[4] = ca[4] * 1e-7
cy = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
for cfg in [{}, {"margin": 0.3}, {"margin": -0.4}]:
    tag = tag_of(cfg)
    each(f"{tag}/rows", "cosine_embedding", cfg, ca, cb, cy)
    each(f"{tag}/random", "cosine_embedding", cfg, randn(4, 3), randn(4, 3), signs(4))
    each(f"{tag}/unbatched-similar", "cosine_embedding", cfg, ca[0], cb[0], torch.tensor(1.0, dtype=torch.float64))
    each(f"{tag}/unbatched-dissimilar", "cosine_embedding", cfg, ca[2], cb[2], torch.tensor(-1.0, dtype=torch.float64))

# triplet_margin: a positive equal to its anchor (distance eps * sqrt(D), or 0 with
# eps = 0; with swap a tie between d(a, n) and d(p, n)).
ta, tp, tn = randn(5, 4), randn(5, 4), randn(5, 4)
tp[2] = ta[2]
for cfg in [{}, {"p": 1.0}, {"p": 3.0}, {"p": 1.5}, {"swap": True}, {"swap": True, "p": 1.0, "margin": 0.5},
            {"eps": 0.0}, {"eps": 0.0, "p": 3.0}, {"eps": 0.0, "p": 1.0}, {"margin": 2.0, "eps": 0.001}]:
    tag = tag_of(cfg)
    each(f"{tag}/batch", "triplet_margin", cfg, ta, tp, tn)
    each(f"{tag}/unbatched", "triplet_margin", cfg, ta[0], tp[0], tn[0])
    each(f"{tag}/wide", "triplet_margin", cfg, randn(3, 7, scale=0.5), randn(3, 7, scale=0.5), randn(3, 7, scale=0.5))

write(HERE, "losses_multi.json", "gen_losses_multi.py", cases)
