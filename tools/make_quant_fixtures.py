#!/usr/bin/env python3
"""Writes Tests/ParityTests/Fixtures/ggml-quants/: ggml block-quantization fixtures from gguf-py and from ggml's C.

    "$(tools/python-tools.sh | tail -1)" tools/make_quant_fixtures.py [--ggml-src DIR]

Two oracles:
- gguf-py (gguf 0.19.0, pinned by tools/python-tools.sh): `gguf.quants.quantize` for Q4_0, Q4_1, Q5_0, Q5_1,
  Q8_0, MXFP4, F16, BF16 and `gguf.quants.dequantize` for every type it decodes.
- ggml's own C reference code, for what gguf-py lacks (the k-quant quantizers, the activation quantizers
  Q8_1/Q8_K, dequantize_row_q8_K, and the CPU dot products `ggml_vec_dot_*_generic`). The sources are the ggml
  copy vendored in the PyPI sdist `ggml-py==0.10.1` (ggml 0.10.1, synced from llama.cpp 3142f1db), fetched with
  `pip download` and checked against a pinned SHA-256, or a ggml checkout given with --ggml-src /
  PARITY_GGML_SRC. Only ggml-quants.c and ggml-cpu/quants.c are compiled (cc -O2 -std=c11, no -march, so no
  FMA contraction: ggml builds ggml-base the same way on x86-64), with a small stub for the few ggml.c symbols
  they reference, and called through ctypes.

The script also checks the two oracles against each other (gguf-py's quantizers and dequantizers vs the C
ones) and records the result in manifest.json; it fails if they disagree.

Output (all little-endian; "rows x cols" values, ggml memory order, a row = ne[0] = cols values):
    src.f32                     shared F32 source rows (16 x 256): normal, outliers, zeros, tiny, huge, ties ...
    <t>.q.bin, <t>.deq.f32      src quantized to t (by gguf-py, or by ggml's C where gguf-py cannot), and
                                gguf-py's dequantization of those bytes (C's for q8_K; numpy d*q for q8_1)
    <t>.rand.q.bin, .deq.f32    random block bytes (scale fields patched to finite f16 of sane magnitude,
                                except MXFP4/F16/BF16 whose every byte is random) and their dequantization
    act.src.f32                 activation rows (4 x 256) for the dot products
    act.<q8_0|q8_1|q8_K>.q.bin  those rows quantized by ggml's C activation quantizers
    <t>.vecdot.f32              [weight row r][activation row a] = ggml_vec_dot_<t>_<vec_dot_type>_generic
    <t>.bulk.fnv32              for 1024 x 256 more values that the tests regenerate themselves (SplitMix64 ->
                                exact float32 arithmetic, see bulk_rows), FNV-1a-32 of every quantized block
                                (the first 256 rows for 32-value blocks): 16x / 64x more blocks per type
                                without storing them
    quants.gguf                 the same tensors in one GGUF file written by gguf-py's GGUFWriter
    manifest.json               versions, shapes, provenance, C struct sizes, oracle cross-checks
"""

import argparse
import ctypes
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "ggml-quants")
CACHE = os.path.join(REPO, ".build-venv-tools", "ggml-ref")
SDIST = "ggml-py==0.10.1"
SDIST_SHA256 = "77e840e8b87c319456331296333c641bc96232076dac00bb6b4563ab9422c71a"
SEED = 20250601
ROWS, COLS = 16, 256
RAND_ROWS = 8
ACT_ROWS = 4

# gguf-py quantizes these (and they reproduce quantize_row_*_ref; checked below).
GGUFPY_QUANTIZED = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "mxfp4", "f16", "bf16"]
# Quantized by ggml's C reference; gguf-py dequantizes the k-quants, not q8_1 / q8_K.
C_QUANTIZED = ["q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_1", "q8_K"]
VEC_DOT = {"q4_0": "q8_0", "q4_1": "q8_1", "q5_0": "q8_0", "q5_1": "q8_1", "q8_0": "q8_0", "mxfp4": "q8_0",
           "q2_K": "q8_K", "q3_K": "q8_K", "q4_K": "q8_K", "q5_K": "q8_K", "q6_K": "q8_K"}
