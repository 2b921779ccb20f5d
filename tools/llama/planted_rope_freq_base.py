#!/usr/bin/env python3
"""A planted mistake made with llama.cpp's own converter: a GGUF whose `llama.rope.freq_base` is not the checkpoint's.

    .build-venv-llama/bin/python tools/llama/planted_rope_freq_base.py LLAMA_CPP_DIR -- HF_DIR --outtype f32 --outfile X.gguf

The unmodified convert_hf_to_gguf.py runs with gguf-py's GGUFWriter.add_rope_freq_base writing 500000 (Llama 3's θ)
instead of the config's rope_theta (10000 for tiny-llama): what a converter writes when it fills θ from a default or
another model family. Every tensor is right; llama.cpp loads the file and rotates Q and K by the wrong angles.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_hf_to_gguf_compat import run_converter  # noqa: E402

WRONG_THETA = 500000.0


def wrong_theta():
    import gguf
    original = gguf.GGUFWriter.add_rope_freq_base
    gguf.GGUFWriter.add_rope_freq_base = lambda self, value: original(self, WRONG_THETA)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(run_converter(sys.argv[1], sys.argv[3:], prepare=wrong_theta))
