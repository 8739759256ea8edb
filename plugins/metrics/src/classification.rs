//! Classification metrics over class indices (the prediction is the output's argmax) or
//! multi-label 0/1 targets (a label is predicted where the output exceeds `threshold`).
//! They accumulate per-class counts of true positives, false positives and false
//! negatives, and score them as scikit-learn does.

use candle_core::Tensor;
use ember_core::metric::{targets_of, values, Direction, Metric, MetricState, Targets};
use ember_core::{check, Error, Hyperparams, ParamEnum, Result};

/// How per-class scores combine (scikit-learn's `average`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ParamEnum)]
pub enum Average {
    /// The score of class 1 alone; the data may hold classes 0 and 1 only.
    #[default]
    Binary,
    /// From the counts summed over the classes.
    Micro,
    /// The unweighted mean of the per-class scores.
    Macro,
    /// The mean of the per-class scores weighted by each class's true count (support).
    Weighted,
}

/// The fraction of examples predicted right (`accuracy_score`): the argmax equals the
/// class index, or, for multi-label targets, every label of the row is right.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(metric = "accuracy", summary = "fraction of examples predicted right (sklearn accuracy_score)")]
pub struct Accuracy {
    /// multi-label targets: a label is predicted where the output is > threshold (0 for logits, 0.5 for probabilities)
    #[param(default = 0.0, check = check::finite)]
    pub threshold: f64,
}

impl Metric for Accuracy {
    fn direction(&self) -> Direction {
        Direction::Max
    }

    fn start(&self) -> Box<dyn MetricState> {
        Box::new(Scored { counts: Counts::new("accuracy", self.threshold), score: Score::Accuracy })
    }
}

/// Precision `tp / (tp + fp)` (`precision_score`), recall `tp / (tp + fn)`
/// (`recall_score`) and F1 `2·tp / (2·tp + fp + fn)` (`f1_score`), per class, combined
/// by `average`: one set of options, registered three times.
#[allow(clippy::duplicated_attributes)]
#[derive(Clone, Debug, Hyperparams)]
#[plugin(metric = "precision", summary = "tp / (tp + fp), averaged over classes (sklearn precision_score)", set(ratio = Ratio::Precision))]
#[plugin(metric = "recall", summary = "tp / (tp + fn), averaged over classes (sklearn recall_score)", set(ratio = Ratio::Recall))]
#[plugin(metric = "f1", summary = "2 tp / (2 tp + fp + fn), averaged over classes (sklearn f1_score)", set(ratio = Ratio::F1))]
pub struct ClassScore {
    /// how class scores combine: "binary" (class 1), "micro", "macro" or "weighted"
    #[param(default = "binary")]
    pub average: Average,
    #[param(doc = "score this class (or label column) alone, overriding average")]
    pub label: Option<usize>,
    /// the score of a class whose ratio is 0/0 (nothing predicted, or nothing true)
    #[param(default = 0.0, check = check::probability)]
    pub zero_division: f64,
    /// multi-label targets: a label is predicted where the output is > threshold
    #[param(default = 0.0, check = check::finite)]
    pub threshold: f64,
    /// Which ratio: set by the registration.
    #[param(skip)]
    pub ratio: Ratio,
}

impl Metric for ClassScore {
    fn direction(&self) -> Direction {
        Direction::Max
    }

    fn start(&self) -> Box<dyn MetricState> {
        let score = Score::Averaged {
            kind: self.ratio,
            average: self.average,
            label: self.label,
            zero_division: self.zero_division,
        };
        Box::new(Scored { counts: Counts::new(self.ratio.name(), self.threshold), score })
    }
}

/// The fraction of examples whose class is among the `k` highest scores
/// (`top_k_accuracy_score`): of tied scores, the higher class index ranks first, as
/// scikit-learn's stable sort, reversed, orders them.
#[derive(Clone, Debug, Hyperparams)]
#[plugin(
    metric = "top_k_accuracy",
    summary = "fraction of examples whose class is among the k highest scores (sklearn top_k_accuracy_score)"
)]
pub struct TopKAccuracy {
    /// how many of the highest scores count
    #[param(default = 2, check = check::at_least(1))]
    pub k: usize,
}

impl Metric for TopKAccuracy {
    fn direction(&self) -> Direction {
        Direction::Max
    }

    fn start(&self) -> Box<dyn MetricState> {
        Box::new(TopK { k: self.k, hits: 0, rows: 0 })
    }
}

#[derive(Debug)]
struct TopK {
    k: usize,
    hits: u64,
    rows: u64,
}

