#!/usr/bin/env python3
"""Writes losses_broadcast.json: PyTorch reference values for the tensor-valued loss
hyperparameters (class `weight`, `pos_weight`) in every shape PyTorch accepts.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_losses_broadcast.py

Output format: `ember-parity/1` (PARITY.md); a tensor hyperparameter of more than one
dimension is a nested array in `config`, a 0-d one a bare number. Every case runs under
reduction none/mean/sum, in f32 and f64, and checks the output and the input gradient.

PyTorch's rules, which the cases cover and which this script also checks (every shape in
REJECTED must make PyTorch raise; Ember's tests/suite/loss_broadcast.rs checks that Ember
rejects the same shapes):

- bce `weight`, bce_with_logits `weight` and `pos_weight`: any shape that broadcasts *to*
  the input's shape (aligned from the last dimension, each size 1 or the input's; no more
  dimensions than the input), because PyTorch applies them with in-place products.
- multilabel_soft_margin `weight`: any shape that broadcasts *with* the input (a plain
  product); a weight of more dimensions than the input makes the loss larger, summed over
  dimension input.dim() - 1 of the product.
- nll and cross_entropy `weight`: one dimension of C entries for (C) and (N, C) inputs and
  for probability targets; for class-index targets on (N, C, d1, ...) inputs, C entries in
  any shape (with label smoothing, a shape whose first size is C; under reduction mean, one
  dimension).
- multi_margin `weight`: one dimension of C entries (C = 1 for a 0-d input).
"""
import os

import torch
import torch.nn.functional as F
from parity_common import DTYPES, loss_case, write

torch.manual_seed(47)
HERE = os.path.dirname(os.path.abspath(__file__))
REDUCTIONS = ["none", "mean", "sum"]
CTORS = {
    "bce": torch.nn.BCELoss, "bce_with_logits": torch.nn.BCEWithLogitsLoss,
    "multilabel_soft_margin": torch.nn.MultiLabelSoftMarginLoss, "nll": torch.nn.NLLLoss,
    "cross_entropy": torch.nn.CrossEntropyLoss, "multi_margin": torch.nn.MultiMarginLoss,
}


def torch_loss(name, cfg, dtype):
    """The torch module for an Ember loss name and config."""
    cfg = dict(cfg)
    for key in ("weight", "pos_weight"):
        if key in cfg:
            cfg[key] = torch.tensor(cfg[key], dtype=dtype)
    return CTORS[name](**cfg)


cases = []


def each(cid, name, cfg, x, target, reductions=REDUCTIONS):
    for dname in DTYPES:
        for r in reductions:
            c = {**cfg, "reduction": r}
            cases.append(loss_case(cid, name, c, x, target, dname, torch_loss(name, c, DTYPES[dname])))


def randn(*shape, scale=1.0):
    return torch.randn(shape, dtype=torch.float64) * scale


def weights(shape):
    """Positive weights of `shape` with two decimals (the same number in f32 and f64 once
    parsed), as nested lists (a bare number for a 0-d shape)."""
    return torch.round(torch.rand(shape, dtype=torch.float64) * 3 + 0.25, decimals=2).tolist()


def dims(shape):
    return "x".join(map(str, shape)) or "0d"


# The binary cross-entropies: weights that broadcast to the input's shape.
TO_INPUT = {
    (4, 3): [(), (1,), (3,), (1, 1), (1, 3), (4, 1), (4, 3)],
    (2, 3, 4): [(4,), (1, 4), (3, 1), (3, 4), (1, 1, 1), (2, 1, 4), (2, 1, 1), (2, 3, 4)],
    (3,): [(), (1,), (3,)],
    (): [()],
    (1, 1): [(), (1,), (1, 1)],
}
for shape, wshapes in TO_INPUT.items():
    probs = torch.sigmoid(randn(*shape, scale=2))
    soft = torch.rand(shape, dtype=torch.float64)
    logits = randn(*shape, scale=3)
    hard = (torch.rand(shape) > 0.5).to(torch.float64)
    tag = f"in{dims(shape)}"
    for ws in wshapes:
        each(f"bcast/{tag}/weight{dims(ws)}", "bce", {"weight": weights(ws)}, probs, soft)
        each(f"bcast/{tag}/weight{dims(ws)}", "bce_with_logits", {"weight": weights(ws)}, logits, hard)
        each(f"bcast/{tag}/pos_weight{dims(ws)}", "bce_with_logits", {"pos_weight": weights(ws)}, logits, soft)
    # Both at once, in different accepted shapes.
    first, last = wshapes[0], wshapes[-1]
    each(f"bcast/{tag}/weight{dims(first)}-pos_weight{dims(last)}", "bce_with_logits",
         {"weight": weights(first), "pos_weight": weights(last)}, logits, hard)

