#!/usr/bin/python3
"""Weights and inputs for the worked example (no downloads): a seeded TinyNet's initial weights, lightly fitted
to a synthetic task so the activations are not those of a random network, and seeded 16x16 inputs.

    /usr/bin/python3 tools/examples/recorder/make_weights.py OUT_DIR [--kwargs JSON] [--count 32]

Writes OUT_DIR/model.safetensors (float32, PyTorch names) and OUT_DIR/inputs.npy (float32 [count, 1, 16, 16]).
Deterministic: one thread, fixed seeds.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # tools/: safetensors_io
sys.path.insert(0, HERE)
from safetensors_io import write_safetensors  # noqa: E402
from tinynet import TinyNet  # noqa: E402

SEED = 20261130


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--kwargs", default="{}")
    parser.add_argument("--count", type=int, default=32, help="number of inputs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    model = TinyNet(**json.loads(args.kwargs))
    # A synthetic task: the class is which of 10 horizontal bands is brightest. 100 Adam steps are enough for the
    # layers to carry structure (sharp, sparse ReLU patterns) rather than noise.
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        x = torch.rand(64, 1, 16, 16, generator=generator)
        y = x[:, 0, :10, :].mean(-1).argmax(-1)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    os.makedirs(args.out_dir, exist_ok=True)
    write_safetensors(os.path.join(args.out_dir, "model.safetensors"),
                      {name: t.detach().numpy() for name, t in model.state_dict().items()})
    inputs = torch.rand(args.count, 1, 16, 16, generator=torch.Generator().manual_seed(SEED + 1)).numpy()
    np.save(os.path.join(args.out_dir, "inputs.npy"), inputs)
    print(f"wrote {args.out_dir}/model.safetensors and inputs.npy {list(inputs.shape)}")


if __name__ == "__main__":
    main()
