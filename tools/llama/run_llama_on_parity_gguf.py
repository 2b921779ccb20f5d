#!/usr/bin/env python3
"""llama.cpp on the GGUF files Parity writes: does it load them, and what logits does it compute?

    swift build && PYTHONPATH=.build-llama/src/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py \\
        /usr/bin/python3 tools/llama/run_llama_on_parity_gguf.py [--parity .build/debug/parity]

For each output below, `parity convert golden/tiny-llama --to gguf (--type T | --mix M)` writes
.build-llama/parity-gguf/tiny-llama-<output>.gguf; llama.cpp's libllama (tools/llama/llama_logits.cpp, built by
tools/llama/make_ecosystem_files.sh) loads it and computes the logits of the goldens' token sequences (each sequence
alone, all positions, F32 KV cache, flash attention off, 1 thread: the settings of logits.h5). Recorded in
Tests/ParityTests/Fixtures/llama/:
  parity-gguf-llama-cpp.json  per output: the command, bytes and SHA-256 of Parity's file, the llama.cpp file it is
                              byte-identical to (if any; for a mix the ecosystem files lack, `llama-quantize f32.gguf
                              out.gguf MIX 1` is run here and its SHA-256 recorded), per-type tensor counts (gguf-py), whether llama.cpp loaded it,
                              and the logit metrics against the goldens (as record_ecosystem_fixtures.py computes them)
  parity-gguf-logits.h5       float32 logits llama.cpp computed on Parity's files, first sequence, first 16 positions,
                              for the outputs with no byte-identical llama.cpp file (the others' logits are logits.h5's)
"""
import argparse
import collections
import hashlib
import json
import os
import subprocess
import sys

import h5py
import numpy as np

import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_ecosystem_fixtures import metrics  # noqa: E402  (the same metric formulas as the ecosystem fixtures)

