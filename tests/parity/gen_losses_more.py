#!/usr/bin/env python3
"""Writes losses_more.json: PyTorch reference values for poisson_nll, hinge_embedding,
multi_margin and multilabel_margin (the losses with one input and one target added after
losses.json).

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_losses_more.py

Output format: `ember-parity/1` (PARITY.md). Every case runs under reduction none/mean/sum,
in f32 and f64, and checks the output and the input gradient (a random `grad_output` for
`none`). Edge cases: inputs exactly at each hinge's kink (gradient 0 there, as PyTorch),
zero counts and rates, the Stirling term at targets 0, 1 and above, target lists with
entries after the first -1, duplicates, no targets and all targets, unbatched inputs.
"""
import os

import torch
from parity_common import DTYPES, enc, loss_case, write

torch.manual_seed(21)
HERE = os.path.dirname(os.path.abspath(__file__))
REDUCTIONS = ["none", "mean", "sum"]


def torch_loss(name, cfg, dtype):
    """The torch module for an Ember loss name and config."""
    cfg = dict(cfg)
    if "weight" in cfg:
        cfg["weight"] = torch.tensor(cfg["weight"], dtype=dtype)
    ctor = {
        "poisson_nll": torch.nn.PoissonNLLLoss,
        "hinge_embedding": torch.nn.HingeEmbeddingLoss,
        "multi_margin": torch.nn.MultiMarginLoss,
        "multilabel_margin": torch.nn.MultiLabelMarginLoss,
    }[name]
    return ctor(**cfg)


cases = []


def case(cid, name, cfg, x, target, dname):
    cases.append(loss_case(cid, name, cfg, x, target, dname, torch_loss(name, cfg, DTYPES[dname])))


def each(cid, name, cfg, x, target, reductions=REDUCTIONS):
    for dname in DTYPES:
        for r in reductions:
            case(cid, name, {**cfg, "reduction": r}, x, target, dname)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, dtype=torch.float64) * scale


def tag_of(cfg):
    return "-".join(f"{k}{'w' if k == 'weight' else v}" for k, v in cfg.items()) or "default"


# poisson_nll: log-rates with Poisson counts (0, 1 and 2 forced: the Stirling term's mask
# is target > 1), and rates >= 0 with exact zeros (log(0 + eps)).
logr = randn(3, 4)
counts = torch.poisson(torch.exp(logr))
counts[0, 0], counts[0, 1], counts[0, 2], counts[0, 3] = 0.0, 1.0, 2.0, 7.5
rates = torch.exp(randn(3, 4))
rates[0, 0], rates[1, 1] = 0.0, 0.0
counts_r = counts.clone()
counts_r[1, 1] = 3.0
logr3 = randn(2, 3, 2)
counts3 = torch.poisson(torch.exp(logr3) * 2)
for cfg in [{}, {"full": True}, {"log_input": False}, {"log_input": False, "full": True},
            {"log_input": False, "eps": 0.001}, {"log_input": True, "full": True, "eps": 0.5}]:
    tag = tag_of(cfg)
    if cfg.get("log_input", True):
        each(f"{tag}/random", "poisson_nll", cfg, logr, counts)
        each(f"{tag}/3d", "poisson_nll", cfg, logr3, counts3)
        each(f"{tag}/1d", "poisson_nll", cfg, randn(5), torch.tensor([0.0, 1.0, 3.0, 12.0, 2.0], dtype=torch.float64))
    else:
        each(f"{tag}/random", "poisson_nll", cfg, rates, counts_r)
        each(f"{tag}/3d", "poisson_nll", cfg, torch.exp(logr3), counts3)

# hinge_embedding: labels +-1; inputs exactly at the margin (the kink) for both labels.
hx = randn(3, 4, scale=2)
hy = torch.where(torch.rand(3, 4) > 0.5, 1.0, -1.0).double()
for cfg in [{}, {"margin": 0.5}, {"margin": 2.5}, {"margin": 0.0}]:
    tag = tag_of(cfg)
    m = cfg.get("margin", 1.0)
    kx = torch.tensor([[m, m, 0.0, m + 1.0], [-1.0, m - 0.25, m, 3.0]], dtype=torch.float64)
    ky = torch.tensor([[-1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, -1.0]], dtype=torch.float64)
    each(f"{tag}/random", "hinge_embedding", cfg, hx, hy)
    each(f"{tag}/kinks", "hinge_embedding", cfg, kx, ky)
    each(f"{tag}/1d", "hinge_embedding", cfg, randn(6, scale=2), torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0, -1.0]))
    each(f"{tag}/3d", "hinge_embedding", cfg, randn(2, 3, 2, scale=2),
         torch.where(torch.rand(2, 3, 2) > 0.5, 1.0, -1.0).double())

# multi_margin: class-index targets; scores in steps of 0.5 put terms exactly at the kink.
mx = randn(4, 5, scale=1.5)
my = torch.tensor([0, 3, 4, 1])
kx = torch.randint(-2, 3, (4, 5)).double() * 0.5
ky = torch.tensor([1, 0, 2, 4])
w5 = [0.5, 2.0, 1.0, 0.25, 3.0]
for cfg in [{}, {"p": 2}, {"margin": 0.5}, {"p": 2, "margin": 2.0}, {"weight": w5},
            {"p": 2, "margin": 0.7, "weight": w5}]:
    tag = tag_of(cfg)
    each(f"{tag}/random", "multi_margin", cfg, mx, my)
    each(f"{tag}/kinks", "multi_margin", cfg, kx, ky)
    each(f"{tag}/wide", "multi_margin", cfg, randn(3, 5, scale=0.3), torch.tensor([2, 2, 0]))
    each(f"{tag}/unbatched", "multi_margin", cfg, mx[2], torch.tensor(4))
    each(f"{tag}/unbatched-1", "multi_margin", cfg, mx[1], torch.tensor([3]))
    each(f"{tag}/single-0d-target", "multi_margin", cfg, mx[:1], torch.tensor(0))

# multilabel_margin: rows of target classes ended by -1 (entries after it are ignored),
# a row of every class (no non-targets), a row of none, a duplicate target.
lx = randn(4, 5, scale=1.5)
ly = torch.tensor([[3, 0, -1, 1, 1], [1, 2, 3, 4, 0], [-1, 2, 0, 0, 0], [2, 2, -1, -1, 4]])
lkx = torch.randint(-2, 3, (3, 5)).double() * 0.5
lky = torch.tensor([[0, 2, -1, -1, -1], [4, -1, -1, -1, -1], [1, 3, 0, -1, -1]])
rows = []
for n in range(6):
    perm = torch.randperm(7)
    k = int(torch.randint(0, 8, ()).item())
    rows.append(torch.cat([perm[:k], torch.full((7 - k,), -1)]))
each("default/rows", "multilabel_margin", {}, lx, ly)
each("default/kinks", "multilabel_margin", {}, lkx, lky)
each("default/random", "multilabel_margin", {}, randn(6, 7, scale=0.4), torch.stack(rows))
each("default/unbatched", "multilabel_margin", {}, lx[0], torch.tensor([4, 1, -1, 0, 0]))
each("default/unbatched-none", "multilabel_margin", {}, lx[1], torch.tensor([-1, 1, 2, 3, 4]))

write(HERE, "losses_more.json", "gen_losses_more.py", cases)
