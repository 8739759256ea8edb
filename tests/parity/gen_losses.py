#!/usr/bin/env python3
"""Writes losses.json: PyTorch reference values for every Ember loss.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_losses.py

Output format: `ember-parity/1` (PARITY.md). Cases cover every loss and option, each
under reduction none/mean/sum (and batchmean for kl_div), in f32 and f64, with edge
cases: exact zeros at the l1/smooth_l1/huber kinks, all targets ignored, ignore_index
inside the class range, +-100 logits, probabilities of exactly 0 and 1, 3-D inputs,
unbatched inputs, soft and one-hot labels.
"""
import os

import torch
import torch.nn.functional as F
from parity_common import DTYPES, enc, loss_case, write

torch.manual_seed(1)
HERE = os.path.dirname(os.path.abspath(__file__))
REDUCTIONS = ["none", "mean", "sum"]



def torch_loss(name, cfg, dtype):
    """The torch module for an Ember loss name and config."""
    cfg = dict(cfg)
    for key in ("weight", "pos_weight"):
        if key in cfg:
            cfg[key] = torch.tensor(cfg[key], dtype=dtype)
    ctor = {
        "l1": torch.nn.L1Loss, "mse": torch.nn.MSELoss, "smooth_l1": torch.nn.SmoothL1Loss,
        "huber": torch.nn.HuberLoss, "nll": torch.nn.NLLLoss, "cross_entropy": torch.nn.CrossEntropyLoss,
        "bce": torch.nn.BCELoss, "bce_with_logits": torch.nn.BCEWithLogitsLoss,
        "soft_margin": torch.nn.SoftMarginLoss, "multilabel_soft_margin": torch.nn.MultiLabelSoftMarginLoss,
        "kl_div": torch.nn.KLDivLoss,
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


# Regression losses: random pairs, and pairs with exact zeros and kink points.
x, t = randn(3, 4, scale=2), randn(3, 4, scale=2)
kx = torch.tensor([[0.0, 1.0, -1.0, 2.5], [0.5, -0.5, 3.0, -2.5]], dtype=torch.float64)
kt = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.0]], dtype=torch.float64)
for name, cfgs in {"l1": [{}], "mse": [{}], "smooth_l1": [{}, {"beta": 0.5}, {"beta": 0.0}, {"beta": 2.5}],
                   "huber": [{}, {"delta": 0.5}, {"delta": 2.5}]}.items():
    for cfg in cfgs:
        tag = "-".join(f"{k}{v}" for k, v in cfg.items()) or "default"
        each(f"{tag}/random", name, cfg, x, t)
        each(f"{tag}/kinks", name, cfg, kx, kt)
        each(f"{tag}/3d", name, cfg, randn(2, 3, 2), randn(2, 3, 2))

# Class-index losses.
logits = randn(4, 5, scale=2)
logits[0, 0] = 100.0
logits[1, 3] = -100.0
tgt = torch.tensor([0, 3, 4, 1])
ign = torch.tensor([0, -100, 4, -100])
ign2 = torch.tensor([2, 3, 2, 1])
none_kept = torch.tensor([-100, -100, -100, -100])
w5 = [0.5, 2.0, 1.0, 0.25, 3.0]
logits3 = randn(2, 5, 3, scale=2)
tgt3 = torch.tensor([[0, 4, 2], [1, -100, 3]])
for name, cfgs in {
    "nll": [{}, {"weight": w5}, {"ignore_index": 2}, {"weight": w5, "ignore_index": 2}],
    "cross_entropy": [{}, {"weight": w5}, {"ignore_index": 2}, {"label_smoothing": 0.1},
                      {"label_smoothing": 0.3, "weight": w5}, {"label_smoothing": 0.2, "ignore_index": 2},
                      {"label_smoothing": 0.25, "weight": w5, "ignore_index": 2}, {"label_smoothing": 1.0}],
}.items():
    for cfg in cfgs:
        tag = "-".join(f"{k}{'w' if k == 'weight' else v}" for k, v in cfg.items()) or "default"
        scores = logits if name == "cross_entropy" else F.log_softmax(logits, dim=1)
        scores3 = logits3 if name == "cross_entropy" else F.log_softmax(logits3, dim=1)
        each(f"{tag}/index", name, cfg, scores, tgt)
        ii = cfg.get("ignore_index", -100)
        if ii == -100:
            each(f"{tag}/ignored", name, cfg, scores, ign)
            each(f"{tag}/all-ignored", name, cfg, scores, none_kept)
            each(f"{tag}/3d", name, cfg, scores3, tgt3)
        else:
            each(f"{tag}/ignore-in-range", name, cfg, scores, ign2)
            each(f"{tag}/all-ignored", name, cfg, scores, torch.full((4,), ii))
            each(f"{tag}/3d", name, cfg, scores3, torch.where(tgt3 == -100, ii, tgt3))
        each(f"{tag}/unbatched", name, cfg, scores[2], torch.tensor(4))

