"""Side-by-side acceptance check: Ember against the same MLP recipe in PyTorch on two
real tables (needs numpy and torch; run from the repository root after
`cargo build --release`):

    python examples/tables_torch.py [--seeds 10] [--ember target/release/ember]

For each example config (examples/configs/wine_classification.toml, classification on
examples/data/wine.csv; examples/configs/diabetes_regression.toml, regression on
examples/data/diabetes.csv) one fixed train/test split is drawn (numpy seed 0, 20% of
the rows as test rows, stratified by class for wine) and written to a temporary folder;
the config is rewritten to train on the one and evaluate on the other (`train`/`test`
instead of `path`/`eval_split`). Then for each seed s = 0..K-1:

- Ember: `ember train run.toml --seed s`, reading eval_acc / eval_loss from the last
  row of metrics.csv;
- PyTorch (torch.manual_seed(s)): the same recipe read from the same config: features
  standardised with the training rows' mean and population standard deviation (0 -> 1),
  Linear/ReLU/.../Linear with PyTorch's default initialisation, the same loss
  (cross-entropy or MSE, mean over the batch), Adam with the config's learning rate and
  PyTorch's defaults otherwise, the same epochs and batch size, the training rows
  reshuffled each epoch, the last partial batch kept (Ember's drop_last = false), the
  test rows evaluated after the last epoch.

Prints the means and standard deviations over the seeds (and, for wine, the mean test
cross-entropy, which is not checked) and exits 1 unless the mean test accuracies differ
by at most 1 point and the mean test MSEs by at most 5% (relative to PyTorch's).
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

import numpy as np
import torch
from torch import nn

EXAMPLES = [
    # (config, data file, task)
    ("examples/configs/wine_classification.toml", "examples/data/wine.csv", "classification"),
    ("examples/configs/diabetes_regression.toml", "examples/data/diabetes.csv", "regression"),
]
ACC_POINTS = 1.0  # |accuracy difference| allowed, in percentage points
MSE_RELATIVE = 0.05  # |MSE difference| allowed, relative to PyTorch's


def read_table(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def split(rows, target_col, stratify):
    """One fixed split: (train rows, test rows), 20% test, numpy seed 0; both in file order."""
    rng = np.random.default_rng(0)
    n = len(rows)
    if stratify:
        labels = np.array([r[target_col] for r in rows])
        test = []
        for c in sorted(set(labels)):
            idx = np.flatnonzero(labels == c)
            test.extend(rng.permutation(idx)[: round(0.2 * len(idx))])
    else:
        test = rng.permutation(n)[: round(0.2 * n)]
    is_test = np.zeros(n, bool)
    is_test[np.array(test)] = True
    return [r for r, t in zip(rows, is_test) if not t], [r for r, t in zip(rows, is_test) if t]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def run_config(config_path, data_path, tmp):
    """The example config, rewritten to read tmp/train.csv and tmp/test.csv."""
    text = open(config_path).read()
    old = f'path = "{data_path}"\n'
    assert old in text and "eval_split = 0.2\n" in text, config_path
    text = text.replace(old, f'train = "{tmp}/train.csv"\ntest = "{tmp}/test.csv"\n')
    text = text.replace("eval_split = 0.2\n", "")
    path = os.path.join(tmp, "run.toml")
    open(path, "w").write(text)
    return path, tomllib.loads(text)


def ember(exe, config, seed, tmp):
    out = os.path.join(tmp, f"run-{seed}")
    subprocess.run([exe, "train", config, "--out", out, "--overwrite", "--quiet", "--seed", str(seed)],
                   check=True, capture_output=True)
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))[-1]


def torch_run(cfg, task, x_tr, y_tr, x_te, y_te, seed):
    """The config's recipe in PyTorch: test accuracy (fraction) or test MSE."""
    model_cfg, opt_cfg, train_cfg = cfg["model"], cfg["optimizer"], cfg["train"]
    # The recipe this script reproduces; anything else in the configs would need adding here.
    assert model_cfg.get("activation", "relu") == "relu" and "dropout" not in model_cfg, model_cfg
    assert opt_cfg["name"] == "adam" and set(opt_cfg) == {"name", "lr"}, opt_cfg
    assert "scheduler" not in cfg and "regularizers" not in cfg
    assert train_cfg.get("shuffle", True) and not train_cfg.get("drop_last", False)
    assert train_cfg.get("dtype", "f32") == "f32" and train_cfg.get("accumulate", 1) == 1
    torch.manual_seed(seed)
    sizes = model_cfg["sizes"]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    loss_fn = {"cross_entropy": nn.CrossEntropyLoss(), "mse": nn.MSELoss()}[cfg["loss"]["name"]]
    opt = torch.optim.Adam(model.parameters(), lr=opt_cfg["lr"])
    mean = x_tr.mean(0)
    std = x_tr.std(0)  # population standard deviation (numpy's ddof=0)
    std[std == 0] = 1.0
    xt = torch.tensor((x_tr - mean) / std, dtype=torch.float32)
    xe = torch.tensor((x_te - mean) / std, dtype=torch.float32)
    if task == "classification":
        yt, ye = torch.tensor(y_tr, dtype=torch.long), torch.tensor(y_te, dtype=torch.long)
    else:
        yt = torch.tensor(y_tr, dtype=torch.float32).reshape(-1, 1)
        ye = torch.tensor(y_te, dtype=torch.float32).reshape(-1, 1)
    n, bs = len(xt), train_cfg["batch_size"]
    for _ in range(train_cfg["epochs"]):
        model.train()
        order = torch.randperm(n)
        for start in range(0, n, bs):  # the last partial batch is kept
            idx = order[start:start + bs]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        out = model(xe)
    if task == "classification":
        return (out.argmax(1) == ye).double().mean().item(), loss_fn(out, ye).item()
    return ((out.double() - ye.double()) ** 2).mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..K-1 per framework (default 10)")
    ap.add_argument("--ember", default="target/release/ember", help="the ember binary")
    args = ap.parse_args()
    exe = os.path.abspath(args.ember)
    torch.set_num_threads(1)
    ok = True
    for config_path, data_path, task in EXAMPLES:
        tmp = tempfile.mkdtemp(prefix="ember-tables-")
        header, rows = read_table(data_path)
        cfg0 = tomllib.load(open(config_path, "rb"))
        target = cfg0["data"]["target"]
        t = header.index(target)
        train_rows, test_rows = split(rows, t, stratify=task == "classification")
        write_csv(os.path.join(tmp, "train.csv"), header, train_rows)
        write_csv(os.path.join(tmp, "test.csv"), header, test_rows)
        config, cfg = run_config(config_path, data_path, tmp)
        feats = [i for i in range(len(header)) if i != t]
        x_tr = np.array([[float(r[i]) for i in feats] for r in train_rows])
        x_te = np.array([[float(r[i]) for i in feats] for r in test_rows])
        if task == "classification":
            classes = sorted({r[t] for r in rows})  # sorted, as Ember and LabelEncoder map them
            y_tr = np.array([classes.index(r[t]) for r in train_rows])
            y_te = np.array([classes.index(r[t]) for r in test_rows])
        else:
            y_tr = np.array([float(r[t]) for r in train_rows])
            y_te = np.array([float(r[t]) for r in test_rows])
        ours, theirs, ours_ce, theirs_ce = [], [], [], []
        for s in range(args.seeds):
            last = ember(exe, config, s, tmp)
            if task == "classification":
                ours.append(float(last["eval_acc"]))
                ours_ce.append(float(last["eval_loss"]))
            else:
                ours.append(float(last["eval_loss"]))  # mse: the mean over the test rows
                if "eval_rmse" in last:  # the same number, as a check
                    assert abs(float(last["eval_rmse"]) ** 2 - ours[-1]) <= 1e-4 * ours[-1], last
            result = torch_run(cfg, task, x_tr, y_tr, x_te, y_te, s)
            if task == "classification":
                result, ce = result
                theirs_ce.append(ce)
            theirs.append(result)
        ours, theirs = np.array(ours), np.array(theirs)
        name = os.path.basename(config_path)
        print(f"{name}: {len(train_rows)} train / {len(test_rows)} test rows, {args.seeds} seeds, "
              f"{cfg['train']['epochs']} epochs, batch {cfg['train']['batch_size']}, "
              f"lr {cfg['optimizer']['lr']}, sizes {cfg['model']['sizes']}")
        if task == "classification":
            diff = 100 * (ours.mean() - theirs.mean())
            good = abs(diff) <= ACC_POINTS
            print(f"  test accuracy  ember {100 * ours.mean():.2f}% ± {100 * ours.std():.2f}   "
                  f"torch {100 * theirs.mean():.2f}% ± {100 * theirs.std():.2f}   "
                  f"diff {diff:+.2f} points (allowed ±{ACC_POINTS:g})  {'ok' if good else 'FAIL'}")
            # Not part of the acceptance; a finer comparison when both are near 100%.
            print(f"  test cross-entropy (not checked)  ember {np.mean(ours_ce):.4f} ± {np.std(ours_ce):.4f}   "
                  f"torch {np.mean(theirs_ce):.4f} ± {np.std(theirs_ce):.4f}")
        else:
            rel = ours.mean() / theirs.mean() - 1
            good = abs(rel) <= MSE_RELATIVE
            print(f"  test MSE  ember {ours.mean():.1f} ± {ours.std():.1f}   "
                  f"torch {theirs.mean():.1f} ± {theirs.std():.1f}   "
                  f"diff {100 * rel:+.2f}% (allowed ±{100 * MSE_RELATIVE:g}%)  {'ok' if good else 'FAIL'}")
        print("    ember per seed:", " ".join(f"{v:.4g}" for v in ours))
        print("    torch per seed:", " ".join(f"{v:.4g}" for v in theirs))
        ok &= good
        shutil.rmtree(tmp)
    print("acceptance:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
