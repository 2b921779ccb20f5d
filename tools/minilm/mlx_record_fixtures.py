#!/usr/bin/env python3
"""Records what mlx-embeddings (the MLX BERT runtime) writes and computes for all-MiniLM-L6-v2, into
Tests/ParityTests/Fixtures/minilm-mlx/ (small: no weights).

For each variant it runs mlx-embeddings' own converter (`mlx_embeddings.convert.convert`: cast every parameter to
the dtype, then `nn.quantize` with its class predicate) on the package's directory, then records
- `<variant>/config.json`: the config.json the converter wrote, byte for byte;
- `<variant>/manifest.json`: model.safetensors' SHA-256 and size, and per tensor its name, dtype, shape and the
  SHA-256 of its data bytes (as `mx.load` reads them);
- `<variant>/embeddings.json`: the runtime's sentence embeddings (`mlx_embeddings.load` of the converted directory,
  `model(input_ids, attention_mask=...)`.text_embeds: mean pooling over real tokens, then L2 normalisation) of the
  held-out sentences, one sentence per call (no padding), with the token ids its tokenizer gave.
Plus `runtime.json` (versions, the quantize group sizes mx.quantize accepts) and `sentences.txt`.

  tools/minilm/mlx_setup_venv.sh                      # .build-venv-mlxemb with mlx-embeddings
  .build-venv-mlxemb/bin/python tools/minilm/mlx_record_fixtures.py "$(tools/minilm/model-dir.sh)" \
      --out Tests/ParityTests/Fixtures/minilm-mlx --work .build-minilm-mlx [--replace] [--keep]

Exit 2 on bad input (no config.json, unknown variant); 1 if a fixture would change and --replace was not given.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

# Held out: none of these is in golden/minilm-l6/sentences.txt.
SENTENCES = [
    "A cat sleeps on the warm windowsill.",
    "The stock market fell sharply on Tuesday.",
    "How do I reset my password?",
    "Children are playing football in the park.",
    "Quantum computers use qubits instead of bits.",
    "She sold seashells by the seashore.",
    "Naïve résumé writers rarely succeed; façades fade.",
    "The train to Berlin leaves at 7:45 from platform 3.",
    "Water boils at 100 degrees Celsius at sea level.",
    "I can't believe it's already December!",
]

# name → (dtype, quantize, group size, bits). Without a float dtype, mlx-embeddings converts to float16 (its default).
VARIANTS = {
    "f32": ("float32", False, None, None),
    "f16": ("float16", False, None, None),
    "affine-b8-g64": ("float16", True, 64, 8),
    "affine-b4-g64": ("float16", True, 64, 4),
    "affine-b4-g32": ("float16", True, 32, 4),
    "affine-b4-g128": ("float16", True, 128, 4),
}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def tensor_manifest(path):
    """Per tensor: name, dtype, shape, SHA-256 of its bytes, straight from the safetensors header (what mx.load reads)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors.append({"name": name, "dtype": info["dtype"], "shape": info["shape"], "sha256": sha256(blob[base + start:base + end])})
    tensors.sort(key=lambda t: t["name"])
    return {"file_sha256": sha256(blob), "file_size": len(blob), "metadata": header.get("__metadata__", {}), "tensors": tensors}


def write_json(path, obj, replace):
    """Compact, one list item per line (small fixtures, readable diffs)."""
    def dump(value, level):
        if isinstance(value, dict) and level < 1:
            return "{\n" + ",\n".join(json.dumps(k) + ": " + dump(value[k], level + 1) for k in sorted(value)) + "\n}"
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return "[\n" + ",\n".join(json.dumps(v, sort_keys=True, separators=(",", ":")) for v in value) + "\n]"
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return write_text(path, dump(obj, 0) + "\n", replace)


def write_text(path, text, replace):
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if old == text:
            return True
        if not replace:
            print(f"{path}: would change (give --replace)", file=sys.stderr)
            return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--replace", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the converted directories under --work")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.model_dir, "config.json")):
        print(f"error: {args.model_dir} has no config.json", file=sys.stderr)
        return 2
    names = args.variants.split(",")
    for name in names:
        if name not in VARIANTS:
            print(f"error: unknown variant {name}; known: {', '.join(VARIANTS)}", file=sys.stderr)
            return 2

    import importlib.metadata as md
    import mlx.core as mx
    import numpy as np
    from mlx_embeddings.convert import convert
    from mlx_embeddings.utils import load

    accepted = []
    probe = mx.zeros((8, 512))
    for g in (16, 32, 64, 128, 256, 384, 512):
        try:
            mx.quantize(probe, group_size=g, bits=4)
            accepted.append(g)
        except ValueError:
            pass
    ok = True
    runtime = {
        "mlx_embeddings": md.version("mlx-embeddings"), "mlx": md.version("mlx"), "mlx_cpu": md.version("mlx-cpu"),
        "transformers": md.version("transformers"), "numpy": np.__version__, "python": sys.version.split()[0],
        "affine_group_sizes_accepted": accepted,
        "model_dir_config_sha256": sha256(open(os.path.join(args.model_dir, "config.json"), "rb").read()),
        "model_safetensors_sha256": sha256(open(os.path.join(args.model_dir, "model.safetensors"), "rb").read()),
    }
    ok &= write_json(os.path.join(args.out, "runtime.json"), runtime, args.replace)
    ok &= write_text(os.path.join(args.out, "sentences.txt"), "\n".join(SENTENCES) + "\n", args.replace)

    for name in names:
        dtype, quantize, group, bits = VARIANTS[name]
        target = os.path.join(args.work, name)
        shutil.rmtree(target, ignore_errors=True)
        kwargs = dict(hf_path=args.model_dir, mlx_path=target, dtype=dtype)
        if quantize:
            kwargs.update(quantize=True, q_group_size=group, q_bits=bits, q_mode="affine")
        convert(**kwargs)
        out = os.path.join(args.out, name)
        with open(os.path.join(target, "config.json")) as f:
            ok &= write_text(os.path.join(out, "config.json"), f.read(), args.replace)
        manifest = tensor_manifest(os.path.join(target, "model.safetensors"))
        manifest["converter_call"] = {k: v for k, v in kwargs.items() if k not in ("hf_path", "mlx_path")}
        ok &= write_json(os.path.join(out, "manifest.json"), manifest, args.replace)

        model, tokenizer = load(target)
        rows = []
        for sentence in SENTENCES:
            ids = tokenizer(sentence)["input_ids"]
            x = mx.array([ids], dtype=mx.int32)
            output = model(x, attention_mask=mx.ones(x.shape, dtype=mx.int32))
            embedding = np.array(output.text_embeds.astype(mx.float32))[0]
            rows.append({"sentence": sentence, "input_ids": [int(i) for i in ids],
                         "embedding_dtype": str(output.text_embeds.dtype),
                         "embedding": [float("%.9g" % v) for v in embedding.astype(np.float32)]})
        ok &= write_json(os.path.join(out, "embeddings.json"), {"variant": name, "sentences": rows}, args.replace)
        shutil.rmtree(target) if not args.keep else None
        print(f"{name}: {len(manifest['tensors'])} tensors, file {manifest['file_sha256'][:12]}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
