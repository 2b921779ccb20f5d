#!/usr/bin/env python3
"""Planted mistakes made with mlx-lm's own functions: an MLX directory whose config.json says one thing wrong.

    .build-venv-mlxlm/bin/python tools/llama/planted_mlx_config.py HF_DIR OUT_DIR KEY=JSON_VALUE

mlx_lm's `convert` writes the float32 directory, then mlx_lm's `save_config` rewrites its config.json with KEY set to
the value; every tensor stays mlx_lm convert's. The two planted here:
- `rope_traditional=true`: what a converter writes when it takes a Hugging Face Llama for one whose RoPE rotates
  adjacent pairs (Meta's original checkpoints, or a GGUF's permuted rows). mlx_lm.load builds nn.RoPE(traditional=True),
  so Q and K are rotated in adjacent pairs instead of the halves the checkpoint was trained with.
- `tie_word_embeddings=true` on an untied checkpoint: mlx-lm's Llama `sanitize` then drops lm_head.weight and computes
  the logits with embed_tokens.as_linear.
"""

import json
import os
import sys

from mlx_lm.convert import convert
from mlx_lm.utils import save_config


def main():
    if len(sys.argv) != 4 or "=" not in sys.argv[3]:
        print(__doc__, file=sys.stderr)
        return 2
    source, out = sys.argv[1], sys.argv[2]
    key, value = sys.argv[3].split("=", 1)
    convert(source, out, dtype="float32")
    path = os.path.join(out, "config.json")
    with open(path) as f:
        config = json.load(f)
    config[key] = json.loads(value)
    save_config(config, config_path=path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
