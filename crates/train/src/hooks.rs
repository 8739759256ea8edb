//! User code inside the Learner's loop without forking it: a custom training step
//! (Lightning's `training_step`) and callbacks at step and epoch ends.

use candle_core::Tensor;
use ember_core::{Error, Loss, Module, Result};
use ember_nn::Context;

use crate::learner::EpochRecord;
use crate::optim::OptimizerDriver;

/// What a custom step receives: the model, one training batch (on the run's device, inputs
/// in the run's dtype), the forward-pass context (training mode, this batch's dropout
/// seed) and the run's loss.
pub struct StepArgs<'a> {
    pub model: &'a dyn Module,
    pub inputs: &'a Tensor,
    pub targets: &'a Tensor,
    /// Pass it to every forward call of this step (dropout draws from it).
    pub ctx: &'a mut Context,
    /// The loss the run was given (`loss = "..."`), to combine with the step's own terms.
    /// A loss of other tensors than an output and a target (`triplet_margin`,
    /// `gaussian_nll`, ...) is called with `loss.forward_args(&[...])`, its arguments in
    /// the order `loss.arguments()` names them.
    pub loss: &'a dyn Loss,
}

/// What a custom step returns.
pub struct StepOutput {
    /// The scalar to minimise. The Learner adds the regularizers' penalty, scales it for
    /// gradient accumulation, backpropagates, clips and steps the optimizer.
    pub loss: Tensor,
    /// The model's main output `[N, ...]`, when the step has one: it gives `train_acc`
    /// for class targets. Without it `train_acc` is not computed.
    pub output: Option<Tensor>,
}

impl StepOutput {
    /// A step that returns only its loss.
    pub fn loss(loss: Tensor) -> Self {
        StepOutput { loss, output: None }
    }

    /// A step that returns its loss and the model's main output.
    pub fn with_output(loss: Tensor, output: Tensor) -> Self {
        StepOutput { loss, output: Some(output) }
    }
}

/// A custom training step. Evaluation still runs the model's `forward` and the run's loss
/// (and metrics) on the evaluation set.
pub trait TrainStep: Send {
    fn step(&mut self, args: StepArgs<'_>) -> Result<StepOutput>;
}

impl<F> TrainStep for F
where
    F: FnMut(StepArgs<'_>) -> Result<StepOutput> + Send,
{
    fn step(&mut self, args: StepArgs<'_>) -> Result<StepOutput> {
        self(args)
    }
}

/// Where the loop is when a step ends.
#[derive(Clone, Debug, PartialEq)]
pub struct StepEnd {
    /// The epoch being trained, from 1.
    pub epoch: usize,
    /// Optimizer steps taken so far in the run (this one included).
    pub step: u64,
    /// The batch of this epoch that completed the step, from 1, and the epoch's batches.
    pub batch: usize,
    pub batches: usize,
    /// The loss of that batch (before regularization).
    pub loss: f64,
}

/// What a callback may change: the learning rates, and whether training goes on.
pub struct Control<'a> {
    pub(crate) optimizer: &'a mut OptimizerDriver,
    pub(crate) stop: &'a mut bool,
}

impl Control<'_> {
    /// The learning rate of each parameter group.
    pub fn lrs(&self) -> &[f64] {
        self.optimizer.lrs()
    }

    /// Sets the learning rate of parameter group `group` (0 is the default group). A
    /// scheduler, if the run has one, still applies its own rule at its next step.
    pub fn set_lr(&mut self, group: usize, lr: f64) -> Result<()> {
        let n = self.optimizer.lrs().len();
        if !lr.is_finite() || lr < 0.0 {
            return Err(Error::input(format!("set_lr({group}, {lr}): the learning rate must be a finite number >= 0")));
        }
        match self.optimizer.lrs_mut().get_mut(group) {
            Some(slot) => {
                *slot = lr;
                Ok(())
            }
            None => Err(Error::input(format!("set_lr({group}, {lr}): the run has {n} parameter groups (0..{n})"))),
        }
    }

    /// Stops training after the current epoch (its checkpoint is written; a resume
    /// reports the run as stopped early).
    pub fn stop(&mut self) {
        *self.stop = true;
    }
}

/// User code at step and epoch ends. Both methods default to doing nothing.
pub trait Callback: Send {
    /// After each optimizer step.
    fn on_step_end(&mut self, _step: &StepEnd, _control: &mut Control<'_>) -> Result<()> {
        Ok(())
    }

    /// After each epoch's evaluation, before its checkpoint is written (so a learning
    /// rate set here is saved with it).
    fn on_epoch_end(&mut self, _record: &EpochRecord, _control: &mut Control<'_>) -> Result<()> {
        Ok(())
    }
}

/// A callback from a closure run after each epoch.
pub fn on_epoch_end<F>(f: F) -> impl Callback
where
    F: FnMut(&EpochRecord, &mut Control<'_>) -> Result<()> + Send,
{
    struct EpochEnd<F>(F);
    impl<F: FnMut(&EpochRecord, &mut Control<'_>) -> Result<()> + Send> Callback for EpochEnd<F> {
        fn on_epoch_end(&mut self, record: &EpochRecord, control: &mut Control<'_>) -> Result<()> {
            (self.0)(record, control)
        }
    }
    EpochEnd(f)
}

/// A callback from a closure run after each optimizer step.
pub fn on_step_end<F>(f: F) -> impl Callback
where
    F: FnMut(&StepEnd, &mut Control<'_>) -> Result<()> + Send,
{
    struct StepEndFn<F>(F);
    impl<F: FnMut(&StepEnd, &mut Control<'_>) -> Result<()> + Send> Callback for StepEndFn<F> {
        fn on_step_end(&mut self, step: &StepEnd, control: &mut Control<'_>) -> Result<()> {
            (self.0)(step, control)
        }
    }
    StepEndFn(f)
}
