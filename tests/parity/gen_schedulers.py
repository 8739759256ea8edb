#!/usr/bin/env python3
"""Writes schedulers.json: PyTorch reference learning rates for every Ember scheduler.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_schedulers.py

Format `ember-parity/1` (PARITY.md). The loop is PyTorch's: record the learning rate in
effect, take an optimizer step, advance the scheduler (with the step's metric for
reduce_on_plateau). A case whose schedule cycles the momentum (one_cycle or cyclic with
cycle_momentum, PyTorch's default, alone or inside sequential / chained) also records
`expected.momentum`: the group's `momentum` (SGD) or `betas[0]` (Adam) read beside the lr.

`sequential` and `chained` take their schedules as tables (`name` plus the schedule's
arguments), built here in list order on the one optimizer, as PyTorch expects:
SequentialLR(opt, [children], milestones) and ChainedScheduler([children], opt).
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
    "constant": torch.optim.lr_scheduler.ConstantLR, "polynomial": torch.optim.lr_scheduler.PolynomialLR,
    "cyclic": torch.optim.lr_scheduler.CyclicLR,
}
cases = []


def make(opt, name, cfg):
    """The PyTorch scheduler for Ember's `name` and config, sub-schedules built in order."""
    if name in ("sequential", "chained"):
        children = [make(opt, t["name"], {k: v for k, v in t.items() if k != "name"}) for t in cfg["schedulers"]]
        if name == "sequential":
            return torch.optim.lr_scheduler.SequentialLR(opt, children, milestones=cfg["milestones"])
        return torch.optim.lr_scheduler.ChainedScheduler(children, optimizer=opt)
    return SCHEDULERS[name](opt, **cfg)


def cycles_momentum(name, cfg):
    if name in ("sequential", "chained"):
        return any(cycles_momentum(t["name"], t) for t in cfg["schedulers"])
    return name in ("one_cycle", "cyclic") and cfg.get("cycle_momentum", True)


def case(cid, name, cfg, lr, steps, metrics=None, optimizer="sgd"):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr) if optimizer == "sgd" else torch.optim.Adam([p], lr=lr)
    sched = make(opt, name, cfg)
    lrs, momenta = [], []
    for k in range(steps):
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
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
    if cycles_momentum(name, cfg):
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
case("default", "constant", {}, 0.1, 8)
case("half-3", "constant", {"factor": 0.5, "total_iters": 3}, 0.05, 6)
case("total0", "constant", {"factor": 0.25, "total_iters": 0}, 0.2, 4)
case("default", "polynomial", {}, 0.1, 8)
case("power2", "polynomial", {"total_iters": 6, "power": 2.0}, 0.2, 10)
case("power0.5", "polynomial", {"total_iters": 4, "power": 0.5}, 0.3, 6)
case("triangular", "cyclic", {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4, "cycle_momentum": False}, 0.5, 20)
case("triangular-asym", "cyclic", {"base_lr": 0.001, "max_lr": 0.006, "step_size_up": 3, "step_size_down": 5,
                                   "cycle_momentum": False}, 0.1, 25)
case("triangular2", "cyclic", {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2, "mode": "triangular2",
                               "cycle_momentum": False}, 0.1, 20)
case("exp-range", "cyclic", {"base_lr": 0.02, "max_lr": 0.2, "step_size_up": 3, "mode": "exp_range", "gamma": 0.9,
                             "cycle_momentum": False}, 0.1, 20)
case("down0", "cyclic", {"base_lr": 0.01, "max_lr": 0.05, "step_size_up": 3, "step_size_down": 0,
                         "cycle_momentum": False}, 0.1, 10)
case("momentum-sgd", "cyclic", {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4}, 0.1, 20)
case("momentum-exp-range", "cyclic", {"base_lr": 0.02, "max_lr": 0.2, "step_size_up": 3, "step_size_down": 2,
                                      "mode": "exp_range", "gamma": 0.95, "base_momentum": 0.85,
                                      "max_momentum": 0.95}, 0.1, 18)
case("momentum-adam", "cyclic", {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 3, "mode": "triangular2",
                                 "base_momentum": 0.8, "max_momentum": 0.95}, 0.001, 20, optimizer="adam")
WARMUP = {"name": "linear", "start_factor": 0.1, "total_iters": 5}
case("warmup-cosine", "sequential", {"schedulers": [WARMUP, {"name": "cosine", "T_max": 15}], "milestones": [5]},
     0.1, 40)
case("warmup-cosine-etamin", "sequential",
     {"schedulers": [{"name": "linear", "start_factor": 0.25, "total_iters": 3},
                     {"name": "cosine", "T_max": 7, "eta_min": 0.01}], "milestones": [4]}, 0.2, 25)
case("constant-exponential", "sequential",
     {"schedulers": [{"name": "constant", "factor": 0.1, "total_iters": 2}, {"name": "exponential", "gamma": 0.9}],
      "milestones": [3]}, 0.05, 10)
case("three", "sequential",
     {"schedulers": [{"name": "linear", "start_factor": 0.5, "total_iters": 2}, {"name": "step", "step_size": 2},
                     {"name": "cosine_warm_restarts", "T_0": 3}], "milestones": [3, 8]}, 0.1, 20)
case("milestone0", "sequential",
     {"schedulers": [{"name": "exponential", "gamma": 0.5}, {"name": "polynomial", "total_iters": 4, "power": 2.0}],
      "milestones": [0]}, 0.1, 8)
case("warmup-cyclic-momentum", "sequential",
     {"schedulers": [WARMUP, {"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 3}],
      "milestones": [4]}, 0.1, 16)
case("constant-cyclic-adam", "sequential",
     {"schedulers": [{"name": "constant", "factor": 0.5, "total_iters": 10},
                     {"name": "cyclic", "base_lr": 0.002, "max_lr": 0.01, "step_size_up": 2, "mode": "triangular2",
                      "base_momentum": 0.85, "max_momentum": 0.95}], "milestones": [3]},
     0.001, 15, optimizer="adam")
case("constant-exponential", "chained",
     {"schedulers": [{"name": "constant", "factor": 0.1, "total_iters": 3}, {"name": "exponential", "gamma": 0.9}]},
     0.05, 10)
case("warmup-cosine", "chained", {"schedulers": [WARMUP, {"name": "cosine", "T_max": 10}]}, 0.1, 35)
case("constant-warm-restarts", "chained",
     {"schedulers": [{"name": "constant", "factor": 0.5, "total_iters": 4}, {"name": "cosine_warm_restarts", "T_0": 3}]},
     0.1, 12)
case("cyclic-momentum-exponential", "chained",
     {"schedulers": [{"name": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2},
                     {"name": "exponential", "gamma": 0.95}]}, 0.1, 12)
case("polynomial-step", "chained",
     {"schedulers": [{"name": "polynomial", "total_iters": 6, "power": 2.0}, {"name": "step", "step_size": 3,
                                                                              "gamma": 0.5}]}, 0.2, 10)

write(HERE, "schedulers.json", "gen_schedulers.py", cases)
