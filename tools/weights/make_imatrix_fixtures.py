#!/usr/bin/env python3
"""Importance-matrix quantizations made by ggml itself, as llama-quantize --imatrix makes them, for the weight bounds.

    python3 tools/weights/make_imatrix_fixtures.py [OUT_DIR]      (numpy; default Tests/ParityTests/Fixtures/weights)

Builds tools/weights/ggml_quantize_imatrix.c against the libggml-base.a of llama.cpp's own build
(tools/llama/build-llama.sh: .build-llama/build-native, or $PARITY_LLAMA_BUILD) and quantizes 64 rows of 256 values
(the 16 adversarial rows of Fixtures/ggml-quants/src.f32 + 48 seeded normal/Laplace/outlier rows) to every block type
with one importance weight per column (seeded log-normal: some columns 20x more important than others), through
ggml_quantize_chunk(..., imatrix) -- the call llama-quantize makes. Writes OUT_DIR/imatrix-src.f32, imatrix.f32,
imatrix-<type>.bin and imatrix-manifest.json.

A second set, "zeros" (imatrix-zeros-*), is what llama-imatrix gives a layer after a ReLU: 30 % of the columns have
importance 0 (dead units) and 20 % are 10x below the rest; its rows are the same 64 rounded to f16 (a model converted
to an f16 GGUF before llama-quantize) plus 8 narrow rows far from zero (e.g. 0.5 +- 0.001), where a least-squares
quantizer may put a whole group on one code with a coarse scale. Such quantizers clip zero-importance values without
limit: the weight check must pass these files (and name the clipping as a finding).
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "mxfp4"]


def main(out):
    build = os.environ.get("PARITY_LLAMA_BUILD", os.path.join(ROOT, ".build-llama"))
    lib = os.path.join(build, "build-native/ggml/src/libggml-base.a")
    headers = glob.glob(os.path.join(build, "src/*/vendor/llama.cpp/ggml/include"))
    if not os.path.exists(lib) or not headers:
        sys.exit("needs llama.cpp's build (tools/llama/build-llama.sh): %s and ggml/include" % lib)
    with open(os.path.join(headers[0], "..", "CMakeLists.txt")) as f:
        cmake = f.read()
    version = ".".join(cmake.split("set(GGML_VERSION_%s " % k)[1].split(")")[0] for k in ("MAJOR", "MINOR", "PATCH"))
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261129)
    src = np.fromfile(os.path.join(ROOT, "Tests/ParityTests/Fixtures/ggml-quants/src.f32"), dtype="<f4").reshape(16, 256)
    extra = np.concatenate([
        rng.normal(0, 0.02, (16, 256)),
        rng.laplace(0, 0.02, (16, 256)),
        rng.normal(0, 0.02, (16, 256)) * np.where(rng.random((16, 256)) < 0.01, 30, 1),
    ]).astype(np.float32)
    rows = np.concatenate([src, extra]).astype("<f4")
    imatrix = np.exp(rng.normal(0, 1, 256)).astype("<f4")
    rows.tofile(os.path.join(out, "imatrix-src.f32"))
    imatrix.tofile(os.path.join(out, "imatrix.f32"))
    manifest = {"generator": "tools/weights/make_imatrix_fixtures.py", "ggml": version, "library": "libggml-base.a of tools/llama/build-llama.sh (%s)" % os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(headers[0])))),
                "call": "ggml_quantize_chunk(type, src, dst, 0, 64, 256, imatrix)", "rows": 64, "cols": 256,
                "src": "imatrix-src.f32", "imatrix": "imatrix.f32", "types": {}}
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "ggml-quantize-imatrix")
        subprocess.check_call(["gcc", "-O2", "-I" + headers[0], os.path.join(ROOT, "tools/weights/ggml_quantize_imatrix.c"), lib,
                               "-lstdc++", "-lm", "-lpthread", "-fopenmp", "-o", exe])
        for t in TYPES:
            path = os.path.join(out, "imatrix-%s.bin" % t)
            subprocess.check_call([exe, t, "256", os.path.join(out, "imatrix-src.f32"), os.path.join(out, "imatrix.f32"), path])
            manifest["types"][t] = {"file": os.path.basename(path), "bytes": os.path.getsize(path)}
        # The "zeros" set (see the docstring); drawn after the first set so that one is unchanged.
        zrng = np.random.default_rng(20261130)
        narrow = np.stack([c + w * zrng.uniform(-1, 1, 256) for c, w in
                           [(0.5, 0.001), (-0.5, 0.001), (0.3, 0.0005), (1.0, 0.004), (-2.0, 0.01), (0.05, 0.0001), (0.5, 0.02), (-0.1, 0.0002)]])
        zsrc = np.concatenate([rows.astype(np.float16).astype(np.float32), narrow.astype(np.float16).astype(np.float32)]).astype("<f4")
        zim = imatrix.copy()
        columns = zrng.permutation(256)
        zim[columns[:77]] = 0
        zim[columns[77:128]] *= 0.1
        zsrc.tofile(os.path.join(out, "imatrix-zeros-src.f32"))
        zim.astype("<f4").tofile(os.path.join(out, "imatrix-zeros.f32"))
        manifest["zeros"] = {"src": "imatrix-zeros-src.f32", "imatrix": "imatrix-zeros.f32", "rows": int(zsrc.shape[0]),
                             "call": "ggml_quantize_chunk(type, src, dst, 0, %d, 256, imatrix)" % zsrc.shape[0],
                             "note": "rows: the 64 above rounded to f16, then 8 narrow rows far from zero (f16); importance: 77 columns 0, 51 x0.1",
                             "types": {}}
        for t in TYPES:
            path = os.path.join(out, "imatrix-zeros-%s.bin" % t)
            subprocess.check_call([exe, t, "256", os.path.join(out, "imatrix-zeros-src.f32"), os.path.join(out, "imatrix-zeros.f32"), path])
            manifest["zeros"]["types"][t] = {"file": os.path.basename(path), "bytes": os.path.getsize(path)}
    with open(os.path.join(out, "imatrix-manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests/ParityTests/Fixtures/weights"))
