#!/usr/bin/env python3
"""Trains the seed's dropout MLP on Fashion-MNIST in PyTorch with Ember's main-job recipe,
for a side-by-side comparison with `ember train`: MLP 784-256-256-10, ReLU, dropout 0.2
and 0.5, cross-entropy, SGD lr 0.5, batch 256, shuffled each epoch, 10 epochs, evaluated
on the test split. Reads the same four IDX .gz files. Prints one line per epoch and a
final JSON object with the test accuracy and the median seconds per epoch.

    python3 bench/torch_mlp.py --data-dir DIR [--epochs 10] [--no-dropout]
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
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--lr", type=float, default=0.5)
parser.add_argument("--no-dropout", action="store_true")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()


def idx(name):
    path = os.path.join(args.data_dir, name)
    opener = gzip.open if os.path.exists(path + ".gz") else open
    with opener(path + ".gz" if os.path.exists(path + ".gz") else path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return torch.frombuffer(bytearray(data[4 + 4 * rank:]), dtype=torch.uint8).reshape(dims)


torch.manual_seed(args.seed)
x = idx("train-images-idx3-ubyte").float() / 255
y = idx("train-labels-idx1-ubyte").long()
xt = idx("t10k-images-idx3-ubyte").float() / 255
yt = idx("t10k-labels-idx1-ubyte").long()
p1, p2 = (0.0, 0.0) if args.no_dropout else (0.2, 0.5)
model = torch.nn.Sequential(
    torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Dropout(p1),
    torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Dropout(p2), torch.nn.Linear(256, 10),
)
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
loss_fn = torch.nn.CrossEntropyLoss()
seconds = []
acc = 0.0
for epoch in range(args.epochs):
    start = time.perf_counter()
    model.train()
    order = torch.randperm(len(x))
    total, correct = 0.0, 0
    for i in range(0, len(x), args.batch_size):
        idx_b = order[i:i + args.batch_size]
        out = model(x[idx_b])
        loss = loss_fn(out, y[idx_b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(idx_b)
        correct += (out.argmax(1) == y[idx_b]).sum().item()
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    seconds.append(time.perf_counter() - start)
    print(f"epoch {epoch + 1}/{args.epochs}  train_loss {total / len(x):.4f}  train_acc {correct / len(x):.4f}  "
          f"eval_acc {acc:.4f}  {seconds[-1]:.2f}s", flush=True)
print(json.dumps({"framework": f"torch {torch.__version__}", "threads": torch.get_num_threads(), "epochs": args.epochs,
                  "dropout": not args.no_dropout, "eval_acc": acc,
                  "seconds_per_epoch": statistics.median(seconds[1:] or seconds)}))
