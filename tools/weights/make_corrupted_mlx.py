#!/usr/bin/env python3
"""Weight-verification fixtures written OUTSIDE Parity with real MLX (mx.quantize, mx.save_safetensors).

    .build-venv-mlx/bin/python tools/weights/make_corrupted_mlx.py OUT_DIR

Reference values: Tests/ParityTests/Fixtures/ggml-quants/src.f32 (16 x 256 float32). For every MLX quantization
mode below, OUT_DIR/mlx-<mode>.safetensors holds, for each case, the triple <case>.weight / .scales (/ .biases):
    clean     mx.quantize of the reference (cast to the listed dtype first, as mlx-lm quantizes a model's weights)
    element   one code changed (affine: its top bit; fp modes: the top bit of the magnitude)
    scale     one group's scale doubled (the float doubled for affine; E8M0 + 1; E4M3 exponent + 1 for nvfp4)
    bias      one group's bias doubled (affine only)
and OUT_DIR/mlx-manifest.json records the group and the elements whose value changed (by mx.dequantize).
Also OUT_DIR/user-mlp-256-nvfp4/: the user-mlp-256 model as an mlx-lm directory quantized to nvfp4, with one
code of fc2 changed; and OUT_DIR/fmnist-cnn-nvfp4-seven-scales/: fmnist-cnn with its dense layer in nvfp4 and seven
block scales of one row doubled (the example of issue 10, which activations at nvfp4's tolerance let pass).
"""
import json
import os
import shutil
import sys

import numpy as np
import mlx.core as mx

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.path.join(ROOT, "Tests/ParityTests/Fixtures/ggml-quants/src.f32")
USER = os.path.join(ROOT, "Tests/ParityTests/Fixtures/user-mlp-256")
GROUP_INDEX = 1  # the corrupted group (flat index over rows x groups): row 0, normal values

MODES = [  # (file tag, mode, bits, group, dtype)
    ("affine-b1-g32-f16", "affine", 1, 32, mx.float16),
    ("affine-b2-g32-f16", "affine", 2, 32, mx.float16),
    ("affine-b3-g64-bf16", "affine", 3, 64, mx.bfloat16),
    ("affine-b4-g64-f16", "affine", 4, 64, mx.float16),
    ("affine-b5-g32-f32", "affine", 5, 32, mx.float32),
    ("affine-b6-g128-f16", "affine", 6, 128, mx.float16),
    ("affine-b8-g32-bf16", "affine", 8, 32, mx.bfloat16),
    ("mxfp4", "mxfp4", 4, 32, mx.float16),
    ("mxfp8", "mxfp8", 8, 32, mx.bfloat16),
    ("nvfp4", "nvfp4", 4, 16, mx.float16),
]


def quantize(w, mode, bits, group):
    out = mx.quantize(w, group_size=group, bits=bits, mode=mode)
    return (out[0], out[1], out[2] if len(out) > 2 and out[2] is not None else None)


def dequant(wq, s, b, mode, bits, group):
    return np.array(mx.dequantize(wq, s, b, group_size=group, bits=bits, mode=mode).astype(mx.float32))


