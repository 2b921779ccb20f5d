#!/usr/bin/env python3
"""Read every GGUF file Parity writes with llama.cpp's own Python reader (gguf-py) and record what it saw.

Run in the fixtures venv (tools/fixtures/setup-venv.sh; gguf 0.19.0, numpy, safetensors):

    .build-venv-fixtures/bin/python tools/ggml/check_parity_gguf.py [--parity BIN] [--out DIR] [--keep DIR]

BIN defaults to .build-ggufcheck/release/parity, else .build/release/parity (build it with
`swift build -c release --scratch-path .build-ggufcheck --product parity`). OUT defaults to
Tests/ParityTests/Fixtures/gguf-py. --keep DIR also leaves every GGUF file there.

Files (all written by the parity binary, in a temporary directory, with the exact commands in manifest.json):
  fmnist-cnn-T.gguf, fmnist-mlp-T.gguf    `parity convert MODEL --to gguf --type T -o FILE`, T = f32 f16 bf16 q8_0
                                           (q8_0: no matrix row length divides by 32, so every matrix falls back
                                           to F16 and Parity must say so for each)
  test-T.gguf                              `parity quantize test-f32.gguf test-T.gguf --type T` for every type
                                           Parity writes: q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K mxfp4
                                           f16 bf16
  test-a64-q6_K.gguf                       the same from test-a64-f32.gguf (general.alignment = 64)
The sources test-f32.gguf and test-a64-f32.gguf are written here with gguf-py's GGUFWriter (deterministic
data, every metadata value type) and kept in OUT so a Swift test can re-run the same `parity quantize`.

For each Parity-written file gguf-py's GGUFReader must see, without exception:
  - magic GGUF, version 3, the alignment (general.alignment when not 32), data section at a multiple of it;
  - exactly the expected metadata, in order, with gguf-py's type names and values: general.architecture,
    general.name, general.file_type (llama.cpp's LlamaFileType for T), general.quantization_version = 2
    (UINT32) iff some tensor is quantized (a type other than F32/F16/BF16); for requantized files every other
    source key with the same type and the same value bytes;
  - the expected tensors in order: names, ne (reader `shape`), types (Parity's documented rules, re-derived
    here), data offsets equal to the running sum of sizes padded to the alignment, zero padding, and the file
    ending at the padded end of the last tensor;
  - values: every tensor dequantized with gguf.quants.dequantize and compared with what it must be —
    model files: bit-exact against golden/<model>/model.safetensors in ggml layout (tools/ggml/
    make_reference_gguf.py's tables; F16 = numpy's float16 rounding, BF16 = round-to-nearest-even);
    every tensor that is not F32 (model and synthetic files): Parity's stored bytes must be exactly what
    ggml's own ggml_quantize_chunk (reference quantizers, no imatrix) writes for the same float32 source rows,
    and gguf-py's dequantized values exactly ggml's to_float of those bytes. ggml is called through
    tools/ggml/ggml_quantize_rows.c, linked here against tools/ggml/build-ggml.sh's generic libggml-base.a
    (built into .build-ggml/tools/ when missing). Also: `ggml.mul_mat.w` (= Fixtures/ggml/mul_mat/w.f32)
    must have the recorded <t>.w.bin bytes and decode to <t>.w_deq.f32; `h.mul_mat.x` as q8_0 must equal
    mul_mat/generic/q8_0.x_q.bin (ggml's quantize_row_q8_0_ref, ties away from zero); all-zero rows and
    blocks must decode to zeros; the ordinary-magnitude tensors must lie within a loose per-type rel-L2
    bound of their source (a garbage detector, not an accuracy claim).
Reported but not failing: agreement of Parity's bytes with gguf-py's own numpy quantizers (BF16, Q4_0, Q4_1,
Q5_0, Q5_1, Q8_0, MXFP4), which are not ggml's reference code.

Outputs (deterministic; no absolute paths, no timings):
  OUT/manifest.json               per file: command, sha256, bytes, what gguf-py saw, checks, value storage
  OUT/dequantized.safetensors     gguf-py's dequantized values, F32, '<file stem>/<tensor name>', numpy shape
                                  = reversed(ne); fmnist-mlp-*: fc1.weight only rows 0..15 (shape [16, 784]);
                                  every tensor's full float32 array also has a sha256 in the manifest
  OUT/test-f32.gguf, OUT/test-a64-f32.gguf   the gguf-py-written sources of the synthetic files
  OUT/gguf-dump-<stem>.txt        gguf-py's gguf-dump of test-q4_K.gguf and fmnist-cnn-f32.gguf
Exit status 0 only if every check passed.
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version as pkg_version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT, GGUFReader, GGUFValueType as VT
from gguf.quants import dequantize as gq_dequantize, quantize as gq_quantize
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_reference_gguf import cnn_tensors  # noqa: E402  (gguf-py reference layout of mnist-cnn)
from safetensors_io import read_safetensors  # noqa: E402

DEFAULT_OUT = os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "gguf-py")
MUL_MAT = os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "ggml", "mul_mat")
MODEL_TYPES = ["f32", "f16", "bf16", "q8_0"]
QUANT_TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "mxfp4", "f16", "bf16"]
GGML_TYPE = {"f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16, "q4_0": QT.Q4_0, "q4_1": QT.Q4_1, "q5_0": QT.Q5_0,
             "q5_1": QT.Q5_1, "q8_0": QT.Q8_0, "q2_K": QT.Q2_K, "q3_K": QT.Q3_K, "q4_K": QT.Q4_K, "q5_K": QT.Q5_K,
             "q6_K": QT.Q6_K, "mxfp4": QT.MXFP4}
# llama.cpp's LlamaFileType (gguf-py constants.LlamaFileType) for a file whose weight matrices are mostly T: what
# Parity must write. A file whose matrices are all one k-quant type is the "_S" mix (Q3_K_S 11, Q4_K_S 14, Q5_K_S 16).
FILE_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_K": 10, "q3_K": 11,
             "q4_K": 14, "q5_K": 16, "q6_K": 18, "bf16": 32, "mxfp4": 38}


def expected_file_type(matrix_types):
    """general.file_type by what the weight matrices are (not by what was asked for): the block type when exactly
    one is present (fallback rows do not change llama.cpp's label), else F16 if any matrix is F16 (a file whose
    matrices all fell back to F16 is MOSTLY_F16), else BF16, else ALL_F32."""
    names = {GGML_NAME.get(t, "f32") if t != QT.F32 else "f32" for t in matrix_types}
    quantized = {n for n in names if n not in ("f32", "f16", "bf16")}
    if len(quantized) == 1:
        return FILE_TYPE[quantized.pop()]
    assert not quantized, f"several block types {quantized}: no single file type"
    return FILE_TYPE["f16"] if "f16" in names else FILE_TYPE["bf16"] if "bf16" in names else FILE_TYPE["f32"]


def is_matrix(name, ne):
    return len(ne) >= 2 and any(d > 1 for d in ne[1:]) and not name.endswith(".bias")
UNQUANTIZED = {QT.F32, QT.F16, QT.BF16}
# Loose rel-L2 bounds (‖deq − src‖ / ‖src‖ per tensor) for the synthetic tensors with ordinary magnitudes: they
# catch garbage (wrong block order, wrong scales, shuffled nibbles), not small quantizer differences.
SANITY_REL_L2 = {"f16": 1e-3, "bf16": 8e-3, "q8_0": 0.02, "q6_K": 0.04, "q5_0": 0.08, "q5_1": 0.08, "q5_K": 0.08,
                 "q4_0": 0.15, "q4_1": 0.15, "q4_K": 0.15, "q3_K": 0.3, "mxfp4": 0.3, "q2_K": 0.6}
GGUFPY_QUANTIZERS = {QT.BF16, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0, QT.MXFP4}
PARITY_SOURCES = ["Sources/ParityFormats/GGUF.swift", "Sources/ParityFormats/GGUFRequantize.swift",
                  "Sources/ParityFormats/GGMLTypes.swift", "Sources/ParityFormats/GGMLQuants.swift",
                  "Sources/ParityFormats/GGMLQuants+KQuants.swift", "Sources/ParityModels/GGUFConverter.swift",
                  "Sources/parity/Convert.swift", "Sources/parity/Quantize.swift"]
MLP_FC1_ROWS = 16


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return sha256_bytes(f.read())


def find_parity(explicit):
    for c in [explicit, os.path.join(ROOT, ".build-ggufcheck/release/parity"), os.path.join(ROOT, ".build/release/parity")]:
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    sys.exit("check_parity_gguf.py: no parity binary; build it with "
             "`swift build -c release --scratch-path .build-ggufcheck --product parity` or pass --parity BIN")


GGML_BUILD = os.path.join(ROOT, ".build-ggml")
GGML_SRC = os.path.join(GGML_BUILD, "src", "ggml_python-0.0.45", "vendor", "ggml")
QUANTIZE_TOOL = os.path.join(GGML_BUILD, "tools", "ggml-quantize-rows")


def build_quantize_tool():
    """ggml-quantize-rows (tools/ggml/ggml_quantize_rows.c) against tools/ggml/build-ggml.sh's generic libggml-base.a."""
    lib = os.path.join(GGML_BUILD, "build-generic", "ggml", "src", "libggml-base.a")
    src = os.path.join(HERE, "ggml_quantize_rows.c")
    if not os.path.exists(lib):
        sys.exit(f"check_parity_gguf.py: {os.path.relpath(lib, ROOT)} missing; run tools/ggml/build-ggml.sh generic")
    if os.path.exists(QUANTIZE_TOOL) and os.path.getmtime(QUANTIZE_TOOL) > max(os.path.getmtime(lib), os.path.getmtime(src)):
        return
    os.makedirs(os.path.dirname(QUANTIZE_TOOL), exist_ok=True)
    cmd = ["gcc", "-O2", "-Wall", "-I" + os.path.join(GGML_SRC, "include"), src, lib, "-lstdc++", "-lm", "-lpthread",
           "-fopenmp", "-o", QUANTIZE_TOOL]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("building ggml-quantize-rows failed:\n" + p.stderr)


