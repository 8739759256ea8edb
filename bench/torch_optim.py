#!/usr/bin/env python3
"""Times PyTorch's Adam on one f32 parameter, as `ember bench optimizer adam` times
Ember's: same size, same steps, two warm-up steps, gradient fixed. Prints one JSON
object per variant (single-tensor, foreach, fused), each with ns_per_element.

    python3 bench/torch_optim.py [--numel N] [--steps S] [--name adam]
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
parser.add_argument("--name", default="adam", choices=sorted(OPTIMIZERS))
args = parser.parse_args()

OPT = OPTIMIZERS[args.name]
KW = {"sgd": {"lr": 0.01, "momentum": 0.9}}.get(args.name, {})

for variant in ("single_tensor", "foreach", "fused"):
    flags = {"foreach": variant == "foreach"}
    if variant == "fused":
        flags = {"fused": True}
    try:
        p = torch.randn(args.numel, requires_grad=True)
        p.grad = torch.randn(args.numel)
        opt = OPT([p], **KW, **flags)
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