# multilabel_soft_margin: weights that broadcast with the input, the larger ones too.
WITH_INPUT = {
    (4, 3): [(), (1,), (3,), (1, 1), (1, 3), (4, 1), (4, 3), (1, 4, 3), (2, 4, 3), (2, 1, 3), (3, 1, 1)],
    (3,): [(), (1,), (3,), (1, 3), (2, 3), (3, 1), (2, 1), (1, 1, 1), (2, 2, 3)],
    (1, 1): [(4,), (3, 4), (2, 1), (2, 3, 4)],
}
for shape, wshapes in WITH_INPUT.items():
    logits = randn(*shape, scale=3)
    hard = (torch.rand(shape) > 0.5).to(torch.float64)
    for ws in wshapes:
        each(f"bcast/in{dims(shape)}/weight{dims(ws)}", "multilabel_soft_margin", {"weight": weights(ws)}, logits, hard)

# nll and cross_entropy: C entries, in any shape for class indices on inputs of 3+ dims.
logits2, tgt2 = randn(4, 3, scale=2), torch.tensor([0, 2, 1, 2])
logits1, tgt1 = randn(3, scale=2), torch.tensor(1)
logits3, tgt3 = randn(2, 3, 4, scale=2), torch.tensor([[0, 2, 1, 2], [1, 1, 0, -100]])
logits4, tgt4 = randn(2, 3, 4, 2, scale=2), torch.randint(0, 3, (2, 4, 2))
logits_c1, tgt_c1 = randn(2, 1, 4, scale=2), torch.zeros(2, 4, dtype=torch.int64)
INDEX = [
    ("in4x3", logits2, tgt2, [(3,)]),
    ("in3", logits1, tgt1, [(3,)]),
    ("in2x3x4", logits3, tgt3, [(3,), (1, 3), (3, 1), (3, 1, 1), (1, 1, 3), (1, 3, 1)]),
    ("in2x3x4x2", logits4, tgt4, [(3,), (1, 3), (3, 1, 1, 1)]),
    ("in2x1x4", logits_c1, tgt_c1, [(), (1,), (1, 1)]),
]
for tag, x, t, wshapes in INDEX:
    for ws in wshapes:
        w = weights(ws)
        each(f"bcast/{tag}/weight{dims(ws)}", "nll", {"weight": w}, F.log_softmax(x, dim=1 if x.dim() > 1 else 0), t)
        each(f"bcast/{tag}/weight{dims(ws)}", "cross_entropy", {"weight": w}, x, t)
        # Label smoothing views the weight along its first dimension ([C, 1, ...] only), and
        # its mean gathers from it as a 1-D tensor.
        if len(ws) >= 1 and ws[0] == x.shape[1 if x.dim() > 1 else 0]:
            each(f"bcast/{tag}/weight{dims(ws)}-ls0.2", "cross_entropy", {"weight": w, "label_smoothing": 0.2}, x, t,
                 REDUCTIONS if len(ws) == 1 else ["none", "sum"])
each("bcast/in2x3x4/weight1x3-ignore1", "nll", {"weight": weights((1, 3)), "ignore_index": 1},
     F.log_softmax(logits3, dim=1), torch.where(tgt3 == -100, 1, tgt3))
# Probability targets: a 1-D weight of C entries only.
for tag, x in [("in4x3", logits2), ("in2x3x4", logits3), ("in2x1x4", logits_c1)]:
    each(f"bcast/{tag}/weight{x.shape[1]}-probs", "cross_entropy", {"weight": weights((x.shape[1],))}, x,
         F.softmax(randn(*x.shape), dim=1))