def ggml_quantize(typename, a, tmp):
    """ggml's own bytes (ggml_quantize_chunk, no imatrix) and to_float of float32 array a (rows = last axis)."""
    ne0 = a.shape[-1]
    src = os.path.join(tmp, "q.in.f32")
    np.ascontiguousarray(a, dtype="<f4").tofile(src)
    qb, qd = os.path.join(tmp, "q.out.bin"), os.path.join(tmp, "q.out.f32")
    p = subprocess.run([QUANTIZE_TOOL, typename, str(ne0), src, qb, qd], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"ggml-quantize-rows {typename} failed: {p.stderr}")
    return open(qb, "rb").read(), np.fromfile(qd, dtype="<f4").reshape(a.shape)


GGML_NAME = {QT.F16: "f16", QT.BF16: "bf16", QT.Q4_0: "q4_0", QT.Q4_1: "q4_1", QT.Q5_0: "q5_0", QT.Q5_1: "q5_1",
             QT.Q8_0: "q8_0", QT.Q2_K: "q2_K", QT.Q3_K: "q3_K", QT.Q4_K: "q4_K", QT.Q5_K: "q5_K", QT.Q6_K: "q6_K",
             QT.MXFP4: "mxfp4"}


def check_against_ggml(chk, name, et, src, stored, deq, tmp, record):
    """Every non-F32 tensor: Parity's bytes must be ggml_quantize_chunk's, gguf-py's values ggml's to_float."""
    if et == QT.F32:
        return
    gb, gd = ggml_quantize(GGML_NAME[et], src, tmp)
    nbytes = sum(x != y for x, y in zip(stored, gb)) + abs(len(stored) - len(gb))
    nvals = int(np.sum(deq.reshape(-1).view(np.uint32) != gd.reshape(-1).view(np.uint32)))
    chk.expect(nbytes == 0, f"{name}: {et.name} bytes differ from ggml_quantize_chunk's in {nbytes} of {len(gb)} bytes")
    chk.expect(nvals == 0, f"{name}: {nvals} of {gd.size} gguf-py values differ from ggml's {et.name} to_float")
    chk.values += gd.size
    record[name] = {"bytes_identical": nbytes == 0, "to_float_identical": nvals == 0}


