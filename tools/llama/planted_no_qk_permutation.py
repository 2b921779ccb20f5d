#!/usr/bin/env python3
"""A planted mistake made with llama.cpp's own converter: a GGUF whose Q/K rows are NOT permuted.

    .build-venv-llama/bin/python tools/llama/planted_no_qk_permutation.py LLAMA_CPP_DIR -- HF_DIR --outtype f32 --outfile X.gguf

convert_hf_to_gguf.py permutes the rows of q_proj/k_proj (LlamaModel.permute) because Hugging Face checkpoints lay
RoPE out as rotate-half while llama.cpp's LLAMA RoPE rotates adjacent pairs. This runs the unmodified converter with
that one function replaced by the identity, so the file is exactly what a converter that forgets the permutation
writes: every name, shape and metadata key right, only the Q/K row order wrong. llama.cpp loads it without complaint.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_hf_to_gguf_compat import run_converter  # noqa: E402


def forget_permutation():
    from conversion.llama import LlamaModel
    LlamaModel.permute = staticmethod(lambda weights, n_head, n_head_kv: weights)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(run_converter(sys.argv[1], sys.argv[3:], prepare=forget_permutation))
