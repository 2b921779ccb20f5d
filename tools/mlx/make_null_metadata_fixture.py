#!/usr/bin/env python3
"""Writes Tests/ParityTests/Fixtures/mlx-safetensors/: fmnist-cnn weights saved by real MLX's mx.save_safetensors
WITHOUT metadata, which MLX writes as `"__metadata__": null` (it does so for metadata={} too). The official
safetensors library reads that header (metadata is an optional map: `safe_open(...).metadata()` is None) and
so does MLX; Parity must too.

    .build-venv-mlx/bin/python tools/mlx/make_null_metadata_fixture.py      (venv: tools/mlx/setup-venv.sh)

Files:
  mx-no-metadata-fmnist-cnn.safetensors   golden/fmnist-cnn/model.safetensors read by mx.load, put in mlx.nn's
                                          layout here with numpy (conv OIHW -> OHWI; dense columns from the
                                          (c,h,w) flatten of NCHW to the (h,w,c) flatten of NHWC), loaded into
                                          the mlx.nn port with load_weights(strict=True) (tools/mlx/models.py),
                                          then model.parameters() saved with mx.save_safetensors(path, arrays).
                                          There is no `format: mlx` marker, so `parity verify --file` detects it
                                          as plain safetensors (PyTorch layout); `--format mlx` reads it as MLX.
  manifest.json                           versions, the exact header MLX wrote, and what the official library
                                          writes for "no metadata" (it omits the key; checked here when the
                                          fixtures venv's safetensors is importable, else recorded as unknown).
"""
import hashlib
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import models  # noqa: E402  (the mlx.nn port: mlx.nn's own layouts)

OUT_DIR = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "mlx-safetensors")
NAME = "mx-no-metadata-fmnist-cnn.safetensors"


def header_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return f.read(n).decode("utf-8")


def official_no_metadata_header():
    """What safetensors.numpy.save_file writes without metadata, from the fixtures venv (a separate interpreter:
    the MLX venv does not carry the safetensors library)."""
    python = os.path.join(REPO, ".build-venv-fixtures", "bin", "python")
    if not os.path.exists(python):
        return {"checked": False, "reason": ".build-venv-fixtures not found (tools/fixtures/setup-venv.sh)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o.safetensors")
        code = ("import numpy as np, safetensors, sys; from safetensors.numpy import save_file; "
                "save_file({'a': np.array([1, 2], dtype=np.float32)}, sys.argv[1]); print(safetensors.__version__)")
        version = subprocess.run([python, "-c", code, out], check=True, capture_output=True, text=True).stdout.strip()
        read_null = ("import sys; from safetensors import safe_open\n"
                     "with safe_open(sys.argv[1], 'np') as f: print(repr(f.metadata()))")
        metadata_of_mlx_file = subprocess.run([python, "-c", read_null, os.path.join(OUT_DIR, NAME)], check=True,
                                              capture_output=True, text=True).stdout.strip()
        return {"checked": True, "safetensors": version, "header_without_metadata": header_of(out).rstrip(" "),
                "safe_open_metadata_of_the_mlx_file": metadata_of_mlx_file}


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    reference = mx.load(os.path.join(REPO, "golden", "fmnist-cnn", "model.safetensors"))
    w = {k: np.array(v) for k, v in reference.items()}
    mlx_layout = {
        "conv1.weight": w["conv1.weight"].transpose(0, 2, 3, 1),
        "conv1.bias": w["conv1.bias"],
        "conv2.weight": w["conv2.weight"].transpose(0, 2, 3, 1),
        "conv2.bias": w["conv2.bias"],
        "dense.weight": w["dense.weight"].reshape(10, 16, 7, 7).transpose(0, 2, 3, 1).reshape(10, 784),
        "dense.bias": w["dense.bias"],
    }
    with open(os.path.join(REPO, "golden", "fmnist-cnn", "config.json")) as f:
        model = models.build_model(json.load(f))
    model.load_weights([(k, mx.array(np.ascontiguousarray(v))) for k, v in mlx_layout.items()], strict=True)
    arrays = dict(tree_flatten(model.parameters()))
    path = os.path.join(OUT_DIR, NAME)
    mx.save_safetensors(path, arrays)  # no metadata argument: MLX writes "__metadata__": null
    header = header_of(path)
    assert '"__metadata__":null' in header, header
    loaded, metadata = mx.load(path, return_metadata=True)
    assert metadata == {} and sorted(loaded) == sorted(arrays), (metadata, sorted(loaded))

    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    manifest = {
        "made_by": "tools/mlx/make_null_metadata_fixture.py",
        "mlx": mx.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "files": {NAME: {"sha256": digest, "header": header, "call": "mx.save_safetensors(path, arrays)",
                         "source": "golden/fmnist-cnn/model.safetensors in mlx.nn layout, load_weights(strict=True)",
                         "mx.load metadata": metadata}},
        "official_safetensors_library": official_no_metadata_header(),
    }
    with open(os.path.join(OUT_DIR, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    print("wrote", path, "with mlx", mx.__version__)


if __name__ == "__main__":
    main()
