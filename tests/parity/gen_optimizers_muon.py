#!/usr/bin/env python3
"""Writes optimizers_muon.json: PyTorch reference trajectories for Ember's `muon`.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_optimizers_muon.py

Format `ember-parity/1` (PARITY.md, kind `optimizer`): each case minimises
f(x) = sum(a x^2) + sum(b x) over a matrix x from x0, with the gradient g = 2 a x + b
evaluated in the working dtype before every step, and records x after each step.
torch.optim.Muon takes 2-D parameters only; the cases cover a wide (4x6), a tall (6x4,
orthogonalized transposed) and a square (5x5) matrix, with every option (nesterov,
momentum, weight_decay, each adjust_lr_fn, ns_coefficients, ns_steps, eps), 12 steps, in
f32 and f64 (f64 cases run with torch's default dtype set to f64).

Newton-Schulz runs in bfloat16 in PyTorch whatever the parameter's dtype (the update is
cast to bf16, a double through float as c10 converts it; the norm, the division by it and
each matmul / addmm round their result, `beta*C + alpha*A@B` with f32 alpha and beta, to
bf16 once, after f32 sums). Ember mirrors that with the bf16 values held in f64 on the
CPU: its sums of bf16 products are then exact (or within 2^-53), and each result goes to
bf16 through f32. So this script also runs Ember's CPU algorithm (its elementwise f32/f64
ops exactly as candle does them, the sums in f64) beside PyTorch and checks, for every
case and step, that (1) every value rounded to bf16 lies farther from a rounding boundary
than the f64 error of any summation order can move it (0 where the sum is exact, else a
rigorous (k + 4) 2^-53 sum|terms|), so Ember's bf16 values do not depend on candle's
matmul, (2) they equal PyTorch's bit for bit (its f32 sums are exact enough here), and
(3) the trajectory is within the default tolerances of PyTorch's (f32 rtol 1e-5 atol
1e-6; f64 rtol 1e-10 atol 1e-12), which the cases therefore keep. A case that fails a
check stops the script. (On other devices Ember sums in f32, as PyTorch's kernels do;
such a sum may round a value near a bf16 boundary the other way, a difference of about
lr 2^-9 per element, so these tolerances are for the CPU.)
"""
import os
from fractions import Fraction

import torch
import torch.optim._muon as muon_module
from parity_common import write

torch.manual_seed(27)
HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"f32": torch.float32, "f64": torch.float64}
STEPS = 12
U = 2.0 ** -53
DEFAULTS = {"lr": 1e-3, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True,
            "ns_coefficients": (3.4445, -4.775, 2.0315), "eps": 1e-7, "ns_steps": 5, "adjust_lr_fn": None}
TOL = {"f32": (1e-5, 1e-6), "f64": (1e-10, 1e-12)}

cases = []


# ---- PyTorch ---------------------------------------------------------------------------

def torch_trajectory(cfg, x0, a, b, steps, dtype):
    """x after each step, and the (input, output) of every Newton-Schulz call."""
    calls = []
    original = muon_module._zeropower_via_newtonschulz

    def recording(grad, *args):
        out = original(grad, *args)
        calls.append((grad.clone(), out.clone()))
        return out

    torch.set_default_dtype(dtype)
    muon_module._zeropower_via_newtonschulz = recording
    try:
        x = torch.tensor(x0, dtype=dtype, requires_grad=True)
        a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
        kwargs = {k: (tuple(v) if k == "ns_coefficients" else v) for k, v in cfg.items()}
        opt = torch.optim.Muon([x], **kwargs)
        out = []
        for _ in range(steps):
            with torch.no_grad():
                x.grad = 2 * a * x + b
            opt.step()
            out.append(x.detach().clone())
        return out, calls
    finally:
        muon_module._zeropower_via_newtonschulz = original
        torch.set_default_dtype(torch.float32)


# ---- Ember's algorithm, in Python --------------------------------------------------------

def bf16(t):
    """f32 -> the nearest bf16, held in f32 (Ember's rounding, candle's to_dtype)."""
    return t.float().to(torch.bfloat16).float()


