#!/usr/bin/env python3
"""A planted mistake made with llama.cpp's own converter: a GGUF without `output.weight` for an untied checkpoint.

    .build-venv-llama/bin/python tools/llama/planted_no_output.py LLAMA_CPP_DIR -- HF_DIR --outtype f32 --outfile X.gguf

The unmodified convert_hf_to_gguf.py runs with LlamaModel.modify_tensors dropping `lm_head.weight`, as a converter
does when it takes the checkpoint for a tied one (tie_word_embeddings misread). llama.cpp's loader then uses
`token_embd.weight` as the output (TENSOR_DUPLICATED): the file loads and computes logits with the wrong matrix.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_hf_to_gguf_compat import run_converter  # noqa: E402


def drop_output():
    from conversion.llama import LlamaModel
    original = LlamaModel.modify_tensors

    def modify_tensors(self, data_torch, name, bid):
        if name == "lm_head.weight":
            return []
        return original(self, data_torch, name, bid)

    LlamaModel.modify_tensors = modify_tensors


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(run_converter(sys.argv[1], sys.argv[3:], prepare=drop_output))
