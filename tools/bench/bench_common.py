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


def time_images(forward, x, y, batches, repetitions, warmup, latency_runs, images_per_repetition, prepare=lambda xs: xs):
    """The same protocol as Parity's ComputeTimer.images: batch-1 latencies, then per batch size `repetitions`
    timed passes over whole batches (after `warmup` untimed ones), then accuracy over the whole set at batch 500.
    `prepare(list of numpy batches)` turns the inputs into the runtime's arrays before any clock starts."""
    singles = prepare([x[i:i + 1] for i in range(min(latency_runs, len(x)))])
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
        inputs = prepare([x[(j * b) % (len(x) - b + 1):][:b] for j in range(k)])
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
        logits = np.asarray(forward(prepare([x[i:i + 500]])[0]))
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


def sentence_protocol(path):
    """The sentence-embedding protocol Parity writes for a BERT cell (Bench.swift, docs/bench.md): each reference
    sentence's real tokens (`input_ids`, `token_type_ids`, unpadded), PyTorch's float32 `embeddings`, the `batches`,
    `passes` over the set per repetition, `latency_runs`, `repetitions`, `warmup` and `pp_tokens`."""
    with open(path) as f:
        return json.load(f)


def padded(protocol, start, count):
    """Sentences start..start+count padded to the longest among them (pad id 0, mask 0), as sentence-transformers
    batches them: (input_ids, attention_mask, token_type_ids, real tokens), int64 arrays."""
    ids = protocol["input_ids"][start:start + count]
    types = protocol["token_type_ids"][start:start + count]
    t = max(len(s) for s in ids)
    a = np.zeros((len(ids), t), dtype=np.int64)
    m = np.zeros((len(ids), t), dtype=np.int64)
    y = np.zeros((len(ids), t), dtype=np.int64)
    for i, (s, ty) in enumerate(zip(ids, types)):
        a[i, :len(s)], m[i, :len(s)], y[i, :len(ty)] = s, 1, ty
    return a, m, y, sum(len(s) for s in ids)


def time_sentences(forward, protocol, prepare=lambda batch: batch):
    """The same protocol as Parity's ComputeTimer.sentences: batch-1 latencies over the sentences (cycled), then per
    batch size `repetitions` timed runs of `passes` passes over the whole set (sentences/s and tokens/s), then one
    `pp_tokens`-token sequence (llama-bench's pp at batch 1), then each sentence's cosine to PyTorch's embedding.
    `forward(batch)` returns [n, features] embeddings; `prepare` turns padded numpy inputs into the runtime's own
    arrays before any clock starts."""
    n = len(protocol["input_ids"])
    warmup, repetitions = protocol["warmup"], protocol["repetitions"]
    singles = [prepare(padded(protocol, i, 1)) for i in range(n)]
    for _ in range(warmup):
        forward(singles[0])
    latencies = []
    for r in range(protocol["latency_runs"]):
        t = now_ns()
        forward(singles[r % n])
        latencies.append(now_ns() - t)
    throughput = []
    for b in protocol["batches"]:
        if b > n:
            continue
        raw = [padded(protocol, s, b) for s in range(0, n, b)]
        tokens = sum(x[3] for x in raw) * protocol["passes"]
        batches = [prepare(x) for x in raw]
        for _ in range(warmup):
            forward(batches[0])
        seconds = []
        for _ in range(repetitions):
            t = now_ns()
            for _ in range(protocol["passes"]):
                for x in batches:
                    forward(x)
            seconds.append((now_ns() - t) / 1e9)
        throughput.append({"test": f"b{b}", "batch": b, "unit": "sentences/s", "samples": [n * protocol["passes"] / s for s in seconds]})
        throughput.append({"test": f"b{b} tokens", "batch": b, "unit": "tokens/s", "samples": [tokens / s for s in seconds]})
    longest = max(protocol["input_ids"], key=len)
    pp = protocol["pp_tokens"]
    ids = np.array([[longest[i % len(longest)] for i in range(pp)]], dtype=np.int64)
    long_input = prepare((ids, np.ones_like(ids), np.zeros_like(ids), pp))
    for _ in range(warmup):
        forward(long_input)
    samples = []
    for _ in range(repetitions):
        t = now_ns()
        forward(long_input)
        samples.append(pp / ((now_ns() - t) / 1e9))
    throughput.append({"test": f"pp{pp}", "batch": 1, "unit": "tokens/s", "samples": samples})
    actual = np.asarray(forward(prepare(padded(protocol, 0, n))), dtype=np.float64)
    expected = np.asarray(protocol["embeddings"], dtype=np.float64)
    cosines = (actual * expected).sum(1) / (np.linalg.norm(actual, axis=1) * np.linalg.norm(expected, axis=1))
    return latencies, throughput, float(cosines.min())