impl MetricState for TopK {
    fn update(&mut self, output: &Tensor, target: &Tensor) -> Result<()> {
        let classes = match targets_of("top_k_accuracy", output, target)? {
            Targets::Classes { classes } => classes,
            Targets::Floats { .. } => {
                return Err(Error::input(
                    "top_k_accuracy: needs class-index targets (integers); multi-label and regression targets have no ranking of one true class",
                ))
            }
        };
        let (scores, truth) = (values(output)?, class_indices("top_k_accuracy", target, classes)?);
        for (row, &y) in scores.chunks(classes.max(1)).zip(&truth) {
            let s = row[y];
            // The rank of y among the classes sorted by score, descending, ties broken
            // toward the higher index.
            let ahead = row.iter().enumerate().filter(|&(j, &v)| v > s || (v == s && j > y)).count();
            self.hits += u64::from(ahead < self.k);
        }
        self.rows += truth.len() as u64;
        Ok(())
    }

    fn value(&self) -> Result<f64> {
        Ok(ratio(self.hits as f64, self.rows as f64, f64::NAN))
    }
}

/// `num / den`, or `zero` when `den` is 0.
fn ratio(num: f64, den: f64, zero: f64) -> f64 {
    if den == 0.0 {
        zero
    } else {
        num / den
    }
}

/// Class indices from a target tensor, each checked against the number of classes.
fn class_indices(metric: &str, target: &Tensor, classes: usize) -> Result<Vec<usize>> {
    values(target)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            if v >= 0.0 && (v as usize) < classes {
                Ok(v as usize)
            } else {
                Err(Error::input(format!(
                    "{metric}: target {i} is class {v}, outside 0..{classes} (the output's scores per example); check the labels or the last layer's size"
                )))
            }
        })
        .collect()
}

/// The first index of the largest value (NaN counts as largest, as NumPy's argmax).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate().skip(1) {
        let b = row[best];
        if !b.is_nan() && (v > b || v.is_nan()) {
            best = j;
        }
    }
    best
}

/// Per-class counts over a data set.
#[derive(Debug)]
struct Counts {
    metric: &'static str,
    threshold: f64,
    /// Fixed by the first batch: multi-label (0/1 float targets) or class indices.
    multilabel: Option<bool>,
    tp: Vec<u64>,
    fp: Vec<u64>,
    fn_: Vec<u64>,
    rows: u64,
    /// Multi-label: rows with every label right.
    exact: u64,
}

impl Counts {
    fn new(metric: &'static str, threshold: f64) -> Self {
        Counts { metric, threshold, multilabel: None, tp: vec![], fp: vec![], fn_: vec![], rows: 0, exact: 0 }
    }

