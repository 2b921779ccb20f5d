#!/usr/bin/env python3
"""The logits mlx-lm computes for fixed token sequences (run in the mlx-lm venv, .build-venv-mlxlm).

    python tools/llama/mlx_logits.py MLX_DIR TOKENS.bin OUT.bin

TOKENS.bin: int32 B, T, then B*T ids; OUT.bin: float32 [B, T, vocab]. The directory is loaded with mlx_lm.load (the
loader mlx-lm's own generate uses) and the whole batch runs as one causal forward pass without a cache, on MLX's CPU
device; the logits are cast to float32 only after MLX computed them in the model's dtype.
"""

import sys

import numpy as np


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    import mlx.core as mx
    import mlx_lm
    header = np.fromfile(sys.argv[2], dtype="<i4", count=2)
    ids = np.fromfile(sys.argv[2], dtype="<i4", offset=8).reshape(int(header[0]), int(header[1]))
    mx.set_default_device(mx.cpu)
    model, _ = mlx_lm.load(sys.argv[1])
    logits = model(mx.array(ids))
    mx.eval(logits)
    np.asarray(logits.astype(mx.float32)).astype("<f4").tofile(sys.argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
