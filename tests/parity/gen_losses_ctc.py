#!/usr/bin/env python3
"""Writes losses_ctc.json: PyTorch reference values for ctc (nn.CTCLoss), a loss of four
tensors: log_probs (T, N, C) or (T, C), targets (padded (N, S) or concatenated 1-D),
input_lengths and target_lengths.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_losses_ctc.py

Output format: `ember-parity/1` (PARITY.md): a case's `inputs` hold the four arguments
under PyTorch's names (the integer ones as `{"dtype": "i64", ...}`), and `expected` holds
`output` and `grad_log_probs` (what torch.autograd gives: PyTorch's CTC gradient treats
log_probs as the output of a log_softmax, exp(log_probs) - posterior). Every case runs
under reduction none/mean/sum, in f32 and f64 (torch's CPU kernel computes in the input's
dtype), with a random `grad_output` for `none`. Edge cases: padded and concatenated
targets, repeated labels (which need a blank between them; one alignment exactly fits),
targets no alignment fits (too long, or too many repeats, for the input length: an
infinite loss and NaN gradients, or 0 and zero gradients with zero_infinity), empty
targets, input length 0, a blank other than 0, unnormalised log_probs, peaked
distributions over long inputs, and an unbatched (T, C) input with 0-d lengths.
"""
import os

import torch
from parity_common import enc, write

torch.manual_seed(29)
HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"f32": torch.float32, "f64": torch.float64}
REDUCTIONS = ["none", "mean", "sum"]

cases = []


def ints(t):
    return {"dtype": "i64", "data": enc(t)}


def case(cid, cfg, lp, targets, il, tl, dname, f32_atol=None):
    dtype = DTYPES[dname]
    x = lp.to(dtype).clone().requires_grad_(True)
    y = torch.nn.CTCLoss(**cfg)(x, targets, il, tl)
    inputs = {"log_probs": enc(x), "targets": ints(targets), "input_lengths": ints(il), "target_lengths": ints(tl)}
    if y.dim() > 0:
        g = torch.randn(y.shape, dtype=dtype)
        inputs["grad_output"] = enc(g)
    else:
        g = torch.ones_like(y)
    y.backward(g)
    expected = {"output": enc(y), "grad_log_probs": enc(x.grad)}
    c = {
        "id": f"ctc/{cid}/{cfg['reduction']}/{dname}", "kind": "loss", "name": "ctc",
        "config": cfg, "dtype": dname, "inputs": inputs, "expected": expected,
    }
    if f32_atol is not None and dname == "f32":
        c["atol"] = f32_atol
    cases.append(c)


def each(cid, cfg, lp, targets, il, tl, f32_atol=None):
    for dname in DTYPES:
        for r in REDUCTIONS:
            case(cid, {**cfg, "reduction": r}, lp, targets, il, tl, dname, f32_atol)


def tag_of(cfg):
    return "-".join(f"{k}{v}" for k, v in cfg.items()) or "default"


def log_softmax(*shape, scale=1.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale).log_softmax(-1)


def labels(n, classes, blank=0):
    """n random labels in 0..classes, never blank."""
    pool = torch.tensor([c for c in range(classes) if c != blank])
    return pool[torch.randint(len(pool), (n,))]


def padded(seqs, width, fill):
    return torch.stack([torch.cat([s, torch.full((width - len(s),), fill, dtype=torch.long)]) for s in seqs])


def lengths(*v):
    return torch.tensor(v, dtype=torch.long)


# Padded and concatenated targets of one batch (the padding value is never read).
T, N, C = 6, 3, 5
lp = log_softmax(T, N, C)
seqs = [labels(4, C), labels(2, C), labels(3, C)]
seqs[0] = torch.tensor([1, 2, 3, 4])
il, tl = lengths(6, 5, 6), lengths(4, 2, 3)
each("padded", {}, lp, padded(seqs, 5, 3), il, tl)
each("concatenated", {}, lp, torch.cat(seqs), il, tl)
each("padded/zero_infinity", {"zero_infinity": True}, lp, padded(seqs, 4, 0), il, tl)

# Repeated labels: [3, 3, 3] in exactly 5 frames (one alignment), [1, 1, 2], [2, 1, 2].
T, N, C = 8, 3, 4
lp = log_softmax(T, N, C)
seqs = [torch.tensor([1, 1, 2]), torch.tensor([3, 3, 3]), torch.tensor([2, 1, 2])]
each("repeats", {}, lp, padded(seqs, 3, 0), lengths(8, 5, 6), lengths(3, 3, 3))
each("repeats-concatenated", {}, lp, torch.cat(seqs), lengths(7, 5, 3), lengths(3, 3, 3))

# Targets no alignment fits: 6 labels in 5 frames; [2, 2, 2] in 4 frames (needs 5); a
# label with input length 0; and a possible one.
T, N, C = 5, 4, 4
lp = log_softmax(T, N, C)
seqs = [labels(6, C), torch.tensor([2, 2, 2]), torch.tensor([1]), torch.tensor([3, 1])]
for cfg in [{}, {"zero_infinity": True}]:
    tag = tag_of(cfg)
    each(f"{tag}/impossible", cfg, lp, padded(seqs, 6, 0), lengths(5, 4, 0, 5), lengths(6, 3, 1, 2))
    each(f"{tag}/impossible-concatenated", cfg, lp, torch.cat(seqs), lengths(5, 4, 0, 5), lengths(6, 3, 1, 2))

# Empty targets (loss = -sum of blank log-probabilities), including input length 0.
T, N, C = 4, 3, 3
lp = log_softmax(T, N, C)
each("empty-targets", {}, lp, padded([labels(0, C), labels(2, C), labels(0, C)], 2, 1), lengths(4, 3, 0),
     lengths(0, 2, 0))

# A blank other than 0: the last class, and one in the middle.
T, N, C = 7, 2, 5
lp = log_softmax(T, N, C)
for blank in [4, 2]:
    seqs = [labels(3, C, blank), labels(2, C, blank)]
    each(f"blank{blank}", {"blank": blank}, lp, padded(seqs, 3, 0 if blank else 1), lengths(7, 6), lengths(3, 2))

# Unnormalised log_probs: PyTorch's gradient is exp(log_probs) - posterior all the same.
T, N, C = 5, 2, 4
raw = torch.randn(T, N, C, dtype=torch.float64)
each("unnormalised", {}, raw, padded([labels(2, C), labels(3, C)], 3, 0), lengths(5, 4), lengths(2, 3))

# Long inputs with peaked distributions (large negative log-probabilities). In f32 the
# gradient exp(lp) - exp(log(sum alpha*beta) + nll - lp) carries the rounding of a loss
# near 80 (torch's own f32 gradient is 1.5e-5 from its f64 one): atol 1e-4 there.
T, N, C = 30, 4, 10
lp = log_softmax(T, N, C, scale=4.0)
seqs = [labels(10, C), labels(7, C), labels(1, C), labels(12, C)]
each("long-peaked", {}, lp, padded(seqs, 12, 0), lengths(30, 22, 9, 28), lengths(10, 7, 1, 12), f32_atol=1e-4)

# Unbatched: log_probs (T, C), 1-D targets, 0-d lengths.
T, C = 7, 5
lp = log_softmax(T, C)
each("unbatched", {}, lp, torch.tensor([4, 4, 1]), torch.tensor(7), torch.tensor(3))
each("unbatched-short", {}, lp, torch.tensor([2, 3]), torch.tensor(4), torch.tensor(2))

write(HERE, "losses_ctc.json", "gen_losses_ctc.py", cases)
