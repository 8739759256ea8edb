//! `adamw`: Adam with decoupled weight decay (PyTorch `torch.optim.AdamW`).

use ember_core::{OptimizerEntry, ParamSpec};

use crate::adam::{params, Adam};

/// AdamW's keys: Adam's, with weight_decay = 0.01.
const ADAMW_PARAMS: [ParamSpec; 6] = params(0.01, 1e-3);

ember_core::inventory::submit! {
    OptimizerEntry {
        name: "adamw",
        summary: "Adam with decoupled weight decay p <- p (1 - lr wd) (torch.optim.AdamW)",
        params: &ADAMW_PARAMS,
        module: module_path!(),
        build: |p, _| Ok(Box::new(Adam::from_params(p, true)?)),
    }
}
