#!/usr/bin/env python3
"""MLX files written by real MLX that test how Parity reads what MLX / mlx-lm load (Tests/ParityTests/MLXLoadingTests.swift).
Needs mlx and mlx-lm in one venv (`.build-venv-mlx/bin/pip install mlx-lm`; the checked-in files were made with
mlx 0.32.4 + mlx-lm 0.32.2):

    .build-venv-mlx/bin/python tools/mlx/make_loading_fixtures.py [--out Tests/ParityTests/Fixtures/mlx-loading]

Weights are golden/fmnist-cnn (small) and, for one file, Tests/ParityTests/Fixtures/user-mlp-256. For every file
or directory the script asks the real runtime what it does and records it in manifest.json:
  - directories: mlx_lm.utils.load_model (glob model*.safetensors, quantize per config.json with its
    class_predicate and infer_quant_config, load_weights(strict=True)); the model class is tools/mlx/models.py's port;
  - weights-only files: what an MLX user does: build the model, nn.quantize it the way it was quantized when
    saved, model.load_weights(file, strict=True).
"verdict" is "loads" or "refuses: <MLX's message>".

  cnn-nvfp4.npz                 dense nvfp4 (mx.savez), no config: loads into an nvfp4-quantized model
  usr-nvfp4-affine4.safetensors user-mlp-256: fc1 nvfp4, fc2 affine 4-bit g64 (save_weights), no config
  cnn-nvfp4-scales-cut.npz      dense.scales cut to 48 of 49 columns: MLX refuses (shape); no quantization fits
  cnn-nvfp4-no-qcfg/            dense quantized, config.json without "quantization": mlx-lm refuses (not in model)
  cnn-nvfp4-dense-false/        config.json says "dense": false but dense.scales exists: mlx-lm refuses
  cnn-nvfp4-cfg-affine8/        config.json's global entry says affine 8/32, the file is nvfp4: mlx-lm 0.32 infers
                                nvfp4 from the shapes (infer_quant_config) and loads
  cnn-shards-stray/             correct index.json + a leftover model-extra.safetensors with dense.extra: mlx-lm
                                globs it, strict loading refuses
  cnn-shards-stale/             an old shard model-00001-of-00003.safetensors holding conv1.* with other values:
                                mlx-lm loads both; which value wins depends on the directory listing order
  cnn-shards-index-wrong/       index.json with total_size 0 and conv1.bias mapped to the other shard: mlx-lm loads
"""
import argparse
import glob
import json
import os
import shutil
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class UserMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 10)


def cnn_weights(dtype):
    w = {k: np.array(v) for k, v in mx.load(os.path.join(ROOT, "golden", "fmnist-cnn", "model.safetensors")).items()}
    dense = w["dense.weight"].reshape(10, 16, 7, 7).transpose(0, 2, 3, 1).reshape(10, 784)  # NHWC flatten
    out = {"conv1.weight": w["conv1.weight"].transpose(0, 2, 3, 1), "conv1.bias": w["conv1.bias"],
           "conv2.weight": w["conv2.weight"].transpose(0, 2, 3, 1), "conv2.bias": w["conv2.bias"], "dense.weight": dense,
           "dense.bias": w["dense.bias"]}
    return {k: mx.array(np.ascontiguousarray(v)).astype(dtype) for k, v in out.items()}


def cnn_model(dtype, quantize_dense=None):
    m = models.MnistCNN()
    m.load_weights(list(cnn_weights(dtype).items()), strict=True)
    if quantize_dense:
        nn.quantize(m, class_predicate=lambda p, _: quantize_dense if p == "dense" else False)
    return m


NVFP4 = {"group_size": 16, "bits": 4, "mode": "nvfp4"}


def params(m):
    from mlx.utils import tree_flatten
    return dict(tree_flatten(m.parameters()))


def mlx_lm_verdict(path):
    from mlx_lm.utils import load_model

    class Args:
        def __init__(self, c):
            self.c = c

        @classmethod
        def from_dict(cls, c):
            return cls(c)

    try:
        load_model(Path(path), get_model_classes=lambda config: ((lambda a: models.build_model(a.c)), Args))
        return "loads"
    except Exception as e:  # noqa: BLE001 - the runtime's refusal is the record
        return "refuses: " + " ".join(str(e).split())


