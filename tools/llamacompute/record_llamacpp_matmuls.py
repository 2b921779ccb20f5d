#!/usr/bin/env python3
"""Records llama.cpp's own V projections of tiny-llama's layer 0 for every weight type its converter and quantizer
wrote, so Parity's ggml mul_mat (activations converted to each type's vec_dot_type) can be checked against libllama
itself without the converted files.

For each GGUF in .build-llama/ecosystem/gguf (tools/llama/make_ecosystem_files.sh), runs tools/llama/llama_logits.cpp
with --dump on the goldens' first token sequence (KV F32, flash attention off, 1 thread) and keeps, for the first
ROWS tokens: the input llama.cpp multiplied (`attn_norm-0`, float32 [ROWS, 256]) and its result (`Vcur-0`, the
mul_mat output before reshaping, float32 [ROWS, 128]); and the file's `blk.0.attn_v.weight` with its stored bytes
unchanged. Everything goes into one GGUF (written with gguf-py):
Tests/ParityTests/Fixtures/llama-compute/llamacpp-matmuls.gguf, tensors `<type>.weight` (the stored type),
`<type>.input`, `<type>.output` (F32), one metadata string `parity.source.<type>` naming the file and its SHA-256.
ggml quantizes activations row by row, so a subset of the rows is as good a test as all of them.

Usage: .build-venv-fixtures/bin/python tools/llamacompute/record_llamacpp_matmuls.py [--eco .build-llama/ecosystem]
"""
import argparse, hashlib, os, shutil, struct, sys, tempfile
import numpy as np
import gguf

from llama_logits_run import llama_logits_command, read_dump, run, write_tokens

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROWS = 8
FILES = {"F16": "f16", "BF16": "bf16", "Q8_0": "q8_0", "Q4_0": "Q4_0", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q6_K": "Q6_K"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eco", default=os.path.join(ROOT, ".build-llama", "ecosystem"))
    p.add_argument("--out", default=os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "llama-compute", "llamacpp-matmuls.gguf"))
    a = p.parse_args()
    scratch = tempfile.mkdtemp(prefix="parity-llamacpp-matmuls-")
    # The goldens' first sequence, as recorded in the ecosystem fixtures' tokens file (int32 B, T, ids).
    raw = open(os.path.join(a.eco, "tokens.bin"), "rb").read()
    b, t = struct.unpack("<ii", raw[:8])
    ids = np.frombuffer(raw[8:], "<i4").reshape(b, t)[:1]
    tokens = os.path.join(scratch, "tokens.bin")
    write_tokens(tokens, ids)
    writer = gguf.GGUFWriter(a.out, "parity-fixture")
    for label, stem in FILES.items():
        path = os.path.join(a.eco, "gguf", f"tiny-llama-{stem}.gguf")
        dump = os.path.join(scratch, stem)
        run(llama_logits_command(os.path.join(a.eco, "bin", "llama_logits"), path, tokens, os.path.join(scratch, "logits.bin"),
                                 "f32", "off") + ["--dump", dump])
        nodes = read_dump(os.path.join(dump, "s0"))
        x, y = nodes[("attn_norm-0", 0)][:ROWS], nodes[("Vcur-0", 0)][:ROWS]
        tensor = next(t for t in gguf.GGUFReader(path).tensors if t.name == "blk.0.attn_v.weight")
        assert tensor.tensor_type.name == label, f"{path}: blk.0.attn_v.weight is {tensor.tensor_type.name}, expected {label}"
        writer.add_tensor(f"{label}.weight", np.array(tensor.data), raw_dtype=tensor.tensor_type)
        writer.add_tensor(f"{label}.input", np.ascontiguousarray(x, dtype=np.float32))
        writer.add_tensor(f"{label}.output", np.ascontiguousarray(y, dtype=np.float32))
        sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
        writer.add_string(f"parity.source.{label}", f"gguf/tiny-llama-{stem}.gguf sha256 {sha}: llama_logits --dump, attn_norm-0 and Vcur-0, first {ROWS} tokens")
        print(label, tensor.tensor_type.name, x.shape, y.shape)
    writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
    shutil.rmtree(scratch)


if __name__ == "__main__":
    sys.exit(main())
