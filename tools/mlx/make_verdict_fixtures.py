#!/usr/bin/env python3
"""MLX files of the user model Tests/ParityTests/Fixtures/user-mlp-256 (784 -> 256 -> 10), written by real MLX,
for the verdict regression tests (Tests/ParityTests/VerdictTests.swift). Run in the MLX venv:

    .build-venv-mlx/bin/python tools/mlx/make_verdict_fixtures.py [--out Tests/ParityTests/Fixtures/verdict-mlx]

Each case is an mlx-lm style directory (config.json with "quantization", model.safetensors saved with
metadata {"format": "mlx"}), built the way a user would: the PyTorch weights cast to float16 and loaded into an
mlx.nn MLP, then `nn.quantize` with mlx-lm's rule that a Linear is quantized only when its input width divides by
the group size (mlx_lm.utils quantize_model's class predicate). 784 divides by no affine group, so fc1 stays
float16 and only fc2 (256 wide) is quantized:

  f16-affine-b4-g64/   fc2 affine 4-bit, group 64: fc1 must be judged as f16 (2e-3), not as 4-bit (issue 13)
  f16-affine-b1-g64/   fc2 affine 1-bit: no tolerance can be derived (its error is that of a broken file), so
                       Parity must call it unjudged, never pass or fail (issue 12)

Each directory is reloaded with model.load_weights(strict=True) and run; manifest.json records the stored
dtype of every tensor, MLX's quantized modules and MLX's own rel L2 of the logits against golden.h5.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

import h5py
import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "user-mlp-256")
CASES = [("f16-affine-b4-g64", 4, 64), ("f16-affine-b1-g64", 1, 64)]


class MLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.fc1 = nn.Linear(sizes[0], sizes[1])
        self.fc2 = nn.Linear(sizes[1], sizes[2])

    def __call__(self, x):
        return self.fc2(nn.relu(self.fc1(x.reshape(x.shape[0], -1))))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "verdict-mlx"))
    args = ap.parse_args()
    with open(os.path.join(MODEL, "config.json")) as f:
        reference = json.load(f)
    linears = [l for l in reference["layers"] if l["op"] == "Linear"]
    sizes = [linears[0]["in_features"], linears[0]["out_features"], linears[1]["out_features"]]
    weights = mx.load(os.path.join(MODEL, "model.safetensors"))
    with h5py.File(os.path.join(MODEL, "golden.h5"), "r") as g:
        images = np.array(g["inputs/images"], dtype=np.float32)
        logits = np.array(g["activations/fc2"], dtype=np.float32)
    os.makedirs(args.out, exist_ok=True)
    manifest = {"written_by": f"mlx {mx.__version__} (tools/mlx/make_verdict_fixtures.py)", "model": "user-mlp-256",
                "source_sha256": sha256(os.path.join(MODEL, "model.safetensors")), "cases": {}}
    for name, bits, group in CASES:
        model = MLP(sizes)
        model.load_weights([(k, v.astype(mx.float16)) for k, v in weights.items()], strict=True)
        quantized = []

        def predicate(path, module):
            ok = isinstance(module, nn.Linear) and module.weight.shape[-1] % group == 0
            if ok:
                quantized.append(path)
            return ok

        nn.quantize(model, group_size=group, bits=bits, mode="affine", class_predicate=predicate)
        config = {k: v for k, v in reference.items() if k not in ("quantization", "quantization_config")}
        config["model_type"] = reference["architecture"]
        config["torch_dtype"] = "float16"
        config["quantization"] = {"group_size": group, "bits": bits, "mode": "affine"}
        config["quantization_config"] = config["quantization"]
        directory = os.path.join(args.out, name)
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        params = dict(tree_flatten(model.parameters()))
        mx.save_safetensors(os.path.join(directory, "model.safetensors"), params, metadata={"format": "mlx"})
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        # Reload as mlx-lm would and run: the file is what MLX itself loads strictly.
        check = MLP(sizes)
        loaded = mx.load(os.path.join(directory, "model.safetensors"))
        nn.quantize(check, group_size=group, bits=bits, mode="affine",
                    class_predicate=lambda p, m: f"{p}.scales" in loaded)
        check.load_weights(list(loaded.items()), strict=True)
        out = np.array(check(mx.array(images)).astype(mx.float32))
        rel = float(np.linalg.norm(out - logits) / np.linalg.norm(logits))
        manifest["cases"][name] = {
            "quantization": config["quantization"], "quantized_modules": quantized,
            "tensors": {k: {"dtype": str(v.dtype).replace("mlx.core.", ""), "shape": list(v.shape)} for k, v in sorted(loaded.items())},
            "mlx_logits_rel_l2": rel,
            "sha256": {f: sha256(os.path.join(directory, f)) for f in ("config.json", "model.safetensors")},
        }
        print(f"{name}: quantized {quantized}, MLX logits rel L2 {rel:.4g}")
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
