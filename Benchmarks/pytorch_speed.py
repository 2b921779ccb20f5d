"""PyTorch (one thread) on the bundled image models, timed like parity-speed: thread CPU time, best of N.

Usage (Debian's python3, which has torch): /usr/bin/python3 Benchmarks/pytorch_speed.py golden
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from parity_models import load_reference  # noqa: E402

torch.set_num_threads(1)
golden = sys.argv[1] if len(sys.argv) > 1 else "golden"
for name in ["fmnist-cnn", "fmnist-mlp"]:
    _, model, _ = load_reference(os.path.join(golden, name))
    for batch in [1, 500]:
        x = torch.rand(batch, 1, 28, 28)
        runs = 200 if batch == 1 else 5
        with torch.no_grad():
            model(x)
            best = float("inf")
            for _ in range(runs):
                t0 = time.thread_time()
                model(x)
                best = min(best, time.thread_time() - t0)
        print(f"{name}  pytorch {torch.__version__} 1 thread  batch {batch:3d}: {best / batch * 1e6:9.1f} µs/image")
