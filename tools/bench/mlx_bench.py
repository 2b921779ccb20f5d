"""`parity bench` helper: MLX on the CPU (`.build-venv-mlx`'s python) on an image model's MLX file, built as mlx.nn
runs it: NHWC input, Conv2d weights [out, kh, kw, in], MaxPool2d, flatten in (h, w, c) order, Linear [out, in];
a quantized Linear (`.scales` present) runs mx.quantized_matmul with the mode/bits/group the tensors imply. Times
compute only (mx.eval of the output) and prints one JSON object (docs/bench.md, "helper output")."""
import argparse
import glob
import json
import os
import sys

from bench_common import add_common_arguments, emit, now_ns, peak_rss_bytes, test_set, time_images

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--file", required=True)
add_common_arguments(parser)
args = parser.parse_args()

try:
    import mlx.core as mx
    import mlx.nn as nn
except ImportError as e:
    emit({"absent": f"{sys.executable} has no mlx ({e})"})
    sys.exit(0)
import numpy as np

mx.set_default_device(mx.cpu)
config = json.load(open(args.config))
x_nchw, y = test_set(args.test_set)
x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))  # NHWC, prepared before any timing

t0 = now_ns()

def load(path):
    # mx.load picks the format from the extension; Parity's converted files may have any name, so read the magic.
    with open(path, "rb") as f:
        magic = f.read(2)
    return mx.load(path, format="npz" if magic == b"PK" else "safetensors")


if os.path.isdir(args.file):
    # An MLX directory: every model*.safetensors in it, merged (as mlx-lm's load_model globs them).
    weights = {}
    for name in sorted(glob.glob(os.path.join(args.file, "model*.safetensors"))):
        weights.update(load(name))
else:
    weights = load(args.file)
mx.eval(weights)
steps = []
dtypes = set()
for layer in config["layers"]:
    op, name = layer["op"], layer["name"]
    if op == "Conv2d":
        w, b = weights[f"{name}.weight"], weights.get(f"{name}.bias")
        dtypes.add(str(w.dtype))
        pad, stride = layer["padding"], layer["stride"]
        steps.append(lambda h, w=w, b=b, pad=pad, stride=stride: (mx.conv2d(h, w, stride=tuple(stride), padding=tuple(pad)) + (b if b is not None else 0)))
    elif op == "ReLU":
        steps.append(lambda h: mx.maximum(h, 0))
    elif op == "MaxPool2d":
        steps.append(nn.MaxPool2d(tuple(layer["kernel_size"]), stride=tuple(layer["stride"])))
    elif op == "Flatten":
        steps.append(lambda h: h.reshape(h.shape[0], -1))
    elif op == "Linear":
        w, b = weights[f"{name}.weight"], weights.get(f"{name}.bias")
        scales = weights.get(f"{name}.scales")
        if scales is None:
            dtypes.add(str(w.dtype))
            steps.append(lambda h, w=w, b=b: h @ w.T + (b if b is not None else 0))
        else:
            biases = weights.get(f"{name}.biases")
            in_features = layer["in_features"]
            bits = w.shape[1] * 32 // in_features
            group = in_features // scales.shape[1]
            mode = "affine" if biases is not None else {16: "nvfp4", 32: "mxfp4" if bits == 4 else "mxfp8"}[group]
            dtypes.add(f"{mode}-b{bits}-g{group}")
            steps.append(lambda h, w=w, s=scales, bs=biases, b=b, g=group, k=bits, m=mode:
                         mx.quantized_matmul(h, w, s, bs, transpose=True, group_size=g, bits=k, mode=m) + (b if b is not None else 0))
    else:
        emit({"absent": f"this helper does not build a {op} layer"})
        sys.exit(0)
load_seconds = (now_ns() - t0) / 1e9


def forward(batch):
    h = batch
    for step in steps:
        h = step(h)
    mx.eval(h)
    return h


def prepare(batches):
    """The timed loop's inputs as mx.arrays, evaluated before the clock starts (no conversion inside the timing)."""
    arrays = [mx.array(b) for b in batches]
    mx.eval(*arrays)
    return arrays


latencies, throughput, accuracy = time_images(forward, x, y, [int(b) for b in args.batches.split(",")], args.repetitions,
                                              args.warmup, args.latency_runs, args.images, prepare=prepare)
emit({"version": f"mlx {mx.__version__}", "file": args.file, "load_seconds": load_seconds, "latency_ns": latencies,
      "throughput": throughput, "accuracy": accuracy, "peak_rss_bytes": peak_rss_bytes(),
      "notes": f"CPU device; weights {'/'.join(sorted(dtypes))}; inputs converted to mx.array and evaluated before timing"})