# ggml's true block sizes (the C structs); gguf-py's table says 40 for Q8_1.
SIZES = {"f16": (1, 2), "bf16": (1, 2), "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24),
         "q8_0": (32, 34), "q8_1": (32, 36), "q2_K": (256, 84), "q3_K": (256, 110), "q4_K": (256, 144),
         "q5_K": (256, 176), "q6_K": (256, 210), "q8_K": (256, 292), "mxfp4": (32, 17)}
# Byte offsets of the f16 scale fields that random-byte fixtures get patched to finite values.
F16_SCALES = {"q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0], "q8_1": [0, 2],
              "q2_K": [80, 82], "q3_K": [108], "q4_K": [0, 2], "q5_K": [0, 2], "q6_K": [208]}

STUB_C = r"""
#define GGML_COMMON_DECL_C
#include "ggml-common.h"
#include "ggml.h"
#include "ggml-impl.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ggml-cpu/quants.c reads f16 through this table when the compiler has no F16C; ggml-cpu.c fills it the same way. */
float ggml_table_f32_f16[1 << 16];
__attribute__((constructor)) static void parity_init_table(void) {
    for (int i = 0; i < (1 << 16); ++i) ggml_table_f32_f16[i] = ggml_compute_fp16_to_fp32((ggml_fp16_t) i);
}
/* The ggml.c symbols ggml-quants.c references; none is reached by the *_ref / dequantize_row_* / vec_dot calls. */
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    va_list ap; va_start(ap, fmt); fprintf(stderr, "ggml_abort %s:%d: ", file, line); vfprintf(stderr, fmt, ap); va_end(ap); abort();
}
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void) type; (void) ne; abort(); }
const char * ggml_type_name(enum ggml_type type) { (void) type; return "?"; }
size_t ggml_type_size(enum ggml_type type) { (void) type; abort(); }

/* sizeof of every block struct, for the type-table test: {type id, elements per block, bytes}. */
const long parity_block_table[][3] = {
    {GGML_TYPE_Q4_0, QK4_0, sizeof(block_q4_0)}, {GGML_TYPE_Q4_1, QK4_1, sizeof(block_q4_1)},
    {GGML_TYPE_Q5_0, QK5_0, sizeof(block_q5_0)}, {GGML_TYPE_Q5_1, QK5_1, sizeof(block_q5_1)},
    {GGML_TYPE_Q8_0, QK8_0, sizeof(block_q8_0)}, {GGML_TYPE_Q8_1, QK8_1, sizeof(block_q8_1)},
    {GGML_TYPE_Q2_K, QK_K, sizeof(block_q2_K)}, {GGML_TYPE_Q3_K, QK_K, sizeof(block_q3_K)},
    {GGML_TYPE_Q4_K, QK_K, sizeof(block_q4_K)}, {GGML_TYPE_Q5_K, QK_K, sizeof(block_q5_K)},
    {GGML_TYPE_Q6_K, QK_K, sizeof(block_q6_K)}, {GGML_TYPE_Q8_K, QK_K, sizeof(block_q8_K)},
    {GGML_TYPE_IQ2_XXS, QK_K, sizeof(block_iq2_xxs)}, {GGML_TYPE_IQ2_XS, QK_K, sizeof(block_iq2_xs)},
    {GGML_TYPE_IQ3_XXS, QK_K, sizeof(block_iq3_xxs)}, {GGML_TYPE_IQ1_S, QK_K, sizeof(block_iq1_s)},
    {GGML_TYPE_IQ4_NL, QK4_NL, sizeof(block_iq4_nl)}, {GGML_TYPE_IQ3_S, QK_K, sizeof(block_iq3_s)},
    {GGML_TYPE_IQ2_S, QK_K, sizeof(block_iq2_s)}, {GGML_TYPE_IQ4_XS, QK_K, sizeof(block_iq4_xs)},
    {GGML_TYPE_IQ1_M, QK_K, sizeof(block_iq1_m)}, {GGML_TYPE_TQ1_0, QK_K, sizeof(block_tq1_0)},
    {GGML_TYPE_TQ2_0, QK_K, sizeof(block_tq2_0)}, {GGML_TYPE_MXFP4, QK_MXFP4, sizeof(block_mxfp4)},
    {GGML_TYPE_NVFP4, QK_NVFP4, sizeof(block_nvfp4)}, {GGML_TYPE_Q1_0, QK1_0, sizeof(block_q1_0)},
};
const int parity_block_table_count = sizeof(parity_block_table) / sizeof(parity_block_table[0]);
"""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_ggml_sources():
    """ggml's source tree from the pinned ggml-py sdist (pip download), cached under .build-venv-tools."""
    root = os.path.join(CACHE, "src")
    marker = os.path.join(root, "vendor", "ggml", "src", "ggml-quants.c")
    if os.path.exists(marker):
        return os.path.join(root, "vendor", "ggml")
    os.makedirs(CACHE, exist_ok=True)
    dl = os.path.join(CACHE, "sdist")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "-d", dl, SDIST], check=True)
    (archive,) = [os.path.join(dl, f) for f in os.listdir(dl) if f.endswith(".tar.gz")]
    got = sha256_file(archive)
    if got != SDIST_SHA256:
        sys.exit(f"{archive}: SHA-256 {got} is not the pinned {SDIST_SHA256}")
    tmp = tempfile.mkdtemp(dir=CACHE)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    (top,) = os.listdir(tmp)
    shutil.rmtree(root, ignore_errors=True)
    os.rename(os.path.join(tmp, top), root)
    os.rmdir(tmp)
    return os.path.join(root, "vendor", "ggml")


