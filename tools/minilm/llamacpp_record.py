#!/usr/bin/env python3
"""Record what llama.cpp's converter, quantizer and embedding tool made of all-MiniLM-L6-v2 (small fixtures).

    PYTHONPATH=<llama.cpp>/gguf-py .build-venv-llama/bin/python tools/minilm/llamacpp_record.py MODEL_DIR OUT_DIR \\
        --fixtures Tests/ParityTests/Fixtures/minilm-gguf

Run by tools/minilm/llamacpp_fixtures.sh after it wrote OUT_DIR (.build-llama/minilm): gguf/minilm-l6-*.gguf,
embeddings/minilm-l6-*.json (llama-embedding's arrays), logs/NN.{out,log} and commands.tsv. Writes:
  gguf-tables.json  per GGUF: bytes, SHA-256, every metadata key in file order (an array as element type, count and
                    the SHA-256 of its items as GGUF serializes them: a string as u64 length + UTF-8, numbers
                    little-endian), every tensor in file order with its ggml type, ne and the SHA-256 of its bytes
  embeddings.json   the held-out sentences, llama.cpp's token ids (llama-tokenize) and transformers' (the model's own
                    tokenizer.json), each file's llama-embedding vectors as printed (7 decimals), and a PyTorch
                    reference (transformers BertModel in float32 and float64, attention-mask mean pooling, L2
                    normalisation: sentence-transformers' modules.json pipeline) with per-file cosine / max |Δ|
  manifest.json     versions, every command with its wall time, per file its type and llama-quantize's fallbacks
"""
import argparse
import base64
import hashlib
import json
import os
import re
import subprocess
import sys

import gguf
import numpy as np


def field_record(field):
    types = field.types
    vtype = types[0]
    if vtype == gguf.GGUFValueType.ARRAY:
        items = b"".join(np.asarray(p).tobytes() for p in field.parts[5:])
        return {"key": field.name, "type": "ARRAY", "element_type": types[1].name, "count": len(field.data),
                "sha256": hashlib.sha256(items).hexdigest()}
    value = field.contents()
    if isinstance(value, (np.floating, float)):
        value = float(value)
    elif isinstance(value, (np.integer,)):
        value = int(value)
    elif isinstance(value, (np.bool_,)):
        value = bool(value)
    return {"key": field.name, "type": vtype.name, "value": value}


def table(path):
    raw = open(path, "rb").read()
    reader = gguf.GGUFReader(path)
    metadata = [field_record(f) for name, f in reader.fields.items() if not name.startswith("GGUF.")]
    tensors = [{"name": x.name, "type": x.tensor_type.name, "ne": [int(n) for n in x.shape],
                "sha256": hashlib.sha256(np.ascontiguousarray(x.data).tobytes()).hexdigest()} for x in reader.tensors]
    return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "metadata": metadata, "tensors": tensors}


# The files whose vectors are stored (every file's metrics are in manifest.json).
STORED_FILES = ["minilm-l6-f32", "minilm-l6-f16", "minilm-l6-bf16", "minilm-l6-q8_0", "minilm-l6-Q8_0", "minilm-l6-Q4_0",
                "minilm-l6-Q4_K_M", "minilm-l6-Q5_K_M", "minilm-l6-Q6_K"]

FALLBACK = re.compile(r"warning: (\S+)\s+- ncols\s+(\d+) not divisible by\s+(\d+) \(required for type\s+(\S+)\)"
                      r".*?-> falling back to\s+(\S+)")