def git(*args):
    return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True).stdout.strip()


def bf16_rne(a):
    """float32 -> bfloat16 bits, round to nearest even (no NaNs in our data), as uint16."""
    b = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype("<u2")


def storage_bytes(a, t):
    """The bytes of an unquantized GGUF tensor of type t holding float32 array a."""
    if t == QT.F32:
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if t == QT.F16:
        return np.ascontiguousarray(a).astype("<f2").tobytes()
    if t == QT.BF16:
        return bf16_rne(a).tobytes()
    raise ValueError(t)


def rounded(a, t):
    """What an unquantized type t stores for float32 a, as float32."""
    if t == QT.F32:
        return np.asarray(a, dtype=np.float32)
    if t == QT.F16:
        return np.asarray(a).astype(np.float16).astype(np.float32)
    if t == QT.BF16:
        return (bf16_rne(a).astype(np.uint32) << 16).view(np.float32).reshape(np.shape(a))
    raise ValueError(t)


# ---------------------------------------------------------------------------------------------- synthetic source

def synthetic_tensors():
    """Deterministic float32 tensors (numpy shapes; ne = reversed). Tags: 'zero_rows' lists all-zero rows,
    'bounded' = ordinary magnitudes (the sanity bound applies)."""
    rng = np.random.default_rng(20261122)
    t = {}
    t["a.uniform"] = (rng.random((4, 256)) * 2 - 1).astype(np.float32)
    b = (rng.standard_normal((8, 256)) * 0.02).astype(np.float32)
    b[0, 5] = 8.0          # one outlier dominating its 32-block and 256-superblock
    b[1, 17] = -11.5
    b[1, 200] = 6.25
    b[3, 40:44] = [4.0, -4.0, 3.5, -3.75]
    b[5, 255] = 12.0
    b[7, 0] = -9.0
    b[7, 128] = 9.0
    t["b.outliers"] = b
    c = np.zeros((3, 256), dtype=np.float32)
    c[1] = rng.standard_normal(256).astype(np.float32)
    c[2, 192:] = (rng.random(64) * 2 - 1).astype(np.float32)   # zero blocks and zero k-quant sub-blocks before
    t["c.zero_rows"] = c
    d = np.empty((2, 256), dtype=np.float32)
    d[0] = rng.standard_normal(256) * 1e-4                       # Q8_0 scale ~8e-7: a float16 subnormal
    d[1] = rng.standard_normal(256) * 3e-6                       # scales underflow in float16
    t["d.small"] = d.astype(np.float32)
    t["e.bias"] = rng.standard_normal(256).astype(np.float32)    # 1-D: kept F32
    t["f.rows96"] = (rng.random((2, 96)) * 2 - 1).astype(np.float32)  # quantized only by 32-blocks
    t["g.3d"] = rng.standard_normal((2, 3, 256)).astype(np.float32)   # ne [256, 3, 2]
    t["ggml.mul_mat.w"] = np.fromfile(os.path.join(MUL_MAT, "w.f32"), dtype="<f4").reshape(4, 256)
    t["h.mul_mat.x"] = np.fromfile(os.path.join(MUL_MAT, "x.f32"), dtype="<f4").reshape(3, 256)  # row 0: ties
    tags = {"a.uniform": {"bounded": True}, "b.outliers": {"bounded": True},
            "c.zero_rows": {"zero_rows": [0], "bounded": True}, "f.rows96": {"bounded": True}, "g.3d": {"bounded": True}}
    return t, tags