# Cross-entropy with probability and one-hot targets.
probs = F.softmax(randn(4, 5), dim=1)
onehot = F.one_hot(tgt, 5).to(torch.float64)
probs3 = F.softmax(randn(2, 5, 3), dim=1)
for cfg in [{}, {"weight": w5}, {"label_smoothing": 0.2}, {"weight": w5, "label_smoothing": 0.1}]:
    tag = "-".join(f"{k}{'w' if k == 'weight' else v}" for k, v in cfg.items()) or "default"
    each(f"{tag}/probs", "cross_entropy", cfg, logits, probs)
    each(f"{tag}/onehot", "cross_entropy", cfg, logits, onehot)
    each(f"{tag}/probs3d", "cross_entropy", cfg, logits3, probs3)

# Binary losses.
p = torch.sigmoid(randn(3, 4, scale=2))
p[0, 0], p[0, 1], p[1, 2] = 0.0, 1.0, 1e-50
soft = torch.rand(3, 4, dtype=torch.float64)
soft[0, 0], soft[0, 1] = 1.0, 0.0
hard = (torch.rand(3, 4) > 0.5).to(torch.float64)
w4 = [1.0, 0.5, 2.0, 0.0]
for cfg in [{}, {"weight": w4}]:
    tag = "weight" if cfg else "default"
    each(f"{tag}/soft", "bce", cfg, p, soft)
    each(f"{tag}/hard", "bce", cfg, p, hard)
z = randn(3, 4, scale=3)
z[0, 0], z[0, 1], z[1, 0], z[1, 1] = 100.0, -100.0, 100.0, -100.0
hard_z = hard.clone()
hard_z[0, 0], hard_z[0, 1], hard_z[1, 0], hard_z[1, 1] = 0.0, 1.0, 1.0, 0.0
for cfg in [{}, {"weight": w4}, {"pos_weight": [2.0, 0.5, 1.0, 3.0]}, {"weight": w4, "pos_weight": [2.0, 0.5, 1.0, 3.0]}]:
    tag = "-".join(cfg) or "default"
    each(f"{tag}/hard", "bce_with_logits", cfg, z, hard_z)
    each(f"{tag}/soft", "bce_with_logits", cfg, z, soft)
each("default/3d", "bce_with_logits", {"pos_weight": [2.0, 0.5]}, randn(2, 3, 2, scale=3), (torch.rand(2, 3, 2) > 0.5).double())

signs = torch.where(torch.rand(3, 4) > 0.5, 1.0, -1.0).double()
each("default", "soft_margin", {}, randn(3, 4, scale=5), signs)
each("1d", "soft_margin", {}, randn(6, scale=5), torch.where(torch.rand(6) > 0.5, 1.0, -1.0).double())

for cfg in [{}, {"weight": w4}]:
    tag = "weight" if cfg else "default"
    each(f"{tag}/2d", "multilabel_soft_margin", cfg, z, hard_z)
    each(f"{tag}/soft", "multilabel_soft_margin", cfg, z, soft)
    each(f"{tag}/1d", "multilabel_soft_margin", cfg, z[2], hard_z[2])

logq = F.log_softmax(randn(3, 5), dim=1)
ptgt = F.softmax(randn(3, 5, scale=3), dim=1)
ptgt[0, 1] = 0.0
for cfg in [{}, {"log_target": True}]:
    tag = "log_target" if cfg else "default"
    target = torch.log(F.softmax(randn(3, 5), dim=1)) if cfg else ptgt
    each(f"{tag}", "kl_div", cfg, logq, target, REDUCTIONS + ["batchmean"])
    each(f"{tag}/3d", "kl_div", cfg, F.log_softmax(randn(2, 3, 4), dim=1),
         torch.log(F.softmax(randn(2, 3, 4), dim=1)) if cfg else F.softmax(randn(2, 3, 4), dim=1),
         REDUCTIONS + ["batchmean"])

write(HERE, "losses.json", "gen_losses.py", cases)
