#!/usr/bin/env python3
"""Trains examples/configs/fashion_mnist_cnn.toml's CNN on Fashion-MNIST in PyTorch with
the same recipe, for a side-by-side comparison with `ember bench train` / `ember train`:
Conv2d(1, 16, 3, padding=1), BatchNorm2d, ReLU, MaxPool2d(2), Conv2d(16, 32, 3,
padding=1), BatchNorm2d, ReLU, MaxPool2d(2), Flatten, Linear(32*7*7, 10); cross-entropy,
Adam lr 1e-3, batch 128, shuffled each epoch, 10 epochs, evaluated on the test split (in
batches of the batch size, as Ember does). Reads the same four IDX .gz files. Prints one
line per epoch and a final JSON object with the test accuracy and the median seconds per
epoch (after the first; training plus evaluation, as torch_mlp.py and Ember's epoch
`seconds` count them), the training-only median, and the mean time per phase (after the
first epoch; Ember's `phases` keys, without `output`).

    python3 bench/torch_cnn.py --data-dir DIR [--epochs 10] [--threads N]
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir", required=True)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: PyTorch's)")
args = parser.parse_args()
if args.threads:
    torch.set_num_threads(args.threads)


def idx(name):
    path = os.path.join(args.data_dir, name)
    opener = gzip.open if os.path.exists(path + ".gz") else open
    with opener(path + ".gz" if os.path.exists(path + ".gz") else path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return torch.frombuffer(bytearray(data[4 + 4 * rank:]), dtype=torch.uint8).reshape(dims)


torch.manual_seed(args.seed)
x = (idx("train-images-idx3-ubyte").float() / 255).unsqueeze(1)  # [N, 1, 28, 28]
y = idx("train-labels-idx1-ubyte").long()
xt = (idx("t10k-images-idx3-ubyte").float() / 255).unsqueeze(1)
yt = idx("t10k-labels-idx1-ubyte").long()
nn = torch.nn
model = nn.Sequential(
    nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=args.lr)
loss_fn = nn.CrossEntropyLoss()
PHASES = ("data", "forward", "loss", "backward", "optimizer", "eval")
seconds, train_seconds, phases = [], [], []
acc, eval_loss = 0.0, 0.0
for epoch in range(args.epochs):
    ph = dict.fromkeys(PHASES, 0.0)
    start = time.perf_counter()
    model.train()
    order = torch.randperm(len(x))
    total, correct = 0.0, 0
    for i in range(0, len(x), args.batch_size):
        t0 = time.perf_counter()
        idx_b = order[i:i + args.batch_size]
        xb, yb = x[idx_b], y[idx_b]
        t1 = time.perf_counter()
        out = model(xb)
        t2 = time.perf_counter()
        loss = loss_fn(out, yb)
        t3 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        for k, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            ph[k] += dt
        total += loss.item() * len(idx_b)
        correct += (out.argmax(1) == yb).sum().item()
    train_seconds.append(time.perf_counter() - start)
    t = time.perf_counter()
    model.eval()
    loss_sum, hits = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(xt), args.batch_size):
            out = model(xt[i:i + args.batch_size])
            loss_sum += loss_fn(out, yt[i:i + args.batch_size]).item() * len(out)
            hits += (out.argmax(1) == yt[i:i + args.batch_size]).sum().item()
    eval_loss, acc = loss_sum / len(xt), hits / len(xt)
    ph["eval"] = time.perf_counter() - t
    seconds.append(time.perf_counter() - start)
    phases.append(ph)
    print(f"epoch {epoch + 1}/{args.epochs}  train_loss {total / len(x):.4f}  train_acc {correct / len(x):.4f}  "
          f"eval_loss {eval_loss:.4f}  eval_acc {acc:.4f}  {seconds[-1]:.2f}s (train {train_seconds[-1]:.2f}s)",
          flush=True)
steady = phases[1:] or phases
print(json.dumps({"framework": f"torch {torch.__version__}", "threads": torch.get_num_threads(), "epochs": args.epochs,
                  "model": "cnn", "eval_loss": eval_loss, "eval_acc": acc,
                  "seconds_per_epoch": statistics.median(seconds[1:] or seconds),
                  "train_seconds_per_epoch": statistics.median(train_seconds[1:] or train_seconds),
                  "phases": {k: sum(p[k] for p in steady) / len(steady) for k in PHASES}}))