def reference_embeddings(model_dir, sentences):
    """transformers' BertModel + the model's tokenizer, as sentence-transformers' modules.json pipeline runs it."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    out = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        m = model.to(dtype)
        with torch.no_grad():
            states = m(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out[name] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    ids = [[int(i) for i, a in zip(row, att) if a] for row, att in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist())]
    import transformers
    return out, ids, {"torch": torch.__version__, "transformers": transformers.__version__}


def metrics(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()), "max_abs": float(np.abs(a - b).max())}


def nearest(e):
    e = np.asarray(e, dtype=np.float64)
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    return [int(i) for i in s.argmax(1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--sentences", default="tools/minilm/llamacpp_sentences.txt")
    args = ap.parse_args()
    os.makedirs(args.fixtures, exist_ok=True)
    sentences = open(args.sentences, encoding="utf-8").read().rstrip("\n").split("\n")

    gguf_dir = os.path.join(args.out, "gguf")
    names = sorted(f[:-5] for f in os.listdir(gguf_dir) if f.endswith(".gguf"))
    tables = {n + ".gguf": table(os.path.join(gguf_dir, n + ".gguf")) for n in names}
    with open(os.path.join(args.fixtures, "gguf-tables.json"), "w") as f:
        json.dump({"what": "llama.cpp's GGUF files of all-MiniLM-L6-v2, key by key and tensor by tensor (gguf-py GGUFReader)",
                   "made_by": "tools/minilm/llamacpp_fixtures.sh + tools/minilm/llamacpp_record.py",
                   "array_sha256": "SHA-256 of the items as GGUF serializes them (string: u64 length + UTF-8; numbers little-endian)",
                   "files": tables}, f, indent=None, separators=(",", ":"))
        f.write("\n")

    # commands and fallbacks, from the run's logs
    commands = []
    fallbacks = {}
    logs = os.path.join(args.out, "logs")
    for i, line in enumerate(open(os.path.join(args.out, "commands.tsv"), encoding="utf-8")):
        seconds, command = line.rstrip("\n").split("\t", 1)
        commands.append({"seconds": float(seconds), "command": command.replace(os.path.abspath(args.model), "MODEL_DIR")
                         .replace(args.model, "MODEL_DIR")})
        if "llama-quantize" in command:
            target = command.split()[2]
            log = open(os.path.join(logs, f"{i:02d}.log"), encoding="utf-8", errors="replace").read()
            fallbacks[os.path.basename(target)] = [
                {"tensor": m[0], "ncols": int(m[1]), "block": int(m[2]), "wanted": m[3], "got": m[4]}
                for m in FALLBACK.findall(log)]

    emb_dir = os.path.join(args.out, "embeddings")
    runs = {n: {fa: json.load(open(os.path.join(emb_dir, f"{n}.fa-{fa}.json"))) for fa in ("auto", "off")} for n in names}
    llama_ids = runs["minilm-l6-f32"]["auto"]["token_ids"]
    assert all(r[fa]["token_ids"] == llama_ids for r in runs.values() for fa in r), "token ids differ between files"
    reference, hf_ids, versions = reference_embeddings(args.model, sentences)
    printed = json.load(open(os.path.join(emb_dir, "llama-embedding-f32.json")))
    cross_check = metrics(printed, runs["minilm-l6-f32"]["auto"]["normalized"])

    per_file = {}
    for n in names:
        per_file[n + ".gguf"] = {}
        for fa in ("auto", "off"):
            v = runs[n][fa]["normalized"]
            assert len(v) == len(sentences) and all(len(x) == 384 for x in v), n
            per_file[n + ".gguf"]["flash_attn_" + fa] = {
                "vs_pytorch_f32": metrics(v, reference["float32"]), "vs_pytorch_f64": metrics(v, reference["float64"]),
                "vs_llama_f32_file": metrics(v, runs["minilm-l6-f32"][fa]["normalized"]), "nearest_neighbour": nearest(v)}

    def packed(vectors):  # little-endian float32, base64
        return base64.b64encode(np.asarray(vectors, dtype="<f4").tobytes()).decode()

    stored = {}
    for n in STORED_FILES:
        for fa in ("auto", "off") if n in ("minilm-l6-f32", "minilm-l6-f16") else ("auto",):
            stored[f"{n}.gguf|flash_attn_{fa}"] = packed(runs[n][fa]["normalized"])
    with open(os.path.join(args.fixtures, "embeddings.json"), "w") as f:
        json.dump({"what": "llama.cpp's sentence embeddings of held-out sentences (not in the goldens), with a PyTorch reference",
                   "command": "llamacpp_embed FILE tools/minilm/llamacpp_sentences.txt --flash-attn auto|off --threads 1 "
                              "(tools/minilm/llamacpp_embed.cpp: llama-embedding's computation — one batch, one sequence per "
                              "sentence, pooling MEAN, common_embd_normalize(2) — printed with %.9g)",
                   "encoding": "each vector set: base64 of little-endian float32 [sentences, 384], L2-normalised",
                   "llama_embedding_cross_check": {"command": commands[-1]["command"], "vs_llamacpp_embed_f32_auto": cross_check},
                   "sentences": sentences,
                   "llama_cpp_token_ids": llama_ids,
                   "transformers_token_ids": hf_ids,
                   "pytorch_reference": {"what": "transformers BertModel, attention-mask mean pooling, L2 normalisation",
                                         "versions": versions,
                                         "float32": packed(reference["float32"]),
                                         "float64_as_float32": packed(reference["float64"]),
                                         "nearest_neighbour": nearest(reference["float64"])},
                   "files": stored}, f, indent=1)
        f.write("\n")

    llama_version = subprocess.run([os.path.join(os.path.dirname(args.out), "build-native", "bin", "llama-embedding"), "--version"],
                                   capture_output=True, text=True)
    files = {}
    for n in names:
        t = tables[n + ".gguf"]
        ft = next(m["value"] for m in t["metadata"] if m["key"] == "general.file_type")
        types = {}
        for x in t["tensors"]:
            types[x["type"]] = types.get(x["type"], 0) + 1
        files[n + ".gguf"] = {"bytes": t["bytes"], "sha256": t["sha256"], "general.file_type": ft, "tensor_types": types,
                              "fallbacks": fallbacks.get(n + ".gguf"), **per_file[n + ".gguf"]}
    manifest = {
        "what": "all-MiniLM-L6-v2 through llama.cpp's convert_hf_to_gguf.py, llama-quantize and llama-embedding",
        "made_by": "tools/minilm/llamacpp_fixtures.sh",
        "llama_cpp": (llama_version.stdout + llama_version.stderr).strip().splitlines()[0:2],
        "reference_versions": versions,
        "commands": commands,
        "files": files,
        "tokenizers_agree": llama_ids == hf_ids,
    }
    with open(os.path.join(args.fixtures, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    for n in names:
        m = files[n + ".gguf"]
        for fa in ("auto", "off"):
            r = m["flash_attn_" + fa]
            print(f"{n:18s} fa-{fa:4s} {str(m['tensor_types']):42s} cos vs torch f64 min {r['vs_pytorch_f64']['cosine_min']:.7f} "
                  f"max|Δ| {r['vs_pytorch_f64']['max_abs']:.2e} vs f32 file min cos {r['vs_llama_f32_file']['cosine_min']:.7f} "
                  f"nn {'same' if r['nearest_neighbour'] == nearest(reference['float64']) else 'DIFF'} fallbacks {len(m['fallbacks'] or [])}")
    print("llama-embedding (7 decimals) vs llamacpp_embed:", cross_check)
    print("tokenizers agree:", llama_ids == hf_ids)


if __name__ == "__main__":
    sys.exit(main())
