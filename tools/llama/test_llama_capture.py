#!/usr/bin/env python3
"""Self-test of the golden recorder's capture (run with .build-venv-llama/bin/python; no files written).

1. A module called twice is recorded twice, as NAME and NAME@1, each with the input it read; nothing is overwritten.
2. A module that never runs is reported, not silently missing.
3. A tensor computed between modules is recorded under /intermediates and named as the reader's input.
"""

import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_capture import Capture  # noqa: E402


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.unused = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = self.shared(x)
        h = self.shared(torch.relu(h))
        return self.head(h)


def main():
    torch.manual_seed(0)
    model = Twice()
    x = torch.randn(3, 4)
    cap = Capture(model).run([("/inputs/x", x)], lambda: model(x))
    r = cap.records
    assert cap.calls == {"shared": 2, "head": 1}, cap.calls
    assert cap.not_run == ["unused"], cap.not_run
    assert r["/activations/shared"]["inputs"] == ["/inputs/x"]
    assert r["/activations/shared@1"]["inputs"] == ["/intermediates/shared.input"], r["/activations/shared@1"]
    assert r["/activations/head"]["inputs"] == ["/activations/shared@1"]
    with torch.no_grad():
        first = model.shared(x)
        second = model.shared(torch.relu(first))
    assert torch.equal(torch.from_numpy(r["/activations/shared"]["array"]), first)
    assert torch.equal(torch.from_numpy(r["/activations/shared@1"]["array"]), second)
    assert torch.equal(torch.from_numpy(r["/intermediates/shared.input"]["array"]), torch.relu(first))
    print("capture self-test: 3 checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
