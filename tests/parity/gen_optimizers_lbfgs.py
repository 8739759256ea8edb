#!/usr/bin/env python3
"""Writes optimizers_lbfgs.json: PyTorch reference trajectories for `lbfgs`
(torch.optim.LBFGS), with and without its strong-Wolfe line search.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_optimizers_lbfgs.py

The problem is PARITY.md's `optimizer` kind, f(x) = sum(a x^2) + sum(b x) from x0, for an
optimizer that re-evaluates the loss within its step: `optimizer.step(closure)`, whose
closure sets x.grad = 2 a x + b and returns (a * x**2).sum() + (b * x).sum(), both in the
working dtype (x**2 is x*x in torch). The trajectory is x after each `step(closure)`;
every step runs up to max_iter L-BFGS iterations and may call the closure several times.
f64 cases run with torch's default dtype set to f64.

Cases cover the defaults (which solve these small problems in one step), few iterations
per step (max_iter 1 to 4, so that the history carries over between steps), a short
history (history_size 2 and 3, so that old pairs are dropped), lr, max_eval, both
tolerances, maximize (on a concave problem), the line search from steps too long
(lr = 3, 10 and 30: it brackets, zooms, and flags a trial point too near the
bracket's edge) and too short (lr = 0.03: it extrapolates, once with a cubic that has no minimum), the
line search given no evaluation to spend (max_eval = max_iter = 1), and a non-convex
problem (some a < 0) for a few iterations, where torch stays finite.

The f32 cases are chosen so that f32 rounding (PyTorch's fused multiply-adds and
summation order against Ember's) does not flip a line-search comparison: with these
problems f32 runs that extrapolate many times from a tiny lr (0.001 to 0.02) end
elsewhere after a few steps in any two implementations. A numpy mirror of Ember's
arithmetic (sequential sums, no fused multiply-add), run while choosing the cases,
followed every case here within half of the tolerance.
"""
import os

import torch
from parity_common import DTYPES, enc, write

torch.manual_seed(11)
HERE = os.path.dirname(os.path.abspath(__file__))

cases = []


def trajectory(cfg, x0, a, b, steps, dtype):
    """x after each of `steps` calls of LBFGS(cfg).step(closure) on the quadratic, in dtype
    (also the default dtype while it runs)."""
    torch.set_default_dtype(dtype)
    try:
        x = torch.tensor(x0, dtype=dtype, requires_grad=True)
        a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
        opt = torch.optim.LBFGS([x], **cfg)

        def closure():
            with torch.no_grad():
                x.grad = 2 * a * x + b
                return (a * x**2).sum() + (b * x).sum()

        out = []
        for _ in range(steps):
            opt.step(closure)
            out.append(x.detach().clone().tolist())
        return out
    finally:
        torch.set_default_dtype(torch.float32)


def case(cid, cfg, x0, a, b, steps):
    for dname, dtype in DTYPES.items():
        x0d, ad, bd = (torch.tensor(v, dtype=dtype).tolist() for v in (x0, a, b))
        traj = trajectory(cfg, x0d, ad, bd, steps, dtype)
        assert all(all(abs(v) < 1e30 for v in row) for row in traj), f"{cid} {dname} is not finite"
        cases.append({
            "id": f"lbfgs/{cid}/{dname}", "kind": "optimizer", "name": "lbfgs", "config": cfg, "dtype": dname,
            "inputs": {"x0": x0d, "a": ad, "b": bd, "steps": steps},
            "expected": {"trajectory": enc(traj)},
        })


X0 = (torch.randn(6, dtype=torch.float64) * 2).tolist()
A = (torch.rand(6, dtype=torch.float64) * 2 + 0.05).tolist()
B = torch.randn(6, dtype=torch.float64).tolist()
NEG_A = [-v for v in A]
# Non-convex: two negative curvatures.
MIXED_A = [v if i % 3 else -0.3 * v for i, v in enumerate(A)]

SW = {"line_search_fn": "strong_wolfe"}
CONFIGS = [
    ({}, 3),
    (SW, 3),
    ({"max_iter": 1}, 8),
    ({"max_iter": 2, "history_size": 2}, 8),
    ({"max_iter": 3, "lr": 0.5}, 6),
    ({"max_iter": 4, "lr": 0.5, **SW}, 5),
    ({"max_iter": 2, "history_size": 3, **SW}, 6),
    ({"max_iter": 10, "max_eval": 4, **SW}, 4),
    ({"max_iter": 6, "max_eval": 3}, 4),
    ({"max_iter": 5, "tolerance_grad": 1e-2}, 4),
    ({"max_iter": 5, "tolerance_change": 1e-3}, 4),
    ({"max_iter": 3, "lr": 10.0, **SW}, 4),
    ({"max_iter": 1, "max_eval": 10, "lr": 3.0, **SW}, 4),
    ({"max_iter": 2, "max_eval": 10, "lr": 30.0, **SW}, 4),
    ({"max_iter": 2, "max_eval": 10, "lr": 0.03, **SW}, 4),
    ({"max_iter": 1, "lr": 0.01, "history_size": 1, **SW}, 6),
]
for cfg, steps in CONFIGS:
    tag = "-".join(f"{k}{v}" for k, v in cfg.items()) or "default"
    case(tag, cfg, X0, A, B, steps)

# maximize: the concave problem -a, maximized.
case("maximize-max_iter2", {"max_iter": 2, "maximize": True}, X0, NEG_A, B, 5)
case("maximize-max_iter3-strong_wolfe", {"max_iter": 3, "maximize": True, **SW}, X0, NEG_A, B, 4)
# Non-convex: curvature pairs with y.s <= 1e-10 are skipped; the line search runs downhill.
case("nonconvex-max_iter2-lr0.1", {"max_iter": 2, "lr": 0.1}, X0, MIXED_A, B, 4)
case("nonconvex-max_iter2-strong_wolfe", {"max_iter": 2, **SW}, X0, MIXED_A, B, 3)
# The seed's ill-conditioned problem: f = 0.1 x1^2 + 2 x2^2 from (-5, -2).
case("seed2d/max_iter2", {"max_iter": 2}, [-5.0, -2.0], [0.1, 2.0], [0.0, 0.0], 5)
case("seed2d/max_iter2-strong_wolfe", {"max_iter": 2, **SW}, [-5.0, -2.0], [0.1, 2.0], [0.0, 0.0], 5)

write(HERE, "optimizers_lbfgs.json", "gen_optimizers_lbfgs.py", cases)
