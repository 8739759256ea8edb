#!/usr/bin/env python3
"""Times PyTorch's Adam on one f32 parameter, as `ember bench optimizer adam` times
Ember's: same size, same steps, two warm-up steps, gradient fixed. Prints one JSON
object per variant (single-tensor, foreach, fused), each with ns_per_element.

    python3 bench/torch_optim.py [--numel N] [--steps S] [--name adam]

Every elementwise torch.optim optimizer, and the reference packages of the optimizers
torch.optim lacks: `lion` (lion-pytorch: `Lion` single-tensor, `lion_pytorch.foreach.Lion`
foreach), `schedule_free_adamw` / `schedule_free_sgd` (schedulefree, `foreach` off and on)
and `adan` (pytorch-optimizer; its default batched path, reported as single_tensor).
"""
import argparse
import json
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--numel", type=int, default=1 << 24)
parser.add_argument("--steps", type=int, default=20)
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD,
              "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta,
              "adamax": torch.optim.Adamax, "nadam": torch.optim.NAdam, "radam": torch.optim.RAdam,
              "asgd": torch.optim.ASGD, "rprop": torch.optim.Rprop}
REFERENCE = ["lion", "schedule_free_adamw", "schedule_free_sgd", "adan"]
parser.add_argument("--name", default="adam", choices=sorted(OPTIMIZERS) + REFERENCE)
args = parser.parse_args()

KW = {"sgd": {"lr": 0.01, "momentum": 0.9}}.get(args.name, {})


def make(name, variant, params):
    """The optimizer `name` in `variant`, or raises when it has no such variant."""
    if name == "lion":
        import lion_pytorch
        import lion_pytorch.foreach
        table = {"single_tensor": lion_pytorch.Lion, "foreach": lion_pytorch.foreach.Lion}
        if variant not in table:
            raise ValueError("lion-pytorch has no fused CPU variant")
        return table[variant](params)
    if name.startswith("schedule_free"):
        import schedulefree
        cls = schedulefree.AdamWScheduleFree if name.endswith("adamw") else schedulefree.SGDScheduleFree
        if variant == "fused":
            raise ValueError("schedulefree has no fused variant")
        opt = cls(params, foreach=variant == "foreach")
        opt.train()
        return opt
    if name == "adan":
        import pytorch_optimizer
        if variant != "single_tensor":
            raise ValueError("pytorch-optimizer's Adan has one path")
        return pytorch_optimizer.Adan(params)
    flags = {"fused": True} if variant == "fused" else {"foreach": variant == "foreach"}
    return OPTIMIZERS[name](params, **KW, **flags)


for variant in ("single_tensor", "foreach", "fused"):
    try:
        p = torch.randn(args.numel, requires_grad=True)
        p.grad = torch.randn(args.numel)
        opt = make(args.name, variant, [p])
    except (RuntimeError, TypeError, ValueError) as e:
        print(json.dumps({"name": args.name, "variant": variant, "error": str(e)}))
        continue
    for _ in range(2):
        opt.step()
    start = time.perf_counter()
    for _ in range(args.steps):
        opt.step()
    seconds = time.perf_counter() - start
    print(json.dumps({"name": args.name, "variant": variant, "numel": args.numel, "steps": args.steps,
                      "threads": torch.get_num_threads(), "seconds": seconds,
                      "ns_per_element": seconds * 1e9 / (args.steps * args.numel)}))