SOURCE_KV = [  # (key, value, GGUF type, array element type) after general.architecture (= "test")
    ("general.name", "parity gguf-py check: synthetic", VT.STRING, None),
    ("general.file_type", 0, VT.UINT32, None),
    ("test.u8", 200, VT.UINT8, None),
    ("test.i8", -100, VT.INT8, None),
    ("test.u16", 60000, VT.UINT16, None),
    ("test.i16", -30000, VT.INT16, None),
    ("test.u32", 4000000000, VT.UINT32, None),
    ("test.i32", -2000000000, VT.INT32, None),
    ("test.u64", 2**63 + 5, VT.UINT64, None),
    ("test.i64", -(2**62) - 3, VT.INT64, None),
    ("test.f32", 0.1, VT.FLOAT32, None),
    ("test.f64", 1.0 / 3.0, VT.FLOAT64, None),
    ("test.bool", True, VT.BOOL, None),
    ("test.string", "Grüße ✓ — GGUF", VT.STRING, None),
    ("test.empty_string", "", VT.STRING, None),
    ("test.array_i32", [1, -2, 3], VT.ARRAY, VT.INT32),
    ("test.array_u8", [0, 127, 255], VT.ARRAY, VT.UINT8),
    ("test.array_u64", [0, 2**64 - 1], VT.ARRAY, VT.UINT64),
    ("test.array_f32", [0.5, -1.25, 1e-8], VT.ARRAY, VT.FLOAT32),
    ("test.array_f64", [0.1, -2.5], VT.ARRAY, VT.FLOAT64),
    ("test.array_bool", [True, False, True], VT.ARRAY, VT.BOOL),
    ("test.array_str", ["a", "", "ü"], VT.ARRAY, VT.STRING),
]


def write_source(path, alignment=None):
    w = gguf.GGUFWriter(path, "test")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, value, vtype, sub in SOURCE_KV:
        w.add_key_value(key, value, vtype, sub_type=sub)
    tensors, _ = synthetic_tensors()
    for name, a in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(a))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------------- reading

def field_value_json(f):
    """gguf-py's view of one metadata field: type names, value (contents()), the raw value bytes."""
    t = f.types[0]
    entry = {"key": f.name, "type": t.name}
    if t == VT.ARRAY:
        entry["element_type"] = f.types[-1].name if len(f.types) > 1 else None
    v = f.contents()
    if t == VT.FLOAT32 or (t == VT.ARRAY and f.types[-1] == VT.FLOAT32):
        v = [float(np.float32(x)) for x in v] if isinstance(v, list) else float(np.float32(v))
    entry["value"] = v
    entry["value_hex"] = b"".join(p.tobytes() for p in f.parts[3:]).hex()
    return entry


def read_with_gguf_py(path):
    r = GGUFReader(path)
    raw = open(path, "rb").read()
    info = {
        "magic": raw[:4].decode("latin-1"),
        "version": int(r.fields["GGUF.version"].parts[0][0]),
        "tensor_count": int(r.fields["GGUF.tensor_count"].parts[0][0]),
        "kv_count": int(r.fields["GGUF.kv_count"].parts[0][0]),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "bytes": len(raw),
        "metadata": [field_value_json(f) for k, f in r.fields.items() if not k.startswith("GGUF.")],
        "tensors": [],
    }
    values = {}
    for t in r.tensors:
        deq = np.asarray(gq_dequantize(t.data, t.tensor_type), dtype=np.float32)
        ne = [int(d) for d in t.shape]
        deq = deq.reshape(list(reversed(ne)))
        values[t.name] = deq
        info["tensors"].append({
            "name": t.name, "type": t.tensor_type.name, "type_id": int(t.tensor_type), "ne": ne,
            "offset": int(t.data_offset - r.data_offset), "data_offset": int(t.data_offset),
            "n_bytes": int(t.n_bytes), "n_elements": int(t.n_elements),
            "sha256": sha256_bytes(raw[t.data_offset:t.data_offset + t.n_bytes]),
        })
    return r, raw, info, values


def pad(n, a):
    return (n + a - 1) // a * a


class Check:
    def __init__(self, stem):
        self.stem = stem
        self.failures = []
        self.notes = []
        self.tensors = 0
        self.values = 0

    def expect(self, ok, what):
        if not ok:
            self.failures.append(what)
        return ok


def check_layout(chk, r, raw, info, expected_alignment):
    chk.expect(info["magic"] == "GGUF", f"magic {info['magic']!r}")
    chk.expect(info["version"] == 3, f"version {info['version']}, expected 3")
    chk.expect(info["alignment"] == expected_alignment, f"alignment {info['alignment']}, expected {expected_alignment}")
    chk.expect(info["data_offset"] % info["alignment"] == 0, f"data offset {info['data_offset']} not aligned")
    chk.expect(info["kv_count"] == len(info["metadata"]), "kv_count differs from the fields read")
    chk.expect(info["tensor_count"] == len(info["tensors"]), "tensor_count differs from the tensors read")
    # the header's end: the end of the last tensor-info field
    header_end = max((t.field.offset + sum(int(p.nbytes) for p in t.field.parts) for t in r.tensors),
                     default=info["data_offset"])
    chk.expect(raw[header_end:info["data_offset"]] == bytes(info["data_offset"] - header_end),
               "header padding before the data section is not zero")
    running = 0
    for t in info["tensors"]:
        chk.expect(t["offset"] == running, f"{t['name']}: data offset {t['offset']}, expected {running} "
                                           f"(padded running sum)")
        end = t["data_offset"] + t["n_bytes"]
        padded_end = info["data_offset"] + running + pad(t["n_bytes"], info["alignment"])
        chk.expect(raw[end:padded_end] == bytes(padded_end - end), f"{t['name']}: padding after the data is not zero")
        running += pad(t["n_bytes"], info["alignment"])
    chk.expect(info["bytes"] == info["data_offset"] + running,
               f"file is {info['bytes']} bytes, expected {info['data_offset'] + running} (padded end of the last tensor)")