def user_verdict(path, build):
    try:
        build().load_weights(path, strict=True)
        return "loads"
    except Exception as e:  # noqa: BLE001
        return "refuses: " + " ".join(str(e).split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "mlx-loading"))
    out = ap.parse_args().out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    manifest = {"written_by": f"mlx {mx.__version__} (tools/mlx/make_loading_fixtures.py)", "cases": {}}
    import mlx_lm
    manifest["mlx_lm"] = mlx_lm.__version__

    def record(name, verdict, how):
        manifest["cases"][name] = {"verdict": verdict, "how": how}
        print(f"{name}: {verdict}")

    def directory(name, tensors_by_file, config, index=None):
        p = os.path.join(out, name)
        os.makedirs(p)
        for file, tensors in tensors_by_file.items():
            mx.save_safetensors(os.path.join(p, file), tensors, metadata={"format": "mlx"})
        with open(os.path.join(p, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
        if index is not None:
            with open(os.path.join(p, "model.safetensors.index.json"), "w") as f:
                json.dump(index, f, indent=1)
        return p

    # Weights-only quantized files: the user quantizes the model the same way, then loads.
    q = params(cnn_model(mx.bfloat16, NVFP4))
    mx.savez(os.path.join(out, "cnn-nvfp4.npz"), **q)
    record("cnn-nvfp4.npz", user_verdict(os.path.join(out, "cnn-nvfp4.npz"), lambda: cnn_model(mx.bfloat16, NVFP4)),
           "nn.quantize(dense: nvfp4) on a bfloat16 MnistCNN, mx.savez; loaded into a model quantized the same way")

    usr = {k: v for k, v in mx.load(os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "user-mlp-256", "model.safetensors")).items()}

    def user_model():
        m = UserMLP()
        m.load_weights(list(usr.items()), strict=True)
        m.set_dtype(mx.float16)
        nn.quantize(m, class_predicate=lambda p, _: {"fc1": NVFP4, "fc2": {"group_size": 64, "bits": 4, "mode": "affine"}}.get(p, False))
        return m

    user_model().save_weights(os.path.join(out, "usr-nvfp4-affine4.safetensors"))
    record("usr-nvfp4-affine4.safetensors", user_verdict(os.path.join(out, "usr-nvfp4-affine4.safetensors"), user_model),
           "float16 user-mlp-256, nn.quantize fc1 nvfp4 and fc2 affine 4-bit group 64, save_weights; loaded into a model quantized the same way")

    cut = dict(q)
    cut["dense.scales"] = q["dense.scales"][:, :48]
    mx.savez(os.path.join(out, "cnn-nvfp4-scales-cut.npz"), **cut)
    record("cnn-nvfp4-scales-cut.npz", user_verdict(os.path.join(out, "cnn-nvfp4-scales-cut.npz"), lambda: cnn_model(mx.bfloat16, NVFP4)),
           "cnn-nvfp4.npz with dense.scales[:, :48]; loaded into an nvfp4-quantized model")

    # Directories: mlx-lm's load_model decides.
    for name, config in [("cnn-nvfp4-no-qcfg", {"model_type": "mnist-cnn"}),
                         ("cnn-nvfp4-dense-false", {"model_type": "mnist-cnn", "quantization": dict(NVFP4, dense=False)}),
                         ("cnn-nvfp4-cfg-affine8", {"model_type": "mnist-cnn", "quantization": {"group_size": 32, "bits": 8, "mode": "affine"}})]:
        p = directory(name, {"model.safetensors": q}, config)
        record(name + "/", mlx_lm_verdict(p), f"dense nvfp4 weights (save_safetensors), config.json {json.dumps(config)}")

    w = cnn_weights(mx.bfloat16)
    first, second = ["conv1.bias", "conv1.weight", "conv2.bias"], ["conv2.weight", "dense.bias", "dense.weight"]
    shards = {"model-00001-of-00002.safetensors": {k: w[k] for k in first}, "model-00002-of-00002.safetensors": {k: w[k] for k in second}}
    total = sum(v.nbytes for v in w.values())
    index = {"metadata": {"total_size": total}, "weight_map": {k: ("model-00001-of-00002.safetensors" if k in first else "model-00002-of-00002.safetensors") for k in w}}
    p = directory("cnn-shards-stray", dict(shards, **{"model-extra.safetensors": {"dense.extra": mx.zeros((3,), dtype=mx.bfloat16)}}),
                  {"model_type": "mnist-cnn"}, index)
    record("cnn-shards-stray/", mlx_lm_verdict(p), "two shards + correct index.json + model-extra.safetensors holding dense.extra")
    stale = {k: (w[k] * 2) for k in ["conv1.bias", "conv1.weight"]}
    p = directory("cnn-shards-stale", dict(shards, **{"model-00001-of-00003.safetensors": stale}), {"model_type": "mnist-cnn"}, index)
    order = [os.path.basename(f) for f in glob.glob(os.path.join(p, "model*.safetensors"))]
    record("cnn-shards-stale/", mlx_lm_verdict(p), f"two shards + an old model-00001-of-00003.safetensors with conv1.* doubled; glob order here: {order} (the last one wins)")
    wrong = json.loads(json.dumps(index))
    wrong["metadata"]["total_size"] = 0
    wrong["weight_map"]["conv1.bias"] = "model-00002-of-00002.safetensors"
    p = directory("cnn-shards-index-wrong", shards, {"model_type": "mnist-cnn"}, wrong)
    record("cnn-shards-index-wrong/", mlx_lm_verdict(p), "two shards; index.json with total_size 0 and conv1.bias mapped to the second shard")

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
