#!/usr/bin/env python3
"""Writes the MLX quantization fixtures that Tests/ParityTests/MLXQuantizationTests.swift checks Parity against.

Real MLX (the Linux CPU build) is the oracle: every array here comes out of `mx.quantize`, `mx.dequantize` and
`mx.quantized_matmul` on the CPU stream, and is written with `mx.save_safetensors`, so the files are MLX's own.

    "$(tools/mlx/setup-venv.sh | tail -1)" tools/mlx/make_quant_fixtures.py [OUT_DIR] [--extra-rows N] [--seed S]

OUT_DIR defaults to Tests/ParityTests/Fixtures/mlx-quant (the checked-in set: 16 rows, the default seed).
`--extra-rows N` appends N random rows of assorted distributions and magnitudes (a fuzzing set, not for
checking in); point the Swift tests at it with PARITY_MLX_QUANT_FIXTURES=OUT_DIR. One file per input dtype:

    mlx-quant-<f32|f16|bf16>.safetensors
      w                              the weight [16, 256] in that dtype (rows described in manifest.json)
      x                              float32 activations [3, 256]
      xh                             x cast to the weight dtype (f16 / bf16 files only)
      q.<case>.weight                uint32 [16, 256*bits/32]
      q.<case>.scales                affine: weight dtype; mxfp4 / mxfp8 / nvfp4: uint8 (E8M0 / E8M0 / E4M3)
      q.<case>.biases                affine only, weight dtype
      deq.<case>                     mx.dequantize(...) with the default dtype (affine: scales dtype; fp: bfloat16)
      deqf32.<case>                  fp modes, f32 file only: mx.dequantize(..., dtype=mx.float32)
      mm.<case>                      mx.quantized_matmul(x, ..., transpose=True) -> [3, 16], float32
      mmh.<case>                     the same with xh (half-precision accumulation), f16 / bf16 files only

    <case> = <mode>.b<bits>.g<group>, e.g. affine.b4.g64, mxfp4.b4.g32, nvfp4.b4.g16

manifest.json records the MLX and numpy versions, the seed, the cases and each file's SHA-256.
"""
import hashlib
import json
import os
import platform
import sys

import mlx.core as mx
import numpy as np

SEED = 20240611
ROWS, COLS, XROWS = 16, 256, 3
AFFINE_BITS = [1, 2, 3, 4, 5, 6, 8]  # MLX >= 0.29-ish also accepts 1 bit; older releases reject it
AFFINE_GROUPS = [32, 64, 128]
FP_MODES = [("mxfp4", 4, 32), ("mxfp8", 8, 32), ("nvfp4", 4, 16)]
DTYPES = [("f32", mx.float32), ("f16", mx.float16), ("bf16", mx.bfloat16)]

ROW_DESCRIPTIONS = [
    "normal N(0,1)",
    "normal with outliers (x25 at 6 positions)",
    "first 128 zeros (all-zero groups for every group size), then 0.1*N(0,1)",
    "constant groups: 0.5 for columns 0-127, -1.25 for 128-255",
    "tiny values 1e-6*N(0,1) (f16 subnormals; nvfp4 scales round to zero)",
    "multiples of 1/16 in [-2, 2] (exact rounding ties in affine)",
    "negative-dominant: -|N| - 0.5 (|min| > |max|, positive scale)",
    "positive-dominant: |N| + 0.5 (negative scale)",
    "E2M1 midpoints +-{0.25,0.75,1.25,1.75,2.5,3.5,5} with a 6.0 per 16 (ties in the fp4 LUT search)",
    "large magnitude 1000*N(0,1) with 3000 per 16 (nvfp4 E4M3 scale saturates)",
    "mixed magnitudes N(0,1)*10^U(-3,1)",
    "symmetric groups: max == -min",
    "one non-zero value per 16",
    "typical weight scale 0.02*N(0,1)",
    "uniform [-1, 1]",
    "near-zero range below eps: [0, 4e-8] then [-4e-8, 4e-8] (q0 == 0 path)",
]


def extra_row(rng):
    """A random row for fuzzing: a random distribution, magnitude and grid."""
    kind = rng.integers(0, 6)
    scale = 10.0 ** rng.uniform(-9, 4.5)
    if kind == 0:
        r = rng.standard_normal(COLS)
    elif kind == 1:
        r = rng.uniform(-1, 1, COLS)
    elif kind == 2:  # a coarse grid: ties everywhere
        r = rng.integers(-64, 65, COLS) / rng.choice([4, 8, 16, 32])
    elif kind == 3:  # one-sided
        r = np.abs(rng.standard_normal(COLS)) * rng.choice([-1, 1]) + rng.uniform(-0.5, 0.5)
    elif kind == 4:  # heavy tails
        r = rng.standard_cauchy(COLS)
    else:  # sparse
        r = rng.standard_normal(COLS) * (rng.uniform(0, 1, COLS) < 0.1)
    return r * scale