    fn width(&mut self, multilabel: bool, width: usize) -> Result<()> {
        match self.multilabel {
            None => {
                self.multilabel = Some(multilabel);
                self.tp = vec![0; width];
                self.fp = vec![0; width];
                self.fn_ = vec![0; width];
            }
            Some(m) if m != multilabel || self.tp.len() != width => {
                return Err(Error::input(format!(
                    "{}: a batch with {} {} after batches with {} {}: every batch of a data set must have the same kind of targets and output width",
                    self.metric,
                    width,
                    if multilabel { "labels" } else { "classes" },
                    self.tp.len(),
                    if m { "labels" } else { "classes" },
                )))
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn add(&mut self, output: &Tensor, target: &Tensor) -> Result<()> {
        match targets_of(self.metric, output, target)? {
            Targets::Classes { classes } => {
                self.width(false, classes)?;
                let (scores, truth) = (values(output)?, class_indices(self.metric, target, classes)?);
                for (row, &y) in scores.chunks(classes.max(1)).zip(&truth) {
                    let p = argmax(row);
                    if p == y {
                        self.tp[y] += 1;
                    } else {
                        self.fp[p] += 1;
                        self.fn_[y] += 1;
                    }
                }
                self.rows += truth.len() as u64;
            }
            Targets::Floats { columns } => {
                self.width(true, columns)?;
                let (scores, truth) = (values(output)?, values(target)?);
                for (i, (row, want)) in scores.chunks(columns).zip(truth.chunks(columns)).enumerate() {
                    let mut all = true;
                    for (j, (&s, &t)) in row.iter().zip(want).enumerate() {
                        if t != 0.0 && t != 1.0 {
                            return Err(Error::input(format!(
                                "{}: multi-label targets are 0 or 1; row {i}, label {j} is {t} (for regression use mae, mse, rmse or r2)",
                                self.metric
                            )));
                        }
                        let (p, t) = (s > self.threshold, t == 1.0);
                        match (p, t) {
                            (true, true) => self.tp[j] += 1,
                            (true, false) => self.fp[j] += 1,
                            (false, true) => self.fn_[j] += 1,
                            (false, false) => {}
                        }
                        all &= p == t;
                    }
                    self.exact += u64::from(all);
                }
                self.rows += (truth.len() / columns.max(1)) as u64;
            }
        }
        Ok(())
    }

    /// The classes scikit-learn averages over: for class indices, those that occur as a
    /// truth or a prediction; for multi-label targets, every label.
    fn labels(&self) -> Vec<usize> {
        (0..self.tp.len())
            .filter(|&c| self.multilabel == Some(true) || self.tp[c] + self.fp[c] + self.fn_[c] > 0)
            .collect()
    }
}

/// Which per-class ratio a [`ClassScore`] computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ratio {
    Precision,
    Recall,
    #[default]
    F1,
}

impl Ratio {
    /// The registry name.
    pub fn name(self) -> &'static str {
        match self {
            Ratio::Precision => "precision",
            Ratio::Recall => "recall",
            Ratio::F1 => "f1",
        }
    }

    /// (numerator, denominator) from the counts.
    fn parts(self, tp: u64, fp: u64, fn_: u64) -> (f64, f64) {
        let (tp, fp, fn_) = (tp as f64, fp as f64, fn_ as f64);
        match self {
            Ratio::Precision => (tp, tp + fp),
            Ratio::Recall => (tp, tp + fn_),
            Ratio::F1 => (2.0 * tp, 2.0 * tp + fp + fn_),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Score {
    Accuracy,
    Averaged { kind: Ratio, average: Average, label: Option<usize>, zero_division: f64 },
}

#[derive(Debug)]
struct Scored {
    counts: Counts,
    score: Score,
}

impl MetricState for Scored {
    fn update(&mut self, output: &Tensor, target: &Tensor) -> Result<()> {
        self.counts.add(output, target)
    }

    fn value(&self) -> Result<f64> {
        let c = &self.counts;
        if c.rows == 0 {
            return Ok(f64::NAN);
        }
        let (kind, average, label, zero) = match self.score {
            Score::Accuracy => {
                let right = if c.multilabel == Some(true) { c.exact } else { c.tp.iter().sum() };
                return Ok(right as f64 / c.rows as f64);
            }
            Score::Averaged { kind, average, label, zero_division } => (kind, average, label, zero_division),
        };
        let one = |j: usize| {
            let (n, d) = kind.parts(c.tp[j], c.fp[j], c.fn_[j]);
            ratio(n, d, zero)
        };
        if let Some(j) = label {
            if j >= c.tp.len() {
                return Err(Error::input(format!(
                    "{}: label = {j}, but the output has {} scores per example; use a label in 0..{}",
                    c.metric,
                    c.tp.len(),
                    c.tp.len()
                )));
            }
            return Ok(one(j));
        }
        let labels = c.labels();
        Ok(match average {
            Average::Binary => {
                if c.multilabel == Some(true) || labels.iter().any(|&j| j > 1) {
                    return Err(Error::input(format!(
                        "{}: average = \"binary\" (scikit-learn's default) scores class 1 of a two-class problem, but the data has {}; use average = \"macro\", \"micro\" or \"weighted\", or label = N for one class",
                        c.metric,
                        if c.multilabel == Some(true) {
                            format!("{} labels per example", c.tp.len())
                        } else {
                            format!("class {}", labels.last().copied().unwrap_or(0))
                        }
                    )));
                }
                if c.tp.len() > 1 {
                    one(1)
                } else {
                    zero
                }
            }
            Average::Micro => {
                let sum = |v: &[u64]| labels.iter().map(|&j| v[j]).sum::<u64>();
                let (n, d) = kind.parts(sum(&c.tp), sum(&c.fp), sum(&c.fn_));
                ratio(n, d, zero)
            }
            Average::Macro => labels.iter().map(|&j| one(j)).sum::<f64>() / labels.len() as f64,
            Average::Weighted => {
                let support = |j: usize| (c.tp[j] + c.fn_[j]) as f64;
                let total: f64 = labels.iter().map(|&j| support(j)).sum();
                ratio(labels.iter().map(|&j| one(j) * support(j)).sum(), total, zero)
            }
        })
    }
}
