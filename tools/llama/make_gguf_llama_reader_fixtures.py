#!/usr/bin/env python3
"""Small GGUF `llama` files written with gguf-py, each run through llama.cpp's real loader, for the reader's tests.

    PYTHONPATH=.build-llama/src/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py \\
        .build-venv-tools/bin/python tools/llama/make_gguf_llama_reader_fixtures.py [LLAMA_LOGITS] [OUT_DIR]

Writes OUT_DIR (default Tests/ParityTests/Fixtures/llama/reader/) with one GGUF per case and manifest.json. Each file
is a 2-layer Llama (hidden 16, 2 heads of 8, 1 KV head, feed-forward 32) with a SentencePiece-style 'llama'
vocabulary of 259 tokens (<unk>, <s>, </s> and the 256 byte tokens llama.cpp's SPM vocabulary needs for its newline
token), 2-D weights F16 and norms F32, random N(0, 0.02^2) weights from numpy's default_rng(7): about 25 KB each.
The cases differ from the correct file in exactly one way. The verdict is llama.cpp's own: LLAMA_LOGITS (default
.build-llama/ecosystem/bin/llama_logits, tools/llama/llama_logits.cpp linked against the built libllama) loads each
file and decodes 4 tokens; the manifest records whether it loaded and the loader's error line ("error loading model:
..."). Rerunning gives the same files (fixed seed, gguf-py writes deterministically) and the same verdicts.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import gguf
import numpy as np

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FF, LAYERS = 16, 2, 1, 8, 32, 2


def vocabulary():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    scores = [0.0] * len(tokens)
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    return tokens, scores, types


def tensors(vocab):
    rng = np.random.default_rng(7)
    def mat(rows, cols):  # numpy [rows=out, cols=in] -> ggml ne [in, out]
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float16)
    out = {"token_embd.weight": mat(vocab, HIDDEN), "output_norm.weight": np.ones(HIDDEN, np.float32),
           "output.weight": mat(vocab, HIDDEN)}
    for i in range(LAYERS):
        b = f"blk.{i}."
        out[b + "attn_norm.weight"] = np.ones(HIDDEN, np.float32)
        out[b + "attn_q.weight"] = mat(HEADS * HEAD_DIM, HIDDEN)
        out[b + "attn_k.weight"] = mat(KV_HEADS * HEAD_DIM, HIDDEN)
        out[b + "attn_v.weight"] = mat(KV_HEADS * HEAD_DIM, HIDDEN)
        out[b + "attn_output.weight"] = mat(HIDDEN, HEADS * HEAD_DIM)
        out[b + "ffn_norm.weight"] = np.ones(HIDDEN, np.float32)
        out[b + "ffn_gate.weight"] = mat(FF, HIDDEN)
        out[b + "ffn_up.weight"] = mat(FF, HIDDEN)
        out[b + "ffn_down.weight"] = mat(HIDDEN, FF)
    return out


def write(path, drop_keys=(), key_overrides=None, drop_tensors=(), extra_tensors=None, tensor_overrides=None, extra_keys=None):
    tokens, scores, types = vocabulary()
    w = gguf.GGUFWriter(path, "llama")
    keys = [
        ("llama.context_length", w.add_context_length, 64),
        ("llama.embedding_length", w.add_embedding_length, HIDDEN),
        ("llama.block_count", w.add_block_count, LAYERS),
        ("llama.feed_forward_length", w.add_feed_forward_length, FF),
        ("llama.attention.head_count", w.add_head_count, HEADS),
        ("llama.attention.head_count_kv", w.add_head_count_kv, KV_HEADS),
        ("llama.rope.freq_base", w.add_rope_freq_base, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", w.add_layer_norm_rms_eps, 1e-5),
        ("llama.rope.dimension_count", w.add_rope_dimension_count, HEAD_DIM),
        ("general.file_type", w.add_file_type, 1),
        ("tokenizer.ggml.model", w.add_tokenizer_model, "llama"),
        ("tokenizer.ggml.tokens", w.add_token_list, tokens),
        ("tokenizer.ggml.scores", w.add_token_scores, scores),
        ("tokenizer.ggml.token_type", w.add_token_types, types),
        ("tokenizer.ggml.bos_token_id", w.add_bos_token_id, 1),
        ("tokenizer.ggml.eos_token_id", w.add_eos_token_id, 2),
        ("tokenizer.ggml.unknown_token_id", w.add_unk_token_id, 0),
    ]
    for key, add, value in keys:
        if key in drop_keys:
            continue
        if key_overrides and key in key_overrides:
            kind, v = key_overrides[key]
            w.add_key_value(key, v, kind)
            continue
        add(value)
    for key, (kind, v) in (extra_keys or {}).items():
        w.add_key_value(key, v, kind)
    data = tensors(len(tokens))
    data.update(tensor_overrides or {})
    for name, t in list(data.items()) + list((extra_tensors or {}).items()):
        if name in drop_tensors:
            continue
        w.add_tensor(name, np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CASES = [
    ("correct", "the reference layout: every key and tensor llama.cpp reads, output.weight present", {}),
    ("tied-output", "no output.weight: llama.cpp ties the output to token_embd", {"drop_tensors": ["output.weight"]}),
    ("missing-rms-epsilon", "llama.attention.layer_norm_rms_epsilon absent (a required key)",
     {"drop_keys": ["llama.attention.layer_norm_rms_epsilon"]}),
    ("missing-tokenizer-model", "tokenizer.ggml.model absent (required by the vocabulary loader)",
     {"drop_keys": ["tokenizer.ggml.model"]}),
    ("block-count-int32", "llama.block_count stored as INT32 instead of UINT32",
     {"key_overrides": {"llama.block_count": (gguf.GGUFValueType.INT32, LAYERS)}}),
    ("extra-tensor", "one tensor llama.cpp does not create (blk.0.attn_extra.weight): wrong tensor count",
     {"extra_tensors": {"blk.0.attn_extra.weight": np.zeros((HIDDEN, HIDDEN), np.float16)}}),
    ("wrong-ne-attn-k", "blk.0.attn_k.weight stored with ne [16, 16] (as if 2 KV heads) where llama.cpp expects [16, 8]",
     {"tensor_overrides": {"blk.0.attn_k.weight": np.zeros((HEADS * HEAD_DIM, HIDDEN), np.float16)}}),
    ("no-vocab", "tokenizer.ggml.model 'none' with llama.vocab_size 259 and no token arrays: llama.cpp adds dummy tokens",
     {"drop_keys": ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"],
      "key_overrides": {"tokenizer.ggml.model": (gguf.GGUFValueType.STRING, "none")},
      "extra_keys": {"llama.vocab_size": (gguf.GGUFValueType.UINT32, 259)}}),
    ("no-vocab-without-size", "tokenizer.ggml.model 'none' without llama.vocab_size: llama.cpp's vocabulary has 0 tokens",
     {"drop_keys": ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"],
      "key_overrides": {"tokenizer.ggml.model": (gguf.GGUFValueType.STRING, "none")}}),
    ("missing-ffn-length", "llama.feed_forward_length absent: llama.cpp defaults it to 0 and then fails the tensor shapes",
     {"drop_keys": ["llama.feed_forward_length"]}),
]


def run_llama(binary, path):
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "tokens.bin")
        with open(tokens, "wb") as f:
            f.write(struct.pack("<ii", 1, 4) + struct.pack("<4i", 1, 5, 6, 7))
        p = subprocess.run([binary, path, tokens, os.path.join(tmp, "out.bin"), "--threads", "1"],
                           capture_output=True, text=True, timeout=120)
    error = [line.split("error loading model: ", 1)[1].strip() for line in p.stderr.splitlines() if "error loading model: " in line]
    aborted = [line.strip() for line in p.stderr.splitlines() if "GGML_ASSERT" in line]
    return {"exit_code": p.returncode, "loaded": p.returncode == 0,
            "error": error[0] if error else (aborted[0] if aborted else None)}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else ".build-llama/ecosystem/bin/llama_logits"
    out = sys.argv[2] if len(sys.argv) > 2 else "Tests/ParityTests/Fixtures/llama/reader"
    os.makedirs(out, exist_ok=True)
    cases = {}
    for name, what, kwargs in CASES:
        path = os.path.join(out, f"{name}.gguf")
        write(path, **kwargs)
        verdict = run_llama(binary, path)
        raw = open(path, "rb").read()
        cases[f"{name}.gguf"] = {"what": what, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "llama_cpp": verdict}
        print(f"{name}: {'loads' if verdict['loaded'] else 'refused: ' + str(verdict['error'])}")
    doc = {"what": "small GGUF llama files (gguf-py) and llama.cpp's verdict on each",
           "made_by": "tools/llama/make_gguf_llama_reader_fixtures.py",
           "runtime": "llama.cpp libllama via tools/llama/llama_logits.cpp (llama_model_load_from_file, then one decode of 4 tokens)",
           "model": {"hidden": HIDDEN, "heads": HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM, "feed_forward": FF,
                     "layers": LAYERS, "vocab": 259, "rms_epsilon_f32": float(np.float32(1e-5)), "rope_freq_base": 10000.0},
           "cases": cases}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