def flip_code(wq, element, bits, which):
    """Flips bit `which` of code `element` in the LSB-first bitstream of little-endian uint32 words."""
    words = np.array(wq).copy()
    flat = words.reshape(-1)
    bit = element * bits + which
    flat[bit // 32] ^= np.uint32(1 << (bit % 32))
    return mx.array(words)


def double_scale(s, index, mode):
    a = np.array(s.astype(mx.float32) if mode == "affine" else s).copy()
    flat = a.reshape(-1)
    if mode == "affine":
        flat[index] *= 2
        return mx.array(a).astype(s.dtype)
    flat[index] += 8 if mode == "nvfp4" else 1  # E4M3: exponent field starts at bit 3; E8M0: the exponent
    return mx.array(a)


def main(out):
    os.makedirs(out, exist_ok=True)
    src = np.fromfile(SRC, dtype="<f4").reshape(16, 256)
    manifest = {"generator": "tools/weights/make_corrupted_mlx.py", "mlx": mx.__version__, "numpy": np.__version__,
                "reference": "Tests/ParityTests/Fixtures/ggml-quants/src.f32", "shape": [16, 256], "files": {}}
    for tag, mode, bits, group, dtype in MODES:
        w = mx.array(src).astype(dtype)
        wq, s, b = quantize(w, mode, bits, group)
        clean = dequant(wq, s, b, mode, bits, group).reshape(-1)
        arrays, entries = {}, {}

        def add(case, q, sc, bi, change):
            arrays[case + ".weight"] = q
            arrays[case + ".scales"] = sc
            if bi is not None:
                arrays[case + ".biases"] = bi
            entry = {"quantizer": "mx.quantize (MLX %s), %s input" % (mx.__version__, str(dtype).split(".")[-1])}
            if change:
                after = dequant(q, sc, bi, mode, bits, group).reshape(-1)
                entry.update(change)
                entry["group"] = GROUP_INDEX
                entry["changed_elements"] = [int(i) for i in np.nonzero(after != clean)[0]]
            entries[case] = entry

        add("clean", wq, s, b, None)
        element = GROUP_INDEX * group + 5
        # affine: the code's top bit (± 2^(bits-1) levels); fp modes: the magnitude's top bit (the top bit is the sign)
        which = bits - 1 if mode == "affine" else bits - 2
        add("element", flip_code(wq, element, bits, which), s, b, {"what": "code of element %d: bit %d flipped" % (element, which)})
        add("scale", wq, double_scale(s, GROUP_INDEX, mode), b, {"what": "scale of group %d doubled" % GROUP_INDEX})
        if b is not None:
            add("bias", wq, s, double_scale(b, GROUP_INDEX, "affine"), {"what": "bias of group %d doubled" % GROUP_INDEX})
        name = "mlx-%s.safetensors" % tag
        mx.save_safetensors(os.path.join(out, name), arrays, metadata={"format": "mlx"})
        manifest["files"][name] = {"mode": mode, "bits": bits, "group_size": group, "dtype": str(dtype).split(".")[-1], "tensors": entries}
    # The user model as an mlx-lm directory, fc1 and fc2 quantized to nvfp4, one code of fc2 changed.
    weights = mx.load(os.path.join(USER, "model.safetensors"))
    arrays = {}
    for layer in ("fc1", "fc2"):
        wq, s, _ = quantize(weights[layer + ".weight"], "nvfp4", 4, 16)
        if layer == "fc2":
            element = 7 * 256 + 200
            before = dequant(wq, s, None, "nvfp4", 4, 16).reshape(-1)
            wq = flip_code(wq, element, 4, 2)
            after = dequant(wq, s, None, "nvfp4", 4, 16).reshape(-1)
            changed = [int(i) for i in np.nonzero(after != before)[0]]
        arrays[layer + ".weight"], arrays[layer + ".scales"] = wq, s
        arrays[layer + ".bias"] = weights[layer + ".bias"]
    d = os.path.join(out, "user-mlp-256-nvfp4")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    mx.save_safetensors(os.path.join(d, "model.safetensors"), arrays, metadata={"format": "mlx"})
    q = {"group_size": 16, "bits": 4, "mode": "nvfp4"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "mnist-fc", "quantization": q, "quantization_config": q}, f, indent=1)
        f.write("\n")
    manifest["files"]["user-mlp-256-nvfp4"] = {"model": "user-mlp-256", "tensor": "fc2.weight",
                                               "what": "nvfp4 code of fc2.weight[7, 200]: magnitude bit 2 flipped",
                                               "row": 7, "column": 200, "changed_elements": changed}
    # The example: fmnist-cnn with its dense layer in nvfp4 and seven doubled block scales in one row (the
    # convolutions stay float32, as mlx-lm quantizes only modules whose width fits the group). mlx.nn layouts:
    # conv [out, kh, kw, in]; dense columns in (h, w, c) order (the NHWC map flattened).
    cnn = mx.load(os.path.join(ROOT, "golden/fmnist-cnn/model.safetensors"))
    arrays = {}
    for conv in ("conv1", "conv2"):
        arrays[conv + ".weight"] = mx.transpose(cnn[conv + ".weight"], (0, 2, 3, 1))
        arrays[conv + ".bias"] = cnn[conv + ".bias"]
    dense = mx.array(np.ascontiguousarray(np.array(cnn["dense.weight"]).reshape(10, 16, 7, 7).transpose(0, 2, 3, 1).reshape(10, 784)))
    wq, sc, _ = quantize(dense, "nvfp4", 4, 16)
    before = dequant(wq, sc, None, "nvfp4", 4, 16).reshape(-1)
    scales = np.array(sc).copy()
    row, groups = 3, list(range(7))
    for g in groups:
        scales[row, g] += 8  # E4M3 exponent + 1: the scale doubled
    sc = mx.array(scales)
    after = dequant(wq, sc, None, "nvfp4", 4, 16).reshape(-1)
    arrays["dense.weight"], arrays["dense.scales"], arrays["dense.bias"] = wq, sc, cnn["dense.bias"]
    d = os.path.join(out, "fmnist-cnn-nvfp4-seven-scales")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    mx.save_safetensors(os.path.join(d, "model.safetensors"), arrays, metadata={"format": "mlx"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "mnist-cnn", "quantization": q, "quantization_config": q}, f, indent=1)
        f.write("\n")
    manifest["files"]["fmnist-cnn-nvfp4-seven-scales"] = {
        "model": "fmnist-cnn", "tensor": "dense.weight", "what": "nvfp4 scales of row 3, groups 0-6 doubled (E4M3 + 8)",
        "row": row, "groups": [row * 49 + g for g in groups], "changed_elements": [int(i) for i in np.nonzero(after != before)[0]]}
    with open(os.path.join(out, "mlx-manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
