//! Four of the plugin traits (the optimizer's is in [`crate::optim`], the layer's in
//! [`crate::layer`], the metric's in [`crate::metric`]), and the loss's [`LossArg`]. Each
//! trait is object safe: the registry hands out `Box<dyn ...>`.

use std::fmt::Debug;

use candle_core::{Tensor, Var};

use crate::error::{Error, Result};
use crate::state::State;

/// An elementwise or along-a-dimension function applied between layers
/// (`relu`, `softmax`, ...). Backward comes from candle's autograd.
pub trait Activation: Send + Sync + Debug {
    /// Applies the activation; any shape, any float dtype the plugin supports.
    fn forward(&self, input: &Tensor) -> Result<Tensor>;

    /// Learnable parameters with their PyTorch names (PReLU: `weight`); empty for most.
    fn parameters(&self) -> Vec<(String, Var)> {
        Vec::new()
    }
}

/// The targets a loss compares a model's output with: what a training loop checks the
/// data and the model against, instead of matching loss names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossTargets {
    /// Integer class indices `[N]` against scores `[N, classes]` (`nll`).
    Classes,
    /// Class indices, or class probabilities of the output's shape (`cross_entropy`).
    ClassesOrProbabilities,
    /// Floats of the output's shape: regression (`mse`, `l1`, `huber`), multi-label
    /// (`bce_with_logits` with 0/1 targets) and distribution losses.
    Floats,
}

impl LossTargets {
    /// Whether integer class indices are accepted.
    pub fn takes_classes(self) -> bool {
        matches!(self, LossTargets::Classes | LossTargets::ClassesOrProbabilities)
    }
}

/// One tensor a loss takes, under PyTorch's name for the argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossArg {
    /// PyTorch's argument name (`input`, `target`, `input1`, `anchor`, `var`, ...).
    pub name: &'static str,
    /// Whether the loss is differentiable in it: a model's outputs (and `var`) are, targets
    /// are not. Parity files check the gradient `grad_<name>` of each of these.
    pub grad: bool,
}

impl LossArg {
    /// `input` (differentiable) and `target`: the arguments of [`Loss::forward`], and of
    /// every loss that does not say otherwise.
    pub const INPUT_TARGET: &'static [LossArg] = &[LossArg::grad("input"), LossArg::data("target")];

    /// An argument the loss is differentiable in.
    pub const fn grad(name: &'static str) -> Self {
        LossArg { name, grad: true }
    }

    /// An argument without a gradient (a target, labels).
    pub const fn data(name: &'static str) -> Self {
        LossArg { name, grad: false }
    }

    /// The names, comma-separated (`anchor, positive, negative`), for messages.
    pub fn names(args: &[LossArg]) -> String {
        args.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
    }
}

/// A training objective comparing a model's output with a target, or, for a loss of
/// other tensors ([`Loss::arguments`]: `margin_ranking`, `triplet_margin`, ...), computed
/// from those by [`Loss::forward_args`].
pub trait Loss: Send + Sync + Debug {
    /// The loss of a model's output and a target: 0-d unless the plugin's `reduction` is
    /// `none`. A loss of other arguments refuses it, naming them.
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor>;

    /// The targets the loss takes; floats of the output's shape unless it says otherwise.
    fn targets(&self) -> LossTargets {
        LossTargets::Floats
    }

    /// The tensors the loss takes, in order, under PyTorch's names: `input` and `target`
    /// ([`LossArg::INPUT_TARGET`]) unless the loss says otherwise.
    fn arguments(&self) -> &'static [LossArg] {
        LossArg::INPUT_TARGET
    }

    /// The loss of its [`Loss::arguments`], given in that order. The default, for a loss of
    /// an input and a target, is [`Loss::forward`].
    fn forward_args(&self, args: &[&Tensor]) -> Result<Tensor> {
        match args {
            [input, target] => self.forward(input, target),
            _ => Err(Error::input(format!(
                "the loss takes {} tensors ({}), got {}",
                self.arguments().len(),
                LossArg::names(self.arguments()),
                args.len()
            ))),
        }
    }
}

/// A learning-rate schedule over the optimizer's parameter groups.
pub trait Scheduler: Send + Sync + Debug {
    /// Called once with the groups' configured learning rates; may change them (as
    /// PyTorch's `LinearLR` and `OneCycleLR` do when they are constructed).
    fn init(&mut self, lrs: &mut [f64]) -> Result<()>;

    /// Starts the schedule after another one already moved the rates (inside `chained`,
    /// as PyTorch's `ChainedScheduler` constructs its schedules one after another on the
    /// same optimizer): `base` holds the groups' configured rates, which PyTorch keeps as
    /// every schedule's base (`initial_lr`), and `lrs` the rates now in effect, which the
    /// schedule's first step updates. The default, [`Scheduler::init`] on `lrs`, is right
    /// for schedules that never read their base rates.
    fn init_with_base(&mut self, base: &[f64], lrs: &mut [f64]) -> Result<()> {
        let _ = base;
        self.init(lrs)
    }

    /// Advances one step (PyTorch's `scheduler.step()`), updating `lrs` in place.
    /// `metric` is the monitored value for metric-driven schedules.
    fn step(&mut self, lrs: &mut [f64], metric: Option<f64>) -> Result<()>;

    /// Whether [`Scheduler::step`] needs a `metric` (e.g. `reduce_on_plateau`).
    fn needs_metric(&self) -> bool {
        false
    }

    /// Whether the schedule also sets each group's momentum (`one_cycle` with
    /// `cycle_momentum`, as PyTorch's default): the driver then hands
    /// [`Scheduler::momentum`] to every step as [`crate::StepContext::momentum`], and
    /// refuses optimizers without a `momentum` or `betas` key, as PyTorch does.
    fn cycles_momentum(&self) -> bool {
        false
    }

    /// The momentum (or `betas[0]`) for `group` at the current step, when the schedule
    /// sets it; read after [`Scheduler::init`], each [`Scheduler::step`] and
    /// [`Scheduler::load_state`].
    fn momentum(&self, _group: usize) -> Option<f64> {
        None
    }

    /// Everything needed to resume the schedule.
    fn state(&self) -> State;

    /// Restores what [`Scheduler::state`] saved.
    fn load_state(&mut self, state: &State) -> Result<()>;
}

/// How a regularizer acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegularizerRole {
    /// A term added to the loss (`l1`, `l2`, `elastic_net`).
    Penalty,
    /// A projection of the weights after each optimizer step (`max_norm`).
    Constraint,
    /// A random transform of activations in training mode (`dropout`).
    Noise,
}

/// A way to fight overfitting: a penalty, a constraint or noise.
/// A plugin implements the method that matches its [`Regularizer::role`].
pub trait Regularizer: Send + Sync + Debug {
    fn role(&self) -> RegularizerRole;

    /// The penalty for one weight tensor (0-d), differentiable.
    fn penalty(&self, _weight: &Tensor) -> Result<Tensor> {
        Err(Error::input(format!("a {:?} regularizer has no penalty", self.role())))
    }

    /// The weight after the constraint is applied.
    fn constrain(&self, _weight: &Tensor) -> Result<Tensor> {
        Err(Error::input(format!("a {:?} regularizer is not a constraint", self.role())))
    }

    /// The transformed activations; identity unless `train`. `seed` makes the noise
    /// reproducible: the caller passes a fresh seed for every call.
    fn noise(&self, _input: &Tensor, _train: bool, _seed: u64) -> Result<Tensor> {
        Err(Error::input(format!("a {:?} regularizer adds no noise", self.role())))
    }
}