# (output name, parity convert arguments)
OUTPUTS = [
    ("f32", ["--type", "f32"]), ("f16", ["--type", "f16"]), ("bf16", ["--type", "bf16"]), ("q8_0", ["--type", "q8_0"]),
    ("Q4_0", ["--mix", "Q4_0"]), ("Q4_1", ["--mix", "Q4_1"]), ("Q5_0", ["--mix", "Q5_0"]), ("Q5_1", ["--mix", "Q5_1"]),
    ("Q8_0", ["--mix", "Q8_0"]), ("Q2_K", ["--mix", "Q2_K"]), ("Q3_K_S", ["--mix", "Q3_K_S"]), ("Q3_K_M", ["--mix", "Q3_K_M"]),
    ("Q3_K_L", ["--mix", "Q3_K_L"]), ("Q4_K_S", ["--mix", "Q4_K_S"]), ("Q4_K_M", ["--mix", "Q4_K_M"]),
    ("Q5_K_S", ["--mix", "Q5_K_S"]), ("Q5_K_M", ["--mix", "Q5_K_M"]), ("Q6_K", ["--mix", "Q6_K"]),
    ("pure-mxfp4", ["--type", "mxfp4"]),
]
STORED_POSITIONS = 16
# llama-quantize --pure with the file type that labels a file of only this ggml type (MXFP4_MOE: mxfp4 everywhere with --pure)
PURE_FTYPE = {"pure-mxfp4": "MXFP4_MOE"}


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parity", default=".build/debug/parity")
    ap.add_argument("--model", default="golden/tiny-llama")
    ap.add_argument("--ecosystem", default=".build-llama/ecosystem")
    ap.add_argument("--work", default=".build-llama/parity-gguf")
    ap.add_argument("--fixtures", default="Tests/ParityTests/Fixtures/llama")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    name = os.path.basename(os.path.abspath(args.model))
    with h5py.File(os.path.join(args.model, "golden.h5"), "r") as g:
        ids = g["inputs/input_ids"][()].astype(np.int64)
        golden32 = g["activations/lm_head"][()].astype(np.float64)
        reference64 = g["reference/logits_f64"][()]
    tokens = os.path.join(args.work, "tokens.bin")
    with open(tokens, "wb") as f:
        f.write(np.array(ids.shape, "<i4").tobytes() + ids.astype("<i4").tobytes())
    llama_files = {sha256(os.path.join(args.ecosystem, "gguf", f)): f"gguf/{f}"
                   for f in sorted(os.listdir(os.path.join(args.ecosystem, "gguf"))) if f.endswith(".gguf")}
    # llama-quantize itself, for every mix the ecosystem files lack: its output from llama.cpp's f32 file, 1 thread.
    quantize = os.path.join(os.path.dirname(os.path.dirname(args.ecosystem)), ".build-llama", "build-native", "bin", "llama-quantize")
    quantize = quantize if os.path.exists(quantize) else os.path.join(".build-llama", "build-native", "bin", "llama-quantize")
    f32_file = os.path.join(args.ecosystem, "gguf", f"{name}-f32.gguf")
    quantized = {}
    for output, flags in OUTPUTS:
        if output in PURE_FTYPE:
            mode = ["--pure", PURE_FTYPE[output]]
        elif flags[0] == "--mix" and not os.path.exists(os.path.join(args.ecosystem, "gguf", f"{name}-{output}.gguf")):
            mode = [output]
        else:
            continue
        path = os.path.join(args.work, f"llama-quantize-{name}-{output}.gguf")
        argv = [quantize] + mode[:-1] + [f32_file, path, mode[-1], "1"]
        subprocess.run(argv, check=True, capture_output=True)
        quantized[output] = sha256(path)
        llama_files.setdefault(quantized[output], "llama-quantize " + " ".join(mode[:-1] + [f"{name}-f32.gguf", mode[-1]]) + " (made here)")
    with h5py.File(os.path.join(args.fixtures, "logits.h5"), "r") as h:
        ecosystem_logits = {k: h[k][()] for k in h.keys() if k != "input_ids"}

    results, stored = {}, {}
    for output, flags in OUTPUTS:
        path = os.path.join(args.work, f"{name}-{output}.gguf")
        cmd = [args.parity, "convert", args.model, "--to", "gguf", *flags, "-o", path]
        subprocess.run(cmd, check=True, capture_output=True)
        digest = sha256(path)
        types = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(path).tensors)
        out = os.path.join(args.work, "logits.bin")
        run = subprocess.run([os.path.join(args.ecosystem, "bin", "llama_logits"), path, tokens, out,
                              "--kv", "f32", "--flash-attn", "off", "--threads", "1"], capture_output=True, text=True)
        record = {"command": " ".join(["parity", "convert", args.model, "--to", "gguf", *flags, "-o", f"{name}-{output}.gguf"]),
                  "bytes": os.path.getsize(path), "sha256": digest, "identical_to_llama_cpp_file": llama_files.get(digest),
                  "tensor_types": dict(sorted(types.items())), "llama_cpp_loaded": run.returncode == 0}
        if output in quantized:
            record["llama_quantize_sha256"] = quantized[output]
        if run.returncode != 0:
            record["llama_cpp_error"] = run.stderr.strip().splitlines()[-1:]
        else:
            logits = np.fromfile(out, "<f4").reshape(reference64.shape)
            os.remove(out)
            record["llama_cpp"] = {"settings": {"kv": "f32", "flash-attn": "off", "threads": 1},
                                   **metrics(logits, golden32, reference64, ids)}
            twin = llama_files.get(digest)
            if twin and twin.startswith("gguf/"):
                # same bytes as llama.cpp's own file: its logits must be the ones logits.h5 recorded for that file
                key = twin.replace("/", "__")
                record["llama_cpp"]["logits_equal_logits_h5"] = bool(np.array_equal(logits[:ecosystem_logits[key].shape[0]], ecosystem_logits[key]))
            else:
                stored[f"{name}-{output}.gguf"] = logits[0, :STORED_POSITIONS].astype(np.float32)
        results[f"{name}-{output}.gguf"] = record
        m = record.get("llama_cpp", {})
        print(f"{output:10s} loaded={record['llama_cpp_loaded']} twin={record['identical_to_llama_cpp_file']} "
              f"max|d| vs golden f32={m.get('max_abs_dlogit_vs_golden_f32', float('nan')):.3e} KL={m.get('kl_mean', float('nan')):.2e} "
              f"top1={m.get('top1_agreement', float('nan')):.3f}")

    doc = {"what": "llama.cpp (libllama) loading and running the GGUF files Parity's converter writes from golden/tiny-llama",
           "made_by": "tools/llama/run_llama_on_parity_gguf.py",
           "metrics": "against golden.h5: /activations/lm_head (float32 PyTorch) and /reference/logits_f64, both sequences, all positions",
           "files": results}
    with open(os.path.join(args.fixtures, "parity-gguf-llama-cpp.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with h5py.File(os.path.join(args.fixtures, "parity-gguf-logits.h5"), "w") as h:
        h.create_dataset("input_ids", data=ids[0, :STORED_POSITIONS].astype(np.int32), track_times=False)
        for key, value in stored.items():
            d = h.create_dataset(key, data=value, track_times=False)
            d.attrs["settings"] = "kv f32, flash-attn off, 1 thread; sequence 0, positions 0..15"


if __name__ == "__main__":
    main()
