#!/usr/bin/env python3
"""Cross-checks Parity's MLX converter against real MLX: every file `parity convert --to mlx` writes must load
in MLX exactly as MLX loads weights, and the natural mlx.nn port (tools/mlx/models.py) running it must
reproduce the PyTorch golden activations layer by layer within Parity's tolerances.

    "$(tools/mlx/setup-venv.sh | tail -1)" -m pip install h5py      # once
    "$(tools/mlx/setup-venv.sh | tail -1)" tools/mlx/check_parity_outputs.py [--parity BIN] [--json OUT]

BIN defaults to .build-mlxcheck/release/parity (build it with
`swift build -c release --scratch-path .build-mlxcheck --product parity`), else .build/release/parity.

For each bundled model (fmnist-cnn, fmnist-mlp) and case:

    f32    -o DIR, -o FILE.safetensors, -o FILE.npz          parity convert M --to mlx --dtype f32 -o ...
    f16    -o DIR, -o FILE.safetensors, -o FILE.npz          ... --dtype f16
    bf16   -o DIR                                            ... --dtype bf16
    nvfp4  -o DIR                                            ... --dtype f32 --mode nvfp4

Loading is what MLX / mlx-lm do: a directory -> config.json + mx.load(model*.safetensors), the model quantized
per config.json with mlx-lm's class_predicate (models.quantize_like_mlx_lm), then
model.load_weights(list(weights.items()), strict=True); a weights-only file -> mx.load(file) and
load_weights(strict=True) into the model built from the reference config.json. The 64 golden images go in
as NHWC float32; each layer's output is brought to the golden's layout (NCHW / NC, flatten in (c, h, w)).

Pass rule (Parity's, see Sources/ParityVerify/Tolerance.swift): per layer rel L2 <= limit and
max abs <= limit_abs * max|golden|; limits f32 1e-5 / 1e-5, f16 2e-3 / 4e-3, bf16 1.6e-2 / 3.2e-2, and from
the first quantized Linear on nvfp4 0.15 / 0.3 (layers before it keep the dtype's limit); plus argmax
agreement on every "decisive" image (golden top-2 margin > 2 * limit_abs * max|golden logits|).

Bit-exactness: f32 tensors equal the reference arranged with numpy, f16 / bf16 equal mx.astype of those, and
nvfp4 weight + scales equal mx.quantize(..., mode="nvfp4") (MLX's own rounding and packing).

Negative controls (must be rejected by MLX, or caught numerically); Parity's `verify --file` verdict on each is
printed next to MLX's (it should reject them all; --require-parity-agreement makes a disagreement fail the run):
    the f32 directory with the CNN's dense.weight (or the MLP's fc1.weight) transposed -> load_weights raises
    the nvfp4 directory without its "quantization" entry -> load_weights raises (dense.scales not in the model)
    the f32 directory with a per-module quantization override for that Linear but no scales -> load_weights raises
    the CNN's dense.weight with PyTorch's (c, h, w) columns (no permutation) -> loads; must FAIL numerically
Exit status: 0 all correct files load and pass, every tensor is bit-exact and every control behaves; 1 otherwise.
"""
import argparse
import json
import os
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
MODELS = ["fmnist-cnn", "fmnist-mlp"]
# variant -> (parity convert extra args, output kinds)
CASES = [
    ("f32", ["--dtype", "f32"], ["dir", "safetensors", "npz"]),
    ("f16", ["--dtype", "f16"], ["dir", "safetensors", "npz"]),
    ("bf16", ["--dtype", "bf16"], ["dir"]),
    ("nvfp4", ["--dtype", "f32", "--mode", "nvfp4"], ["dir"]),
]
# (max rel L2, max abs over the layer's max |golden|), Parity's policies.
DTYPE_TOL = {"f32": (1e-5, 1e-5), "f16": (2e-3, 4e-3), "bf16": (1.6e-2, 3.2e-2)}
QUANT_TOL = {"nvfp4": (0.15, 0.30)}


