"""Helpers shared by the fixture generators in this folder (ember-parity/1 files)."""
import json
import math
import os

import torch


def enc(v):
    """A tensor as nested lists, non-finite values as the strings PARITY.md names."""
    if isinstance(v, torch.Tensor):
        v = v.detach().tolist()
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


def write(here, name, script, cases):
    """Writes `name` beside the generator, recording the torch version and the script."""
    doc = {"format": "ember-parity/1", "source": f"torch {torch.__version__}, tests/parity/{script}", "cases": cases}
    with open(os.path.join(here, name), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to tests/parity/{name}")
