#!/usr/bin/env python3
"""Record fixtures about the files llama.cpp's and mlx-lm's own converters wrote (see make_ecosystem_files.sh).

    PYTHONPATH=<llama.cpp>/gguf-py .build-venv-llama/bin/python tools/llama/record_ecosystem_fixtures.py \
        MODEL_DIR ECOSYSTEM_DIR --fixtures Tests/ParityTests/Fixtures/llama --mlx-python .build-venv-mlxlm/bin/python

Writes into the fixtures directory:
  manifest.json      tool versions, every command with its wall time, size and SHA-256 of every output file, the
                     runtime settings used for logits, and per file the logit metrics against the goldens
  tensor-types.json  per GGUF file: every tensor's ggml type and ne (read with gguf-py's GGUFReader) and
                     general.file_type; per MLX directory: every tensor's dtype and shape and config "quantization"
  logits.h5          float32 [1, T, vocab] logits each runtime computed on the goldens' first token sequence, one
                     dataset per file (gzip + shuffle; name = the file's path with "/" as "__"), plus /input_ids
Metrics are computed against the float64 reference logits of golden.h5 (/reference/logits_f64), as llama.cpp's
llama-perplexity --kl-divergence reports them: KL(reference || file) per position (mean, 99th percentile, max),
top-1 agreement with its binomial standard error, Δp of the actual next token (mean, RMS, max |Δp|), perplexity of
the next tokens and ln(PPL(file)/PPL(reference)); and max |Δlogit| against both the float32 goldens and float64.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import h5py
import numpy as np

import gguf  # llama.cpp's own gguf-py (PYTHONPATH)

# Logits are stored for the first sequence only (float32, 64 KB per file): all of them would be 2 MB of fixtures.
# The metrics in manifest.json cover every sequence.
STORED_SEQUENCES = 1


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def metrics(test, golden32, reference64, ids, next_ids=None):
    """ids: the token ids the logits were computed for (position t's next token is ids[t + 1]; the last position
    has none). next_ids instead: the next token of every position given."""
    lp_ref, lp = log_softmax(reference64), log_softmax(test)
    p_ref = np.exp(lp_ref)
    kl = (p_ref * (lp_ref - lp)).sum(-1).ravel()
    top1 = (test.argmax(-1) == reference64.argmax(-1)).ravel()
    n = top1.size
    agree = float(top1.mean())
    if next_ids is None:
        nxt, lp_ref_n, lp_n = ids[:, 1:], lp_ref[:, :-1], lp[:, :-1]
    else:
        nxt, lp_ref_n, lp_n = next_ids, lp_ref, lp
    lp_ref_next = np.take_along_axis(lp_ref_n, nxt[..., None], -1)[..., 0]
    lp_next = np.take_along_axis(lp_n, nxt[..., None], -1)[..., 0]
    dp = np.exp(lp_next) - np.exp(lp_ref_next)
    return {
        "max_abs_dlogit_vs_golden_f32": float(np.abs(test.astype(np.float64) - golden32).max()),
        "max_abs_dlogit_vs_f64": float(np.abs(test.astype(np.float64) - reference64).max()),
        "kl_mean": float(kl.mean()), "kl_p99": float(np.percentile(kl, 99)), "kl_max": float(kl.max()),
        "top1_agreement": agree, "top1_stderr": float(np.sqrt(agree * (1 - agree) / n)), "positions": int(n),
        "delta_p_mean": float(dp.mean()), "delta_p_rms": float(np.sqrt((dp ** 2).mean())),
        "delta_p_max_abs": float(np.abs(dp).max()),
        "ppl_reference": float(np.exp(-lp_ref_next.mean())), "ppl": float(np.exp(-lp_next.mean())),
        "ln_ppl_ratio": float(lp_ref_next.mean() - lp_next.mean()),
    }


def gguf_table(path):
    reader = gguf.GGUFReader(path)
    field = reader.fields.get("general.file_type")
    tensors = {t.name: {"type": t.tensor_type.name, "ne": [int(x) for x in t.shape]} for t in reader.tensors}
    return {"general.file_type": int(field.parts[field.data[0]][0]) if field else None, "tensors": tensors}


def mlx_table(directory):
    from safetensors import safe_open
    tensors = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(directory, name), framework="numpy") as f:
                for key in f.keys():
                    s = f.get_slice(key)
                    tensors[key] = {"dtype": s.get_dtype(), "shape": list(s.get_shape())}
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    return {"quantization": config.get("quantization"), "torch_dtype": config.get("torch_dtype"), "tensors": tensors}


def tool_versions(mlx_python):
    import re
    import transformers
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import parity_models  # Debian's torch reports 1.13.0a0; the package says 1.13.1
    pyproject = os.path.join(os.path.dirname(os.path.dirname(gguf.__file__)), "pyproject.toml")
    with open(pyproject) as f:
        gguf_version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    out = {"llama.cpp": "vendored in the PyPI sdist llama-cpp-python 0.3.36 (sha256 832db0699007f1be95a7e41ef12e8892"
                        "6b02ba836461e36a36372db2760c1a2e), built by tools/llama/build-llama.sh native",
           "gguf-py": f"{gguf_version} (vendored with llama.cpp)",
           "torch (converter)": parity_models.reference_framework().split()[1], "transformers": transformers.__version__,
           "numpy (converter)": np.__version__}
    probe = ("import importlib.metadata as m; import json; print(json.dumps({k: m.version(k) for k in "
             "['mlx', 'mlx-lm', 'transformers', 'numpy']}))")
    versions = json.loads(subprocess.run([mlx_python, "-c", probe], capture_output=True, text=True,
                                         check=True).stdout)
    out.update({f"{k} (mlx venv)": v for k, v in versions.items()})
    return out


def read_dump(directory):
    """{(name, occurrence): numpy array in reversed-ne order} of one sequence dumped by llama_logits --dump."""
    nodes, seen = {}, {}
    with open(os.path.join(directory, "nodes.tsv")) as f:
        for line in f:
            index, name, _ = line.rstrip("\n").split("\t")
            k = seen.get(name, 0)
            seen[name] = k + 1
            raw = np.fromfile(os.path.join(directory, f"{index}.bin"), dtype="<f4", offset=32)
            ne = np.fromfile(os.path.join(directory, f"{index}.bin"), dtype="<i8", count=4)
            nodes[(name, k)] = raw.reshape(tuple(int(x) for x in ne[::-1]))
    return nodes


def node_comparison(dump_root, golden_path, layers, heads, kv_heads, head_dim):
    """llama.cpp's own graph nodes against the goldens, per node: max |Δ| and relative L2 over every sequence.

    ggml's ne order is reversed into numpy's; Q/K after RoPE are compared with the goldens' q_rope/k_rope whose head
    dimensions are reordered as convert_hf_to_gguf's permutation reorders the rows (llama.cpp dimension 2j + k is
    Hugging Face dimension k·D/2 + j), so a correctly converted file matches at float noise; attention probabilities
    are compared over the first T of the KV cache's slots (the others are masked) and those must be exactly 0.
    """
    perm = [k * (head_dim // 2) + j for j in range(head_dim // 2) for k in (0, 1)]
    pairs = [("embd", 0, "/activations/model.embed_tokens", None)]
    for n in range(layers):
        a, at = f"/activations/model.layers.{n}", f"/attention/model.layers.{n}.self_attn"
        pairs += [(f"attn_norm-{n}", 0, f"{a}.input_layernorm", None),
                  (f"Qcur-{n}", 2, f"{at}/q_rope", "rope"), (f"Kcur-{n}", 2, f"{at}/k_rope", "rope"),
                  (f"Vcur-{n}", 0, f"{a}.self_attn.v_proj", None),
                  (f"kq_soft_max-{n}", 0, f"{at}/probs", "probs"),
                  (f"kqv_out-{n}", 0, f"/intermediates/model.layers.{n}.self_attn.o_proj.input", None),
                  (f"attn_out-{n}", 0, f"{a}.self_attn.o_proj", None),
                  (f"ffn_inp-{n}", 0, f"/intermediates/model.layers.{n}.post_attention_layernorm.hidden_states", None),
                  (f"ffn_norm-{n}", 0, f"{a}.post_attention_layernorm", None),
                  (f"ffn_gate-{n}", 0, f"{a}.mlp.gate_proj", None), (f"ffn_up-{n}", 0, f"{a}.mlp.up_proj", None),
                  (f"ffn_swiglu-{n}", 0, f"/intermediates/model.layers.{n}.mlp.down_proj.input", None),
                  (f"ffn_out-{n}", 0, f"{a}.mlp.down_proj", None), (f"l_out-{n}", 0, a, None)]
    pairs += [("result_norm", 0, "/activations/model.norm", None), ("result_output", 0, "/activations/lm_head", None)]
    sequences = sorted(d for d in os.listdir(dump_root) if d.startswith("s"))
    dumps = [read_dump(os.path.join(dump_root, d)) for d in sequences]
    rows = []
    with h5py.File(golden_path, "r") as g:
        for name, occurrence, golden_name, how in pairs:
            diffs, refs, masked_max = [], [], 0.0
            for s, nodes in enumerate(dumps):
                mine = nodes[(name, occurrence)].astype(np.float64)
                ref = g[golden_name][s].astype(np.float64)
                if how == "rope":      # ggml [T, H, D] vs golden [H, T, D] in HF dimension order
                    ref = ref.transpose(1, 0, 2)[..., perm]
                elif how == "probs":   # ggml [H, T, n_kv] vs golden [H, T, T]
                    masked_max = max(masked_max, float(np.abs(mine[..., ref.shape[-1]:]).max()))
                    mine = mine[..., : ref.shape[-1]]
                mine = mine.reshape(ref.shape)
                diffs.append((mine - ref).ravel())
                refs.append(ref.ravel())
            d, r = np.concatenate(diffs), np.concatenate(refs)
            row = {"llama.cpp node": name if occurrence == 0 else f"{name} (#{occurrence}, after RoPE)",
                   "golden": golden_name, "max_abs": float(np.abs(d).max()),
                   "rel_l2": float(np.linalg.norm(d) / np.linalg.norm(r)),
                   "golden_noise_floor_max_abs": float(g[golden_name].attrs.get("noise_floor_max_abs", float("nan")))}
            if how == "probs":
                row["masked_slots_max_abs"] = masked_max
            rows.append(row)
    return rows


def validate_kl_metrics(eco, name, n_ctx=64):
    """The metrics computed here against llama-perplexity's own --kl-divergence report, on the same tokens.

    llama-perplexity (f32 GGUF as the base, Q4_K_M as the file under test) on the held-out text in chunks of n_ctx
    tokens, BOS first, scoring positions n_ctx/2 .. n_ctx-2; then the same chunks through llama_logits and this
    module's formulas. Its base file stores log-probabilities rounded to 16 bits, so agreement is to ~1e-4.
    """
    import ast
    import re
    bin_dir = os.path.join(os.path.dirname(eco.rstrip("/")), "build-native", "bin")
    text = "/usr/share/common-licenses/Artistic"
    f32, q = (os.path.join(eco, "gguf", f"{name}-{t}.gguf") for t in ("f32", "Q4_K_M"))
    base = os.path.join(eco, "kl-base.dat")
    common = ["-c", str(n_ctx), "-b", str(n_ctx), "-t", "1", "-ctk", "f32", "-ctv", "f32", "-fa", "off"]
    subprocess.run([os.path.join(bin_dir, "llama-perplexity"), "-m", f32, "-f", text, "--kl-divergence-base", base]
                   + common, check=True, capture_output=True)
    report = subprocess.run([os.path.join(bin_dir, "llama-perplexity"), "-m", q, "--kl-divergence-base", base,
                             "--kl-divergence"] + common, check=True, capture_output=True, text=True)
    log = report.stdout + report.stderr

    def grab(pattern):
        return float(re.search(pattern, log).group(1))
    theirs = {"kl_mean": grab(r"Mean\s+KLD:\s+([-\d.]+)"), "kl_max": grab(r"Maximum KLD:\s+([-\d.]+)"),
              "top1_agreement": grab(r"Same top p:\s+([-\d.]+)") / 100,
              "delta_p_rms": grab(r"RMS Δp\s+:\s+([-\d.]+)") / 100,
              "ln_ppl_ratio": grab(r"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s+:\s+([-\d.]+)"),
              "ppl_reference": grab(r"Mean PPL\(base\)\s+:\s+([-\d.]+)"), "ppl": grab(r"Mean PPL\(Q\)\s+:\s+([-\d.]+)")}
    out = subprocess.run([os.path.join(bin_dir, "llama-tokenize"), "-m", f32, "-f", text, "--ids", "--log-disable"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    ids = ast.literal_eval(out)
    chunks = np.array([ids[i * n_ctx:(i + 1) * n_ctx] for i in range(len(ids) // n_ctx)], dtype=np.int64)
    targets = chunks.copy()
    chunks[:, 0] = 1  # llama-perplexity puts BOS first in every chunk
    tokens = os.path.join(eco, "kl-tokens.bin")
    with open(tokens, "wb") as f:
        f.write(np.array(chunks.shape, "<i4").tobytes() + chunks.astype("<i4").tobytes())
    logits = {}
    for key, path in (("base", f32), ("q", q)):
        out_path = os.path.join(eco, f"kl-{key}.bin")
        subprocess.run([os.path.join(eco, "bin", "llama_logits"), path, tokens, out_path, "--kv", "f32",
                        "--flash-attn", "off", "--threads", "1"], check=True, capture_output=True)
        logits[key] = np.fromfile(out_path, "<f4").reshape(chunks.shape + (-1,))
        os.remove(out_path)
    for path in (tokens, base):
        os.remove(path)
    first = n_ctx // 2
    sl = slice(first, n_ctx - 1)
    base64 = logits["base"][:, sl].astype(np.float64)
    ours = metrics(logits["q"][:, sl], base64, base64, None, next_ids=targets[:, first + 1:n_ctx])
    keys = ["kl_mean", "kl_max", "top1_agreement", "delta_p_rms", "ln_ppl_ratio", "ppl_reference", "ppl"]
    return {"how": validate_kl_metrics.__doc__.split("\n\n")[1].strip().replace("\n    ", " "),
            "text": text, "n_ctx": n_ctx, "positions": ours["positions"],
            "llama-perplexity": theirs, "record_ecosystem_fixtures.metrics": {k: ours[k] for k in keys}}


def tokenizer_agreement(model_dir, eco, name, prompts, mlx_python):
    """Token ids of every golden prompt from the HF tokenizer, llama.cpp (the f32 GGUF's vocabulary, llama-tokenize)
    and mlx-lm (mlx_lm.load's tokenizer of the float32 directory); whole prompts, not only the recorded prefix."""
    import ast
    from transformers import AutoTokenizer
    hf = [AutoTokenizer.from_pretrained(model_dir)(p)["input_ids"] for p in prompts]
    tokenize = os.path.join(os.path.dirname(eco.rstrip("/")), "build-native", "bin", "llama-tokenize")
    gguf_path = os.path.join(eco, "gguf", f"{name}-f32.gguf")
    llama = []
    for p in prompts:
        out = subprocess.run([tokenize, "-m", gguf_path, "-p", p, "--ids", "--log-disable"], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        llama.append(ast.literal_eval(out))
    code = ("import json, sys, mlx_lm; _, t = mlx_lm.load(sys.argv[1]); "
            "print(json.dumps([t.encode(p) for p in json.loads(sys.argv[2])]))")
    mlx = json.loads(subprocess.run([mlx_python, "-c", code, os.path.join(eco, "mlx", f"{name}-float32"),
                                     json.dumps(prompts)], capture_output=True, text=True, check=True)
                     .stdout.strip().splitlines()[-1])
    # And a whole held-out text, with its newlines and tabs (prompts are single lines).
    text_path = "/usr/share/common-licenses/Artistic"
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    hf_text = AutoTokenizer.from_pretrained(model_dir, model_max_length=1 << 30)(text)["input_ids"]
    out = subprocess.run([tokenize, "-m", gguf_path, "-f", text_path, "--ids", "--log-disable"], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    return {"prompts": len(prompts), "tokens": [len(h) for h in hf], "text": text_path, "text_tokens": len(hf_text),
            "llama.cpp == transformers on the text": ast.literal_eval(out) == hf_text,
            "llama.cpp (llama-tokenize, f32 GGUF) == transformers": llama == hf,
            "mlx-lm (mlx_lm.load tokenizer) == transformers": mlx == hf}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("ecosystem_dir")
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("--mlx-python", required=True)
    args = parser.parse_args()
    eco = args.ecosystem_dir
    os.makedirs(args.fixtures, exist_ok=True)
    name = os.path.basename(os.path.abspath(args.model_dir))

    with h5py.File(os.path.join(args.model_dir, "golden.h5"), "r") as g:
        prompts = json.loads(g.attrs["prompts"])
        ids = g["inputs/input_ids"][()].astype(np.int64)
        golden32 = g["activations/lm_head"][()].astype(np.float64)
        reference64 = g["reference/logits_f64"][()]
        golden_sha = g.attrs["weights_sha256"]
    tokens = os.path.join(eco, "tokens.bin")
    with open(tokens, "wb") as f:
        f.write(np.array(ids.shape, "<i4").tobytes() + ids.astype("<i4").tobytes())

    runs = []  # (label, kind, path, runtime settings)
    for t in ["f32", "f16", "bf16", "q8_0", "Q4_0", "Q4_K_M", "Q4_K_M-imat", "Q5_K_M", "Q6_K"]:
        path = os.path.join(eco, "gguf", f"{name}-{t}.gguf")
        runs.append((f"gguf/{name}-{t}.gguf", "gguf", path, {"kv": "f32", "flash-attn": "off"}))
    runs.append((f"planted/{name}-f32-no-qk-permutation.gguf", "gguf",
                 os.path.join(eco, "planted", f"{name}-f32-no-qk-permutation.gguf"), {"kv": "f32", "flash-attn": "off"}))
    f32 = os.path.join(eco, "gguf", f"{name}-f32.gguf")
    runs.append((f"gguf/{name}-f32.gguf [kv f16]", "gguf", f32, {"kv": "f16", "flash-attn": "off"}))
    runs.append((f"gguf/{name}-f32.gguf [kv f16, flash-attn]", "gguf", f32, {"kv": "f16", "flash-attn": "on"}))
    for t in ["float32", "float16", "q4-g64", "q8-g64"]:
        runs.append((f"mlx/{name}-{t}", "mlx", os.path.join(eco, "mlx", f"{name}-{t}"), {"device": "cpu"}))

    results, logits_store = {}, {}
    for label, kind, path, settings in runs:
        out = os.path.join(eco, "logits.bin")
        if kind == "gguf":
            cmd = [os.path.join(eco, "bin", "llama_logits"), path, tokens, out, "--kv", settings["kv"],
                   "--flash-attn", settings["flash-attn"], "--threads", "1"]
        else:
            cmd = [args.mlx_python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlx_logits.py"),
                   path, tokens, out]
        subprocess.run(cmd, check=True, capture_output=True)
        logits = np.fromfile(out, "<f4").reshape(reference64.shape)
        os.remove(out)
        m = metrics(logits, golden32, reference64, ids)
        results[label] = {"runtime": "llama.cpp (libllama, tools/llama/llama_logits.cpp)" if kind == "gguf"
                          else "mlx-lm (mlx_lm.load, tools/llama/mlx_logits.py)", "settings": settings, **m}
        logits_store[label] = logits
        print(f"{label:<44} max|Δ| f32 {m['max_abs_dlogit_vs_golden_f32']:.3e}  KL mean {m['kl_mean']:.3e} "
              f"max {m['kl_max']:.3e}  top-1 {m['top1_agreement']:.3f}±{m['top1_stderr']:.3f}  "
              f"ln PPL ratio {m['ln_ppl_ratio']:+.4f}")

    # llama.cpp's own intermediate nodes (eval callback) against the goldens, for a few files.
    with open(os.path.join(args.model_dir, "config.json")) as f:
        cfg = json.load(f)
    head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
    node_runs = {}
    for label in (f"gguf/{name}-f32.gguf", f"gguf/{name}-f32.gguf [kv f16]", f"gguf/{name}-f16.gguf",
                  f"gguf/{name}-Q4_K_M.gguf", f"planted/{name}-f32-no-qk-permutation.gguf"):
        _, kind, path, settings = next(r for r in runs if r[0] == label)
        dump = os.path.join(eco, "dump")
        subprocess.run(["rm", "-rf", dump], check=True)
        subprocess.run([os.path.join(eco, "bin", "llama_logits"), path, tokens, os.path.join(eco, "logits.bin"),
                        "--kv", settings["kv"], "--flash-attn", settings["flash-attn"], "--threads", "1",
                        "--dump", dump], check=True, capture_output=True)
        node_runs[label] = node_comparison(dump, os.path.join(args.model_dir, "golden.h5"),
                                           cfg["num_hidden_layers"], cfg["num_attention_heads"],
                                           cfg["num_key_value_heads"], head_dim)
        subprocess.run(["rm", "-rf", dump, os.path.join(eco, "logits.bin")], check=True)
        worst = max(node_runs[label], key=lambda r: r["max_abs"] / max(r["golden_noise_floor_max_abs"], 1e-30))
        print(f"nodes {label}: {len(node_runs[label])} compared; e.g. Qcur-0 after RoPE max|Δ| "
              f"{next(r for r in node_runs[label] if r['llama.cpp node'].startswith('Qcur-0'))['max_abs']:.2e}")

    files = {}
    for base, _, names in os.walk(eco):
        for n in names:
            p = os.path.join(base, n)
            rel = os.path.relpath(p, eco)
            if rel.startswith(("logs/", "bin/")) or rel in ("tokens.bin", "commands.tsv"):
                continue
            files[rel] = {"bytes": os.path.getsize(p), "sha256": sha256_file(p)}
    types = {}
    for label, kind, path, _ in runs:
        key = os.path.relpath(path, eco)
        if key not in types:
            types[key] = gguf_table(path) if kind == "gguf" else mlx_table(path)
    commands = []
    with open(os.path.join(eco, "commands.tsv")) as f:
        for line in f:
            seconds, command = line.rstrip("\n").split("\t", 1)
            commands.append({"seconds": float(seconds), "command": command})

    manifest = {
        "generator": "tools/llama/make_ecosystem_files.sh (-> tools/llama/record_ecosystem_fixtures.py)",
        "model": name, "model_weights_sha256": golden_sha,
        "inputs": f"golden.h5 /inputs/input_ids {list(ids.shape)}; reference /reference/logits_f64",
        "tools": tool_versions(args.mlx_python),
        "llama_logits_settings": "one context per run, n_ctx = n_batch = n_ubatch = T, each sequence decoded alone "
                                 "from an empty KV cache, logits for every position, 1 thread",
        "commands": commands,
        "kl_metrics_validation": validate_kl_metrics(eco, name),
        "tokenizers": tokenizer_agreement(args.model_dir, eco, name, prompts, args.mlx_python),
        "files": dict(sorted(files.items())),
        "files_committed": "none (the smallest GGUF is over 1 MB); only logits.h5, tensor-types.json, this file",
        "logits": results,
        "llama_cpp_nodes": {"how": node_comparison.__doc__.split("\n\n")[1].strip().replace("\n    ", " "),
                            "runs": node_runs},
    }
    with open(os.path.join(args.fixtures, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(args.fixtures, "tensor-types.json"), "w") as f:
        json.dump(types, f, indent=1, sort_keys=True)
        f.write("\n")
    with h5py.File(os.path.join(args.fixtures, "logits.h5"), "w") as f:
        f.attrs["source"] = "tools/llama/make_ecosystem_files.sh; see manifest.json for settings"
        f.create_dataset("input_ids", data=ids[:STORED_SEQUENCES].astype(np.int32), track_times=False)
        f.attrs["stored_sequences"] = np.int64(STORED_SEQUENCES)
        for label, logits in logits_store.items():
            if "[" in label:  # the same file under non-default settings: metrics only
                continue
            d = f.create_dataset(label.replace("/", "__"), data=logits[:STORED_SEQUENCES], chunks=True,
                                 compression="gzip", compression_opts=4, shuffle=True, track_times=False)
            d.attrs["file"] = label
            d.attrs["settings"] = json.dumps(results[label]["settings"])
    q = types[f"gguf/{name}-Q4_K_M.gguf"]["tensors"]
    summary = {}
    for tensor, info in q.items():
        summary.setdefault(info["type"], []).append(tensor)
    print("Q4_K_M types:", {k: len(v) for k, v in summary.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
