#!/usr/bin/env python3
"""Records Tests/ParityTests/Fixtures/llama/planted.json for the files tools/llama/make_planted_files.sh planted.

Per file: what was planted and by which script, bytes and SHA-256 (for an MLX directory, of each file in it), what
llama.cpp / mlx-lm read from it (gguf-py's GGUFReader: the changed key or the missing tensor; the MLX config's
rope_traditional and tie_word_embeddings), and the logit metrics of the runtime itself on it against the goldens (llama.cpp through
llama_logits with an F32 KV cache and flash attention off, mlx-lm through mlx_logits.py), as record_ecosystem_fixtures.py
computes them: every planted file loads in its runtime, and its logits are far from the reference.
"""

import argparse
import json
import os
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_ecosystem_fixtures import metrics, sha256_file  # noqa: E402

import gguf  # llama.cpp's own gguf-py (PYTHONPATH)


def gguf_facts(path):
    reader = gguf.GGUFReader(path)
    fields = {}
    for key in ("llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.attention.head_count_kv"):
        field = reader.fields[key]
        fields[key] = field.parts[field.data[0]][0].item()
    field = reader.fields["general.size_label"]
    fields["general.size_label"] = bytes(field.parts[field.data[0]]).decode()
    return {"metadata": fields, "has_output_weight": any(t.name == "output.weight" for t in reader.tensors),
            "tensor_count": len(reader.tensors)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("planted_dir")
    parser.add_argument("--llama-logits", required=True)
    parser.add_argument("--mlx-python", required=True)
    parser.add_argument("--fixtures", required=True)
    args = parser.parse_args()
    name = os.path.basename(os.path.abspath(args.model_dir))
    with h5py.File(os.path.join(args.model_dir, "golden.h5"), "r") as g:
        ids = g["inputs/input_ids"][()].astype(np.int64)
        golden32 = g["activations/lm_head"][()].astype(np.float64)
        reference64 = g["reference/logits_f64"][()]
    tokens = os.path.join(args.planted_dir, "tokens.bin")
    with open(tokens, "wb") as f:
        f.write(np.array(ids.shape, "<i4").tobytes() + ids.astype("<i4").tobytes())
    plants = [
        (f"{name}-f32-rope-freq-base.gguf", "planted_rope_freq_base.py", "llama.rope.freq_base 500000 instead of the config's rope_theta"),
        (f"{name}-f32-rms-eps.gguf", "planted_rms_eps.py", "llama.attention.layer_norm_rms_epsilon 1e-6 instead of the config's rms_norm_eps"),
        (f"{name}-f32-no-output.gguf", "planted_no_output.py", "no output.weight (lm_head.weight dropped) for an untied checkpoint"),
        (f"{name}-f32-kv-heads-tiled.gguf", "planted_kv_heads_expanded.py tiled",
         "K/V heads expanded to one per query head by tiling (torch.Tensor.repeat), head_count_kv = head_count"),
        (f"{name}-f32-kv-heads-repeat-kv.gguf", "planted_kv_heads_expanded.py repeat_kv",
         "K/V heads expanded to one per query head in transformers' repeat_kv order, head_count_kv = head_count"),
        (f"{name}-float32-rope-traditional", "planted_mlx_config.py rope_traditional=true", "config.json rope_traditional true"),
        (f"{name}-float32-tied", "planted_mlx_config.py tie_word_embeddings=true",
         "config.json tie_word_embeddings true for an untied checkpoint (lm_head.weight stays in the file; mlx-lm drops it)"),
    ]
    files = {}
    for file, script, what in plants:
        path = os.path.join(args.planted_dir, file)
        out = os.path.join(args.planted_dir, "logits.bin")
        if file.endswith(".gguf"):
            entry = {"bytes": os.path.getsize(path), "sha256": sha256_file(path), **gguf_facts(path)}
            cmd = [args.llama_logits, path, tokens, out, "--kv", "f32", "--flash-attn", "off", "--threads", "1"]
            runtime = "llama.cpp (libllama, tools/llama/llama_logits.cpp; KV F32, flash attention off, 1 thread)"
        else:
            entry = {"files": {f: {"bytes": os.path.getsize(os.path.join(path, f)), "sha256": sha256_file(os.path.join(path, f))}
                               for f in sorted(os.listdir(path))}}
            with open(os.path.join(path, "config.json")) as f:
                config = json.load(f)
            entry["config"] = {key: config.get(key) for key in ("rope_traditional", "tie_word_embeddings")}
            cmd = [args.mlx_python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlx_logits.py"), path, tokens, out]
            runtime = "mlx-lm (mlx_lm.load, tools/llama/mlx_logits.py, CPU)"
        subprocess.run(cmd, check=True, capture_output=True)
        logits = np.fromfile(out, "<f4").reshape(reference64.shape)
        os.remove(out)
        m = metrics(logits, golden32, reference64, ids)
        files[file] = {"script": f"tools/llama/{script}", "planted": what, **entry, "runtime": runtime, "logits": m}
        print(f"{file:<40} max|Δ| {m['max_abs_dlogit_vs_golden_f32']:.3e}  KL mean {m['kl_mean']:.3e}  top-1 {m['top1_agreement']:.3f}")
    os.remove(tokens)
    with open(args.fixtures, "w") as f:
        json.dump({"generator": "tools/llama/make_planted_files.sh", "model": name, "files": files}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
