#!/usr/bin/env python3
"""Records real MLX's per-layer outputs on MLX weights written by Parity, as fixtures for the Swift MLX engine.

    "$(tools/mlx/setup-venv.sh | tail -1)" tools/mlx/record_runtime_fixtures.py [OUT_DIR] [--parity BIN] [--all-layers]

OUT_DIR defaults to Tests/ParityTests/Fixtures/mlx-runtime. BIN defaults to .build-mlxcheck/release/parity, else
.build/release/parity. Needs h5py in the venv (`pip install h5py`).

For each (model, variant) in fmnist-cnn/f32, fmnist-cnn/nvfp4, fmnist-mlp/f32, fmnist-mlp/nvfp4:

  1. `parity convert MODEL --to mlx --dtype f32 [--mode nvfp4] -o DIR` (config.json + model.safetensors);
  2. real MLX loads DIR as mlx-lm does (mx.load, nn.quantize per config.json with mlx-lm's class_predicate,
     model.load_weights(strict=True); tools/mlx/models.py) and runs golden/MODEL/golden.h5 /inputs/images[0:16]
     (NCHW -> NHWC, float32, one batch of 16) through the mlx.nn port, sub-module by sub-module;
  3. writes OUT_DIR/MODEL-VARIANT.safetensors (mx.save_safetensors) with one float32 tensor `out.<layer>` per
     layer, IN THE REFERENCE LAYOUT of golden.h5 (NCHW for 4-D, NC for 2-D; the CNN's flatten in (c, h, w)
     order), i.e. directly comparable with /activations/<layer>[0:16];
  4. copies DIR to OUT_DIR/MODEL-VARIANT/ for fmnist-cnn-f32, fmnist-cnn-nvfp4 and fmnist-mlp-nvfp4 (not
     fmnist-mlp-f32: 1.6 MB; `parity convert fmnist-mlp --to mlx --dtype f32 -o DIR` recreates it, and
     manifest.json records its SHA-256 so a test can check that the bytes are the same).

Size: the CNN's conv1/relu1 outputs are 400 KB each for 16 images. In fmnist-cnn-nvfp4.safetensors only the
layers from the first quantized module on are stored (`out.dense`): every earlier layer runs the same float32
weights as fmnist-cnn-f32 and is checked here to be bit-identical to that file's tensor; manifest.json lists,
per file, the layers stored and the layers omitted with the file that holds them. `--all-layers` stores every
layer in every file instead.

manifest.json: MLX / numpy / Python versions, the parity git commit (and whether the tree was dirty), every
command line, the inputs (path, slice, SHA-256 of the float32 bytes), per file its layers, shapes and SHA-256,
per directory the SHA-256 of each file, and MLX's own per-layer max abs / rel L2 against the golden.
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import h5py
import mlx.core as mx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_OUT = os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "mlx-runtime")
N_IMAGES = 16
PARITY_SOURCES = [
    "Sources/ParityModels/MLXConverter.swift",
    "Sources/ParityFormats/MLXFiles.swift",
    "Sources/ParityFormats/MLXQuantization.swift",
    "Sources/ParityFormats/MLXQuantization+Kernels.swift",
    "Sources/ParityFormats/Safetensors.swift",
    "Sources/ParityFormats/NPZ.swift",
    "Sources/ParityCore/DType.swift",
]
CASES = [  # (model, variant, convert args, keep the weights directory)
    ("fmnist-cnn", "f32", ["--dtype", "f32"], True),
    ("fmnist-cnn", "nvfp4", ["--dtype", "f32", "--mode", "nvfp4"], True),
    ("fmnist-mlp", "f32", ["--dtype", "f32"], False),
    ("fmnist-mlp", "nvfp4", ["--dtype", "f32", "--mode", "nvfp4"], True),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_parity(explicit):
    for candidate in [explicit, os.path.join(ROOT, ".build-mlxcheck/release/parity"), os.path.join(ROOT, ".build/release/parity")]:
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    sys.exit("record_runtime_fixtures.py: no parity binary; build it with "
             "`swift build -c release --scratch-path .build-mlxcheck --product parity` or pass --parity BIN")


def git(*args):
    return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=DEFAULT_OUT)
    ap.add_argument("--parity")
    ap.add_argument("--all-layers", action="store_true", help="store every layer in every file (no de-duplication)")
    args = ap.parse_args()
    parity = find_parity(args.parity)
    mx.set_default_device(mx.cpu)
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)

    manifest = {
        "what": "real MLX per-layer outputs on MLX weights written by `parity convert --to mlx`, for the Swift MLX engine",
        "generator": "tools/mlx/record_runtime_fixtures.py" + (" --all-layers" if args.all_layers else ""),
        "mlx_version": mx.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": str(mx.default_device()),
        "parity_commit": git("rev-parse", "HEAD"),
        "parity_tree_dirty": bool(git("status", "--porcelain", "--", "Sources", "Package.swift")),
        "parity_binary": os.path.relpath(parity, ROOT),
        # The commit alone does not pin the converter while the tree is dirty: hash the sources that write MLX files.
        "parity_sources_sha256": {rel: sha256(os.path.join(ROOT, rel)) for rel in PARITY_SOURCES if os.path.exists(os.path.join(ROOT, rel))},
        "layout": "out.<layer>: float32, the reference layout of golden.h5 (NCHW for 4-D outputs, NC for 2-D; the CNN's "
                  "flatten in PyTorch's (c, h, w) order), comparable with golden.h5 /activations/<layer>[0:16]",
        "how_mlx_ran": "mx.load(model.safetensors) + config.json; nn.quantize with mlx-lm's class_predicate (per-module "
                       "override, else '<module>.scales' in weights) using config.json's quantization; "
                       "model.load_weights(list(weights.items()), strict=True); float32 NHWC input, one batch of "
                       f"{N_IMAGES}; the mlx.nn port in tools/mlx/models.py called sub-module by sub-module on the CPU stream",
        "files": {},
        "directories": {},
    }
    tmp = tempfile.mkdtemp(prefix="parity-mlxfix-")
    stored = {}  # (model, variant) -> {layer: numpy array} (all layers, for the de-duplication check)
    try:
        for model_name, variant, extra, keep_dir in CASES:
            gdir = os.path.join(ROOT, "golden", model_name)
            with open(os.path.join(gdir, "config.json")) as f:
                ref_config = json.load(f)
            with h5py.File(os.path.join(gdir, "golden.h5"), "r") as f:
                images = np.asarray(f["inputs/images"][:N_IMAGES], dtype=np.float32)
                golden = {k: f["activations"][k][:N_IMAGES] for k in f["activations"]}
                weights_sha = f.attrs["weights_sha256"]
                weights_sha = weights_sha.decode() if isinstance(weights_sha, bytes) else str(weights_sha)

            name = f"{model_name}-{variant}"
            conv_dir = os.path.join(tmp, name)
            cmd = ["convert", model_name, "--to", "mlx"] + extra + ["-o", conv_dir]
            p = subprocess.run([parity] + cmd, cwd=ROOT, capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit(f"parity {' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")

            model, config, info = models.load_mlx(conv_dir, strict=True)
            x = mx.array(models.nchw_to_nhwc(images))
            outs = models.run_layers(model, x)
            ref_outs = {layer: models.to_reference_layout(layer, y, model).astype(np.float32) for layer, y in outs}
            stored[(model_name, variant)] = ref_outs

            # Which layers go into the file: all of them, or (de-duplicated) those from the first quantized module
            # on, provided every earlier one is bit-identical to the f32 file's.
            keep_layers = list(model.layer_names)
            omitted = {}
            if not args.all_layers and variant != "f32" and info["quantized_modules"]:
                first_q = min(model.layer_names.index(m) for m in info["quantized_modules"])
                base = stored.get((model_name, "f32"))
                candidates = model.layer_names[:first_q]
                if base is not None and all(np.array_equal(base[l], ref_outs[l]) for l in candidates):
                    # Keep the small ones anyway (< 64 KB): only the big CNN maps are worth de-duplicating.
                    omitted = {l: f"{model_name}-f32.safetensors" for l in candidates if ref_outs[l].nbytes >= 64 * 1024}
                    keep_layers = [l for l in model.layer_names if l not in omitted]

            tensors = {f"out.{l}": mx.array(ref_outs[l]) for l in keep_layers}
            fixture = os.path.join(out_dir, f"{name}.safetensors")
            mx.save_safetensors(fixture, tensors, metadata={
                "format": "mlx", "model": model_name, "variant": variant, "mlx_version": mx.__version__,
                "inputs": f"golden/{model_name}/golden.h5 /inputs/images[0:{N_IMAGES}]"})

            comparison = {}
            for l in model.layer_names:
                a, b = ref_outs[l].astype(np.float64), golden[l].astype(np.float64)
                comparison[l] = {"max_abs": float(np.max(np.abs(a - b))),
                                 "rel_l2": float(np.linalg.norm(a - b) / np.linalg.norm(b))}
            last = model.layer_names[-1]
            manifest["files"][f"{name}.safetensors"] = {
                "model": model_name,
                "variant": variant,
                "weights": f"{name}/" if keep_dir else f"not stored: run `parity {' '.join(cmd[:-1])} DIR`; "
                                                        f"DIR/model.safetensors must have SHA-256 {sha256(os.path.join(conv_dir, 'model.safetensors'))}",
                "command": "parity " + " ".join(cmd[:-1] + [f"Tests/ParityTests/Fixtures/mlx-runtime/{name}" if keep_dir else "DIR"]),
                "inputs": {"file": f"golden/{model_name}/golden.h5", "dataset": "/inputs/images", "rows": [0, N_IMAGES],
                           "layout_fed_to_mlx": "NHWC float32 (transpose(0, 2, 3, 1) of the NCHW images)",
                           "sha256_float32_nchw": hashlib.sha256(images.tobytes()).hexdigest(),
                           "golden_weights_sha256": weights_sha},
                "quantized_modules": info["quantized_modules"],
                "quantization": config.get("quantization"),
                "layers_in_forward_order": list(model.layer_names),
                "tensors": {f"out.{l}": {"shape": list(ref_outs[l].shape), "dtype": "float32"} for l in keep_layers},
                "omitted_layers": {l: f"bit-identical to out.{l} in {src} (same float32 weights before the first quantized module)"
                                   for l, src in omitted.items()},
                "argmax": [int(i) for i in ref_outs[last].argmax(1)],
                "golden_argmax_agreement": int((ref_outs[last].argmax(1) == golden[last].argmax(1)).sum()),
                "mlx_vs_golden": comparison,
                "sha256": sha256(fixture),
                "bytes": os.path.getsize(fixture),
            }
            if keep_dir:
                dest = os.path.join(out_dir, name)
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(conv_dir, dest)
                manifest["directories"][f"{name}/"] = {
                    "written_by": manifest["files"][f"{name}.safetensors"]["command"],
                    "files": {fn: {"sha256": sha256(os.path.join(dest, fn)), "bytes": os.path.getsize(os.path.join(dest, fn))}
                              for fn in sorted(os.listdir(dest))},
                    "tensors": info["tensors"],
                }
            print(f"{name}.safetensors  layers {keep_layers}"
                  + (f" (omitted, identical to f32: {sorted(omitted)})" if omitted else "")
                  + f"  {os.path.getsize(fixture)} bytes" + (f"; weights dir {name}/" if keep_dir else ""))
            for l in model.layer_names:
                print(f"    {l:<8} vs golden max abs {comparison[l]['max_abs']:.3e}  rel L2 {comparison[l]['rel_l2']:.3e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, fn)) for d, _, fns in os.walk(out_dir) for fn in fns)
    print(f"wrote {out_dir} ({total} bytes)")


if __name__ == "__main__":
    main()
