#!/usr/bin/env python3
"""Run llama.cpp's own convert_hf_to_gguf.py (unmodified, from the vendored sources) on Debian's torch 1.13.

    python tools/llama/convert_hf_to_gguf_compat.py LLAMA_CPP_DIR -- <convert_hf_to_gguf.py arguments>

The converter builds dtype tables that name torch dtypes torch 1.13 lacks (float8_e4m3fn, float8_e5m2,
float8_e8m0fnu, uint16/32/64) and stops with an AttributeError at import. Each missing attribute is given a distinct
placeholder object before the script runs: a placeholder equals no real dtype, so a checkpoint with only
F32/F16/BF16 tensors converts exactly as it would on a newer torch; a checkpoint that really has FP8 or unsigned
tensors cannot be read by torch 1.13 at all. The script itself runs as __main__ with its own directory and its
gguf-py on sys.path, as `python convert_hf_to_gguf.py` would.
"""

import os
import runpy
import sys

import torch

MISSING = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
           "uint16", "uint32", "uint64")


class _AbsentDtype:
    """Stands for a torch dtype this torch build does not have."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<torch.{self.name}: absent in torch {torch.__version__}>"


def run_converter(llama_cpp, arguments, prepare=None):
    """Run convert_hf_to_gguf.py ARGUMENTS as __main__; `prepare()` may patch its modules first (planted files)."""
    llama_cpp = os.path.abspath(llama_cpp)
    script = os.path.join(llama_cpp, "convert_hf_to_gguf.py")
    if not os.path.exists(script):
        print(f"error: {script} not found", file=sys.stderr)
        return 2
    shimmed = [name for name in MISSING if not hasattr(torch, name)]
    for name in shimmed:
        setattr(torch, name, _AbsentDtype(name))
    if shimmed:
        print(f"convert_hf_to_gguf_compat: placeholders for torch.{', torch.'.join(shimmed)}", file=sys.stderr)
    sys.argv = [script] + list(arguments)
    sys.path.insert(0, llama_cpp)
    sys.path.insert(1, os.path.join(llama_cpp, "gguf-py"))
    if prepare is not None:
        prepare()
    runpy.run_path(script, run_name="__main__")
    return 0


def main():
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return run_converter(sys.argv[1], sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