def build_libggml(ggml):
    lib = os.path.join(CACHE, "libggml-ref.so")
    stub = os.path.join(CACHE, "parity_stubs.c")
    os.makedirs(CACHE, exist_ok=True)
    with open(stub, "w") as f:
        f.write(STUB_C)
    src = os.path.join(ggml, "src")
    cmd = [os.environ.get("CC", "cc"), "-O2", "-std=c11", "-fPIC", "-shared", "-ffp-contract=off",
           "-I", os.path.join(ggml, "include"), "-I", src, "-I", os.path.join(src, "ggml-cpu"),
           "-o", lib, os.path.join(src, "ggml-quants.c"), os.path.join(src, "ggml-cpu", "quants.c"), stub, "-lm"]
    print("building", lib, file=sys.stderr)
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(lib), cmd


def ggml_provenance(ggml):
    info = {"sources": SDIST + " (PyPI sdist, vendor/ggml)", "sdist_sha256": SDIST_SHA256}
    try:
        with open(os.path.join(ggml, "scripts", "sync-llama.last")) as f:
            info["synced_from_llama.cpp"] = f.read().strip()
    except OSError:
        pass
    for rel in ["src/ggml-quants.c", "src/ggml-cpu/quants.c", "src/ggml-common.h"]:
        info["sha256 " + rel] = sha256_file(os.path.join(ggml, rel))
    return info


