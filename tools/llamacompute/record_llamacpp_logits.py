#!/usr/bin/env python3
"""Records llama.cpp's logits on tiny-llama's golden tokens under the attention settings that change its numerics
(KV cache type, flash attention), for Parity's ggml-semantics Llama tests.

Runs tools/llama/llama_logits.cpp (built by tools/llama/make_ecosystem_files.sh into .build-llama/ecosystem/bin)
on the f32 GGUF that llama.cpp's own convert_hf_to_gguf.py wrote, both golden sequences, 1 thread, and writes
Tests/ParityTests/Fixtures/llama-compute/llamacpp-logits.h5: one float32 [2, 32, 512] dataset per setting
(`kv-f32`, `kv-f16`, `kv-f16-flash-attn`) with attributes `file`, `file_sha256`, `command`; root `input_ids`;
and for each setting layer 0's attention nodes of the first sequence as llama.cpp
computed them (`llama_logits --dump`, the scheduler's eval callback), in numpy order (ggml's ne reversed), Q/K
head dimensions in llama.cpp's (permuted) order: `nodes/<setting>/Qcur` [T, H, D] and `Kcur` [T, Hkv, D] after
RoPE, `Vcur` [T, Hkv·D], `kq_soft_max` [H, T, T] (flash attention off only: the first T of the cache's slots;
the rest are exactly 0),
`kqv_out` [T, H·D]. `long/input_ids` [1, 80] (the two sequences, then the first 16 tokens again) and
`long/kv-f16-flash-attn`: llama.cpp's logits for them with flash attention, which from 64 queries on runs ggml's
tiled kernel.

Usage: .build-venv-mlx/bin/python tools/llamacompute/record_llamacpp_logits.py [--eco .build-llama/ecosystem]
"""
import argparse, hashlib, os, shutil, sys, tempfile
import numpy as np
import h5py

from llama_logits_run import llama_logits_command, read_dump, run, write_tokens

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eco", default=os.path.join(ROOT, ".build-llama", "ecosystem"))
    p.add_argument("--out", default=os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "llama-compute", "llamacpp-logits.h5"))
    a = p.parse_args()
    golden = h5py.File(os.path.join(ROOT, "golden", "tiny-llama", "golden.h5"), "r")
    ids = golden["/inputs/input_ids"][()].astype(np.int32)
    b, t = ids.shape
    scratch = tempfile.mkdtemp(prefix="parity-llamacpp-logits-")  # nothing is written next to the ecosystem files
    tokens = os.path.join(scratch, "tokens.bin")
    write_tokens(tokens, ids)
    gguf = os.path.join(a.eco, "gguf", "tiny-llama-f32.gguf")
    sha = hashlib.sha256(open(gguf, "rb").read()).hexdigest()
    binary = os.path.join(a.eco, "bin", "llama_logits")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with h5py.File(a.out, "w") as f:
        f.attrs["source"] = "tools/llamacompute/record_llamacpp_logits.py"
        f.create_dataset("input_ids", data=ids, track_times=False)
        for name, kv, fa in [("kv-f32", "f32", "off"), ("kv-f16", "f16", "off"), ("kv-f16-flash-attn", "f16", "on")]:
            out = os.path.join(scratch, "logits.bin")
            cmd = llama_logits_command(binary, gguf, tokens, out, kv, fa)
            run(cmd)
            logits = np.fromfile(out, "<f4").reshape(b, t, -1)
            os.remove(out)
            d = f.create_dataset(name, data=logits, chunks=True, compression="gzip", compression_opts=4, shuffle=True,
                                 track_times=False)
            d.attrs["file"] = "gguf/tiny-llama-f32.gguf (convert_hf_to_gguf.py --outtype f32)"
            d.attrs["file_sha256"] = sha
            d.attrs["command"] = " ".join(["llama_logits", "tiny-llama-f32.gguf", "TOKENS", "OUT"] + cmd[4:])
            print(name, logits.shape, float(np.abs(logits).max()))
            # Every setting: layer 0's attention nodes (flash attention materialises no kq_soft_max).
            dump = os.path.join(scratch, "dump-" + name)
            run(cmd + ["--dump", dump])
            nodes = read_dump(os.path.join(dump, "s0"))
            wanted = {"Qcur": ("Qcur-0", 2), "Kcur": ("Kcur-0", 2), "Vcur": ("Vcur-0", 0), "kqv_out": ("kqv_out-0", 0)}
            if fa == "off":
                wanted["kq_soft_max"] = ("kq_soft_max-0", 0)
            for key, node in wanted.items():
                value = nodes[node]
                if key == "kq_soft_max":
                    assert not value[:, :, t:].any(), "masked cache slots must be exactly 0"
                    value = value[:, :, :t]
                f.create_dataset(f"nodes/{name}/{key}", data=np.ascontiguousarray(value), chunks=True, compression="gzip",
                                 compression_opts=4, shuffle=True, track_times=False).attrs["node"] = f"{node[0]} (occurrence {node[1]})"
        # 80 tokens (the two golden sequences and the first 16 again) with flash attention: from 64 queries on,
        # ggml's CPU flash attention takes its tiled kernel instead of the per-row one.
        long = np.concatenate([ids[0], ids[1], ids[0][:16]])[None, :].astype(np.int32)
        long_tokens = os.path.join(scratch, "long-tokens.bin")
        write_tokens(long_tokens, long)
        out = os.path.join(scratch, "logits.bin")
        cmd = llama_logits_command(binary, gguf, long_tokens, out, "f16", "on")
        run(cmd)
        f.create_dataset("long/input_ids", data=long, track_times=False)
        d = f.create_dataset("long/kv-f16-flash-attn", data=np.fromfile(out, "<f4").reshape(1, long.shape[1], -1), chunks=True,
                             compression="gzip", compression_opts=4, shuffle=True, track_times=False)
        d.attrs["command"] = " ".join(["llama_logits", "tiny-llama-f32.gguf", "TOKENS", "OUT"] + cmd[4:])
    shutil.rmtree(scratch)

if __name__ == "__main__":
    sys.exit(main())
