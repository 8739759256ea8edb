"""Helpers shared by the fixture generators in this folder (ember-parity/1 files)."""
import json
import math
import os

import torch

DTYPES = {"f32": torch.float32, "f64": torch.float64}


def enc(v):
    """A tensor as nested lists, non-finite values as the strings PARITY.md names."""
    if isinstance(v, torch.Tensor):
        v = v.detach().tolist()
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


def write(here, name, script, cases):
    """Writes `name` beside the generator, recording the torch version and the script."""
    doc = {"format": "ember-parity/1", "source": f"torch {torch.__version__}, tests/parity/{script}", "cases": cases}
    with open(os.path.join(here, name), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to tests/parity/{name}")


def quadratic_trajectory(make, x0, a, b, steps, dtype):
    """x after each of `steps` steps of the optimizer `make([x])` on f(x) = sum(a x^2 + b x)
    from x0, its gradient 2 a x + b set afresh before every step (some optimizers change
    p.grad in place), all in `dtype`, also the default dtype while it runs (optimizers
    make their state in it)."""
    torch.set_default_dtype(dtype)
    try:
        x = torch.tensor(x0, dtype=dtype, requires_grad=True)
        a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
        opt = make([x])
        out = []
        for _ in range(steps):
            with torch.no_grad():
                x.grad = 2 * a * x + b
            opt.step()
            out.append(x.detach().clone().tolist())
        return out
    finally:
        torch.set_default_dtype(torch.float32)


def optimizer_cases(cid, name, cfg, x0, a, b, steps, make):
    """The `optimizer` case `{name}/{cid}/{dtype}` of each dtype: the quadratic from x0 (as
    the dtype holds the inputs) and the trajectory of `make([x])` (quadratic_trajectory)."""
    cases = []
    for dname, dtype in DTYPES.items():
        x0d, ad, bd = (torch.tensor(v, dtype=dtype).tolist() for v in (x0, a, b))
        cases.append({
            "id": f"{name}/{cid}/{dname}", "kind": "optimizer", "name": name, "config": cfg, "dtype": dname,
            "inputs": {"x0": x0d, "a": ad, "b": bd, "steps": steps},
            "expected": {"trajectory": enc(quadratic_trajectory(make, x0d, ad, bd, steps, dtype))},
        })
    return cases


def loss_case(cid, name, cfg, x, target, dname, loss):
    """The `loss` case `{name}/{cid}/{reduction}/{dtype}`: the module `loss` on input x and
    target (integer targets stay i64), the output, and the input's gradient for a random
    grad_output (or 1 for a scalar output)."""
    dtype = DTYPES[dname]
    x = x.to(dtype).clone().requires_grad_(True)
    int_target = not target.is_floating_point()
    t = target if int_target else target.to(dtype)
    y = loss(x, t)
    inputs = {"input": enc(x), "target": {"dtype": "i64", "data": enc(t)} if int_target else enc(t)}
    if y.dim() > 0:
        g = torch.randn(y.shape, dtype=dtype)
        inputs["grad_output"] = enc(g)
    else:
        g = torch.ones_like(y)
    y.backward(g)
    return {
        "id": f"{name}/{cid}/{cfg.get('reduction', 'mean')}/{dname}", "kind": "loss", "name": name,
        "config": cfg, "dtype": dname, "inputs": inputs,
        "expected": {"output": enc(y), "grad_input": enc(x.grad)},
    }
