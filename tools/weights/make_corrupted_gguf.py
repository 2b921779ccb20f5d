#!/usr/bin/env python3
"""Weight-verification fixtures written OUTSIDE Parity with llama.cpp's gguf-py (GGUFWriter, gguf.quants).

    .build-venv-fixtures/bin/python tools/weights/make_corrupted_gguf.py OUT_DIR

Reference values: Tests/ParityTests/Fixtures/ggml-quants/src.f32 (16 x 256 float32 rows: normal, outliers, zeros,
tiny, huge, ties ...; written by tools/make_quant_fixtures.py). For every storage type one GGUF file
OUT_DIR/gguf-<type>.gguf holds tensors of shape [16, 256] (ne [256, 16]):
    clean     the reference quantized by gguf-py's quantizer (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4, F16, BF16:
              = ggml's quantize_row_*_ref) or, for the k-quants gguf-py cannot quantize, the bytes ggml's own C
              reference quantizer produced (ggml-quants/<type>.q.bin); F32 is the reference itself
    element   one element changed: a code bit flipped (block types) or the value x3 (F32/F16/BF16)
    scale     one block's scale doubled (f16 exponent + 1; E8M0 + 1 for MXFP4)
    min       one block's min doubled (types with a min: Q4_1, Q5_1, Q2_K, Q4_K, Q5_K)
and OUT_DIR/gguf-manifest.json records, per tensor, what was changed: the byte, the block, and the elements
whose value changed (found with gguf-py's own dequantize of the clean and corrupted bytes).
Also fmnist-cnn-bf16-truncated.safetensors (the safetensors library; every tensor bf16 rounded toward zero) and
the user-mlp-256 model (Tests/ParityTests/Fixtures/user-mlp-256) as ggml's mnist-fc GGUF with fc2 in
Q8_0 and one block scale doubled: OUT_DIR/user-mlp-256-q8_0-scale.gguf (fc1 stays F16: 784 fits no block).
"""
import json
import os
import struct
import sys
from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
QUANTS = os.path.join(ROOT, "Tests/ParityTests/Fixtures/ggml-quants")
USER = os.path.join(ROOT, "Tests/ParityTests/Fixtures/user-mlp-256")

# type -> (gguf-py type, scale byte offset in the block, min byte offset or None, codes byte range, bit to flip)
LAYOUT = {
    "q4_0": (T.Q4_0, 0, None, (2, 18), 0x08),
    "q4_1": (T.Q4_1, 0, 2, (4, 20), 0x08),
    "q5_0": (T.Q5_0, 0, None, (6, 22), 0x08),
    "q5_1": (T.Q5_1, 0, 2, (8, 24), 0x08),
    "q8_0": (T.Q8_0, 0, None, (2, 34), 0x40),
    "q2_K": (T.Q2_K, 80, 82, (16, 80), 0x02),
    "q3_K": (T.Q3_K, 108, None, (32, 96), 0x02),
    "q4_K": (T.Q4_K, 0, 2, (16, 144), 0x08),
    "q5_K": (T.Q5_K, 0, 2, (48, 176), 0x08),
    "q6_K": (T.Q6_K, 208, None, (0, 128), 0x08),
    "mxfp4": (T.MXFP4, 0, None, (1, 17), 0x04),
}
GGUFPY_QUANTIZES = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "mxfp4"}
BLOCK = 5      # the corrupted block (of the flat tensor)
BYTE_IN_CODES = 3


def double_f16(buf, at):
    h = struct.unpack_from("<H", buf, at)[0]
    struct.pack_into("<H", buf, at, (h + 0x0400) & 0xFFFF)


def changed_elements(qtype, clean, bad, shape):
    a = dequantize(np.frombuffer(bytes(clean), dtype=np.uint8).reshape(shape[0], -1), qtype).reshape(-1)
    b = dequantize(np.frombuffer(bytes(bad), dtype=np.uint8).reshape(shape[0], -1), qtype).reshape(-1)
    return [int(i) for i in np.nonzero(~((a == b) | (np.isnan(a) & np.isnan(b))))[0]]