def find_parity(explicit):
    for candidate in [explicit, os.path.join(ROOT, ".build-mlxcheck/release/parity"), os.path.join(ROOT, ".build/release/parity")]:
        if candidate and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    sys.exit("check_parity_outputs.py: no parity binary; build it with "
             "`swift build -c release --scratch-path .build-mlxcheck --product parity` or pass --parity BIN")


def run_parity(parity, args):
    cmd = [parity] + args
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return cmd, p.stdout


def read_golden(model):
    d = os.path.join(ROOT, "golden", model)
    with open(os.path.join(d, "config.json")) as f:
        config = json.load(f)
    with h5py.File(os.path.join(d, "golden.h5"), "r") as f:
        images = f["inputs/images"][()]
        labels = f["labels"][()]
        acts = {name: f["activations"][name][()] for name in f["activations"]}
    return config, images, labels, acts


def tolerances(layer_names, config_layers, variant, quantized_modules):
    """Per-layer (rel L2, max abs / scale), as Parity's TolerancePolicy.lookup builds them for ("mlx", variant)."""
    dtype = variant if variant in DTYPE_TOL else "f32"
    current = DTYPE_TOL[dtype]
    ops = {l["name"]: l["op"] for l in config_layers}
    out = {}
    for name in layer_names:
        if variant in QUANT_TOL and ops[name] == "Linear":
            current = QUANT_TOL[variant]
        out[name] = current
    return out


def compare(model, mlx_outs, golden, tol, n):
    rows, ok = [], True
    for name, y in mlx_outs:
        a = models.to_reference_layout(name, y, model).astype(np.float64)
        b = golden[name][:n].astype(np.float64)
        if a.shape != b.shape:
            rows.append({"layer": name, "error": f"shape {a.shape} vs golden {b.shape}", "pass": False})
            ok = False
            continue
        d = a - b
        max_abs = float(np.max(np.abs(d)))
        scale = float(np.max(np.abs(b)))
        rel = float(np.linalg.norm(d) / np.linalg.norm(b)) if np.linalg.norm(b) > 0 else float(np.linalg.norm(d))
        lim_rel, lim_abs = tol[name]
        passed = bool(np.isfinite(a).all() and rel <= lim_rel and max_abs <= lim_abs * scale)
        ok &= passed
        rows.append({"layer": name, "shape": list(a.shape), "max_abs": max_abs, "golden_max_abs": scale, "rel_l2": rel,
                     "tol_rel_l2": lim_rel, "tol_max_abs": lim_abs * scale, "pass": passed})
    return rows, ok


