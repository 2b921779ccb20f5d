#!/usr/bin/env python3
"""Adds to PART.json what PyTorch's load_state_dict(strict=True) does with each planted safetensors file, loading
it into tools/parity_models.py's reference modules. Run by make_planted.sh with Debian's python3 (torch 1.13):

    /usr/bin/python3 tools/planted/check_planted_torch.py STAGING PART.json
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import torch  # noqa: E402
from parity_models import FashionCNN, FashionMLP  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402

MODELS = {"fmnist-cnn": FashionCNN, "fmnist-mlp": FashionMLP}


def main():
    staging, part = sys.argv[1], sys.argv[2]
    with open(part) as f:
        cases = json.load(f)
    for case in cases:
        state = {k: torch.from_numpy(v.copy()) for k, v in read_safetensors(os.path.join(staging, case["file"])).items()}
        module = MODELS[case["model"]]()
        try:
            module.load_state_dict(state, strict=True)
            case.update({"pytorch_loads": True, "pytorch_error": None})
        except Exception as e:  # the refusal is the point
            case.update({"pytorch_loads": False, "pytorch_error": f"{type(e).__name__}: {e}"})
        case["pytorch_load"] = f"torch {torch.__version__} Module.load_state_dict(strict=True) into tools/parity_models.py"
        print(f"st   case {case['id']:2d} PyTorch loads: {case['pytorch_loads']} {case['pytorch_error'] or ''}", flush=True)
    with open(part, "w") as f:
        json.dump(cases, f, indent=2)


if __name__ == "__main__":
    main()
