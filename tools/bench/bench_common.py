"""Shared by the `parity bench` helpers: the Fashion-MNIST test set, the image model's layers from config.json, the
safetensors header, and the JSON the Swift side parses (docs/bench.md, "helper output"). Standard library + numpy."""
import gzip
import json
import os
import resource
import struct
import time

import numpy as np


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read()


def test_set(directory):
    def find(stem):
        for name in (stem, stem + ".gz"):
            if os.path.exists(os.path.join(directory, name)):
                return os.path.join(directory, name)
        raise SystemExit(f"no {stem}[.gz] in {directory}")
    images = read_idx(find("t10k-images-idx3-ubyte"))
    labels = read_idx(find("t10k-labels-idx1-ubyte"))
    n = struct.unpack(">I", images[4:8])[0]
    x = np.frombuffer(images, dtype=np.uint8, offset=16).reshape(n, 1, 28, 28).astype(np.float32) / 255.0
    y = np.frombuffer(labels, dtype=np.uint8, offset=8).astype(np.int64)
    return x, y


def read_safetensors(path):
    """name -> numpy array (float16/bfloat16 widened to float32, as the helpers compute in float32)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = data[base + start:base + end]
        dtype = entry["dtype"]
        if dtype == "F32":
            a = np.frombuffer(raw, dtype=np.float32)
        elif dtype == "F16":
            a = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif dtype == "BF16":
            a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {dtype}; this helper reads F32/F16/BF16")
        out[name] = a.reshape(entry["shape"]).copy()
    return out, sorted({e["dtype"] for k, e in header.items() if k != "__metadata__"})


def now_ns():
    return time.perf_counter_ns()


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def time_images(forward, x, y, batches, repetitions, warmup, latency_runs, images_per_repetition):
    """The same protocol as Parity's ComputeTimer.images: batch-1 latencies, then per batch size `repetitions`
    timed passes over whole batches (after `warmup` untimed ones), then accuracy over the whole set at batch 500."""
    singles = [x[i:i + 1] for i in range(min(latency_runs, len(x)))]
    for _ in range(warmup):
        forward(singles[0])
    latencies = []
    for s in singles:
        t = now_ns()
        forward(s)
        latencies.append(now_ns() - t)
    throughput = []
    for b in batches:
        if b > len(x):
            continue
        k = max(1, -(-images_per_repetition // b))
        inputs = [x[(j * b) % (len(x) - b + 1):][:b] for j in range(k)]
        for _ in range(warmup):
            forward(inputs[0])
        samples = []
        for _ in range(repetitions):
            t = now_ns()
            for inp in inputs:
                forward(inp)
            samples.append(k * b / ((now_ns() - t) / 1e9))
        throughput.append({"test": f"b{b}", "batch": b, "unit": "images/s", "samples": samples})
    correct = 0
    for i in range(0, len(x), 500):
        logits = np.asarray(forward(x[i:i + 500]))
        correct += int((logits.argmax(axis=1) == y[i:i + 500]).sum())
    return latencies, throughput, correct / len(x)


def add_common_arguments(parser):
    parser.add_argument("--test-set", required=True)
    parser.add_argument("--batches", default="1,32,500")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--images", type=int, default=500)


def add_token_arguments(parser):
    """The Llama helpers' options: prompt and generation lengths, timed repetitions, untimed warm-up runs."""
    parser.add_argument("--prompt-tokens", type=int, required=True)
    parser.add_argument("--gen-tokens", type=int, required=True)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)


def time_tokens(pp, tg, args):
    """llama-bench's protocol for the Llama helpers: for pp N (`pp()`, one pass over the N-token prompt) and then
    tg N (`tg()`, N single-token passes), `args.warmup` untimed runs and `args.repetitions` timed ones; each sample
    is tokens per second of one run."""
    throughput = []
    for name, fn, n in (("pp", pp, args.prompt_tokens), ("tg", tg, args.gen_tokens)):
        for _ in range(args.warmup):
            fn()
        samples = []
        for _ in range(args.repetitions):
            t = now_ns()
            fn()
            samples.append(n / ((now_ns() - t) / 1e9))
        throughput.append({"test": f"{name}{n}", "batch": 1, "unit": "tokens/s", "samples": samples})
    return throughput


def emit(obj):
    print(json.dumps(obj))
