"""Running tools/llama/llama_logits.cpp (built by tools/llama/make_ecosystem_files.sh into
.build-llama/ecosystem/bin/llama_logits) and reading what it writes — shared by the llamacompute recorders."""
import os
import subprocess

import numpy as np


def write_tokens(path, ids):
    """llama_logits' token file: int32 B, int32 T, then the B·T int32 ids of `ids` [B, T]."""
    with open(path, "wb") as f:
        f.write(np.array(ids.shape, "<i4").tobytes())
        f.write(ids.astype("<i4").tobytes())


def llama_logits_command(binary, gguf, tokens, out, kv, flash_attn):
    """llama_logits on `gguf` with KV cache type `kv` (f32/f16) and flash attention `flash_attn` (on/off), one
    thread; float32 logits [B, T, vocab] go to `out`. Append ["--dump", DIR] for the graph nodes of every sequence."""
    return [binary, gguf, tokens, out, "--kv", kv, "--flash-attn", flash_attn, "--threads", "1"]


def run(cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def read_dump(directory):
    """{(name, occurrence): array in numpy order, size-1 axes dropped} of one sequence dumped by llama_logits --dump:
    each file holds int64 ne[4] then float32 data in ggml order; nodes.tsv lists index, name, ne in compute order."""
    nodes, seen = {}, {}
    with open(os.path.join(directory, "nodes.tsv")) as f:
        for line in f:
            index, name, _ = line.rstrip("\n").split("\t")
            k = seen.get(name, 0)
            seen[name] = k + 1
            path = os.path.join(directory, f"{index}.bin")
            ne = np.fromfile(path, dtype="<i8", count=4)
            nodes[(name, k)] = np.fromfile(path, dtype="<f4", offset=32).reshape(tuple(int(x) for x in ne[::-1])).squeeze()
    return nodes
