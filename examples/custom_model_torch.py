"""Loads the weights `cargo run --example custom_model -- --export W.safetensors` wrote
into the same model written with torch.nn, strictly, and checks its logits on the probe
images saved beside them (W.probe.safetensors) against Ember's.

    python examples/custom_model_torch.py model.safetensors

Needs torch and safetensors (pip install torch safetensors).
"""

import sys

import torch
from safetensors.torch import load_file
from torch import nn


class TwoBranch(nn.Module):
    """examples/custom_model.rs's model: a wide ReLU branch and a narrow tanh branch,
    concatenated before the classifier, and an auxiliary classifier on the narrow one."""

    def __init__(self):
        super().__init__()
        self.wide = nn.Linear(784, 128)
        self.narrow = nn.Linear(784, 32)
        self.head = nn.Linear(160, 10)
        self.aux = nn.Linear(32, 10)

    def forward(self, x):
        x = x.flatten(1)
        narrow = torch.tanh(self.narrow(x))
        return self.head(torch.cat([torch.relu(self.wide(x)), narrow], 1))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "model.safetensors"
    model = TwoBranch()
    model.load_state_dict(load_file(path), strict=True)
    model.eval()
    probe = load_file(path.removesuffix(".safetensors") + ".probe.safetensors")
    with torch.no_grad():
        logits = model(probe["inputs"])
    diff = (logits - probe["logits"]).abs().max().item()
    print(f"loaded {path} strictly; max |torch - ember| logit difference on {len(logits)} images: {diff:.3g}")
    assert diff < 1e-4, diff
    assert (logits.argmax(1) == probe["logits"].argmax(1)).all()
    print("ok")


if __name__ == "__main__":
    main()
