#!/usr/bin/env python3
"""A conversion mistake written by llama.cpp's own converter: layer 1's gate and up projections exchanged.

    .build-venv-llama/bin/python tools/llama/record_swapped_gate_up.py [LLAMA_CPP_DIR]

Runs the unmodified convert_hf_to_gguf.py (--outtype q8_0) on golden/tiny-llama with its LlamaModel.modify_tensors
wrapped so that model.layers.1.mlp.gate_proj.weight is given up_proj's data and up_proj gate_proj's: every name,
shape, type and metadata key right, blk.1.ffn_gate holding the up projection and blk.1.ffn_up the gate (llama.cpp
loads it without complaint). The GGUF (1.9 MB) is not committed; Tests/ParityTests/Fixtures/llama-weight-swap/
record.json holds its SHA-256 and size and, per tensor, name/type/ne/SHA-256 of its data, so a test rebuilds it
from Parity's own q8_0 conversion by exchanging the two tensors' bytes and proves it identical.
"""

import hashlib
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from convert_hf_to_gguf_compat import run_converter  # noqa: E402

MODEL = os.path.join(REPO, "golden", "tiny-llama")
OUT = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "llama-weight-swap")
LAYER = 1
SWAP = {f"model.layers.{LAYER}.mlp.gate_proj.weight": f"model.layers.{LAYER}.mlp.up_proj.weight",
        f"model.layers.{LAYER}.mlp.up_proj.weight": f"model.layers.{LAYER}.mlp.gate_proj.weight"}


def exchange_gate_up():
    from conversion.llama import LlamaModel
    from safetensors import safe_open
    original = LlamaModel.modify_tensors

    def modify_tensors(self, data_torch, name, bid):
        if name in SWAP:
            with safe_open(os.path.join(MODEL, "model.safetensors"), "pt") as f:
                data_torch = f.get_tensor(SWAP[name])
        return original(self, data_torch, name, bid)
    LlamaModel.modify_tensors = modify_tensors


def main():
    llama_cpp = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        REPO, ".build-llama", "src", "llama_cpp_python-0.3.36", "vendor", "llama.cpp")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tiny-llama-q8_0-gate-up-swapped.gguf")
        status = run_converter(llama_cpp, [MODEL, "--outtype", "q8_0", "--outfile", path], prepare=exchange_gate_up)
        if status:
            sys.exit(status)
        sys.path.insert(0, os.path.join(llama_cpp, "gguf-py"))
        from gguf import GGUFReader
        reader = GGUFReader(path)
        tensors = [{"name": t.name, "type": t.tensor_type.name, "ne": [int(n) for n in t.shape],
                    "sha256": hashlib.sha256(bytes(t.data.tobytes())).hexdigest()} for t in reader.tensors]
        with open(path, "rb") as f:
            data = f.read()
    import gguf
    record = {"generator": "tools/llama/record_swapped_gate_up.py", "converter": "llama.cpp convert_hf_to_gguf.py --outtype q8_0",
              "gguf_py": getattr(gguf, "__version__", "vendored"),
              "mistake": f"model.layers.{LAYER}.mlp.gate_proj and up_proj exchanged before conversion",
              "file": {"name": "tiny-llama-q8_0-gate-up-swapped.gguf", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
              "tensors": tensors}
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "record.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(f"{record['file']['name']}: {len(data)} bytes, sha256 {record['file']['sha256']}")


if __name__ == "__main__":
    main()