def make_weight(rng, extra_rows=0):
    w = np.zeros((ROWS + extra_rows, COLS), np.float64)
    for i in range(extra_rows):
        w[ROWS + i] = extra_row(rng)
    w[0] = rng.standard_normal(COLS)
    w[1] = rng.standard_normal(COLS)
    w[1, rng.choice(COLS, 6, replace=False)] *= 25
    w[2, 128:] = 0.1 * rng.standard_normal(128)
    w[3, :128] = 0.5
    w[3, 128:] = -1.25
    w[4] = 1e-6 * rng.standard_normal(COLS)
    w[5] = rng.integers(-32, 33, COLS) / 16
    w[6] = -np.abs(rng.standard_normal(COLS)) - 0.5
    w[7] = np.abs(rng.standard_normal(COLS)) + 0.5
    mids = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    w[8] = rng.choice(mids, COLS) * rng.choice([-1.0, 1.0], COLS)
    w[8, ::16] = 6.0
    w[9] = 1000 * rng.standard_normal(COLS)
    w[9, 3::16] = 3000.0
    w[10] = rng.standard_normal(COLS) * 10.0 ** rng.uniform(-3, 1, COLS)
    sym = rng.standard_normal(COLS) * 0.8
    for g in range(0, COLS, 32):
        sym[g] = 1.5
        sym[g + 1] = -1.5
    w[11] = np.clip(sym, -1.5, 1.5)
    w[12, rng.integers(0, 16) :: 16] = rng.standard_normal(COLS // 16)
    w[13] = 0.02 * rng.standard_normal(COLS)
    w[14] = rng.uniform(-1, 1, COLS)
    w[15, :128] = rng.uniform(0, 4e-8, 128)
    w[15, 128:] = rng.uniform(-4e-8, 4e-8, 128)
    with np.errstate(over="ignore"):
        return np.clip(w, -6e4, 6e4).astype(np.float32)


def cases():
    for bits in AFFINE_BITS:
        for group in AFFINE_GROUPS:
            yield ("affine", bits, group)
    yield from FP_MODES


def main():
    args = sys.argv[1:]
    extra_rows, seed, out_dir = 0, SEED, None
    while args:
        a = args.pop(0)
        if a == "--extra-rows":
            extra_rows = int(args.pop(0))
        elif a == "--seed":
            seed = int(args.pop(0))
        else:
            out_dir = a
    if out_dir is None:
        out_dir = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "ParityTests", "Fixtures", "mlx-quant")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    mx.set_default_device(mx.cpu)
    rng = np.random.default_rng(seed)
    w32 = make_weight(rng, extra_rows)
    x = mx.array(rng.standard_normal((XROWS, COLS)).astype(np.float32))

    files = {}
    for dname, dtype in DTYPES:
        w = mx.array(w32).astype(dtype)
        arrays = {"w": w, "x": x}
        xh = x.astype(dtype)
        if dtype != mx.float32:
            arrays["xh"] = xh
        for mode, bits, group in cases():
            key = f"{mode}.b{bits}.g{group}"
            if mode == "affine":
                wq, scales, biases = mx.quantize(w, group_size=group, bits=bits, mode=mode)
                arrays[f"q.{key}.biases"] = biases
            else:
                wq, scales = mx.quantize(w, group_size=group, bits=bits, mode=mode)
                biases = None
            arrays[f"q.{key}.weight"] = wq
            arrays[f"q.{key}.scales"] = scales
            arrays[f"deq.{key}"] = mx.dequantize(wq, scales, biases, group_size=group, bits=bits, mode=mode)
            if mode != "affine" and dtype == mx.float32:
                arrays[f"deqf32.{key}"] = mx.dequantize(wq, scales, biases, group_size=group, bits=bits, mode=mode,
                                                        dtype=mx.float32)
            arrays[f"mm.{key}"] = mx.quantized_matmul(x, wq, scales, biases, transpose=True, group_size=group,
                                                      bits=bits, mode=mode)
            if dtype != mx.float32:
                arrays[f"mmh.{key}"] = mx.quantized_matmul(xh, wq, scales, biases, transpose=True,
                                                           group_size=group, bits=bits, mode=mode)
        mx.eval(arrays)
        name = f"mlx-quant-{dname}.safetensors"
        path = os.path.join(out_dir, name)
        mx.save_safetensors(path, arrays, metadata={"generator": "tools/mlx/make_quant_fixtures.py",
                                                    "mlx_version": mx.__version__})
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        files[dname] = {"file": name, "sha256": digest, "bytes": os.path.getsize(path)}

    manifest = {
        "generator": "tools/mlx/make_quant_fixtures.py",
        "mlx_version": mx.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()} (MLX CPU stream)",
        "seed": seed,
        "weight_shape": list(w32.shape),
        "x_shape": [XROWS, COLS],
        "rows": ROW_DESCRIPTIONS + (["random (--extra-rows)"] * extra_rows),
        "cases": [{"mode": m, "bits": b, "group_size": g, "key": f"{m}.b{b}.g{g}"} for m, b, g in cases()],
        "files": files,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    total = sum(v["bytes"] for v in files.values())
    print(f"wrote {len(files)} files, {total} bytes, to {out_dir} with mlx {mx.__version__}")


if __name__ == "__main__":
    main()
