//! Ember's built-in losses, registered by name with PyTorch's options, defaults and
//! numerics: `l1`, `mse`, `smooth_l1`, `huber`, `nll`, `cross_entropy`, `bce`,
//! `bce_with_logits`, `soft_margin`, `multilabel_soft_margin`, `kl_div`, `poisson_nll`,
//! `hinge_embedding`, `multi_margin`, `multilabel_margin`; and four losses of three
//! tensors each, which a training step calls through
//! [`Loss::forward_args`](ember_core::Loss::forward_args): `gaussian_nll` (input, target,
//! var), `margin_ranking` and `cosine_embedding` (input1, input2, target) and
//! `triplet_margin` (anchor, positive, negative); and `ctc` (log_probs, targets,
//! input_lengths, target_lengths), also through `forward_args`. Every loss takes
//! `reduction` = none | mean | sum (default mean; `kl_div` also `batchmean`).
//!
//! Which output activation goes with which loss:
//!
//! | model output | loss |
//! |---|---|
//! | raw scores (logits) | `cross_entropy` (applies log-softmax itself) |
//! | `log_softmax` | `nll` |
//! | `sigmoid` probabilities | `bce` |
//! | raw scores, one per label | `bce_with_logits` (applies the sigmoid itself) |
//! | raw scores, one class per sample | `multi_margin` (hinge; class-index targets) |
//! | raw scores, several classes per sample | `multilabel_margin` (hinge; class lists padded with -1) |
//! | raw log-rates of counts | `poisson_nll` (or a rate from `softplus` with `log_input = false`) |
//! | a distance between two embeddings | `hinge_embedding` (targets 1 similar, -1 dissimilar) |
//! | a mean and a variance (softplus) | `gaussian_nll` (input, target, var) |
//! | two scores to rank | `margin_ranking` (input1, input2, target 1 or -1) |
//! | two embeddings | `cosine_embedding` (input1, input2, target 1 similar or -1 dissimilar) |
//! | three embeddings | `triplet_margin` (anchor, positive, negative) |
//! | `log_softmax` per frame, label sequences | `ctc` (log_probs (T, N, C), targets, input_lengths, target_lengths) |
//!
//! A program gets these registrations by linking the crate: the `ember` facade does;
//! otherwise write `use ember_losses as _;`.

mod bce;
mod bce_with_logits;
mod class_index;
mod cosine_embedding;
mod cross_entropy;
mod ctc;
mod gaussian_nll;
mod hinge_embedding;
mod huber;
mod inputs;
mod kl_div;
mod l1;
mod margin_ranking;
mod mse;
mod multi_margin;
mod multilabel_margin;
mod multilabel_soft_margin;
mod nll;
mod poisson_nll;
mod reduction;
mod smooth_l1;
mod soft_margin;
mod triplet_margin;

pub use bce::Bce;
pub use bce_with_logits::BceWithLogits;
pub use cosine_embedding::CosineEmbedding;
pub use cross_entropy::CrossEntropy;
pub use ctc::Ctc;
pub use gaussian_nll::GaussianNll;
pub use hinge_embedding::HingeEmbedding;
pub use huber::Huber;
pub use kl_div::{KlDiv, KlDivReduction};
pub use l1::L1;
pub use margin_ranking::MarginRanking;
pub use mse::Mse;
pub use multi_margin::MultiMargin;
pub use multilabel_margin::MultilabelMargin;
pub use multilabel_soft_margin::MultilabelSoftMargin;
pub use nll::Nll;
pub use poisson_nll::PoissonNll;
pub use reduction::Reduction;
pub use smooth_l1::SmoothL1;
pub use soft_margin::SoftMargin;
pub use triplet_margin::TripletMargin;
