"""CSV reading speed: writes a numeric CSV of about 100 MB (a fixed seed; --rows to
change its size), then times pandas' and polars' read_csv on it and prints one JSON line
each; `ember bench table FILE --target y` times Ember's reader on the same file.

    python bench/tables.py --out /tmp/table.csv            # writes the file (once)
    python bench/tables.py --out /tmp/table.csv --time     # pandas and polars
    cargo run --release -- bench table /tmp/table.csv --target y
"""

import argparse
import json
import os
import time

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--rows", type=int, default=500_000)
p.add_argument("--cols", type=int, default=20)
p.add_argument("--time", action="store_true")
p.add_argument("--repeat", type=int, default=3)
a = p.parse_args()

if not os.path.exists(a.out):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.rows, a.cols))
    y = x[:, 0] * 2 - x[:, 1] + rng.normal(scale=0.1, size=a.rows)
    header = ",".join([f"x{i}" for i in range(a.cols)] + ["y"])
    np.savetxt(a.out, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%.9g")
    print(json.dumps({"wrote": a.out, "bytes": os.path.getsize(a.out)}))

if a.time:
    def median(f):
        ts = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return sorted(ts)[len(ts) // 2]

    size = os.path.getsize(a.out)
    import pandas as pd

    s = median(lambda: pd.read_csv(a.out).to_numpy(dtype=np.float32))
    print(json.dumps({"reader": f"pandas {pd.__version__}", "bytes": size, "seconds": s, "mb_per_second": size / 1e6 / s}))
    import polars as pl

    s = median(lambda: pl.read_csv(a.out).to_numpy().astype(np.float32))
    print(json.dumps({"reader": f"polars {pl.__version__}", "bytes": size, "seconds": s, "mb_per_second": size / 1e6 / s}))