def write(path, arch, tensors):
    w = gguf.GGUFWriter(path, arch)
    for name, array, raw_dtype in tensors:
        w.add_tensor(name, array, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(out):
    os.makedirs(out, exist_ok=True)
    src = np.fromfile(os.path.join(QUANTS, "src.f32"), dtype="<f4").reshape(16, 256)
    manifest = {"generator": "tools/weights/make_corrupted_gguf.py", "gguf": version("gguf"), "numpy": np.__version__,
                "reference": "Tests/ParityTests/Fixtures/ggml-quants/src.f32", "shape": [16, 256], "files": {}}
    for name, (qtype, scale_at, min_at, codes, flip) in LAYOUT.items():
        if name in GGUFPY_QUANTIZES:
            clean = bytearray(quantize(src, qtype).tobytes())
            quantizer = "gguf-py %s gguf.quants.quantize" % version("gguf")
        else:
            clean = bytearray(open(os.path.join(QUANTS, name + ".q.bin"), "rb").read())
            quantizer = "ggml quantize_row_%s_ref (C), recorded by tools/make_quant_fixtures.py" % name
        bsz = gguf.GGML_QUANT_SIZES[qtype][1]
        assert len(clean) == 16 * 256 // gguf.GGML_QUANT_SIZES[qtype][0] * bsz
        cases = {"clean": (clean, None)}
        bad = bytearray(clean)
        at = BLOCK * bsz + codes[0] + BYTE_IN_CODES
        bad[at] ^= flip
        cases["element"] = (bad, {"byte": at, "xor": flip, "what": "one code bit flipped"})
        bad = bytearray(clean)
        if name == "mxfp4":
            bad[BLOCK * bsz + scale_at] += 1
        else:
            double_f16(bad, BLOCK * bsz + scale_at)
        cases["scale"] = (bad, {"byte": BLOCK * bsz + scale_at, "what": "block scale doubled"})
        if min_at is not None:
            bad = bytearray(clean)
            double_f16(bad, BLOCK * bsz + min_at)
            cases["min"] = (bad, {"byte": BLOCK * bsz + min_at, "what": "block min doubled"})
        tensors, entries = [], {}
        for case, (data, change) in cases.items():
            tensors.append((case, np.frombuffer(bytes(data), dtype=np.uint8).reshape(16, -1), qtype))
            entry = {"quantizer": quantizer}
            if change:
                entry.update(change)
                entry["block"] = BLOCK
                entry["changed_elements"] = changed_elements(qtype, clean, data, (16, 256))
            entries[case] = entry
        write(os.path.join(out, "gguf-%s.gguf" % name), "weights-test", tensors)
        manifest["files"]["gguf-%s.gguf" % name] = {"type": name, "tensors": entries}
    # Dense types: F32 (the reference), F16, BF16 (gguf-py's round-to-nearest-even), and one element x3.
    for name, qtype in (("f32", T.F32), ("f16", T.F16), ("bf16", T.BF16)):
        if name == "f32":
            clean = src.copy()
        elif name == "f16":
            clean = src.astype(np.float16)
        else:
            clean = quantize(src, T.BF16)
        idx = 7 * 256 + 77
        if name == "bf16":
            halves = clean.copy().view("<u2").reshape(-1)  # gguf-py's BF16 bytes as uint16 words
            value = np.float32(np.array([np.uint32(halves[idx]) << 16], dtype=np.uint32).view(np.float32)[0] * 3)
            halves[idx] = np.uint16(np.array([value], dtype=np.float32).view(np.uint32)[0] >> 16)
            bad = halves.view(np.uint8).reshape(clean.shape)
        else:
            bad = clean.copy().reshape(-1)
            bad[idx] = bad[idx] * 3
            bad = bad.reshape(clean.shape)
        raw = qtype if name == "bf16" else None
        write(os.path.join(out, "gguf-%s.gguf" % name), "weights-test",
              [("clean", clean, raw), ("element", bad, raw)])
        manifest["files"]["gguf-%s.gguf" % name] = {"type": name, "tensors": {
            "clean": {"quantizer": "numpy astype / gguf-py quantize (round to nearest even)" if name != "f32" else "the reference"},
            "element": {"what": "one element x3", "changed_elements": [idx]}}}
    # The user model, as ggml's mnist-fc loads it, fc2 in Q8_0 with block 3 of row 4 (flat block 4*8+3) doubled.
    from safetensors.numpy import load_file
    w = load_file(os.path.join(USER, "model.safetensors"))
    fc2 = quantize(w["fc2.weight"], T.Q8_0)
    base = [("fc1.weight", w["fc1.weight"].astype(np.float16), None), ("fc1.bias", w["fc1.bias"], None)]
    tail = [("fc2.bias", w["fc2.bias"], None)]
    bad = bytearray(fc2.tobytes())
    block = 4 * 8 + 3
    double_f16(bad, block * 34)
    write(os.path.join(out, "user-mlp-256-q8_0-scale.gguf"), "mnist-fc",
          base + [("fc2.weight", np.frombuffer(bytes(bad), dtype=np.uint8).reshape(10, -1), T.Q8_0)] + tail)
    manifest["files"]["user-mlp-256-q8_0-scale.gguf"] = {
        "model": "user-mlp-256", "tensor": "fc2.weight", "what": "Q8_0 scale of block %d (row 4, columns 96..127) doubled" % block,
        "block": block, "row": 4, "changed_elements": changed_elements(T.Q8_0, fc2.tobytes(), bad, (10, 256))}
    # fmnist-cnn in bf16 rounded toward zero (the low 16 bits dropped), written by the safetensors library: a
    # consistent rounding other than round-to-nearest-even, which the weight check names as a finding.
    from safetensors.numpy import save_file
    cnn = load_file(os.path.join(ROOT, "golden/fmnist-cnn/model.safetensors"))
    import ml_dtypes
    truncated = {k: (v.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32).astype(ml_dtypes.bfloat16) for k, v in cnn.items()}
    save_file(truncated, os.path.join(out, "fmnist-cnn-bf16-truncated.safetensors"))
    manifest["files"]["fmnist-cnn-bf16-truncated.safetensors"] = {
        "model": "fmnist-cnn", "what": "every tensor bf16 by truncation toward zero (safetensors %s, ml_dtypes %s)" % (version("safetensors"), version("ml_dtypes")),
        "differs_from_rne": {k: int(np.count_nonzero(truncated[k].view(np.uint16) != cnn[k].astype(ml_dtypes.bfloat16).view(np.uint16))) for k in cnn}}
    with open(os.path.join(out, "gguf-manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
