#!/usr/bin/env python3
"""Write GGUF files of the bundled models with gguf-py (pip `gguf`), as ggml's examples/mnist expects them.

An independent reference for Parity's own GGUF converter: same layout (docs/runtime-notes.md §1), different code.
Run in the fixtures venv (tools/fixtures/setup-venv.sh):

    .build-venv-fixtures/bin/python tools/ggml/make_reference_gguf.py golden/fmnist-cnn OUT.gguf
    .build-venv-fixtures/bin/python tools/ggml/make_reference_gguf.py golden/fmnist-mlp OUT.gguf [--dtype f16]

Layout (gguf-py writes a C-contiguous numpy array of shape (d0..dk) as ggml ne (dk..d0)):
  mnist-cnn  conv1.kernel  conv1.weight (8,1,3,3)            -> ne [3,3,1,8]    no transform
             conv1.bias    conv1.bias (8,) as (1,8,1,1)      -> ne [1,1,8,1]    reshape (broadcast over W,H,C,N)
             conv2.kernel  conv2.weight (16,8,3,3)           -> ne [3,3,8,16]
             conv2.bias    (16,) as (1,16,1,1)               -> ne [1,1,16,1]
             dense.weight  (10,784) columns c*49+h*7+w permuted to (h*7+w)*16+c -> ne [784,10]
             dense.bias    (10,)                             -> ne [10]
  mnist-fc   fc1.weight (500,784) -> ne [784,500]; fc1.bias [500]; fc2.weight (10,500) -> ne [500,10]; fc2.bias [10]
All float32; --dtype f16 stores the mnist-fc weight matrices as F16 (mnist-eval's mnist-fc branch accepts
that; its mnist-cnn branch asserts F32). --bad-dense-order keeps PyTorch's (c,h,w) column order (a wrong
file on purpose: it loads, and scores about 10 %).
"""

import argparse
import json
import os
import sys

import numpy as np
import gguf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from safetensors_io import read_safetensors  # noqa: E402  (checked against the official library)


def cnn_tensors(w, bad_dense_order=False):
    dense = w["dense.weight"]
    assert dense.shape == (10, 784)
    if not bad_dense_order:
        dense = dense.reshape(10, 16, 7, 7).transpose(0, 2, 3, 1).reshape(10, 784)
    return [
        ("conv1.kernel", w["conv1.weight"]),                    # (8,1,3,3)  -> ne [3,3,1,8]
        ("conv1.bias", w["conv1.bias"].reshape(1, 8, 1, 1)),    # -> ne [1,1,8,1]
        ("conv2.kernel", w["conv2.weight"]),                    # (16,8,3,3) -> ne [3,3,8,16]
        ("conv2.bias", w["conv2.bias"].reshape(1, 16, 1, 1)),   # -> ne [1,1,16,1]
        ("dense.weight", dense),                                # (10,784)   -> ne [784,10]
        ("dense.bias", w["dense.bias"]),                        # -> ne [10]
    ]


def fc_tensors(w, dtype):
    mat = np.float16 if dtype == "f16" else np.float32
    return [
        ("fc1.weight", w["fc1.weight"].astype(mat)),  # (500,784) -> ne [784,500]
        ("fc1.bias", w["fc1.bias"]),                  # -> ne [500]
        ("fc2.weight", w["fc2.weight"].astype(mat)),  # (10,500)  -> ne [500,10]
        ("fc2.bias", w["fc2.bias"]),                  # -> ne [10]
    ]


def main():
    ap = argparse.ArgumentParser(description="gguf-py reference GGUF for ggml's examples/mnist")
    ap.add_argument("model_dir", help="golden/<model> with config.json and model.safetensors")
    ap.add_argument("out", help="output .gguf path")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="weight matrices (mnist-fc only)")
    ap.add_argument("--bad-dense-order", action="store_true", help="mnist-cnn: skip the dense column permutation")
    args = ap.parse_args()

    with open(os.path.join(args.model_dir, "config.json")) as f:
        config = json.load(f)
    arch = config["architecture"]
    weights = read_safetensors(os.path.join(args.model_dir, config.get("weights", "model.safetensors")))
    if arch == "mnist-cnn":
        if args.dtype != "f32":
            sys.exit("mnist-eval's mnist-cnn branch asserts F32 for every tensor")
        tensors = cnn_tensors(weights, args.bad_dense_order)
    elif arch == "mnist-fc":
        tensors = fc_tensors(weights, args.dtype)
    else:
        sys.exit(f"unknown architecture {arch}")

    writer = gguf.GGUFWriter(args.out, arch)  # writes general.architecture
    for name, array in tensors:
        writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    # read back with gguf-py and check names, ne and bytes
    reader = gguf.GGUFReader(args.out)
    by_name = {t.name: t for t in reader.tensors}
    for name, array in tensors:
        t = by_name[name]
        ne = [int(d) for d in t.shape]
        assert ne == list(reversed(array.shape)), (name, ne, array.shape)
        assert bytes(t.data.tobytes()) == np.ascontiguousarray(array).tobytes(), name
        print(f"{name:14s} ne {ne!s:16s} {t.tensor_type.name}")
    from importlib.metadata import version
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, arch {arch}, gguf-py {version('gguf')})")


if __name__ == "__main__":
    main()
