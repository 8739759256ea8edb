#!/usr/bin/env python3
"""Writes metrics.json: Ember's metrics against scikit-learn's functions.

Each case gives a model output and targets, fed to the metric in batches of
`inputs.batch_size` rows (the value must not depend on the batching), and the value
scikit-learn computes from the same numbers:

- class indices: the prediction is the output's argmax (NumPy's: the first maximum);
  `accuracy_score`, `top_k_accuracy_score`, `precision_score`, `recall_score`,
  `f1_score` with `average` micro / macro / weighted / binary, and `labels=[k]` for one
  class;
- multi-label 0/1 targets: a label is predicted where the output exceeds `threshold`;
- regression: `mean_absolute_error`, `mean_squared_error`, `root_mean_squared_error`,
  `r2_score` (`force_finite`), one or several output columns (uniform average).

Inputs are exact in f32, so the f32 and f64 cases share their expected values.

    pip install scikit-learn torch   # torch: parity_common's writer records its version
    python3 tests/parity/gen_metrics.py
"""
import os

import numpy as np
import sklearn
import sklearn.metrics as skm

from parity_common import enc, write

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(19)
cases = []


def f32(a):
    """Values exactly representable in f32."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def case(tag, name, config, output, target, value, batch_size=None):
    for dtype in ("f32", "f64"):
        target_json = enc(target.tolist())
        if np.issubdtype(target.dtype, np.integer):
            target_json = {"dtype": "i64", "data": target_json}  # class indices
        inputs = {"output": enc(output.tolist()), "target": target_json}
        if batch_size is not None:
            inputs["batch_size"] = batch_size
        cases.append({
            "id": f"{name}/{tag}/{dtype}",
            "kind": "metric",
            "name": name,
            "config": config,
            "dtype": dtype,
            "inputs": inputs,
            "expected": {"value": enc(float(value))},
        })


# Class indices: 60 examples, 5 classes, class 4 never true (and rarely predicted), and
# scores rounded to quarters so that ties occur (top-k's tie rule matters).
n, c = 60, 5
scores = f32(np.round(rng.normal(size=(n, c)) * 4) / 4)
truth = rng.integers(0, 4, size=n)
pred = scores.argmax(axis=1)
labels = list(range(c))
case("multiclass", "accuracy", {}, scores, truth, skm.accuracy_score(truth, pred), batch_size=7)
for k in (1, 2, 3):
    value = skm.top_k_accuracy_score(truth, scores, k=k, labels=labels)
    case(f"k{k}", "top_k_accuracy", {"k": k}, scores, truth, value, batch_size=7)
for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
    for average in ("micro", "macro", "weighted"):
        value = fn(truth, pred, average=average, zero_division=0)
        case(f"{average}", name, {"average": average}, scores, truth, value, batch_size=7)
    for label in (0, 2, 4):
        for zero in (0.0, 1.0):
            value = fn(truth, pred, labels=[label], average=None, zero_division=zero)[0]
            case(f"label{label}/zero{zero}", name, {"label": label, "zero_division": zero}, scores, truth, value)

# Two classes: the default average ("binary") scores class 1.
scores2 = f32(rng.normal(size=(40, 2)))
truth2 = rng.integers(0, 2, size=40)
pred2 = scores2.argmax(axis=1)
for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
    case("binary", name, {}, scores2, truth2, fn(truth2, pred2), batch_size=9)

# Multi-label: logits against 0/1 targets (a label predicted where the logit is > 0), and
# probabilities with threshold 0.5; label 3 is rare.
m, labels_n = 50, 4
logits = f32(rng.normal(size=(m, labels_n)) * 2)
targets = (rng.random(size=(m, labels_n)) < [0.5, 0.3, 0.6, 0.05]).astype(np.float64)
predicted = (logits > 0).astype(int)
case("multilabel", "accuracy", {}, logits, targets, skm.accuracy_score(targets, predicted), batch_size=8)
for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
    for average in ("micro", "macro", "weighted"):
        value = fn(targets, predicted, average=average, zero_division=0)
        case(f"multilabel/{average}", name, {"average": average}, logits, targets, value, batch_size=8)
    for label in range(labels_n):
        value = fn(targets[:, label], predicted[:, label], zero_division=0)
        case(f"multilabel/label{label}", name, {"label": label}, logits, targets, value)
probs = f32(1 / (1 + np.exp(-logits)))
value = skm.f1_score(targets, (probs > 0.5).astype(int), average="macro", zero_division=0)
case("multilabel/threshold0.5", "f1", {"average": "macro", "threshold": 0.5}, probs, targets, value, batch_size=8)

# Regression: one column (output [N] and [N, 1]), three columns, an offset that makes the
# targets' mean large against their spread (R²'s sum of squares must stay exact), and a
# constant target (R²'s force_finite).
y = f32(rng.normal(size=45) * 3 + 1)
p = f32(y + rng.normal(size=45))
Y = f32(rng.normal(size=(45, 3)) * [1.0, 10.0, 0.1])
P = f32(Y + rng.normal(size=(45, 3)) * [0.5, 4.0, 0.2])
yo = f32(1000 + rng.normal(size=45))
po = f32(yo + rng.normal(size=45) * 0.5)
fns = {
    "mae": skm.mean_absolute_error,
    "mse": skm.mean_squared_error,
    "rmse": skm.root_mean_squared_error,
    "r2": skm.r2_score,
}
for name, fn in fns.items():
    case("1d", name, {}, p, y, fn(y, p), batch_size=6)
    case("column", name, {}, p.reshape(-1, 1), y, fn(y, p))
    case("3columns", name, {}, P, Y, fn(Y, P), batch_size=6)
    case("offset", name, {}, po, yo, fn(yo, po), batch_size=10)
const = np.full(12, 2.5)
near = f32(const + rng.normal(size=12) * 0.1)
case("constant/finite", "r2", {}, near, const, skm.r2_score(const, near), batch_size=5)
case("constant/exact", "r2", {}, const, const, skm.r2_score(const, const), batch_size=5)
with np.errstate(divide="ignore", invalid="ignore"):
    value = skm.r2_score(const, near, force_finite=False)
case("constant/not_finite", "r2", {"force_finite": False}, near, const, value, batch_size=5)

write(HERE, "metrics.json", "gen_metrics.py", cases)
with open(os.path.join(HERE, "metrics.json")) as f:
    text = f.read()
text = text.replace(', tests/parity/gen_metrics.py"', f', scikit-learn {sklearn.__version__}, tests/parity/gen_metrics.py"', 1)
with open(os.path.join(HERE, "metrics.json"), "w") as f:
    f.write(text)
print(f"{len(cases)} cases")
