//! `cyclic`: cycle the learning rate between base_lr and max_lr, and the momentum
//! inversely (PyTorch `CyclicLR`, the cyclical learning rate policy).

use ember_core::{check, Hyperparams, ParamEnum, Result, Scheduler, State};

use crate::common::Progress;

/// Each cycle rises from base_lr to max_lr over step_size_up steps and falls back over
/// step_size_down; the amplitude is scaled per cycle (`triangular2`: halved each cycle)
/// or per step (`exp_range`: gamma^step). Meant to be stepped per batch
/// (`interval = "step"`). The schedule starts at base_lr, replacing the optimizer's lr,
/// as PyTorch's constructor does. With `cycle_momentum` (PyTorch's default) the
/// momentum (or `betas[0]`) moves the other way, from max_momentum at base_lr down to
/// base_momentum at max_lr.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(
    scheduler = "cyclic",
    summary = "cycle the learning rate between base_lr and max_lr, momentum inversely (CyclicLR)"
)]
pub struct CyclicLr {
    /// lower end of the cycle and the rate at step 0 (replaces the optimizer's lr); >= 0
    #[param(check = check::non_negative)]
    pub base_lr: f64,
    /// upper end of the cycle; >= 0
    #[param(check = check::non_negative)]
    pub max_lr: f64,
    /// steps in the rising half of a cycle; >= 1
    #[param(default = 2000, check = check::at_least(1))]
    pub step_size_up: i64,
    /// steps in the falling half of a cycle (default: step_size_up); >= 0
    #[param(check = check::at_least(0))]
    pub step_size_down: Option<i64>,
    /// amplitude scaling: triangular (none), triangular2 (halved each cycle), exp_range (gamma^step)
    #[param(default = "triangular")]
    pub mode: CyclicMode,
    /// exp_range's factor: the amplitude is scaled by gamma^step
    #[param(default = 1.0)]
    pub gamma: f64,
    #[param(
        default = "cycle",
        doc = "accepted for PyTorch configs; without a custom scale_fn PyTorch ignores it, and so does Ember: mode decides (triangular modes per cycle, exp_range per step)"
    )]
    pub scale_mode: ScaleMode,
    #[param(
        default = true,
        doc = "also cycle momentum (or betas[0]) inversely to the learning rate, between max_momentum and base_momentum"
    )]
    pub cycle_momentum: bool,
    #[param(default = 0.8, doc = "momentum (or betas[0]) at max_lr, the low end of its cycle")]
    pub base_momentum: f64,
    #[param(default = 0.9, doc = "momentum (or betas[0]) at base_lr, the high end of its cycle")]
    pub max_momentum: f64,
    #[param(skip)]
    progress: Progress,
}

/// How the amplitude changes (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum CyclicMode {
    /// The same triangle every cycle.
    Triangular,
    /// The amplitude halves after each cycle.
    Triangular2,
    /// The amplitude is scaled by gamma^step.
    ExpRange,
}

/// What a custom scale function would be evaluated on (PyTorch's `scale_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum ScaleMode {
    /// The cycle number.
    Cycle,
    /// The step count.
    Iterations,
}

impl CyclicLr {
    /// Where step `t` lies: the fraction of the way from the low end to the high end
    /// (PyTorch's `scale_factor`) and the amplitude's scale, computed as PyTorch does.
    fn position(&self, t: i64) -> (f64, f64) {
        let up = self.step_size_up as f64;
        let down = self.step_size_down.map_or(up, |d| d as f64);
        let total_size = up + down;
        let step_ratio = up / total_size;
        let t = t as f64;
        let cycle = (1.0 + t / total_size).floor();
        let x = 1.0 + t / total_size - cycle;
        let scale_factor = if x <= step_ratio { x / step_ratio } else { (x - 1.0) / (step_ratio - 1.0) };
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2.0f64.powf(cycle - 1.0),
            CyclicMode::ExpRange => self.gamma.powf(t),
        };
        (scale_factor, scale)
    }

    fn lr_at(&self, t: i64) -> f64 {
        let (scale_factor, scale) = self.position(t);
        let base_height = (self.max_lr - self.base_lr) * scale_factor;
        self.base_lr + base_height * scale
    }

    /// The momentum (or `betas[0]`) at step `t`.
    fn momentum_at(&self, t: i64) -> f64 {
        let (scale_factor, scale) = self.position(t);
        let base_height = (self.max_momentum - self.base_momentum) * scale_factor;
        self.max_momentum - base_height * scale
    }
}

impl Scheduler for CyclicLr {
    fn init(&mut self, lrs: &mut [f64]) -> Result<()> {
        self.progress = Progress::start(lrs);
        let lr = self.lr_at(0);
        lrs.iter_mut().for_each(|l| *l = lr);
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.progress.last_epoch += 1;
        let lr = self.lr_at(self.progress.last_epoch);
        lrs.iter_mut().for_each(|l| *l = lr);
        Ok(())
    }

    fn cycles_momentum(&self) -> bool {
        self.cycle_momentum
    }

    /// The same for every group (PyTorch's scalar `base_momentum` / `max_momentum`), a
    /// function of the step count alone, so it is right after `load_state` too.
    fn momentum(&self, _group: usize) -> Option<f64> {
        self.cycle_momentum.then(|| self.momentum_at(self.progress.last_epoch))
    }

    fn state(&self) -> State {
        self.progress.to_state()
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.progress = Progress::load("cyclic", state)?;
        Ok(())
    }
}
