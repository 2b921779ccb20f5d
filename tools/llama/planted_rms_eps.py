#!/usr/bin/env python3
"""A planted mistake made with llama.cpp's own converter: a GGUF whose RMSNorm epsilon is not the checkpoint's.

    .build-venv-llama/bin/python tools/llama/planted_rms_eps.py LLAMA_CPP_DIR -- HF_DIR --outtype f32 --outfile X.gguf

The unmodified convert_hf_to_gguf.py runs with gguf-py's GGUFWriter.add_layer_norm_rms_eps writing 1e-6 (LLaMA 1's
value, which llama.cpp's early converters assumed for every model) instead of the config's rms_norm_eps (1e-5 for
tiny-llama). Every tensor is right; llama.cpp loads the file and normalises with the wrong ε.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_hf_to_gguf_compat import run_converter  # noqa: E402

WRONG_EPSILON = 1e-6


def wrong_epsilon():
    import gguf
    original = gguf.GGUFWriter.add_layer_norm_rms_eps
    gguf.GGUFWriter.add_layer_norm_rms_eps = lambda self, value: original(self, WRONG_EPSILON)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(run_converter(sys.argv[1], sys.argv[3:], prepare=wrong_epsilon))
