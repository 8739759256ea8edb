#!/usr/bin/env python3
"""Writes schedulers.json: PyTorch reference learning rates for every Ember scheduler.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_schedulers.py

Format `ember-parity/1` (PARITY.md). The loop is PyTorch's: record the learning rate in
effect, take an optimizer step, advance the scheduler (with the step's metric for
reduce_on_plateau). A one_cycle case that cycles the momentum (cycle_momentum, PyTorch's
default) also records `expected.momentum`: the SGD group's `momentum` read beside the lr.
"""
import os

import torch
from parity_common import write

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEDULERS = {
    "step": torch.optim.lr_scheduler.StepLR, "multi_step": torch.optim.lr_scheduler.MultiStepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR, "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "linear": torch.optim.lr_scheduler.LinearLR,
    "cosine_warm_restarts": torch.optim.lr_scheduler.CosineAnnealingWarmRestarts,
    "one_cycle": torch.optim.lr_scheduler.OneCycleLR, "reduce_on_plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,
}
cases = []


def case(cid, name, cfg, lr, steps, metrics=None):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = SCHEDULERS[name](opt, **cfg)
    lrs, momenta = [], []
    cycles_momentum = name == "one_cycle" and cfg.get("cycle_momentum", True)
    for k in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
        p.grad = torch.zeros(1)
        opt.step()
        if metrics is not None:
            sched.step(metrics[k])
        else:
            sched.step()
    inputs = {"lr": lr, "steps": steps}
    if metrics is not None:
        inputs["metrics"] = metrics
    expected = {"lr": lrs}
    if cycles_momentum:
        expected["momentum"] = momenta
    for dtype in ("f32", "f64"):
        cases.append({"id": f"{name}/{cid}/{dtype}", "kind": "scheduler", "name": name, "config": cfg,
                      "dtype": dtype, "inputs": inputs, "expected": expected})


case("size3", "step", {"step_size": 3}, 0.1, 12)
case("size2-gamma0.5", "step", {"step_size": 2, "gamma": 0.5}, 1.0, 9)
case("milestones", "multi_step", {"milestones": [2, 5, 5, 9]}, 0.1, 12)
case("gamma0.5", "multi_step", {"milestones": [1, 3], "gamma": 0.5}, 0.3, 6)
case("gamma0.9", "exponential", {"gamma": 0.9}, 0.1, 15)
case("Tmax10", "cosine", {"T_max": 10}, 0.1, 25)
case("Tmax5-etamin", "cosine", {"T_max": 5, "eta_min": 0.01}, 0.2, 22)
case("default", "linear", {}, 0.1, 8)
case("ramp-down", "linear", {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 4}, 0.5, 8)
case("warmup", "linear", {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 3}, 0.2, 6)
case("T0-4", "cosine_warm_restarts", {"T_0": 4}, 0.1, 13)
case("T0-3-mult2", "cosine_warm_restarts", {"T_0": 3, "T_mult": 2, "eta_min": 0.001}, 0.1, 25)
case("cos", "one_cycle", {"max_lr": 1.0, "total_steps": 20, "cycle_momentum": False}, 0.1, 20)
case("linear", "one_cycle", {"max_lr": 0.5, "total_steps": 15, "anneal_strategy": "linear", "pct_start": 0.4,
                             "cycle_momentum": False}, 0.1, 15)
case("three-phase", "one_cycle", {"max_lr": 0.3, "total_steps": 24, "three_phase": True, "div_factor": 10.0,
                                  "final_div_factor": 100.0, "cycle_momentum": False}, 0.1, 24)
case("epochs", "one_cycle", {"max_lr": 0.2, "epochs": 3, "steps_per_epoch": 4, "cycle_momentum": False}, 0.1, 12)
case("momentum-cos", "one_cycle", {"max_lr": 1.0, "total_steps": 20}, 0.1, 20)
case("momentum-linear", "one_cycle", {"max_lr": 0.5, "total_steps": 15, "anneal_strategy": "linear", "pct_start": 0.4,
                                      "cycle_momentum": True}, 0.1, 15)
case("momentum-three-phase", "one_cycle", {"max_lr": 0.3, "total_steps": 24, "three_phase": True, "div_factor": 10.0,
                                           "final_div_factor": 100.0}, 0.1, 24)
case("momentum-custom", "one_cycle", {"max_lr": 0.2, "epochs": 3, "steps_per_epoch": 4, "base_momentum": 0.7,
                                      "max_momentum": 0.99}, 0.1, 12)
flat = [1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.94, 0.92, 0.95, 0.96, 0.97, 0.91, 0.92, 0.95, 0.96, 0.99, 0.93, 0.94, 0.96, 0.97]
case("min", "reduce_on_plateau", {"patience": 2}, 0.1, 20, flat)
case("max-abs-cooldown", "reduce_on_plateau", {"mode": "max", "patience": 1, "threshold": 0.01, "threshold_mode": "abs",
                                               "cooldown": 2, "factor": 0.5}, 0.1, 20, flat)
case("min-lr", "reduce_on_plateau", {"patience": 0, "factor": 0.5, "min_lr": 0.02}, 0.1, 20, flat)

write(HERE, "schedulers.json", "gen_schedulers.py", cases)