def argmax_check(logits, golden_logits, labels, lim_abs):
    g = golden_logits.astype(np.float64)
    agree = logits.argmax(1) == g.argmax(1)
    top2 = np.sort(g, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    decisive = margin > 2 * lim_abs * np.max(np.abs(g))
    return {
        "agreeing": int(agree.sum()), "total": int(len(agree)),
        "decisive": int(decisive.sum()), "decisive_agreeing": int((agree & decisive).sum()),
        "disagreeing_rows": [int(i) for i in np.nonzero(~agree)[0]],
        "accuracy_mlx": float((logits.argmax(1) == labels).mean()), "accuracy_golden": float((g.argmax(1) == labels).mean()),
        "pass": bool((agree | ~decisive).all()),
    }


def check_one(path, ref_config, images, labels, golden, variant, n=None):
    """Loads `path` as MLX does, runs the golden images, compares. Returns a result dict."""
    n = n or images.shape[0]
    res = {"path": path, "variant": variant}
    try:
        model, config, info = models.load_mlx(path, config=ref_config, strict=True)
    except Exception as e:  # noqa: BLE001 - any load failure is the finding
        res.update(loads=False, error=f"{type(e).__name__}: {e}", passed=False)
        return res
    res.update(loads=True, quantized_modules=info["quantized_modules"], tensors=info["tensors"],
               quantization=config.get("quantization"))
    x = mx.array(models.nchw_to_nhwc(images[:n]).astype(np.float32))
    outs = models.run_layers(model, x)
    tol = tolerances(model.layer_names, ref_config["layers"], variant, info["quantized_modules"])
    rows, ok = compare(model, outs, golden, tol, n)
    last = model.layer_names[-1]
    logits = models.to_reference_layout(last, outs[-1][1], model)
    am = argmax_check(logits, golden[last][:n], labels[:n], tol[last][1])
    res.update(layers=rows, argmax=am, passed=bool(ok and am["pass"]))
    return res


def print_result(model, kind, res):
    tag = f"{model:<11} {res['variant']:<6} {kind:<12}"
    if not res["loads"]:
        print(f"{tag} LOAD FAILED: {res['error']}")
        return
    q = f" quantized={res['quantized_modules']}" if res["quantized_modules"] else ""
    am = res["argmax"]
    print(f"{tag} loads=yes{q} argmax {am['agreeing']}/{am['total']} (decisive {am['decisive_agreeing']}/{am['decisive']}) "
          f"acc mlx {am['accuracy_mlx']:.4f} golden {am['accuracy_golden']:.4f} -> {'PASS' if res['passed'] else 'FAIL'}")
    for r in res["layers"]:
        if "error" in r:
            print(f"    {r['layer']:<8} {r['error']}")
            continue
        print(f"    {r['layer']:<8} {str(tuple(r['shape'])):<16} max abs {r['max_abs']:.3e} (lim {r['tol_max_abs']:.2e})  "
              f"rel L2 {r['rel_l2']:.3e} (lim {r['tol_rel_l2']:.1e})  {'pass' if r['pass'] else 'FAIL'}")


def reference_in_mlx_layout(model):
    """The reference weights put into mlx.nn's layouts with numpy (conv OIHW -> OHWI; the CNN dense columns
    from (c, h, w) to (h, w, c)), as float32 numpy arrays."""
    ref = {k: np.array(v) for k, v in mx.load(os.path.join(ROOT, "golden", model, "model.safetensors")).items()}
    out = {}
    for k, v in ref.items():
        if v.ndim == 4:
            v = v.transpose(0, 2, 3, 1)
        elif k == "dense.weight":
            v = v.reshape(10, 16, 7, 7).transpose(0, 2, 3, 1).reshape(10, 784)
        out[k] = np.ascontiguousarray(v)
    return out


def exactness(model, dirs):
    """Bit-exact checks of Parity's tensors against MLX's own operations on the same float32 weights:
    f32 == the numpy-arranged reference; f16 / bf16 == mx.astype of it; nvfp4 weight + scales == mx.quantize.
    Also reports whether each safetensors file is byte-identical to mx.save_safetensors of its tensors
    (informational: MLX orders data by hash-map iteration, so byte identity is not expected)."""
    expected = {k: mx.array(v) for k, v in reference_in_mlx_layout(model).items()}
    rows, ok = [], True
    for (variant, kind), path in sorted(dirs.items()):
        p = os.path.join(path, "model.safetensors") if kind == "dir" else path
        got = mx.load(p)
        mismatches = []
        if variant in ("f32", "f16", "bf16"):
            dt = {"f32": mx.float32, "f16": mx.float16, "bf16": mx.bfloat16}[variant]
            for k, v in expected.items():
                if k not in got or got[k].dtype != dt or not mx.array_equal(got[k], v.astype(dt)).item():
                    mismatches.append(k)
            extra = sorted(set(got) - set(expected))
        else:
            extra = []
            for k, v in expected.items():
                module = k.rsplit(".", 1)[0]
                if k.endswith(".weight") and f"{module}.scales" in got:
                    wq, sc = mx.quantize(v, group_size=16, bits=4, mode=variant)
                    if not (mx.array_equal(got[k], wq).item() and mx.array_equal(got[f"{module}.scales"], sc).item()):
                        mismatches.append(k)
                elif k not in got or not mx.array_equal(got[k], v).item():
                    mismatches.append(k)
        byte_identical = None
        if p.endswith(".safetensors"):
            redo = p[: -len(".safetensors")] + ".mx-resaved.safetensors"
            mx.save_safetensors(redo, got, metadata={"format": "mlx"})
            with open(p, "rb") as a, open(redo, "rb") as b:
                byte_identical = a.read() == b.read()
            os.remove(redo)
        row = {"variant": variant, "kind": kind, "bit_exact": not mismatches and not extra,
               "mismatching": mismatches, "unexpected": extra, "byte_identical_to_mx_save_safetensors": byte_identical}
        ok &= row["bit_exact"]
        rows.append(row)
    return rows, ok


def write_dir(directory, weights, config):
    os.makedirs(directory, exist_ok=True)
    mx.save_safetensors(os.path.join(directory, "model.safetensors"), weights, metadata={"format": "mlx"})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def parity_verdict(parity, model, path):
    """Parity's own verdict on a file: `parity verify MODEL --file PATH` -> (exit status, last line of output)."""
    p = subprocess.run([parity, "verify", model, "--file", path], cwd=ROOT, capture_output=True, text=True)
    lines = [l.strip() for l in (p.stdout + "\n" + p.stderr).splitlines() if l.strip()]
    return p.returncode, (lines[-1] if lines else "")


def negative_controls(parity, tmp, model, ref_config, images, labels, golden, dirs):
    """Deliberately broken files. MLX must reject the structural errors at load_weights(strict=True) and the
    layout error must fail numerically. Parity's own `verify --file` verdict is recorded next to MLX's: it
    should reject every one of them too (`parity_agrees`)."""
    results = []
    f32_dir = dirs[("f32", "dir")]
    weights, config = models.read_weights(f32_dir)
    linear = "dense" if ref_config["architecture"] == "mnist-cnn" else "fc1"

    def control(label, directory, variant, expect_load):
        r = check_one(directory, ref_config, images, labels, golden, variant)
        rc, last = parity_verdict(parity, model, directory)
        row = {"control": label, "loads": r["loads"], "error": r.get("error"),
               "parity_verify_exit": rc, "parity_verify_last_line": last, "parity_agrees": rc != 0}
        if expect_load:
            first_fail = next((x["layer"] for x in r.get("layers", []) if not x["pass"]), None)
            last_layer = next((x for x in r.get("layers", []) if x["layer"] == linear), {})
            row.update(expect=f"loads, fails numerically at {linear}", first_failing_layer=first_fail,
                       rel_l2=last_layer.get("rel_l2"), argmax=r.get("argmax", {}).get("agreeing"),
                       ok=bool(r["loads"] and first_fail == linear))
        else:
            row.update(expect="load_weights(strict=True) raises", ok=not r["loads"])
        results.append(row)

    # 1. A Linear weight transposed ([in, out] instead of mlx.nn's [out, in]).
    broken = dict(weights)
    broken[f"{linear}.weight"] = mx.contiguous(weights[f"{linear}.weight"].T)
    d = os.path.join(tmp, f"{model}-broken-transposed")
    write_dir(d, broken, config)
    control(f"{linear}.weight transposed to {list(broken[f'{linear}.weight'].shape)}", d, "f32", False)

    # 2. The nvfp4 directory without its quantization entry: the packed uint32 weight meets a plain nn.Linear.
    qweights, qconfig = models.read_weights(dirs[("nvfp4", "dir")])
    d = os.path.join(tmp, f"{model}-broken-noquant")
    write_dir(d, qweights, {k: v for k, v in qconfig.items() if k not in ("quantization", "quantization_config")})
    control("nvfp4 directory with config.json's \"quantization\" removed", d, "nvfp4", False)

    # 3. An f32 directory whose config.json has a per-module quantization entry for the Linear but no
    #    '<module>.scales': mlx-lm's class_predicate returns the override first, so MLX builds a QuantizedLinear
    #    and load_weights finds the scales missing.
    q = {"group_size": 16, "bits": 4, "mode": "nvfp4", linear: {"group_size": 16, "bits": 4, "mode": "nvfp4"}}
    d = os.path.join(tmp, f"{model}-broken-override")
    write_dir(d, weights, dict(config, quantization=q, quantization_config=q))
    control(f"f32 directory, config.json quantization has a '{linear}' override but there is no {linear}.scales", d, "f32", False)

    # 4. CNN only: dense.weight in PyTorch's (c, h, w) column order (no permutation): same shape, wrong layout.
    if ref_config["architecture"] == "mnist-cnn":
        ref = mx.load(os.path.join(ROOT, "golden", model, "model.safetensors"))
        broken = dict(weights)
        broken["dense.weight"] = ref["dense.weight"]
        d = os.path.join(tmp, f"{model}-broken-unpermuted")
        write_dir(d, broken, config)
        control("dense.weight with PyTorch's (c,h,w) columns (no flatten permutation)", d, "f32", True)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parity", help="the parity binary")
    ap.add_argument("--json", help="write all results here")
    ap.add_argument("--require-parity-agreement", action="store_true",
                    help="also fail when `parity verify --file` accepts a broken control that MLX rejects")
    ap.add_argument("--keep", help="keep the converted files in this directory (default: a temp dir, removed)")
    args = ap.parse_args()
    parity = find_parity(args.parity)
    print(f"mlx {mx.__version__}, numpy {np.__version__}, device {mx.default_device()}, parity {parity}")
    mx.set_default_device(mx.cpu)

    tmp = args.keep or tempfile.mkdtemp(prefix="parity-mlxcheck-")
    os.makedirs(tmp, exist_ok=True)
    report = {"mlx_version": mx.__version__, "numpy_version": np.__version__, "parity": parity, "results": [], "controls": []}
    all_ok = True
    try:
        for model in MODELS:
            ref_config, images, labels, golden = read_golden(model)
            dirs = {}
            for variant, extra, kinds in CASES:
                for kind in kinds:
                    out = os.path.join(tmp, f"{model}-{variant}" + ("" if kind == "dir" else f".{kind}"))
                    try:
                        cmd, stdout = run_parity(parity, ["convert", model, "--to", "mlx"] + extra + ["-o", out])
                    except RuntimeError as e:
                        print(f"{model:<11} {variant:<6} {kind:<12} CONVERT FAILED: {e}")
                        report["results"].append({"model": model, "variant": variant, "kind": kind, "convert_error": str(e), "passed": False})
                        all_ok = False
                        continue
                    dirs[(variant, kind)] = out
                    res = check_one(out, ref_config, images, labels, golden, variant)
                    res.update(model=model, kind=kind, command=" ".join(["parity"] + cmd[1:]), convert_output=stdout.strip().splitlines())
                    print_result(model, kind, res)
                    report["results"].append(res)
                    all_ok &= res["passed"]
            rows, exact_ok = exactness(model, dirs)
            all_ok &= exact_ok
            for r in rows:
                r["model"] = model
                report.setdefault("exactness", []).append(r)
                print(f"{model:<11} {r['variant']:<6} {r['kind']:<12} tensors bit-exact vs MLX ops: "
                      f"{'yes' if r['bit_exact'] else 'NO ' + str(r['mismatching'] + r['unexpected'])}"
                      + ("" if r["byte_identical_to_mx_save_safetensors"] is None else
                         f"; file byte-identical to mx.save_safetensors: {'yes' if r['byte_identical_to_mx_save_safetensors'] else 'no'}"))
            if ("f32", "dir") in dirs and ("nvfp4", "dir") in dirs:
                for c in negative_controls(parity, tmp, model, ref_config, images, labels, golden, dirs):
                    c["model"] = model
                    report["controls"].append(c)
                    all_ok &= c["ok"]
                    if args.require_parity_agreement:
                        all_ok &= c["parity_agrees"]
                    detail = (f"MLX: {c['error']!r}" if c["error"] else
                              f"MLX loads; first failing layer {c.get('first_failing_layer')}, rel L2 {c.get('rel_l2')}, argmax {c.get('argmax')}/64")
                    print(f"{model:<11} control: {c['control']}\n    expect {c['expect']}: {'ok' if c['ok'] else 'NOT OK'} -- {detail}\n"
                          f"    parity verify --file: exit {c['parity_verify_exit']} ({c['parity_verify_last_line']}) -> "
                          f"{'agrees (rejects)' if c['parity_agrees'] else 'DISAGREES: Parity accepts a file MLX rejects'}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report["passed"] = bool(all_ok)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print("ALL PASS" if all_ok else "FAILURES (see above)")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