def check_metadata(chk, info, expected):
    """expected: list of (key, type name, value or None, value_hex or None)."""
    got = info["metadata"]
    chk.expect([m["key"] for m in got] == [e[0] for e in expected],
               f"metadata keys {[m['key'] for m in got]}, expected {[e[0] for e in expected]}")
    by_key = {m["key"]: m for m in got}
    for key, tname, value, vhex in expected:
        m = by_key.get(key)
        if not chk.expect(m is not None, f"metadata {key} missing"):
            continue
        chk.expect(m["type"] == tname, f"metadata {key}: type {m['type']}, expected {tname}")
        if value is not None:
            chk.expect(m["value"] == value, f"metadata {key}: value {m['value']!r}, expected {value!r}")
        if vhex is not None:
            chk.expect(m["value_hex"] == vhex, f"metadata {key}: value bytes {m['value_hex']}, expected {vhex}")


def expected_qv(types):
    return any(t not in UNQUANTIZED for t in types)


# ---------------------------------------------------------------------------------------------- main

def run_parity(parity, args, cwd):
    env = dict(os.environ, PARITY_GOLDEN_DIR=os.path.join(ROOT, "golden"))
    p = subprocess.run([parity] + args, cwd=cwd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"parity {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout.splitlines()


def model_expectations(model, typename, weights):
    """[(gguf name, numpy array in ggml layout, expected type)] per Parity's documented convert rules."""
    if model == "fmnist-cnn":
        pairs = cnn_tensors(weights)
    else:
        pairs = [(n, weights[n]) for n in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
    target = GGML_TYPE[typename]
    block = gguf.GGML_QUANT_SIZES[target][0]
    out = []
    for name, a in pairs:
        ne = list(reversed(a.shape))
        if name.endswith(".bias") or len(ne) < 2:
            t = QT.F32
        elif ne[0] % block != 0:
            t = QT.F16
        else:
            t = target
        out.append((name, np.ascontiguousarray(a, dtype=np.float32), t))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parity")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--keep", help="also leave every GGUF file in this directory")
    args = ap.parse_args()
    parity = find_parity(args.parity)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    build_quantize_tool()
    tmp = tempfile.mkdtemp(prefix="parity-ggufpy-")
    qtmp = os.path.join(tmp, "ggml-q")
    os.makedirs(qtmp)
    manifest = {
        "what": "GGUF files written by Parity, read by llama.cpp's gguf-py (GGUFReader, gguf.quants.dequantize)",
        "generator": "tools/ggml/check_parity_gguf.py",
        "gguf_py_version": pkg_version("gguf"), "numpy_version": np.__version__,
        "safetensors_version": pkg_version("safetensors"), "python_version": platform.python_version(),
        "parity_commit": git("rev-parse", "HEAD"),
        "parity_tree_dirty": bool(git("status", "--porcelain", "--", "Sources", "Package.swift")),
        "parity_sources_sha256": {p: sha256_file(os.path.join(ROOT, p)) for p in PARITY_SOURCES
                                  if os.path.exists(os.path.join(ROOT, p))},
        "how_to_regenerate": "run each file's `command` in a directory holding the sources (test-f32.gguf and "
                             "test-a64-f32.gguf from this directory); the result must have the file's sha256. "
                             "Model commands find the bundled models as the parity CLI does (golden/).",
        "dequantized": {
            "file": "dequantized.safetensors",
            "names": "<file stem>/<tensor name>, F32, numpy shape = reversed(ne) (ggml memory order, ne[0] fastest)",
            "values": "gguf.quants.dequantize(reader tensor data, tensor type) as float32",
            "partial": f"fmnist-mlp-*: fc1.weight holds rows 0..{MLP_FC1_ROWS - 1} of 500 only (shape "
                       f"[{MLP_FC1_ROWS}, 784]); every tensor's full float32 array (little-endian, memory order) "
                       "has its sha256 in tensors[].dequantized.sha256_f32",
        },
        "value_json": "metadata[].value is gguf-py's ReaderField.contents() (FLOAT32 widened exactly to double; "
                      "UINT64 values above 2^53 are exact only in value_hex); value_hex = the value's bytes as stored "
                      "(after key and type; for arrays: element type u32, count u64, elements)",
        "sanity_rel_l2_bounds": SANITY_REL_L2,
        "sources": {},
        "files": {},
    }
    dequant_store = {}
    checks = []
    try:
        # --- sources of the synthetic files (gguf-py-written)
        src_tensors, tags = synthetic_tensors()
        sources = {"test-f32": None, "test-a64-f32": 64}
        source_info = {}
        for stem, align in sources.items():
            path = os.path.join(tmp, stem + ".gguf")
            write_source(path, align)
            r, raw, info, values = read_with_gguf_py(path)
            for name, a in src_tensors.items():
                assert np.array_equal(values[name].view(np.uint32), a.view(np.uint32)), (stem, name)
            source_info[stem] = (r, info)
            shutil.copyfile(path, os.path.join(out, stem + ".gguf"))
            manifest["sources"][stem + ".gguf"] = {
                "written_by": f"gguf-py {pkg_version('gguf')} GGUFWriter (tools/ggml/check_parity_gguf.py write_source)",
                "sha256": sha256_file(path), "bytes": os.path.getsize(path), "alignment": info["alignment"],
                "metadata": info["metadata"],
                "tensors": [dict(t, dequantized={"key": f"{stem}/{t['name']}"}) for t in info["tensors"]],
                "tensor_notes": {
                    "a.uniform": "uniform [-1, 1)", "b.outliers": "normal·0.02 with outliers up to ±12",
                    "c.zero_rows": "row 0 all zero; row 2 zero except elements 192..255",
                    "d.small": "normal·1e-4 and normal·3e-6: block scales at/under float16's subnormal range",
                    "e.bias": "1-D (kept F32 by every requantization)",
                    "f.rows96": "row length 96: quantized by 32-element block types only, kept F32 otherwise",
                    "g.3d": "3-D, ne [256, 3, 2]",
                    "ggml.mul_mat.w": "= Fixtures/ggml/mul_mat/w.f32 (ne [256, 4]); its quantized bytes must be ggml's",
                    "h.mul_mat.x": "= Fixtures/ggml/mul_mat/x.f32 (ne [256, 3]); row 0 is all Q8_0 rounding ties",
                },
            }
            for name, v in values.items():
                dequant_store[f"{stem}/{name}"] = v

        jobs = []  # (stem, command list, kind, extra)
        for model in ("fmnist-cnn", "fmnist-mlp"):
            for t in MODEL_TYPES:
                stem = f"{model}-{t}"
                jobs.append((stem, ["convert", model, "--to", "gguf", "--type", t, "-o", stem + ".gguf"], "model", (model, t)))
        for t in QUANT_TYPES:
            stem = f"test-{t}"
            jobs.append((stem, ["quantize", "test-f32.gguf", stem + ".gguf", "--type", t], "synthetic", ("test-f32", t)))
        jobs.append(("test-a64-q6_K", ["quantize", "test-a64-f32.gguf", "test-a64-q6_K.gguf", "--type", "q6_K"],
                     "synthetic", ("test-a64-f32", "q6_K")))

        weights_cache = {}
        for stem, cmd, kind, extra in jobs:
            stdout = run_parity(parity, cmd, tmp)
            path = os.path.join(tmp, stem + ".gguf")
            chk = Check(stem)
            r, raw, info, values = read_with_gguf_py(path)
            entry = {"kind": kind, "command": "parity " + " ".join(cmd), "parity_printed": stdout,
                     "sha256": sha256_file(path), "bytes": os.path.getsize(path)}
            if kind == "model":
                model, tname = extra
                if model not in weights_cache:
                    weights_cache[model] = read_safetensors(os.path.join(ROOT, "golden", model, "model.safetensors"))
                exp = model_expectations(model, tname, weights_cache[model])
                vs_ggml = {}
                arch = "mnist-cnn" if model == "fmnist-cnn" else "mnist-fc"
                types = [t for _, _, t in exp]
                emeta = [("general.architecture", "STRING", arch, None), ("general.name", "STRING", model, None),
                         ("general.file_type", "UINT32", expected_file_type([t for n, a, t in exp if is_matrix(n, list(reversed(a.shape)))]), None)]
                if expected_qv(types):
                    emeta.append(("general.quantization_version", "UINT32", 2, None))
                check_layout(chk, r, raw, info, 32)
                check_metadata(chk, info, emeta)
                chk.expect([t["name"] for t in info["tensors"]] == [n for n, _, _ in exp],
                           f"tensor names {[t['name'] for t in info['tensors']]}")
                by = {t.name: t for t in r.tensors}
                for (name, a, et), tj in zip(exp, info["tensors"]):
                    t = by.get(name)
                    if t is None:
                        continue
                    chk.tensors += 1
                    chk.expect(tj["ne"] == list(reversed(a.shape)), f"{name}: ne {tj['ne']}, expected {list(reversed(a.shape))}")
                    chk.expect(t.tensor_type == et, f"{name}: type {t.tensor_type.name}, expected {et.name}")
                    if t.tensor_type != et or tj["ne"] != list(reversed(a.shape)):
                        continue
                    chk.expect(raw[tj["data_offset"]:tj["data_offset"] + tj["n_bytes"]] == storage_bytes(a, et),
                               f"{name}: stored bytes differ from golden weights as {et.name}")
                    v = values[name]
                    want = rounded(a, et)
                    chk.values += v.size
                    nbad = int(np.sum(v.view(np.uint32) != want.view(np.uint32)))
                    chk.expect(nbad == 0, f"{name}: {nbad} of {v.size} dequantized values differ from the golden "
                                          f"weights as {et.name} (max abs {float(np.max(np.abs(v - want))):.3g})")
                    if et == QT.BF16:  # cross-check our RNE with gguf-py's own BF16 quantizer
                        chk.expect(bytes(gq_quantize(a, QT.BF16).tobytes()) == storage_bytes(a, et),
                                   f"{name}: gguf-py's BF16 quantizer disagrees with round-to-nearest-even")
                    check_against_ggml(chk, name, et, a.reshape(-1, a.shape[-1]),
                                       raw[tj["data_offset"]:tj["data_offset"] + tj["n_bytes"]], v, qtmp, vs_ggml)
                if tname == "q8_0":  # every matrix must fall back to F16, and Parity must say so
                    for name, a, et in exp:
                        if et == QT.F16:
                            said = any(line.strip().startswith(name + ":") and "falling back to F16" in line for line in stdout)
                            chk.expect(said, f"{name}: parity did not report the F16 fallback")
                    chk.notes.append("every matrix fell back to F16 (no row length divides by 32); "
                                     "file_type is 1 (MOSTLY_F16: what the file holds), general.quantization_version absent")
                entry["vs_ggml_quantize_chunk"] = vs_ggml
            else:
                src_stem, tname = extra
                src_r, src_info = source_info[src_stem]
                target = GGML_TYPE[tname]
                block = gguf.GGML_QUANT_SIZES[target][0]
                exp_types = {}
                for st in src_r.tensors:
                    ne = [int(d) for d in st.shape]
                    if len(ne) < 2 or all(d == 1 for d in ne[1:]) or ne[0] % block != 0:
                        exp_types[st.name] = st.tensor_type
                    else:
                        exp_types[st.name] = target
                # metadata: the source's, in order, with general.file_type set; quantization_version appended iff quantized
                emeta = []
                ftype = expected_file_type([exp_types[st.name] for st in src_r.tensors if is_matrix(st.name, [int(d) for d in st.shape])])
                for m in src_info["metadata"]:
                    if m["key"] == "general.file_type":
                        emeta.append((m["key"], "UINT32", ftype, None))
                    else:
                        emeta.append((m["key"], m["type"], None, m["value_hex"]))
                if not any(m["key"] == "general.file_type" for m in src_info["metadata"]):
                    emeta.append(("general.file_type", "UINT32", ftype, None))
                if expected_qv(exp_types.values()):
                    emeta.append(("general.quantization_version", "UINT32", 2, None))
                check_layout(chk, r, raw, info, src_info["alignment"])
                check_metadata(chk, info, emeta)
                chk.expect([t["name"] for t in info["tensors"]] == [t.name for t in src_r.tensors],
                           f"tensor names {[t['name'] for t in info['tensors']]}")
                src_by = {t["name"]: t for t in src_info["tensors"]}
                by = {t.name: t for t in r.tensors}
                errors = {}
                gq = {}
                vs_ggml = {}
                for tj in info["tensors"]:
                    name = tj["name"]
                    t = by[name]
                    src = src_tensors.get(name)
                    chk.tensors += 1
                    chk.expect(tj["ne"] == src_by[name]["ne"], f"{name}: ne {tj['ne']}, expected {src_by[name]['ne']}")
                    et = exp_types[name]
                    if not chk.expect(t.tensor_type == et, f"{name}: type {t.tensor_type.name}, expected {et.name}"):
                        continue
                    v = values[name]
                    chk.values += v.size
                    stored = raw[tj["data_offset"]:tj["data_offset"] + tj["n_bytes"]]
                    if et in UNQUANTIZED:
                        want = rounded(src, et)
                        nbad = int(np.sum(v.view(np.uint32) != want.view(np.uint32)))
                        chk.expect(stored == storage_bytes(src, et), f"{name}: {et.name} bytes differ from the source rounded")
                        chk.expect(nbad == 0, f"{name}: {nbad} values differ from the source rounded to {et.name}")
                    check_against_ggml(chk, name, et, src.reshape(-1, src.shape[-1]), stored, v, qtmp, vs_ggml)
                    if name == "ggml.mul_mat.w":
                        fn = tname.lower()
                        wbin = open(os.path.join(MUL_MAT, f"{fn}.w.bin"), "rb").read()
                        wdeq = np.fromfile(os.path.join(MUL_MAT, f"{fn}.w_deq.f32"), dtype="<f4")
                        chk.expect(stored == wbin, f"{name}: {tname} bytes differ from ggml_quantize_chunk's "
                                                   f"({sum(x != y for x, y in zip(stored, wbin))} bytes)")
                        nbad = int(np.sum(v.reshape(-1).view(np.uint32) != wdeq.view(np.uint32)))
                        chk.expect(nbad == 0, f"{name}: gguf-py decodes {nbad} values differently from ggml's to_float")
                        chk.values += wdeq.size
                    if name == "h.mul_mat.x" and et == QT.Q8_0:
                        xq = open(os.path.join(MUL_MAT, "generic", "q8_0.x_q.bin"), "rb").read()
                        chk.expect(stored == xq, f"{name}: q8_0 bytes differ from ggml's quantize_row_q8_0_ref "
                                                 f"(generic q8_0.x_q.bin; {sum(x != y for x, y in zip(stored, xq))} bytes)")
                    zr = tags.get(name, {}).get("zero_rows", [])
                    for row in zr:
                        chk.expect(not np.any(v[row]), f"{name}: all-zero row {row} does not decode to zeros")
                    # zero rows inside c.zero_rows row 2 (elements 0..191) must stay zero too
                    if name == "c.zero_rows":
                        chk.expect(not np.any(v[2, :192]), f"{name}: zero blocks of row 2 do not decode to zeros")
                    d = v.astype(np.float64) - src.astype(np.float64)
                    rel = float(np.linalg.norm(d) / np.linalg.norm(src.astype(np.float64)))
                    errors[name] = {"rel_l2": rel, "max_abs": float(np.max(np.abs(d)))}
                    if tags.get(name, {}).get("bounded") and et == target and tname in SANITY_REL_L2:
                        chk.expect(rel <= SANITY_REL_L2[tname], f"{name}: rel L2 {rel:.3g} vs source above the "
                                                                f"sanity bound {SANITY_REL_L2[tname]} for {tname}")
                    if et == target and target in GGUFPY_QUANTIZERS:
                        mine = np.frombuffer(bytes(gq_quantize(src, target).tobytes()), dtype=np.uint8)
                        theirs = np.frombuffer(stored, dtype=np.uint8)
                        bs, ts = gguf.GGML_QUANT_SIZES[target]
                        blocks = (mine.reshape(-1, ts) != theirs.reshape(-1, ts)).any(axis=1)
                        gq[name] = {"identical": bool(not blocks.any()), "blocks_differing": int(blocks.sum()),
                                    "blocks": int(blocks.size)}
                entry["vs_source"] = errors
                entry["vs_ggml_quantize_chunk"] = vs_ggml
                if gq:
                    entry["vs_gguf_py_quantizer"] = {"informational": True, "quantizer": f"gguf.quants.quantize(source, {target.name})",
                                                     "tensors": gq}
            entry["gguf_py"] = info
            # value storage
            for tj in info["tensors"]:
                v = values[tj["name"]]
                d = {"sha256_f32": sha256_bytes(np.ascontiguousarray(v, dtype="<f4").tobytes())}
                key = f"{stem}/{tj['name']}"
                if stem.startswith("fmnist-mlp") and tj["name"] == "fc1.weight":
                    dequant_store[key] = np.ascontiguousarray(v[:MLP_FC1_ROWS])
                    d.update(key=key, stored_rows=[0, MLP_FC1_ROWS], stored_shape=[MLP_FC1_ROWS, int(v.shape[1])])
                else:
                    dequant_store[key] = np.ascontiguousarray(v)
                    d.update(key=key, stored_rows="all")
                tj["dequantized"] = d
            entry["checks"] = {"passed": not chk.failures, "failures": chk.failures, "notes": chk.notes,
                               "tensors_compared": chk.tensors, "values_compared": chk.values}
            manifest["files"][stem + ".gguf"] = entry
            checks.append(chk)
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                shutil.copyfile(path, os.path.join(args.keep, stem + ".gguf"))

        # gguf-dump (gguf-py's console script) on two files, run on the basename so the output has no paths
        dump_exe = os.path.join(os.path.dirname(sys.executable), "gguf-dump")
        manifest["gguf_dump"] = {}
        for stem in ("test-q4_K", "fmnist-cnn-f32"):
            p = subprocess.run([dump_exe, stem + ".gguf"], cwd=tmp, capture_output=True, text=True)
            ok = p.returncode == 0 and "Dumping" in p.stdout
            chk = Check(f"gguf-dump {stem}")
            chk.expect(ok, f"gguf-dump exited {p.returncode}: {p.stderr[-500:]}")
            checks.append(chk)
            with open(os.path.join(out, f"gguf-dump-{stem}.txt"), "w") as f:
                f.write(p.stdout)
            manifest["gguf_dump"][f"gguf-dump-{stem}.txt"] = {"command": f"gguf-dump {stem}.gguf", "exit_status": p.returncode}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    save_file(dequant_store, os.path.join(out, "dequantized.safetensors"),
              metadata={"what": "gguf-py's dequantized tensors of Parity-written GGUF files; see manifest.json"})
    os.chmod(os.path.join(out, "dequantized.safetensors"), 0o644)  # safetensors writes 0600
    manifest["summary"] = {
        "files": len(manifest["files"]),
        "passed": all(not c.failures for c in checks),
        "tensors_compared": sum(c.tensors for c in checks),
        "values_compared": sum(c.values for c in checks),
        "failures": sum(len(c.failures) for c in checks),
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")

    print(f"{'file':22s} {'bytes':>8s} {'tensors':>7s} {'values':>8s}  result")
    for c in checks:
        e = manifest["files"].get(c.stem + ".gguf", {})
        print(f"{c.stem:22s} {e.get('bytes', ''):>8} {c.tensors:>7} {c.values:>8}  "
              + ("ok" if not c.failures else f"{len(c.failures)} FAILURES"))
        for fl in c.failures:
            print(f"    FAIL {fl}")
        for n in c.notes:
            print(f"    note {n}")
    for stem, e in manifest["files"].items():
        g = e.get("vs_gguf_py_quantizer")
        if g:
            diff = {n: f"{x['blocks_differing']}/{x['blocks']}" for n, x in g["tensors"].items() if not x["identical"]}
            print(f"  {stem}: vs gguf-py's own quantizer: " + ("byte-identical" if not diff else f"blocks differing {diff}"))
    size = sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out))
    s = manifest["summary"]
    print(f"{s['files']} Parity-written files, {s['tensors_compared']} tensors, {s['values_compared']} values compared; "
          f"{s['failures']} failures; fixtures {size} bytes in {os.path.relpath(out, ROOT)}")
    sys.exit(0 if s["passed"] else 1)


if __name__ == "__main__":
    main()