class Ref:
    """ctypes calls into ggml's C reference code."""

    def __init__(self, lib):
        self.lib = lib

    @staticmethod
    def _ptr(a):
        return a.ctypes.data_as(ctypes.c_void_p)

    def quantize(self, name, x):
        block, size = SIZES[name]
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros(x.size // block * size, dtype=np.uint8)   # zeroed: Q8_K leaves bsums of all-zero blocks untouched
        getattr(self.lib, f"quantize_row_{name}_ref")(self._ptr(x), self._ptr(out), ctypes.c_int64(x.size))
        return out.reshape(x.shape[0], -1)

    def dequantize(self, name, q, count):
        out = np.zeros(count, dtype=np.float32)
        getattr(self.lib, f"dequantize_row_{name}")(self._ptr(np.ascontiguousarray(q)), self._ptr(out), ctypes.c_int64(count))
        return out

    def vec_dot(self, name, wrow, arow, n):
        fn = getattr(self.lib, f"ggml_vec_dot_{name}_{VEC_DOT[name]}_generic")
        s = np.zeros(1, dtype=np.float32)
        fn(ctypes.c_int(n), self._ptr(s), ctypes.c_size_t(0), self._ptr(np.ascontiguousarray(wrow)), ctypes.c_size_t(0),
           self._ptr(np.ascontiguousarray(arow)), ctypes.c_size_t(0), ctypes.c_int(1))
        return s[0]

    def block_table(self):
        count = ctypes.c_int.in_dll(self.lib, "parity_block_table_count").value
        table = (ctypes.c_long * 3 * count).in_dll(self.lib, "parity_block_table")
        names = {t.value: t.name.lower().replace("_k", "_K") for t in T}
        return {names[row[0]]: [row[1], row[2]] for row in table}


def qtype(name):
    return T[name.upper()]


def source_rows(rng):
    """16 rows x 256 values exercising each quantizer's edge cases (blocks of 32 inside the rows)."""
    x = np.zeros((ROWS, COLS), dtype=np.float32)
    x[0] = rng.standard_normal(COLS)
    x[1] = rng.standard_normal(COLS)
    x[1, rng.choice(COLS, 12, replace=False)] *= 100                      # outliers
    # x[2]: all zero
    for seg, scale in enumerate([1e-30, 1e-7, 1e-5, 1e-3]):                 # tiny: scales underflow f16 / subnormal
        x[3, 64 * seg:64 * (seg + 1)] = rng.standard_normal(64) * scale
    x[4] = rng.standard_normal(COLS) * 1e4                                  # huge (still finite in f16 scales)
    for b in range(8):                                                      # Q8_0 ties: d = s exactly, x*id = k + 0.5
        s = np.float32(2.0 ** rng.integers(-6, 6))
        blk = (rng.integers(-127, 127, 32) + 0.5) * s
        blk[rng.integers(32)] = 127 * s * (1 if rng.integers(2) else -1)
        x[5, 32 * b:32 * (b + 1)] = blk
    for b in range(8):                                                      # Q4_0 / Q5_0 ties: max = -8s / -16s
        s = np.float32(2.0 ** rng.integers(-6, 6))
        m = 8 if b < 4 else 16
        blk = (rng.integers(-m, m, 32) + 0.5) * s
        blk = np.clip(blk, -(m - 0.5) * s, (m - 0.5) * s)
        blk[rng.integers(32)] = -m * s
        x[6, 32 * b:32 * (b + 1)] = blk
    for b in range(8):                                                      # Q4_1 / Q5_1 ties: min 0, max 15s / 31s
        s = np.float32(2.0 ** rng.integers(-6, 6))
        m = 15 if b < 4 else 31
        blk = (rng.integers(0, m, 32) + 0.5) * s
        i, j = rng.choice(32, 2, replace=False)
        blk[i], blk[j] = 0, m * s
        x[7, 32 * b:32 * (b + 1)] = blk
    mids = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0], dtype=np.float32)
    for b in range(8):                                                      # MXFP4 ties: amax = 6*2^p, midpoints of E2M1
        p = np.float32(2.0 ** rng.integers(-8, 8))
        blk = rng.choice(mids, 32) * p * rng.choice([-1, 1], 32)
        blk[rng.integers(32)] = 6 * p
        x[8, 32 * b:32 * (b + 1)] = blk
    for b in range(8):                                                      # amax at / just below powers of two
        k = int(rng.integers(-20, 20))
        top = np.float32(2.0 ** k)
        blk = rng.uniform(-0.9, 0.9, 32).astype(np.float32) * top
        blk[rng.integers(32)] = np.nextafter(top, np.float32(0)) if b % 2 == 0 else top
        blk[rng.integers(32)] *= -1
        x[9, 32 * b:32 * (b + 1)] = blk
    for b in range(8):                                                      # signed max ties: +A and -A in one block
        a = np.float32(rng.uniform(0.5, 3))
        blk = rng.uniform(-0.99, 0.99, 32).astype(np.float32) * a
        i, j = sorted(rng.choice(32, 2, replace=False))
        blk[i], blk[j] = (a, -a) if b % 2 == 0 else (-a, a)
        x[10, 32 * b:32 * (b + 1)] = blk
    x[11] = rng.uniform(-1, 1, COLS)
    x[12] = rng.standard_normal(COLS) + 5                                   # all positive
    x[13] = rng.standard_normal(COLS) - 5                                   # all negative
    x[14] = rng.laplace(0, 1, COLS)                                         # heavy tails
    x[15] = rng.standard_normal(COLS) * np.repeat(10.0 ** rng.uniform(-3, 3, COLS // 32), 32)
    return x.astype(np.float32)


def activation_rows(rng):
    a = np.zeros((ACT_ROWS, COLS), dtype=np.float32)
    a[0] = rng.standard_normal(COLS)
    a[1] = rng.standard_normal(COLS)
    a[1, rng.choice(COLS, 6, replace=False)] *= 50
    a[2] = np.maximum(rng.standard_normal(COLS), 0)                         # post-ReLU
    a[3] = rng.uniform(-1, 1, COLS) * np.repeat(10.0 ** rng.uniform(-2, 2, COLS // 32), 32)
    return a.astype(np.float32)


BULK_SEED = 0x51A7_F1C5
BULK_ROWS = 1024          # the k-quants and Q8_K hash all 1024 rows (1024 blocks)
BULK_ROWS_SMALL_BLOCKS = 256  # the 32-value types hash the first 256 rows (2048 blocks)


def splitmix_uniforms(seed, n):
    """n floats in [0, 1): the top 24 bits of SplitMix64 outputs 1..n (exact in float32), as the Swift tests draw them."""
    idx = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + idx * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


def bulk_rows():
    """BULK_ROWS x COLS values built only from exact float32 operations, so Swift reproduces them bit for bit:
    value i of the flat array = (((u[4i] + u[4i+1]) + u[4i+2]) + u[4i+3] - 2) * 2^(row % 16 - 8), with u from
    splitmix_uniforms(BULK_SEED, 4n); in rows with row % 4 == 3 every 37th value is then multiplied by 64."""
    n = BULK_ROWS * COLS
    u = splitmix_uniforms(BULK_SEED, 4 * n).reshape(n, 4)
    x = (((u[:, 0] + u[:, 1]) + u[:, 2]) + u[:, 3] - np.float32(2)).reshape(BULK_ROWS, COLS)
    x = x * (np.float32(2.0) ** (np.arange(BULK_ROWS) % 16 - 8).astype(np.float32)).reshape(-1, 1)
    x[3::4, ::37] *= np.float32(64)
    return x.astype(np.float32)


def fnv1a32(blocks):
    """FNV-1a (32-bit) of each row of a (n_blocks, bytes) uint8 array."""
    h = np.full(blocks.shape[0], 0x811C9DC5, dtype=np.uint64)
    for col in range(blocks.shape[1]):
        h = ((h ^ blocks[:, col].astype(np.uint64)) * np.uint64(0x01000193)) & np.uint64(0xFFFFFFFF)
    return h.astype(np.uint32)


def random_blocks(rng, name, rows):
    block, size = SIZES[name]
    q = rng.integers(0, 256, (rows, COLS // block * size), dtype=np.uint8)
    blocks = q.reshape(-1, size)
    n = blocks.shape[0]
    for off in F16_SCALES.get(name, []):
        # finite f16 scales of either sign, magnitudes 1e-6 .. 1e2 (subnormal halves included)
        mags = (10.0 ** rng.uniform(-6, 2, n)) * rng.choice([-1, 1], n)
        blocks[:, off:off + 2] = mags.astype(np.float16).view(np.uint8).reshape(n, 2)
    if name == "q8_K":
        mags = (10.0 ** rng.uniform(-6, 2, n)) * rng.choice([-1, 1], n)
        blocks[:, 0:4] = mags.astype(np.float32).view(np.uint8).reshape(n, 4)
    return q


def dequantize(name, q, count, ref):
    """The oracle dequantization: gguf-py where it can, else ggml's C (q8_K), else numpy d*q (q8_1)."""
    if name == "q8_K":
        return ref.dequantize("q8_K", q, count).reshape(q.shape[0], -1), "ggml dequantize_row_q8_K"
    if name == "q8_1":
        blocks = q.reshape(-1, 36)
        d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
        qs = blocks[:, 4:].copy().view(np.int8).astype(np.float32)
        return (qs * d).reshape(q.shape[0], -1), "numpy qs*d in float32 (neither ggml nor gguf-py has a Q8_1 dequantizer)"
    return gguf.quants.dequantize(q, qtype(name)).reshape(q.shape[0], -1), f"gguf-py {gguf_version()} dequantize"


def gguf_version():
    from importlib.metadata import version
    return version("gguf")


def write(path, array):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(array).tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ggml-src", default=os.environ.get("PARITY_GGML_SRC"),
                        help="a ggml source tree (with src/ggml-quants.c) instead of the pinned ggml-py sdist")
    args = parser.parse_args()

    ggml = args.ggml_src or fetch_ggml_sources()
    lib, build_cmd = build_libggml(ggml)
    ref = Ref(lib)

    rng = np.random.default_rng(SEED)
    src = source_rows(rng)
    act = activation_rows(rng)

    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    write(os.path.join(OUT, "src.f32"), src)
    write(os.path.join(OUT, "act.src.f32"), act)

    writer = gguf.GGUFWriter(os.path.join(OUT, "quants.gguf"), "parity-quant-fixtures")
    writer.add_string("parity.fixtures.generator", "tools/make_quant_fixtures.py")
    writer.add_string("parity.fixtures.gguf_py", gguf_version())
    writer.add_uint32("parity.fixtures.seed", SEED)

    manifest = {
        "generator": "tools/make_quant_fixtures.py",
        "gguf_version": gguf_version(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seed": SEED,
        "ggml": dict(ggml_provenance(ggml), build=" ".join(os.path.basename(c) if os.path.isabs(c) else c for c in build_cmd)),
        "layout": "little-endian; a row is ne[0] values; *.f32 rows x cols floats; *.q.bin rows x (cols/block*bytes)",
        "src": {"file": "src.f32", "rows": ROWS, "cols": COLS},
        "act": {"file": "act.src.f32", "rows": ACT_ROWS, "cols": COLS},
        "c_block_table": ref.block_table(),
        "types": {},
        "cross_checks": {},
        "not_in_gguf": {"q8_1": "gguf-py's GGML_QUANT_SIZES gives Q8_1 40 bytes per block (the C struct is 36), so GGUFWriter cannot store it"},
    }

    for name in GGUFPY_QUANTIZED + C_QUANTIZED:
        block, size = SIZES[name]
        entry = {"rows": ROWS, "cols": COLS, "has_src": True, "block": block, "bytes": size}
        if name in GGUFPY_QUANTIZED:
            q = gguf.quants.quantize(src, qtype(name))
            q = q.view(np.uint8).reshape(ROWS, -1)
            entry["quantizer"] = f"gguf-py {gguf_version()} quantize"
            if name not in ("f16", "bf16"):
                c = ref.quantize(name, src)
                bad = int((c.reshape(-1, size) != q.reshape(-1, size)).any(axis=1).sum())
                manifest["cross_checks"][f"quantize {name}: gguf-py vs ggml quantize_row_{name}_ref"] = \
                    {"blocks": int(src.size // block), "bad_blocks": bad}
                if bad:
                    sys.exit(f"gguf-py and ggml's C disagree on {bad} {name} blocks")
        else:
            q = ref.quantize(name, src)
            entry["quantizer"] = f"ggml quantize_row_{name}_ref (C)"
        deq, how = dequantize(name, q, src.size, ref)
        entry["dequantizer"] = how
        if name in ("q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "mxfp4"):
            c = ref.dequantize(name, q, src.size).reshape(ROWS, -1)
            bad = int((c.view(np.uint32) != deq.view(np.uint32)).sum())
            manifest["cross_checks"][f"dequantize {name}: gguf-py vs ggml dequantize_row_{name}"] = \
                {"values": int(src.size), "bad_values": bad}
            if bad:
                sys.exit(f"gguf-py and ggml's C dequantizers disagree on {bad} {name} values")
        write(os.path.join(OUT, f"{name}.q.bin"), q)
        write(os.path.join(OUT, f"{name}.deq.f32"), deq.astype(np.float32))
        if name != "q8_1":
            writer.add_tensor(f"src.{name}", src)
            writer.add_tensor(f"q.{name}", q, raw_dtype=qtype(name))
            writer.add_tensor(f"deq.{name}", deq.astype(np.float32))

        # Random block bytes.
        rq = random_blocks(rng, name, RAND_ROWS)
        rdeq, _ = dequantize(name, rq, RAND_ROWS * COLS, ref)
        write(os.path.join(OUT, f"{name}.rand.q.bin"), rq)
        write(os.path.join(OUT, f"{name}.rand.deq.f32"), rdeq.astype(np.float32))
        entry["random_rows"] = RAND_ROWS
        if name != "q8_1":
            writer.add_tensor(f"qrand.{name}", rq, raw_dtype=qtype(name))
            writer.add_tensor(f"deqrand.{name}", rdeq.astype(np.float32))
        manifest["types"][name] = entry

    # Bulk: many more blocks, stored as per-block hashes of the oracle's bytes.
    bulk = bulk_rows()
    manifest["bulk"] = {"seed": BULK_SEED, "rows": BULK_ROWS, "cols": COLS, "recipe": bulk_rows.__doc__.strip(), "types": {}}
    for name in GGUFPY_QUANTIZED + C_QUANTIZED:
        if name in ("f16", "bf16"):
            continue
        block, size = SIZES[name]
        rows = bulk if block == 256 else bulk[:BULK_ROWS_SMALL_BLOCKS]
        if name in GGUFPY_QUANTIZED:
            q = gguf.quants.quantize(rows, qtype(name)).view(np.uint8).reshape(-1, size)
            c = ref.quantize(name, rows).reshape(-1, size)
            bad = int((c != q).any(axis=1).sum())
            manifest["cross_checks"][f"quantize {name} (bulk): gguf-py vs ggml quantize_row_{name}_ref"] = {"blocks": int(q.shape[0]), "bad_blocks": bad}
            if bad:
                sys.exit(f"gguf-py and ggml's C disagree on {bad} bulk {name} blocks")
            oracle = f"gguf-py {gguf_version()} quantize (= ggml quantize_row_{name}_ref)"
        else:
            q = ref.quantize(name, rows).reshape(-1, size)
            oracle = f"ggml quantize_row_{name}_ref (C)"
        write(os.path.join(OUT, f"{name}.bulk.fnv32"), fnv1a32(q).astype("<u4"))
        manifest["bulk"]["types"][name] = {"rows": int(rows.shape[0]), "blocks": int(q.shape[0]), "quantizer": oracle}

    # Activations quantized by ggml's C, and the CPU backend's generic dot products.
    for name in ["q8_0", "q8_1", "q8_K"]:
        write(os.path.join(OUT, f"act.{name}.q.bin"), ref.quantize(name, act))
    manifest["vecdot"] = {}
    for name, dot_type in VEC_DOT.items():
        w = np.fromfile(os.path.join(OUT, f"{name}.q.bin"), dtype=np.uint8).reshape(ROWS, -1)
        a = ref.quantize(dot_type, act)
        dots = np.array([[ref.vec_dot(name, w[r], a[k], COLS) for k in range(ACT_ROWS)] for r in range(ROWS)], dtype=np.float32)
        write(os.path.join(OUT, f"{name}.vecdot.f32"), dots)
        manifest["vecdot"][name] = {"activation": dot_type, "shape": [ROWS, ACT_ROWS],
                                    "function": f"ggml_vec_dot_{name}_{dot_type}_generic"}

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT}: {len(os.listdir(OUT))} files, {total} bytes (quants.gguf {os.path.getsize(os.path.join(OUT, 'quants.gguf'))})")


if __name__ == "__main__":
    main()