class Margin:
    """The smallest (distance to a bf16 rounding boundary) / (error bound) seen."""

    def __init__(self):
        self.ratio, self.where = float("inf"), ""

    def rounded(self, what, exact, bound):
        """`exact` (f64), which Ember computes with an error <= `bound` (0 where its
        computation is exact whatever the order), rounded to bf16 through f32."""
        _, e = torch.frexp(exact)
        ulp = torch.ldexp(torch.ones_like(exact), e - 8)  # bf16 spacing in [2^(e-1), 2^e)
        dist = ((exact.abs() / ulp) % 1.0 - 0.5).abs() * ulp
        bound = bound.expand_as(exact)
        check = bound > 0  # exact results round alike whatever the order
        if check.any():
            r = (dist[check] / bound[check]).min().item()
            if r < self.ratio:
                self.ratio, self.where = r, what
        return bf16(exact.float())


def lsb(v):
    """log2 of a bound below the last significant bit of bf16 values (huge for zeros)."""
    _, e = torch.frexp(v)
    return torch.where(v == 0, torch.full_like(v, 1e9), (e - 8).double())


def lsb_scalar(v):
    """log2 of the last set bit of a float."""
    n, d = Fraction(v).as_integer_ratio()
    return (d.bit_length() - 1) * -1 if n % 2 else (n & -n).bit_length() - 1


def bound(total, low, ops):
    """The f64 error bound of a sum of terms whose magnitudes add to `total`, each a
    multiple of 2^low, computed with `ops` roundings in any order: 0 where every partial
    sum is such a multiple below 2^53 of them (exact), else ops u total."""
    return torch.where(total < torch.pow(2.0, low + 53), torch.zeros_like(total), ops * U * total)


def product_terms(X, Y):
    """sum |X_il Y_lj| and the lowest bit of its terms, for X @ Y."""
    return X.abs() @ Y.abs(), (lsb(X)[:, :, None] + lsb(Y)[None, :, :]).amin(dim=1)


def f32(v):
    """A Python float at f32 precision: PyTorch's opmath scalars (alpha, beta) for bf16."""
    return torch.tensor(v, dtype=torch.float32).item()


def ember_ns(update, coeffs, steps, eps, m):
    a, b, c = (f32(v) for v in coeffs)
    la, lb, lc = (lsb_scalar(v) for v in (a, b, c))
    x = bf16(update.float())  # f64 -> f32 -> bf16, as c10 converts a double
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T.contiguous()
    X = x.double().reshape(1, -1)
    s2 = (X @ X.T).squeeze()
    # sqrt halves the relative error of the sum, and rounds once more.
    s_bound = bound(*product_terms(X, X.T), X.shape[1] + 1).squeeze()
    norm = m.rounded("norm", s2.sqrt(), torch.where(s_bound > 0, s_bound / (2 * s2.sqrt()) + U * s2.sqrt(), 0.0))
    norm = torch.maximum(norm, bf16(torch.tensor(eps, dtype=torch.float32)))
    # A true division (f64, then f32: the f32 quotient, correctly rounded).
    x = bf16(x.double() / norm.double())
    for _ in range(steps):
        X = x.double()
        r, k = X.shape
        G = m.rounded("gram", X @ X.T, bound(*product_terms(X, X.T), k + 1)).double()
        # Ember: the f64 matmul, b*G and c*GG each rounded, then their sum.
        total, low = product_terms(G, G)
        total = abs(c) * total + abs(b) * G.abs()
        low = torch.minimum(low + lc, lsb(G) + lb)
        upd = m.rounded("gram_update", b * G + c * (G @ G), bound(total, low, r + 4))
        W = upd.double()
        total, low = product_terms(W, X)
        total = total + abs(a) * X.abs()
        low = torch.minimum(low, lsb(X) + la)
        x = m.rounded("ortho", a * X + W @ X, bound(total, low, r + 4))
    return x.T if tall else x


def lerp(start, end, w):
    """ember_core::optim::lerp (composed, no fma)."""
    diff = end - start
    return start + diff * w if w < 0.5 else end - diff * (1.0 - w)


