"""Shared by make_planted_gguf.py (gguf-py venv), make_planted_mlx.py and finish_planted.py (MLX venv):
the list of planted cases, the reference weights and the correct layouts. numpy + stdlib only.

Every planted file differs from a CORRECT conversion in exactly one tensor. The correct layouts are those of
tools/ggml/make_reference_gguf.py (GGUF, docs/runtime-notes.md §1) and tools/mlx/models.py (MLX, docs/runtime-notes.md §2); they are
restated here on purpose (this is an outside converter, it shares no code with Parity's Sources/).
"""
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "planted")
DATA_DIR = "/usr/share/datasets/fashion-mnist"

sys.path.insert(0, os.path.join(ROOT, "tools"))
from safetensors_io import read_safetensors  # noqa: E402

ARCH = {"fmnist-cnn": "mnist-cnn", "fmnist-mlp": "mnist-fc"}

# The committed set must stay below 2 MB. A float16 MLP is ~796 KB, so only ONE MLP file is committed
# (case 19); cases 2 and 10 are written (byte-identical) only with `make_planted.sh --large`, under large/
# (git-ignored), and expected.json records their SHA-256 and size so a test can skip them or check them.
NOT_COMMITTED = {2, 10}

# (id, format, model, file name, tensor changed, layer, diagnosis, mistake, how)
CASES = [
    (1, "gguf", "fmnist-cnn", "01-cnn-correct.gguf", None, None, None,
     "none: a correct conversion (F32)",
     "exactly the layout of tools/ggml/make_reference_gguf.py: kernels OIHW as written by PyTorch (ne [3,3,I,O]), "
     "conv biases reshaped to (1,C,1,1) (ne [1,1,C,1]), dense.weight columns permuted (c,h,w)->(h,w,c), all F32"),
    (2, "gguf", "fmnist-mlp", "02-mlp-f16-correct.gguf", None, None, None,
     "none: a correct conversion (weights F16, biases F32)",
     "fc1.weight/fc2.weight as numpy float16 (ne [784,500] / [500,10], GGML F16), fc1.bias/fc2.bias F32; "
     "= make_reference_gguf.py --dtype f16"),
    (3, "gguf", "fmnist-cnn", "03-cnn-dense-no-permute.gguf", "dense.weight", "dense", "flatten-order",
     "dense.weight written with PyTorch's (c,h,w) flatten columns; ggml flattens (h,w,c)",
     "dense.weight = PyTorch dense.weight [10,784] unchanged (the column permutation "
     "reshape(10,16,7,7).transpose(0,2,3,1).reshape(10,784) skipped); ne [784,10] F32"),
    (4, "gguf", "fmnist-cnn", "04-cnn-conv1-kernel-swapped-hw.gguf", "conv1.kernel", "conv1", "kernel-swapped-hw",
     "conv1 kernel with kh and kw exchanged",
     "conv1.kernel = conv1.weight.transpose(0,1,3,2) (O,I,KW,KH); same ne [3,3,1,8] F32"),
    (5, "gguf", "fmnist-cnn", "05-cnn-conv2-kernel-flipped.gguf", "conv2.kernel", "conv2", "kernel-flipped",
     "conv2 kernel rotated 180 degrees (convolution vs cross-correlation)",
     "conv2.kernel = conv2.weight[:, :, ::-1, ::-1] (both spatial axes reversed); same ne [3,3,8,16] F32"),
    (6, "gguf", "fmnist-cnn", "06-cnn-conv2-bias-zero.gguf", "conv2.bias", "conv2", "bias-missing",
     "conv2 bias lost (written as zeros)",
     "conv2.bias = zeros, shape (1,16,1,1) (ne [1,1,16,1]) F32"),
    (7, "gguf", "fmnist-cnn", "07-cnn-dense-bias-doubled.gguf", "dense.bias", "dense", "bias-doubled",
     "dense bias added twice",
     "dense.bias = 2 * dense.bias (exact in F32); ne [10] F32"),
    (8, "gguf", "fmnist-cnn", "08-cnn-conv1-scale2.gguf", "conv1.kernel", "conv1", "scale",
     "conv1 kernel multiplied by 2",
     "conv1.kernel = 2 * conv1.weight (exact in F32); ne [3,3,1,8] F32"),
    (9, "gguf", "fmnist-cnn", "09-cnn-dense-f16-as-bf16.gguf", "dense.weight", "dense", "dtype-f16-as-bf16",
     "dense.weight's float16 bytes labelled BF16",
     "dense.weight = numpy float16 of the (correctly permuted) [10,784] weight, its uint16 view written with "
     "add_tensor(raw_dtype=GGMLQuantizationType.BF16); ne [784,10], type BF16"),
    (10, "gguf", "fmnist-mlp", "10-mlp-f16-fc2-transposed.gguf", "fc2.weight", "fc2", "transposed",
     "fc2.weight stored transposed",
     "fc2.weight = float16 of fc2.weight.T, numpy [500,10] so ne [10,500] instead of [500,10]; every other "
     "tensor as in case 2 (weights F16, biases F32)"),
    (11, "mlx", "fmnist-cnn", "11-cnn-correct", None, None, None,
     "none: a correct conversion (f32 directory)",
     "config.json (golden config + model_type) and model.safetensors (mx.save_safetensors, metadata "
     "{format: mlx}): conv weights OHWI = transpose(0,2,3,1), dense.weight columns permuted (c,h,w)->(h,w,c), "
     "biases unchanged, all float32"),
    (12, "mlx", "fmnist-cnn", "12-cnn-correct.npz", None, None, None,
     "none: a correct conversion (single .npz, no config)",
     "the tensors of case 11 written with mx.savez(path, **weights); the architecture comes from "
     "golden/fmnist-cnn/config.json"),
    (13, "mlx", "fmnist-cnn", "13-cnn-dense-transposed", "dense.weight", "dense", "transposed",
     "dense.weight transposed ([in,out] instead of nn.Linear's [out,in])",
     "dense.weight = (correctly permuted dense.weight).T, shape [784,10] float32"),
    (14, "mlx", "fmnist-cnn", "14-cnn-dense-no-permute", "dense.weight", "dense", "flatten-order",
     "dense.weight written with PyTorch's (c,h,w) flatten columns; MLX flattens NHWC as (h,w,c)",
     "dense.weight = PyTorch dense.weight [10,784] unchanged (column permutation skipped), float32"),
    (15, "mlx", "fmnist-cnn", "15-cnn-conv2-oihw", "conv2.weight", "conv2", "conv-layout",
     "conv2 weight left in PyTorch's OIHW layout",
     "conv2.weight = PyTorch conv2.weight [16,8,3,3] (no transpose(0,2,3,1)); mlx.nn.Conv2d expects [16,3,3,8]"),
    (16, "mlx", "fmnist-cnn", "16-cnn-conv1-kernel-swapped-hw", "conv1.weight", "conv1", "kernel-swapped-hw",
     "conv1 kernel with kh and kw exchanged",
     "conv1.weight = correct OHWI [8,3,3,1] with axes 1 and 2 exchanged (transpose(0,2,1,3)); same shape"),
    (17, "mlx", "fmnist-cnn", "17-cnn-dense-bias-zero", "dense.bias", "dense", "bias-missing",
     "dense bias lost (written as zeros)",
     "dense.bias = zeros [10] float32"),
    (18, "mlx", "fmnist-cnn", "18-cnn-conv2-scale-half", "conv2.weight", "conv2", "scale",
     "conv2 weight multiplied by 0.5",
     "conv2.weight = 0.5 * correct OHWI conv2.weight (exact in float32)"),
    (19, "mlx", "fmnist-mlp", "19-mlp-f16-fc1-bias-doubled", "fc1.bias", "fc1", "bias-doubled",
     "fc1 bias doubled in a float16 MLP",
     "every tensor float16 (fc1.weight [500,784], fc1.bias [500], fc2.weight [10,500], fc2.bias [10]); "
     "fc1.bias = 2 * float16(fc1.bias) (exact in float16)"),
    # Added for issue 9 (diagnosis of layouts reshaped to fit, architecture checks, strict loading):
    (20, "mlx", "fmnist-cnn", "20-cnn-conv2-oihw-reshaped", "conv2.weight", "conv2", "conv-layout",
     "conv2 weight in PyTorch's OIHW element order, reshaped to the OHWI shape mlx.nn expects",
     "conv2.weight = PyTorch conv2.weight [16,8,3,3] reshaped (not transposed) to [16,3,3,8]; the shape check of "
     "load_weights passes, the values are in the wrong order"),
    (21, "gguf", "fmnist-cnn", "21-cnn-conv2-ohwi-reshaped.gguf", "conv2.kernel", "conv2", "conv-layout",
     "conv2 kernel in MLX's OHWI element order, reshaped to the shape ggml asserts",
     "conv2.kernel = conv2.weight.transpose(0,2,3,1) (MLX's [16,3,3,8]) reshaped to (16,8,3,3), so ne [3,3,8,16] as "
     "mnist-common.cpp asserts; values in the wrong order"),
    (22, "gguf", "fmnist-cnn", "22-cnn-correct-for-mlp.gguf", None, None, None,
     "none: a correct fmnist-cnn conversion, checked against the fmnist-mlp model (the wrong file for that model)",
     "byte-identical to case 1 (general.architecture mnist-cnn); the test verifies it against fmnist-mlp"),
    (23, "mlx", "fmnist-cnn", "23-cnn-correct-for-mlp", None, None, None,
     "none: a correct fmnist-cnn MLX directory (model_type mnist-cnn), checked against the fmnist-mlp model",
     "identical to case 11; the test verifies it against fmnist-mlp"),
    (24, "mlx", "fmnist-cnn", "24-cnn-extra-parameter", "conv1.running_var", None, None,
     "an extra parameter the model does not have (a BatchNorm buffer carried over)",
     "the tensors of case 11 plus conv1.running_var = ones [8] float32; MLX's load_weights(strict=True) refuses it"),
    (25, "gguf", "fmnist-cnn", "25-cnn-extra-tensor.gguf", "conv1.running_var", None, None,
     "an extra tensor the architecture does not use (a BatchNorm buffer carried over)",
     "the tensors of case 1 plus conv1.running_var = ones (8,) F32 (ne [8]), written after dense.bias; ggml's mnist "
     "loader reads every tensor of the file and uses only the six it fetches by name"),
    (26, "mlx", "fmnist-cnn", "26-cnn-dense-transposed-reshaped", "dense.weight", "dense", "transposed",
     "dense.weight's [in,out] matrix reshaped to [out,in] without transposing",
     "dense.weight = (correctly permuted dense.weight).T ([784,10]) reshaped (not transposed) to [10,784]"),
    (27, "safetensors", "fmnist-cnn", "27-cnn-extra-tensor.safetensors", "conv1.running_var", None, None,
     "an extra tensor the model does not have (a BatchNorm buffer carried over)",
     "golden/fmnist-cnn/model.safetensors's tensors (PyTorch layout) plus conv1.running_var = ones [8] float32, written "
     "with the safetensors library (safetensors.numpy.save_file); PyTorch's load_state_dict(strict=True) refuses it"),
]

