#!/usr/bin/env python3
"""mlx-lm's own conversions of tiny-llama against Parity's, recorded for MLXLlamaConverterTests.

    .build-venv-mlxlm/bin/python tools/llama/mlx_llama_conversions.py [--model golden/tiny-llama]
        [--parity .build/debug/parity] [--work .build-mlxllama] [--out Tests/ParityTests/Fixtures/llama/mlx-llama-conversions.json]

For every variant (float32/float16/bfloat16; affine 2, 3, 4, 5, 6, 8 bits x groups 32, 64, 128; mxfp4, mxfp8, nvfp4;
q4 g64 from float16 and bfloat16) it runs `python -m mlx_lm convert` (mlx-lm 0.32.2) and `parity convert --to mlx` on the same
Hugging Face directory, then records:
  - mlx-lm's output: config.json (parsed, and its SHA-256), the SHA-256 and metadata of model.safetensors.index.json,
    and per tensor [dtype, shape, SHA-256 of its bytes] (read from the safetensors header, not through MLX), plus the
    safetensors metadata;
  - Parity's output compared with it: same tensor set, dtypes, shapes, which tensors are byte-identical, whether
    config.json and the index are byte-identical;
  - `mlx_lm.load` of Parity's directory (the loader mlx-lm's generate uses; CPU): loaded or the exception, and the
    logits of the goldens' token sequences against the goldens' float64 logits (the metrics of
    tools/llama/record_ecosystem_fixtures.py) and against mlx-lm's own directory of the same variant.
Needs the mlx-lm venv (tools/llama/setup-venvs.sh mlxlm) and a built `parity` (swift build).
"""

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import h5py
import numpy as np

AFFINE = [(b, g) for b in (2, 3, 4, 5, 6, 8) for g in (32, 64, 128)]
# name -> (mlx_lm convert arguments, parity convert arguments)
VARIANTS = {
    "float32": (["--dtype", "float32"], ["--dtype", "f32"]),
    "float16": (["--dtype", "float16"], ["--dtype", "f16"]),
    "bfloat16": (["--dtype", "bfloat16"], ["--dtype", "bf16"]),
    **{f"q{b}-g{g}": (["-q", "--q-bits", str(b), "--q-group-size", str(g)], ["--bits", str(b), "--group-size", str(g)])
       for b, g in AFFINE},
    "mxfp4": (["-q", "--q-mode", "mxfp4"], ["--mode", "mxfp4"]),
    "mxfp8": (["-q", "--q-mode", "mxfp8"], ["--mode", "mxfp8"]),
    "nvfp4": (["-q", "--q-mode", "nvfp4"], ["--mode", "nvfp4"]),
    "q4-g64-float16": (["-q", "--q-bits", "4", "--q-group-size", "64", "--dtype", "float16"],
                       ["--bits", "4", "--group-size", "64", "--dtype", "f16"]),
    "q4-g64-bfloat16": (["-q", "--q-bits", "4", "--q-group-size", "64", "--dtype", "bfloat16"],
                        ["--bits", "4", "--group-size", "64", "--dtype", "bf16"]),
}


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def safetensors_table(path):
    """Per tensor dtype, shape, SHA-256 of its bytes; and the header metadata, read as the format defines it."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    tensors = {}
    for name in sorted(header):
        e = header[name]
        a, b = e["data_offsets"]
        tensors[name] = [e["dtype"], e["shape"], sha256_bytes(data[a:b])]
    return tensors, meta


def directory_table(d):
    tensors, metadata = {}, {}
    files = sorted(f for f in os.listdir(d) if f.startswith("model") and f.endswith(".safetensors"))
    for f in files:
        t, m = safetensors_table(os.path.join(d, f))
        tensors.update(t)
        metadata[f] = m
    with open(os.path.join(d, "config.json"), "rb") as f:
        config_bytes = f.read()
    index_path = os.path.join(d, "model.safetensors.index.json")
    index_bytes = open(index_path, "rb").read() if os.path.exists(index_path) else None
    return {"files": sorted(os.listdir(d)), "safetensors_metadata": metadata, "tensors": tensors,
            "config": json.loads(config_bytes), "config_sha256": sha256_bytes(config_bytes),
            "index_metadata": json.loads(index_bytes)["metadata"] if index_bytes else None,
            "index_sha256": sha256_bytes(index_bytes) if index_bytes else None}


LOAD_SCRIPT = r"""
import sys, json, numpy as np, mlx.core as mx, mlx_lm
mx.set_default_device(mx.cpu)
header = np.fromfile(sys.argv[2], dtype="<i4", count=2)
ids = np.fromfile(sys.argv[2], dtype="<i4", offset=8).reshape(int(header[0]), int(header[1]))
try:
    model, tokenizer = mlx_lm.load(sys.argv[1])
except Exception as e:
    print(json.dumps({"loaded": False, "error": f"{type(e).__name__}: {e}"})); sys.exit(0)
