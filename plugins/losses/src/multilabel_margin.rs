//! `multilabel_margin`: the multi-label hinge loss on class scores and lists of target
//! classes (PyTorch `nn.MultiLabelMarginLoss`).

use candle_core::Tensor;
use ember_core::ops::pointwise::check_float;
use ember_core::{Error, Hyperparams, Loss, Result};

use crate::inputs::{frames_and_classes, host_values};
use crate::reduction::Reduction;

/// For scores x of shape (N, C) or (C) and a target of the same shape whose rows list the
/// sample's target classes, padded with -1 after the last (`[3, 0, -1, -1]`: classes 3
/// and 0; entries after the first -1 are ignored): per sample,
/// `Σ_{j target} Σ_{i not a target} max(0, 1 - (x[j] - x[i])) / C`; then `reduction` over
/// the N samples (`none` gives N values, or a 0-d loss for a (C) input). A term counts
/// only where `1 - x[j] + x[i] > 0`, as PyTorch's. The target may be an integer tensor or
/// floats holding whole numbers. Pair it with raw scores (no sigmoid).
#[derive(Clone, Copy, Debug, Default, PartialEq, Hyperparams)]
#[plugin(
    loss = "multilabel_margin",
    summary = "multi-label hinge loss over (target, non-target) class pairs; targets are class indices padded with -1 (nn.MultiLabelMarginLoss)"
)]
pub struct MultilabelMargin {
    /// none: per-sample losses; mean; sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Loss for MultilabelMargin {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        const NAME: &str = "multilabel_margin";
        check_float(NAME, input)?;
        let (frames, classes) = frames_and_classes(NAME, input)?;
        if target.dims() != input.dims() {
            return Err(Error::input(format!(
                "{NAME}: input shape {:?} and target shape {:?} differ; the target has the input's shape, each row listing target classes padded with -1",
                input.dims(),
                target.dims()
            )));
        }
        // Each sample's target classes (up to its first -1) and which classes are targets.
        let values = host_values(target)?;
        let mut lists: Vec<Vec<u32>> = Vec::with_capacity(frames);
        let mut non_target = vec![1u8; frames * classes];
        let at = |n: usize, j: usize| if input.rank() == 2 { format!("[{n}, {j}]") } else { format!("[{j}]") };
        for (n, row) in values.chunks(classes).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if v.fract() != 0.0 || !v.is_finite() {
                    return Err(Error::input(format!(
                        "{NAME}: target value {v} at {} is not a class index; targets hold class indices (whole numbers) padded with -1",
                        at(n, j)
                    )));
                }
                if v < -1.0 || v >= classes as f64 {
                    return Err(Error::input(format!(
                        "{NAME}: target value {v} at {} is out of range for {classes} classes; list class indices 0..={} and pad with -1",
                        at(n, j),
                        classes - 1
                    )));
                }
            }
            let list: Vec<u32> = row.iter().take_while(|v| **v >= 0.0).map(|v| *v as u32).collect();
            for &c in &list {
                non_target[n * classes + c as usize] = 0;
            }
            lists.push(list);
        }
        // Pad the lists to one length K, marking the real entries.
        let k = lists.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut index = Vec::with_capacity(frames * k);
        let mut valid = Vec::with_capacity(frames * k);
        for list in &lists {
            for j in 0..k {
                index.push(list.get(j).copied().unwrap_or(0));
                valid.push(u8::from(j < list.len()));
            }
        }
        let device = input.device();
        let x = input.reshape((frames, classes))?.contiguous()?;
        let index = Tensor::from_vec(index, (frames, k), device)?;
        let pairs = (frames, k, classes);
        let valid = Tensor::from_vec(valid, (frames, k, 1), device)?.broadcast_as(pairs)?;
        let non_target = Tensor::from_vec(non_target, (frames, 1, classes), device)?.broadcast_as(pairs)?;
        // z[n, j, i] = 1 - x[n, target j] + x[n, i], in PyTorch's order.
        let z = x.gather(&index, 1)?.affine(-1.0, 1.0)?.unsqueeze(2)?.broadcast_add(&x.unsqueeze(1)?)?;
        let zero = z.zeros_like()?;
        let term = z.gt(0.0)?.where_cond(&z, &zero)?;
        let term = non_target.where_cond(&term, &zero)?;
        let term = valid.where_cond(&term, &zero)?;
        let per_sample = term.sum(2)?.sum(1)?.affine(1.0 / classes as f64, 0.0)?;
        // PyTorch gives a 0-d loss for a (C) input, whatever the reduction.
        let per_sample = if input.rank() < 2 { per_sample.reshape(())? } else { per_sample };
        self.reduction.apply(per_sample)
    }
}
