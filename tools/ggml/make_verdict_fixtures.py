#!/usr/bin/env python3
"""GGUF files of the user model Tests/ParityTests/Fixtures/user-mlp-256 (784 -> 256 -> 10), written with gguf-py
(not Parity), for the verdict regression tests (Tests/ParityTests/VerdictTests.swift). Run in the fixtures venv:

    .build-venv-fixtures/bin/python tools/ggml/make_verdict_fixtures.py [--out Tests/ParityTests/Fixtures/verdict-gguf]

Layout: ggml's examples/mnist `mnist-fc` (fc1.weight ne [784, 256], fc1.bias, fc2.weight ne [256, 10], fc2.bias),
as tools/ggml/make_reference_gguf.py writes it. A weight matrix whose rows fit no block of the type falls back
to F16 (convert_hf_to_gguf's and llama-quantize's rule when the fallback type's block does not fit either:
784 = 24.5 x 32), so fc1 is F16 and fc2 (rows of 256) has the type; biases F32.

  user-mlp-256-q8_0.gguf   fc2 quantized by gguf-py's own numpy reference quantizer (gguf.quants.quantize)
  user-mlp-256-q4_K.gguf   fc2 quantized by ggml's reference quantizer (ggml_quantize_chunk through
                           tools/ggml/ggml_quantize_rows.c and build-ggml.sh's generic libggml-base.a; gguf-py has
                           no k-quant quantizer), written with gguf-py's GGUFWriter

general.file_type is llama.cpp's MOSTLY_Q8_0 (7) / MOSTLY_Q4_K_S (14). Each file is read back with gguf-py's
GGUFReader; manifest.json records the tensor types, the file hashes and gguf-py's dequantized fc2 rel RMS error
against the float32 weights.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from safetensors_io import read_safetensors  # noqa: E402

MODEL = os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "user-mlp-256")
CASES = [("q8_0", QT.Q8_0, 7, "gguf-py"), ("q4_K", QT.Q4_K, 14, "ggml")]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "verdict-gguf"))
    args = ap.parse_args()
    w = read_safetensors(os.path.join(MODEL, "model.safetensors"))
    os.makedirs(args.out, exist_ok=True)
    from importlib.metadata import version
    manifest = {"written_by": f"gguf-py {version('gguf')} (tools/ggml/make_verdict_fixtures.py)", "model": "user-mlp-256",
                "source_sha256": sha256(os.path.join(MODEL, "model.safetensors")), "files": {}}
    for tname, qt, file_type, quantizer in CASES:
        fc2 = np.ascontiguousarray(w["fc2.weight"], dtype=np.float32)  # (10, 256) -> ne [256, 10]
        block = gguf.GGML_QUANT_SIZES[qt][0]
        assert fc2.shape[1] % block == 0 and w["fc1.weight"].shape[1] % block != 0
        if quantizer == "gguf-py":
            q = gguf.quants.quantize(fc2, qt)
        else:
            import check_parity_gguf as cpg  # ggml's reference quantizer through the generic build
            cpg.build_quantize_tool()
            with tempfile.TemporaryDirectory() as tmp:
                raw, _ = cpg.ggml_quantize(tname, fc2, tmp)
            q = np.frombuffer(raw, dtype=np.uint8).reshape(fc2.shape[0], -1)
        path = os.path.join(args.out, f"user-mlp-256-{tname}.gguf")
        writer = gguf.GGUFWriter(path, "mnist-fc")
        writer.add_name("user-mlp-256")
        writer.add_file_type(file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_tensor("fc1.weight", np.ascontiguousarray(w["fc1.weight"].astype(np.float16)))  # F16 fallback
        writer.add_tensor("fc1.bias", np.ascontiguousarray(w["fc1.bias"], dtype=np.float32))
        writer.add_tensor("fc2.weight", q, raw_dtype=qt)
        writer.add_tensor("fc2.bias", np.ascontiguousarray(w["fc2.bias"], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        reader = gguf.GGUFReader(path)
        types = {t.name: t.tensor_type.name for t in reader.tensors}
        t = next(t for t in reader.tensors if t.name == "fc2.weight")
        deq = gguf.quants.dequantize(t.data, t.tensor_type).reshape(fc2.shape)
        rel = float(np.linalg.norm(deq - fc2) / np.linalg.norm(fc2))
        manifest["files"][os.path.basename(path)] = {"type": tname, "quantizer": quantizer, "file_type": file_type,
                                                    "tensor_types": types, "fc2_weight_rel_rms_error": rel, "sha256": sha256(path)}
        print(f"{os.path.basename(path)}: {types}, fc2 weight rel RMS error {rel:.4g}")
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
