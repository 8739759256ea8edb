#!/usr/bin/env python3
"""Writes schedulers_swalr.json: PyTorch reference learning rates for Ember's `swalr`
(torch.optim.swa_utils.SWALR), alone and as the last schedule of `sequential` and `chained`.

Run from the repository root with torch installed (CI never needs it):

    python3 tests/parity/gen_schedulers_swalr.py

Format `ember-parity/1` (PARITY.md), the loop of gen_schedulers.py: record the learning
rate in effect, take an optimizer step, advance the scheduler. SWALR's rate is recursive
on the group's current rate, so inside SequentialLR it anneals from the rate the schedule
before it left (SequentialLR evaluates it at its milestone without resetting the rate,
SWALR having no closed form); the sequential cases pin that down.
"""
import os

import torch
from parity_common import write
from torch.optim.swa_utils import SWALR

HERE = os.path.dirname(os.path.abspath(__file__))
LR = torch.optim.lr_scheduler
SCHEDULERS = {
    "swalr": SWALR, "cosine": LR.CosineAnnealingLR, "linear": LR.LinearLR, "constant": LR.ConstantLR,
    "exponential": LR.ExponentialLR,
}
cases = []


def make(opt, name, cfg):
    """The PyTorch scheduler for Ember's `name` and config, sub-schedules built in order."""
    if name in ("sequential", "chained"):
        children = [make(opt, t["name"], {k: v for k, v in t.items() if k != "name"}) for t in cfg["schedulers"]]
        if name == "sequential":
            return LR.SequentialLR(opt, children, milestones=cfg["milestones"])
        return LR.ChainedScheduler(children, optimizer=opt)
    return SCHEDULERS[name](opt, **cfg)


def case(cid, name, cfg, lr, steps):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt, name, cfg)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = torch.zeros(1)
        opt.step()
        sched.step()
    cases.append({"id": f"{name}/{cid}/f64", "kind": "scheduler", "name": name, "config": cfg, "dtype": "f64",
                  "inputs": {"lr": lr, "steps": steps}, "expected": {"lr": lrs}})


# Alone: both strategies, anneal_epochs 0, 1, 3, 10, swa_lr below and above the base rate.
case("default", "swalr", {"swa_lr": 0.01}, 0.1, 14)
for strategy in ("cos", "linear"):
    for epochs, lr, swa_lr in ((0, 0.1, 0.02), (1, 0.05, 0.005), (3, 0.1, 0.03), (10, 0.2, 0.05),
                               (3, 0.01, 0.05), (10, 0.003, 0.1), (0, 0.05, 0.3)):
        direction = "down" if swa_lr < lr else "up"
        case(f"{strategy}-epochs{epochs}-{direction}-lr{lr}-swa{swa_lr}", "swalr",
             {"swa_lr": swa_lr, "anneal_epochs": epochs, "anneal_strategy": strategy}, lr, epochs + 6)
case("linear-swa0", "swalr", {"swa_lr": 0.0, "anneal_epochs": 4, "anneal_strategy": "linear"}, 0.1, 8)
case("cos-equal", "swalr", {"swa_lr": 0.1, "anneal_epochs": 5}, 0.1, 8)

# The SWA recipe: cosine (or warm-up then cosine) for some epochs, then swalr from the rate
# the cosine left.
COSINE = {"name": "cosine", "T_max": 10}
for strategy in ("cos", "linear"):
    for epochs in (0, 1, 3, 10):
        for swa_lr in (0.02, 0.09):
            case(f"cosine-swalr-{strategy}-epochs{epochs}-swa{swa_lr}", "sequential",
                 {"schedulers": [COSINE, {"name": "swalr", "swa_lr": swa_lr, "anneal_epochs": epochs,
                                          "anneal_strategy": strategy}], "milestones": [6]}, 0.1, 6 + epochs + 5)
case("warmup-cosine-swalr", "sequential",
     {"schedulers": [{"name": "linear", "start_factor": 0.1, "total_iters": 3}, {"name": "cosine", "T_max": 12},
                     {"name": "swalr", "swa_lr": 0.01, "anneal_epochs": 4}], "milestones": [3, 10]}, 0.2, 22)
case("cosine-swalr-at-Tmax", "sequential",
     {"schedulers": [{"name": "cosine", "T_max": 5, "eta_min": 0.001},
                     {"name": "swalr", "swa_lr": 0.05, "anneal_epochs": 3, "anneal_strategy": "linear"}],
      "milestones": [5]}, 0.1, 12)
case("cosine-swalr-milestone0", "sequential",
     {"schedulers": [COSINE, {"name": "swalr", "swa_lr": 0.02, "anneal_epochs": 3}], "milestones": [0]}, 0.1, 9)
case("swalr-exponential", "sequential",
     {"schedulers": [{"name": "swalr", "swa_lr": 0.02, "anneal_epochs": 2}, {"name": "exponential", "gamma": 0.9}],
      "milestones": [4]}, 0.1, 10)
case("swalr0-cosine", "sequential",
     {"schedulers": [{"name": "swalr", "swa_lr": 0.02, "anneal_epochs": 0}, COSINE], "milestones": [3]}, 0.1, 10)

# Chained: swalr anneals from the rate the schedules before it set at every step.
case("constant-swalr", "chained",
     {"schedulers": [{"name": "constant", "factor": 0.5, "total_iters": 3},
                     {"name": "swalr", "swa_lr": 0.01, "anneal_epochs": 5, "anneal_strategy": "linear"}]}, 0.1, 10)
case("exponential-swalr", "chained",
     {"schedulers": [{"name": "exponential", "gamma": 0.9}, {"name": "swalr", "swa_lr": 0.02, "anneal_epochs": 3}]},
     0.1, 9)

write(HERE, "schedulers_swalr.json", "gen_schedulers_swalr.py", cases)