# The model Parity verifies a case against when it is not the case's own model (the file is for another
# architecture: bad input, exit 2).
CHECKED_AGAINST = {22: "fmnist-mlp", 23: "fmnist-mlp"}
# What the planted-case tests require of a report beyond the diagnosis (recorded here, with the reason).
REPORT_RULES = {
    3: "a failing file: no note may put its gap down to ggml's F16 im2col rounding, under either im2col rule",
}


def case_dicts(fmt):
    out = []
    for cid, f, model, name, tensor, layer, diag, mistake, how in CASES:
        if f != fmt:
            continue
        sub = ("large/" if cid in NOT_COMMITTED else "") + f + "/" + name
        case = {"id": cid, "file": sub, "format": f, "model": model, "mistake": mistake, "layer": layer,
                "diagnosis": diag, "how": how, "tensor_changed": tensor, "committed": cid not in NOT_COMMITTED}
        if cid in CHECKED_AGAINST:
            case["checked_against"] = CHECKED_AGAINST[cid]
        if cid in REPORT_RULES:
            case["report_rule"] = REPORT_RULES[cid]
        out.append(case)
    return out


def golden_dir(model):
    return os.path.join(ROOT, "golden", model)


def reference_weights(model):
    return read_safetensors(os.path.join(golden_dir(model), "model.safetensors"))


def reference_config(model):
    with open(os.path.join(golden_dir(model), "config.json")) as f:
        return json.load(f)


def dense_hwc(w):
    """PyTorch dense.weight [10,784] with columns c*49+h*7+w -> columns (h*7+w)*16+c (ggml/MLX flatten)."""
    assert w.shape == (10, 784)
    return np.ascontiguousarray(w.reshape(10, 16, 7, 7).transpose(0, 2, 3, 1).reshape(10, 784))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_info(path):
    """{relative name: {bytes, sha256}} for a file or every file of a directory (sorted)."""
    if os.path.isdir(path):
        return {n: {"bytes": os.path.getsize(os.path.join(path, n)), "sha256": sha256_file(os.path.join(path, n))}
                for n in sorted(os.listdir(path))}
    return {os.path.basename(path): {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}}


def idx_test_set():
    """Fashion-MNIST t10k as (float32 [N,1,28,28] pixel/255, int64 labels), from Debian's gzipped IDX."""
    import gzip
    with gzip.open(os.path.join(DATA_DIR, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        raw = f.read()
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(DATA_DIR, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return (images.astype(np.float32) / np.float32(255.0)), labels


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(path + ".tmp", path)
