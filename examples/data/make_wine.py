"""Writes wine.csv, the wine recognition data, from the copy distributed with
scikit-learn (sklearn/datasets/data/wine_data.csv, read by load_wine; originally the
UCI Machine Learning Repository's Wine data, Forina, M. et al., PARVUS, Institute of
Pharmaceutical and Food Analysis and Technologies, Genoa).

scikit-learn's file is not a plain CSV: its first line is a count header
("178,13,class_0,class_1,class_2") and the class is a number. wine.csv has one header
line of column names (the 13 feature names load_wine gives, then `cultivar`) and the
class as its name (class_0, class_1, class_2, load_wine's target_names), so the label
column is read as text and mapped to class indices in sorted order. Each value is
written as the shortest decimal that reads back as the same float, without a trailing
".0": 127.0 is written 127, 14.23 stays 14.23.

Run: python examples/data/make_wine.py  (needs numpy and scikit-learn)
"""

import csv
import sys
from pathlib import Path

from sklearn.datasets import load_wine


def number(x):
    """The shortest decimal for the float x, with no trailing ".0"."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def main():
    data = load_wine()
    x, y = data.data, data.target
    columns = list(data.feature_names) + ["cultivar"]
    names = [str(n) for n in data.target_names]
    assert x.shape == (178, 13), x.shape
    assert y.shape == (178,), y.shape
    assert names == ["class_0", "class_1", "class_2"], names
    assert columns[0] == "alcohol" and columns[12] == "proline", columns
    out = Path(__file__).resolve().parent / "wine.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for features, target in zip(x, y):
            w.writerow([number(v) for v in features] + [names[target]])
    # Every value reads back as the same float, every label as the same class.
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == columns
    assert len(rows) == 179
    for row, features, target in zip(rows[1:], x, y):
        assert [float(v) for v in row[:-1]] == list(features), row
        assert row[-1] == names[target], row
    counts = {n: sum(r[-1] == n for r in rows[1:]) for n in names}
    assert counts == {"class_0": 59, "class_1": 71, "class_2": 48}, counts
    print(f"wrote {out} ({len(rows) - 1} rows)", file=sys.stderr)


if __name__ == "__main__":
    main()
