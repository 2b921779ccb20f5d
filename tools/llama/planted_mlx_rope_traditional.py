#!/usr/bin/env python3
"""A planted mistake made with mlx-lm's own functions: an MLX directory whose config says `rope_traditional: true`.

    .build-venv-mlxlm/bin/python tools/llama/planted_mlx_rope_traditional.py HF_DIR OUT_DIR

mlx_lm's `convert` writes the float32 directory, then mlx_lm's `save_config` rewrites its config.json with
`rope_traditional` set to true — what a converter writes when it takes a Hugging Face Llama for one whose RoPE rotates
adjacent pairs (Meta's original checkpoints, or a GGUF's permuted rows). mlx_lm.load builds nn.RoPE(traditional=True):
every tensor is right, but Q and K are rotated in adjacent pairs instead of the halves the checkpoint was trained with.
"""

import json
import os
import sys

from mlx_lm.convert import convert
from mlx_lm.utils import save_config


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, out = sys.argv[1], sys.argv[2]
    convert(source, out, dtype="float32")
    path = os.path.join(out, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["rope_traditional"] = True
    save_config(config, config_path=path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
