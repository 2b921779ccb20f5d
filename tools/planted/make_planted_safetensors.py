#!/usr/bin/env python3
"""Planted safetensors cases, written OUTSIDE Parity with the safetensors library (safetensors.numpy.save_file).
Run by make_planted.sh in the gguf-py venv (which has safetensors):

    .build-venv-fixtures/bin/python tools/planted/make_planted_safetensors.py STAGING PART.json

What PyTorch's load_state_dict(strict=True) says about each file is added by check_planted_torch.py (Debian's
python3 with torch), when torch is there.
"""
import os
import sys
from importlib.metadata import version

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import planted_common as pc  # noqa: E402


def build(cid, cnn):
    if cid == 27:
        tensors = dict(cnn)
        tensors["conv1.running_var"] = np.ones(8, dtype=np.float32)
        return tensors
    raise ValueError(cid)


def main():
    staging, part = sys.argv[1], sys.argv[2]
    cnn = pc.reference_weights("fmnist-cnn")
    cases = []
    for case in pc.case_dicts("safetensors"):
        path = os.path.join(staging, case["file"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in sorted(build(case["id"], cnn).items())}, path)
        case["written_with"] = f"safetensors {version('safetensors')} safetensors.numpy.save_file (numpy {np.__version__})"
        case["files"] = pc.files_info(path)
        cases.append(case)
        print(f"st   case {case['id']:2d} {case['file']}", flush=True)
    pc.write_json(part, cases)


if __name__ == "__main__":
    main()