def ember_trajectory(cfg, x0, a, b, steps, dtype, m):
    h = {**DEFAULTS, **cfg}
    x = torch.tensor(x0, dtype=dtype)
    a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
    buf = torch.zeros_like(x)
    rows, cols = x.shape
    ratio = {None: max(1.0, rows / cols), "original": max(1.0, rows / cols),
             "match_rms_adamw": None, "spectral_unclamped": rows / cols}[h["adjust_lr_fn"]]
    adjusted = h["lr"] * (0.2 * max(rows, cols) ** 0.5 if ratio is None else ratio ** 0.5)
    out, inputs, ns = [], [], []
    for _ in range(steps):
        g = (a * 2.0) * x + b
        buf = lerp(buf, g, 1.0 - h["momentum"])
        update = lerp(g, buf, h["momentum"]) if h["nesterov"] else buf
        inputs.append(bf16(update.float()))
        o = ember_ns(update, h["ns_coefficients"], h["ns_steps"], h["eps"], m)
        ns.append(o)
        if h["weight_decay"] != 0.0:
            x = x * (1.0 - h["lr"] * h["weight_decay"])
        x = x + o.to(dtype) * (-adjusted)
        out.append(x.clone())
    return out, inputs, ns


# ---- cases ---------------------------------------------------------------------------------

def problem(shape):
    x0 = torch.randn(shape, dtype=torch.float64) * 2
    a = torch.rand(shape, dtype=torch.float64) * 2 + 0.05
    b = torch.randn(shape, dtype=torch.float64)
    return x0.tolist(), a.tolist(), b.tolist()


PROBLEMS = {"wide": problem((4, 6)), "tall": problem((6, 4)), "square": problem((5, 5))}


def case(shape, cfg, steps=STEPS):
    tag = "-".join(f"{k}{v}" for k, v in cfg.items()).replace(" ", "") or "default"
    x0, a, b = PROBLEMS[shape]
    for dname, dtype in DTYPES.items():
        cid = f"muon/{shape}/{tag}/{dname}"
        # Inputs as the working dtype holds them.
        x0d, ad, bd = (torch.tensor(v, dtype=dtype).tolist() for v in (x0, a, b))
        expected, calls = torch_trajectory(cfg, x0d, ad, bd, steps, dtype)
        m = Margin()
        got, inputs, ns = ember_trajectory(cfg, x0d, ad, bd, steps, dtype, m)
        for k, ((t_in, t_out), e_in, e_out) in enumerate(zip(calls, inputs, ns)):
            assert torch.equal(bf16(t_in.float()), e_in), f"{cid} step {k + 1}: bf16 input differs from PyTorch's"
            assert torch.equal(t_out.float(), e_out), f"{cid} step {k + 1}: Newton-Schulz differs from PyTorch's"
        assert m.ratio > 1.0, f"{cid}: a bf16 rounding ({m.where}) is within the error bound ({m.ratio:.3g})"
        rtol, atol = TOL[dname]
        worst = max(((g - e).abs() - rtol * e.abs()).max().item() for g, e in zip(got, expected))
        assert worst <= atol, f"{cid}: Ember's algorithm is {worst:.3g} beyond the tolerance"
        cases.append({
            "id": cid, "kind": "optimizer", "name": "muon", "config": cfg, "dtype": dname,
            "inputs": {"x0": x0d, "a": ad, "b": bd, "steps": steps},
            "expected": {"trajectory": [t.tolist() for t in expected]},
        })
        print(f"{cid}: margin ratio {m.ratio:.3g} ({m.where}), worst excess {worst:.2g}")


CONFIGS = [
    {"lr": 0.02},
    {"lr": 0.02, "nesterov": False},
    {"lr": 0.02, "adjust_lr_fn": "original"},
    {"lr": 0.02, "adjust_lr_fn": "match_rms_adamw"},
    {"lr": 0.02, "adjust_lr_fn": "spectral_unclamped"},
    {"lr": 0.02, "weight_decay": 0.0},
    {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.3},
    {"lr": 0.03, "momentum": 0.0},
    {"lr": 0.02, "ns_coefficients": [1.875, -1.25, 0.375], "ns_steps": 3, "eps": 1e-5},
    {"lr": 0.01, "ns_steps": 0, "nesterov": False, "adjust_lr_fn": "match_rms_adamw"},
]

case("wide", {})
case("tall", {})
case("square", {})
for cfg in CONFIGS:
    case("wide", cfg)
    case("tall", cfg)
case("square", {"lr": 0.02, "adjust_lr_fn": "match_rms_adamw"})

write(HERE, "optimizers_muon.json", "gen_optimizers_muon.py", cases)