# multi_margin: a 1-D weight of C entries.
each("bcast/in4x3/weight3", "multi_margin", {"weight": weights((3,))}, randn(4, 3), torch.tensor([2, 0, 1, 1]))
each("bcast/in3/weight3", "multi_margin", {"weight": weights((3,))}, randn(3), torch.tensor(2))
each("bcast/in0d/weight1", "multi_margin", {"weight": weights((1,))}, randn(), torch.tensor(0))
each("bcast/in1x1/weight1", "multi_margin", {"p": 2, "weight": weights((1,))}, randn(1, 1), torch.tensor([0]))

# Shapes PyTorch rejects (Ember's tests/suite/loss_broadcast.rs rejects the same ones):
# (loss, key, input shape, weight shape, extra config, probability targets).
REJECTED = [
    ("bce", "weight", (4, 3), (4,), {}, False),
    ("bce", "weight", (4, 3), (3, 1), {}, False),
    ("bce", "weight", (4, 3), (1, 4, 3), {}, False),
    ("bce", "weight", (3,), (1, 3), {}, False),
    ("bce", "weight", (), (1,), {}, False),
    ("bce_with_logits", "pos_weight", (4, 3), (4,), {}, False),
    ("bce_with_logits", "pos_weight", (4, 3), (2, 4, 3), {}, False),
    ("bce_with_logits", "pos_weight", (2, 3, 4), (3,), {}, False),
    ("bce_with_logits", "pos_weight", (1, 1), (3,), {}, False),
    ("bce_with_logits", "weight", (4, 3), (2, 3), {}, False),
    ("bce_with_logits", "weight", (3,), (1, 1), {}, False),
    ("multilabel_soft_margin", "weight", (4, 3), (2,), {}, False),
    ("multilabel_soft_margin", "weight", (4, 3), (3, 3), {}, False),
    ("multilabel_soft_margin", "weight", (4, 3), (2, 3, 1), {}, False),
    ("nll", "weight", (4, 3), (1, 3), {}, False),
    ("nll", "weight", (4, 3), (2,), {}, False),
    ("nll", "weight", (2, 3, 4), (4,), {}, False),
    ("nll", "weight", (2, 3, 4), (2, 3), {}, False),
    ("cross_entropy", "weight", (4, 3), (3, 1), {}, False),
    ("cross_entropy", "weight", (2, 1, 4), (), {"label_smoothing": 0.2}, False),
    ("cross_entropy", "weight", (2, 3, 4), (1, 3), {"label_smoothing": 0.2, "reduction": "sum"}, False),
    ("cross_entropy", "weight", (2, 3, 4), (3, 1), {"label_smoothing": 0.2, "reduction": "mean"}, False),
    ("cross_entropy", "weight", (2, 3, 4), (3, 1), {}, True),
    ("cross_entropy", "weight", (3,), (), {}, False),
    ("multi_margin", "weight", (4, 3), (1, 3), {}, False),
    ("multi_margin", "weight", (4, 3), (), {}, False),
    ("multi_margin", "weight", (), (), {}, False),
    ("multi_margin", "weight", (4, 3), (4,), {}, False),
]
for name, key, shape, ws, extra, probs in REJECTED:
    x = torch.rand(shape, dtype=torch.float64)
    if name in ("bce", "bce_with_logits", "multilabel_soft_margin"):
        t = torch.rand(shape, dtype=torch.float64).round()
    elif probs:
        t = F.softmax(torch.rand(shape, dtype=torch.float64), dim=1)
    else:
        t = torch.zeros(((shape[0],) + shape[2:]) if len(shape) > 1 else (), dtype=torch.int64)
    try:
        torch_loss(name, {key: torch.rand(ws).tolist(), **extra}, torch.float64)(x, t)
    except (RuntimeError, ValueError, IndexError):
        continue
    raise SystemExit(f"torch accepted {name}.{key} of shape {list(ws)} for input {list(shape)}; fix REJECTED")
print(f"torch rejects all {len(REJECTED)} shapes in REJECTED")

write(HERE, "losses_broadcast.json", "gen_losses_broadcast.py", cases)