logits = model(mx.array(ids)); mx.eval(logits)
np.asarray(logits.astype(mx.float32)).astype("<f4").tofile(sys.argv[3])
print(json.dumps({"loaded": True, "tokenizer_ids": tokenizer.encode("The license")}))
"""


def mlx_load(python, directory, tokens, out):
    r = subprocess.run([python, "-c", LOAD_SCRIPT, directory, tokens, out], capture_output=True, text=True)
    if r.returncode != 0:
        return {"loaded": False, "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="golden/tiny-llama")
    ap.add_argument("--parity", default=".build/debug/parity")
    ap.add_argument("--work", default=".build-mlxllama")
    ap.add_argument("--out", default="Tests/ParityTests/Fixtures/llama/mlx-llama-conversions.json")
    ap.add_argument("--only", nargs="*", help="variant names (default: all)")
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # That module imports llama.cpp's gguf-py for its GGUF tables; the metric formulas do not need it.
    import types
    sys.modules.setdefault("gguf", types.ModuleType("gguf"))
    from record_ecosystem_fixtures import metrics  # the same metric formulas as the ecosystem fixtures

    import mlx.core as mx
    import mlx_lm
    from importlib.metadata import version
    python = sys.executable
    with h5py.File(os.path.join(args.model, "golden.h5"), "r") as g:
        ids = g["inputs/input_ids"][()].astype(np.int64)
        golden32 = g["activations/lm_head"][()].astype(np.float64)
        reference64 = g["reference/logits_f64"][()]
    os.makedirs(args.work, exist_ok=True)
    tokens = os.path.join(args.work, "tokens.bin")
    with open(tokens, "wb") as f:
        f.write(np.array(ids.shape, "<i4").tobytes() + ids.astype("<i4").tobytes())

    result = {
        "made_by": "tools/llama/mlx_llama_conversions.py",
        "versions": {"mlx": mx.__version__, "mlx-lm": version("mlx-lm")},
        "model": args.model,
        "inputs": f"golden.h5 /inputs/input_ids {list(ids.shape)}; reference /reference/logits_f64",
        "variants": {},
    }
    if args.only and os.path.exists(args.out):  # rerunning some variants keeps the others' records
        with open(args.out) as f:
            result["variants"] = json.load(f)["variants"]
    names = args.only or list(VARIANTS)
    for name in names:
        mlx_args, parity_args = VARIANTS[name]
        theirs = os.path.join(args.work, "mlx-lm", name)
        ours = os.path.join(args.work, "parity", name)
        for d in (theirs, ours):
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.dirname(theirs), exist_ok=True)
        os.makedirs(os.path.dirname(ours), exist_ok=True)
        t0 = time.time()
        subprocess.run([python, "-m", "mlx_lm", "convert", "--hf-path", args.model, "--mlx-path", theirs] + mlx_args,
                       check=True, capture_output=True)
        t1 = time.time()
        subprocess.run([args.parity, "convert", args.model, "--to", "mlx", "-o", ours] + parity_args, check=True, capture_output=True)
        t2 = time.time()
        a, b = directory_table(theirs), directory_table(ours)
        identical = sorted(n for n in a["tensors"] if n in b["tensors"] and a["tensors"][n] == b["tensors"][n])
        differing = sorted(n for n in a["tensors"] if n in b["tensors"] and a["tensors"][n] != b["tensors"][n])
        entry = {
            "mlx_lm_command": "python -m mlx_lm convert --hf-path MODEL --mlx-path OUT " + " ".join(mlx_args),
            "parity_command": "parity convert MODEL --to mlx -o OUT " + " ".join(parity_args),
            "seconds": {"mlx_lm": round(t1 - t0, 2), "parity": round(t2 - t1, 2)},
            "mlx_lm": a,
            "parity_vs_mlx_lm": {
                "same_tensor_names": sorted(a["tensors"]) == sorted(b["tensors"]),
                "only_mlx_lm": sorted(set(a["tensors"]) - set(b["tensors"])),
                "only_parity": sorted(set(b["tensors"]) - set(a["tensors"])),
                "identical_tensors": len(identical), "differing_tensors": differing,
                "config_identical_bytes": a["config_sha256"] == b["config_sha256"],
                "index_identical_bytes": a["index_sha256"] == b["index_sha256"],
                "files_only_parity": sorted(set(b["files"]) - set(a["files"])),
                "files_only_mlx_lm": sorted(set(a["files"]) - set(b["files"])),
            },
        }
        out_ours, out_theirs = os.path.join(args.work, "ours.bin"), os.path.join(args.work, "theirs.bin")
        load = mlx_load(python, ours, tokens, out_ours)
        load_theirs = mlx_load(python, theirs, tokens, out_theirs)
        entry["mlx_lm_load_parity_dir"] = {k: v for k, v in load.items()}
        if load.get("loaded"):
            logits = np.fromfile(out_ours, dtype="<f4").reshape(reference64.shape)
            entry["mlx_lm_load_parity_dir"]["metrics_vs_goldens"] = metrics(logits, golden32, reference64, ids)
            if load_theirs.get("loaded"):
                theirs_logits = np.fromfile(out_theirs, dtype="<f4").reshape(reference64.shape)
                entry["mlx_lm_load_parity_dir"]["max_abs_dlogit_vs_mlx_lm_dir"] = float(np.abs(logits - theirs_logits).max())
                entry["mlx_lm_load_mlx_lm_dir_metrics_vs_goldens"] = metrics(theirs_logits, golden32, reference64, ids)
        result["variants"][name] = entry
        c = entry["parity_vs_mlx_lm"]
        m = entry["mlx_lm_load_parity_dir"].get("metrics_vs_goldens", {})
        print(f"{name:16s} tensors identical {c['identical_tensors']}/{len(a['tensors'])} config {c['config_identical_bytes']} "
              f"index {c['index_identical_bytes']} load {load.get('loaded')} max|dlogit| vs f64 {m.get('max_abs_dlogit_vs_f64', float('nan')):.3e} "
              f"vs mlx-lm dir {entry['mlx_lm_load_parity_dir'].get('max_abs_dlogit_vs_mlx_lm_dir', float('nan')):.3e}", flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, sort_keys=True, separators=(",", ":"))  # compact: per-tensor tables of 24 directories
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
