"""Writes diabetes.csv, the diabetes regression data, from the copy distributed with
scikit-learn (Efron, Hastie, Johnstone and Tibshirani (2004), "Least Angle Regression",
Annals of Statistics 32(2)).

The values are the raw, unscaled ones (load_diabetes(scaled=False), the same numbers as
sklearn/datasets/data/diabetes_data_raw.csv.gz and diabetes_target.csv.gz), each written
as the shortest decimal that reads back as the same float, without a trailing ".0":
101.0 is written 101, 4.8598 stays 4.8598.

Run: python examples/data/make_diabetes.py  (needs numpy and scikit-learn >= 1.1)
"""

import csv
import sys
from pathlib import Path

from sklearn.datasets import load_diabetes

COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def number(x):
    """The shortest decimal for the float x, with no trailing ".0"."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def main():
    data = load_diabetes(scaled=False)
    x, y = data.data, data.target
    assert x.shape == (442, 10), x.shape
    assert y.shape == (442,), y.shape
    out = Path(__file__).resolve().parent / "diabetes.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS + ["target"])
        for features, target in zip(x, y):
            w.writerow([number(v) for v in features] + [number(target)])
    # Every value reads back as the same float.
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS + ["target"]
    assert len(rows) == 443
    for row, features, target in zip(rows[1:], x, y):
        assert [float(v) for v in row] == list(features) + [target], row
    print(f"wrote {out} ({len(rows) - 1} rows)", file=sys.stderr)


if __name__ == "__main__":
    main()
