#!/usr/bin/python3
"""Record ggml's own numerics as test fixtures for Parity's GGUF engine.

Run with Debian's /usr/bin/python3 (numpy 1.24, h5py, torch); needs the binaries of
tools/ggml/build-ggml.sh. Two subcommands:

  record_ggml_fixtures.py model GGUF NAME --golden golden/<model> [--variants generic,avx2,native] [options]
      For each build variant (tools/ggml/build-ggml.sh; the first is the primary one) runs ggml's
      examples/mnist `mnist-eval` and Parity's `parity-ggml-mnist` (the same loader and graph, 1 thread)
      on GGUF, and writes Tests/ParityTests/Fixtures/ggml/NAME/:
        accuracy.json         full test set per variant: accuracy, loss, what mnist-eval printed, agreement
                              with PyTorch and with the primary variant
        nodes.json            the primary variant's dumped nodes: ne, type, image count, meaning, golden
                              dataset, metrics against the golden
        <node>.f32            raw little-endian float32 in ggml memory order (ne[0] fastest) for the first
                              images of the test set (= golden.h5 /inputs/images), primary variant
        logits.<variant>.f32  the other variants' logits for the first --images images, ne [10, K]
      Nodes with more than --large-threshold elements per image keep --large-images images (default 8);
      the others keep --images (default 64).

  record_ggml_fixtures.py mul-mat [--variants generic,avx2,native]
      Runs parity-ggml-mulmat (see parity_ggml_mulmat.cpp) for each variant: shared inputs and weights
      in Tests/ParityTests/Fixtures/ggml/mul_mat/, per-variant activations and results in
      mul_mat/<variant>/ with a manifest.json.

Everything written is deterministic (no timings, no absolute paths) for a given build.
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "ggml")
BUILD_ROOT = os.path.join(ROOT, ".build-ggml")
VARIANT_NOTES = {
    "generic": "GGML_NATIVE=OFF, no SIMD: ggml's scalar reference C paths (portable numerics)",
    "avx2": "GGML_NATIVE=OFF, SSE4.2+AVX+AVX2+BMI2+FMA+F16C, no AVX-512 (portable x86-64 release build)",
    "native": "GGML_NATIVE=ON (-march=native, ggml's default) on the CPU in 'cpu' (AVX-512 incl. FP16 here)",
}
DATA_DIR = "/usr/share/datasets/fashion-mnist"
GGML_SOURCE = ("ggml 0.15.3 vendored in the PyPI sdist ggml-python==0.0.45 (vendor/ggml, "
               "sha256 10aac52075cf3c7ef2b00d6c35b1c23f7b018dbeff8ae8df67339b4be1166f05); "
               "the sdist has no git metadata, so the ggml commit is unknown")


def rel(path):
    path = os.path.abspath(path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def raw_idx(build_data, stem):
    """mnist-eval reads uncompressed IDX; Debian ships gzipped ones. Decompress once into .build-ggml/data."""
    os.makedirs(build_data, exist_ok=True)
    out = os.path.join(build_data, stem)
    if not os.path.exists(out):
        src = os.path.join(DATA_DIR, stem)
        if os.path.exists(src):
            shutil.copyfile(src, out)
        else:
            with gzip.open(src + ".gz", "rb") as f, open(out + ".tmp", "wb") as g:
                shutil.copyfileobj(f, g)
            os.replace(out + ".tmp", out)
    return out


def build_info(bin_dir):
    info = {}
    path = os.path.join(os.path.dirname(bin_dir), "BUILD-INFO")
    if os.path.exists(path):
        for line in open(path):
            k, _, v = line.strip().partition("=")
            info[k] = v
    return info


def cpu_description():
    model, flags = "unknown", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = [x for x in line.split(":", 1)[1].split()
                         if re.match(r"(avx|fma|f16c|sse4|amx)", x)]
    return {"model": model, "simd_flags": sorted(flags)}


def metrics(a, g):
    a = a.astype(np.float64)
    g = g.astype(np.float64)
    d = a - g
    return {"max_abs": float(np.max(np.abs(d))), "mean_abs": float(np.mean(np.abs(d))),
            "rel_l2": float(np.linalg.norm(d) / np.linalg.norm(g)) if np.linalg.norm(g) > 0 else None,
            "golden_max_abs": float(np.max(np.abs(g)))}


def golden_in_ggml_order(name, g):
    """golden.h5 activation [N, ...] -> the ggml node's memory order (only flatten differs)."""
    if name == "flatten" and g.shape[1:] == (784,) and g.ndim == 2:
        return g.reshape(-1, 16, 7, 7).transpose(0, 2, 3, 1).reshape(-1, 784)
    return g


def torch_full_test(golden_dir, ggml_logits):
    """PyTorch logits on the full test set (1 thread) against ggml's."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import torch
    from parity_models import load_reference, load_fashion_mnist, reference_framework, to_model_input
    torch.set_num_threads(1)
    config, model, _ = load_reference(golden_dir)
    images, labels = load_fashion_mnist("t10k")
    with torch.no_grad():
        logits = torch.cat([model(to_model_input(images[i:i + 1000])) for i in range(0, len(images), 1000)]).numpy()
    g = ggml_logits.reshape(logits.shape)
    pt_pred, gg_pred = logits.argmax(1), g.argmax(1)
    differ = np.nonzero(pt_pred != gg_pred)[0]
    d = np.abs(g.astype(np.float64) - logits.astype(np.float64))
    top2 = np.sort(logits, axis=1)[:, -2:]
    return {
        "framework": reference_framework() + ", 1 thread",
        "note": "vs the primary variant; every variant's own comparison is under variants.<v>.vs_pytorch",
        "accuracy": float(np.mean(pt_pred == labels)),
        "config_test_accuracy": config["evaluation"]["test_accuracy"],
        "config_test_loss": config["evaluation"]["test_loss"],
        "images_with_different_prediction": int(len(differ)),
        "different_prediction": [{"index": int(i), "label": int(labels[i]), "pytorch": int(pt_pred[i]),
                                  "ggml": int(gg_pred[i]),
                                  "pytorch_top2_margin": float(top2[i, 1] - top2[i, 0])} for i in differ[:20]],
        "logits_max_abs_diff": float(d.max()),
        "logits_mean_abs_diff": float(d.mean()),
    }, logits


def bin_dir(variant):
    return os.path.join(BUILD_ROOT, "build-" + variant, "bin")


def run_mnist_eval(variant, gguf, images, labels):
    r = subprocess.run([os.path.join(bin_dir(variant), "mnist-eval"), gguf, images, labels],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{variant} mnist-eval failed (rc {r.returncode}):\n{r.stderr[-2000:]}")
    m_loss = re.search(r"test_loss=([0-9.]+)\+-([0-9.]+)", r.stdout)
    m_acc = re.search(r"test_acc=([0-9.]+)\+-([0-9.]+)%", r.stdout)
    if not (m_loss and m_acc):
        sys.exit(f"{variant} mnist-eval printed no test_loss/test_acc:\n" + r.stdout[-2000:])
    return m_loss, m_acc


def run_ours(variant, gguf, images, labels, tmp, dump_images=None, extra=()):
    """parity-ggml-mnist, 1 thread: (summary, logits [N*10], dump nodes.json or None)."""
    d = os.path.join(tmp, variant)
    os.makedirs(d, exist_ok=True)
    cmd = [os.path.join(bin_dir(variant), "parity-ggml-mnist"), gguf, images, labels, "--threads", "1",
           "--logits", os.path.join(d, "logits.f32"), "--json", os.path.join(d, "summary.json")]
    if dump_images:
        cmd += ["--dump", d, "--dump-images", str(dump_images)]
    cmd += list(extra)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{variant} parity-ggml-mnist failed (rc {r.returncode}):\n{r.stderr[-2000:]}")
    summary = json.load(open(os.path.join(d, "summary.json")))
    logits = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4")
    dump = json.load(open(os.path.join(d, "nodes.json"))) if dump_images else None
    return summary, logits, dump


def logits_diff(a, b):
    a = a.reshape(-1, 10).astype(np.float64)
    b = b.reshape(-1, 10).astype(np.float64)
    return {"logits_max_abs_diff": float(np.max(np.abs(a - b))),
            "logits_bit_identical": bool(np.array_equal(a, b)),
            "images_with_different_prediction": int(np.sum(a.argmax(1) != b.argmax(1)))}


def record_model(args):
    variants = args.variants.split(",")
    primary = variants[0]
    images = raw_idx(os.path.join(BUILD_ROOT, "data"), "t10k-images-idx3-ubyte")
    labels = raw_idx(os.path.join(BUILD_ROOT, "data"), "t10k-labels-idx1-ubyte")
    gguf = os.path.abspath(args.gguf)
    out = os.path.join(args.out, args.name)
    import h5py
    golden_path = os.path.join(args.golden, "golden.h5")
    with h5py.File(golden_path, "r") as h:
        g_inputs = h["/inputs/images"][()]
        g_labels = h["/labels"][()]
        goldens = {k: h["/activations/" + k][()] for k in h["/activations"].keys()}
    n_golden = len(g_inputs)

    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        extra = ["--im2col-f16"] if args.im2col_f16 else []
        for v in variants:
            if args.im2col_f16:  # an emulation of older ggml: mnist-eval of this ggml does not do it
                m_loss = m_acc = None
            else:
                m_loss, m_acc = run_mnist_eval(v, gguf, images, labels)
            summary, logits, dump = run_ours(v, gguf, images, labels, tmp, args.images if v == primary else None, extra)
            ours_loss, ours_acc = f"{summary['loss_ggml']:.6f}", f"{100 * summary['accuracy']:.2f}"
            agrees = m_loss is not None and ours_loss == m_loss.group(1) and ours_acc == m_acc.group(1)
            if m_loss is not None and not agrees:
                print(f"WARNING {v}: parity-ggml-mnist (loss {ours_loss}, acc {ours_acc}) differs from mnist-eval "
                      f"(loss {m_loss.group(1)}, acc {m_acc.group(1)})", file=sys.stderr)
            results[v] = {"summary": summary, "logits": logits, "dump": dump, "m_loss": m_loss, "m_acc": m_acc,
                          "agrees": agrees}
        p = results[primary]
        # without dumps (no extra graph outputs) the primary's logits must be the same bits
        plain, plain_logits, _ = run_ours(primary, gguf, images, labels, os.path.join(tmp, "plain"), None, extra)
        plain_same = plain_logits.tobytes() == p["logits"].tobytes()

        raw = np.fromfile(images, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
        idx_inputs = (raw[:n_golden].astype(np.float32) / np.float32(255)).reshape(g_inputs.shape)
        inputs_equal = bool(np.array_equal(idx_inputs.view(np.uint32), g_inputs.view(np.uint32)))
        lab = np.fromfile(labels, dtype=np.uint8, offset=8)
        labels_equal = bool(np.array_equal(lab[:n_golden], g_labels))

        if os.path.isdir(out):
            shutil.rmtree(out)
        os.makedirs(out)
        nodes = []
        pdir = os.path.join(tmp, primary)
        for node in p["dump"]["nodes"]:
            ne = node["ne"]
            per_image = int(np.prod(ne[:-1]))
            keep = args.large_images if per_image > args.large_threshold else args.images
            keep = min(keep, ne[-1], n_golden)
            data = np.fromfile(os.path.join(pdir, node["file"]), dtype="<f4")[:per_image * keep]
            data.astype("<f4").tofile(os.path.join(out, node["file"]))
            entry = {"name": node["name"], "file": node["file"], "type": "f32",
                     "ne": ne[:-1] + [keep], "images": keep, "first_image": 0,
                     "ggml_op": node["ggml_op"], "corresponds_to": node["corresponds_to"],
                     "golden": node["golden"]}
            gname = node["golden"].rsplit("/", 1)[-1]
            if gname in goldens:
                g = golden_in_ggml_order(gname, goldens[gname][:keep]).astype(np.float32).reshape(-1)
                entry["vs_golden"] = metrics(data, g)
            nodes.append(entry)
        k_logits = min(args.images, n_golden)
        for v in variants[1:]:
            results[v]["logits"][:k_logits * 10].astype("<f4").tofile(os.path.join(out, f"logits.{v}.f32"))
        model_name = os.path.basename(os.path.normpath(args.golden))
        nodes_json = {
            "format": "parity-ggml-nodes", "version": 1, "model": model_name,
            "arch": p["summary"]["arch"], "gguf_sha256": sha256(gguf), "variant": primary,
            "variant_build": VARIANT_NOTES.get(primary, primary),
            "inputs": f"{rel(golden_path)} /inputs/images[0:K] = fashion-mnist t10k images 0..K-1, pixel/255 in float32 "
                      f"(bit-identical to what ggml was fed: {inputs_equal}; labels equal: {labels_equal})",
            "layout": "each file: raw little-endian float32 in ggml memory order, ne[0] fastest; the last ne "
                      "axis is the image; conv/pool nodes ne [W,H,C,N] = PyTorch NCHW memory order; flatten is "
                      "NHWC order (h*7+w)*16+c; 2-D nodes ne [features, N]",
            "batch": p["summary"]["batch"], "threads": 1,
            "note": f"dumped from the first physical batch of {p['summary']['batch']} images (as mnist-eval "
                    f"batches); nodes with more than {args.large_threshold} elements per image keep "
                    f"{args.large_images} images, the others {args.images}; vs_golden compares with golden.h5 "
                    f"over the stored images",
            "nodes": nodes,
            "other_variants_logits": [{"variant": v, "file": f"logits.{v}.f32", "type": "f32", "ne": [10, k_logits],
                                       "variant_build": VARIANT_NOTES.get(v, v)} for v in variants[1:]],
        }
        with open(os.path.join(out, "nodes.json"), "w") as f:
            json.dump(nodes_json, f, indent=1)
            f.write("\n")

        torch_logits = None
        pytorch = None
        if not args.no_torch:
            pytorch, torch_logits = torch_full_test(args.golden, p["logits"])

    per_variant = {}
    for v in variants:
        r = results[v]
        sm = r["summary"]
        entry = {
            "build": VARIANT_NOTES.get(v, v), "build_info": build_info(bin_dir(v)),
            "accuracy": sm["accuracy"], "correct": sm["correct"], "loss": sm["loss_ggml"],
            "loss_f64_from_logits": sm["loss_f64"], "conv_im2col_type": sm["im2col_type"],
            "mnist_eval_printed": [r["m_loss"].group(0), r["m_acc"].group(0)] if r["m_loss"] else None,
            "mnist_eval_agrees_with_parity_ggml_mnist": r["agrees"] if r["m_loss"] else None,
        }
        if torch_logits is not None:
            entry["vs_pytorch"] = logits_diff(r["logits"], torch_logits)
        if v != primary:
            entry["vs_" + primary] = logits_diff(r["logits"], p["logits"])
        per_variant[v] = entry
    sm = p["summary"]
    acc = {
        "schema": "parity-ggml-accuracy", "schema_version": 1,
        "model": model_name, "arch": sm["arch"],
        "gguf": {"file": os.path.basename(gguf), "sha256": sha256(gguf), "bytes": os.path.getsize(gguf),
                 "written_by": args.written_by},
        "primary_variant": primary,
        "images": sm["images"], "correct": sm["correct"], "accuracy": sm["accuracy"],
        "loss": sm["loss_ggml"], "loss_unc": sm["loss_ggml_unc"], "loss_f64_from_logits": sm["loss_f64"],
        "threads": 1, "batch": sm["batch"], "conv_im2col_type": sm["im2col_type"],
        "command": " ".join(["parity-ggml-mnist", os.path.basename(gguf), "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte", "--threads", "1"] + extra),
        "emulation": ("--im2col-f16: convolutions built as older ggml's ggml_conv_2d did (F16 im2col, so the "
                      "F32 kernel is converted to F16 for the matmul); NOT what this ggml's mnist-eval does, "
                      "which uses an F32 im2col for F32 kernels; mnist-eval is therefore not run")
                     if args.im2col_f16 else None,
        "mnist_eval_command": " ".join(["mnist-eval", os.path.basename(gguf), "t10k-images-idx3-ubyte",
                                        "t10k-labels-idx1-ubyte"]) + "   (threads: examples/mnist default "
                                        "min(ncores, (ncores+4)/2))",
        "logits_identical_without_dump_outputs": plain_same,
        "variants": per_variant,
        "pytorch": pytorch,
        "ggml": {"version": sm["ggml_version"], "commit": sm["ggml_commit"], "source": GGML_SOURCE,
                 "cpu": cpu_description(), "backend": "CPU, default buffer type (no repack), 1 thread"},
        "recorded_by": "tools/ggml/record_ggml_fixtures.py model " + " ".join(args.argv_rest),
    }
    with open(os.path.join(out, "accuracy.json"), "w") as f:
        json.dump(acc, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out))
    print(f"{args.name}: {len(nodes)} nodes, {size} bytes -> {rel(out)}; PyTorch acc "
          + (f"{pytorch['accuracy']:.4f}" if pytorch else "-"))
    for v, e in per_variant.items():
        vp = e.get("vs_pytorch", {})
        print(f"  {v:8s} acc {e['accuracy']:.4f} loss {e['loss']:.6f} im2col {e['conv_im2col_type']}  mnist-eval {e['mnist_eval_printed']} "
              f"agrees {e['mnist_eval_agrees_with_parity_ggml_mnist']}  vs PyTorch: max|dlogit| "
              f"{vp.get('logits_max_abs_diff', float('nan')):.3g}, {vp.get('images_with_different_prediction', '-')} preds differ"
              + (f"; vs {primary}: max {e['vs_' + primary]['logits_max_abs_diff']:.3g}, "
                 f"{e['vs_' + primary]['images_with_different_prediction']} preds differ" if v != primary else ""))
    for n in nodes:
        v = n.get("vs_golden")
        if v:
            print(f"  {n['name']:8s} ne {str(n['ne']):18s} max_abs {v['max_abs']:.3g}  rel_l2 {v['rel_l2']:.3g}")


def record_mul_mat(args):
    """mul_mat/: the inputs and weights (identical for every variant: reference quantizers and decoders,
    checked here) at the top; mul_mat/<variant>/: manifest.json, <type>.x_q.bin, <type>.out.f32.
    Every path in a manifest is relative to the mul_mat directory."""
    top = os.path.join(args.out, "mul_mat")
    if os.path.isdir(top):
        shutil.rmtree(top)
    os.makedirs(top)
    shared = {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in args.variants.split(","):
            raw_dir = os.path.join(tmp, v)
            os.makedirs(raw_dir)
            r = subprocess.run([os.path.join(bin_dir(v), "parity-ggml-mulmat"), raw_dir], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"{v} parity-ggml-mulmat failed:\n{r.stderr}")
            print(f"--- {v}\n" + r.stdout, end="")
            out = os.path.join(top, v)
            os.makedirs(out)
            for name in sorted(os.listdir(raw_dir)):
                if name == "manifest.json":
                    continue
                data = open(os.path.join(raw_dir, name), "rb").read()
                if name.endswith((".x_q.bin", ".out.f32")):
                    open(os.path.join(out, name), "wb").write(data)
                elif name in shared:
                    if shared[name] != data:
                        sys.exit(f"{v}: {name} differs from the first variant's; it cannot be shared")
                else:
                    shared[name] = data
                    open(os.path.join(top, name), "wb").write(data)
            m = json.load(open(os.path.join(raw_dir, "manifest.json")))
            for c in m["cases"]:
                for key in ("x_q", "out"):
                    if c[key]:
                        c[key] = v + "/" + c[key]
            m["paths"] = "relative to the mul_mat directory; inputs and weights are shared by all variants"
            m["variant"] = v
            m["variant_build"] = VARIANT_NOTES.get(v, v)
            m["ggml_source"] = GGML_SOURCE
            m["build_info"] = build_info(bin_dir(v))
            m["cpu"] = cpu_description()
            m["semantics"] = ("out[j*4+i] = ggml_mul_mat(W, X)[i, j] = dot(W row i, X row j) (ne [4, 3]); ggml "
                              "converts each X row with ggml_get_type_traits_cpu(vec_dot_type)->from_float (saved "
                              "as <type>.x_q.bin) and runs the type's CPU vec_dot on (W row, converted X row); W "
                              "from ggml_quantize_chunk (reference quantizers, no imatrix); w_deq from the type's "
                              "to_float")
            m["recorded_by"] = "tools/ggml/record_ggml_fixtures.py mul-mat --variants " + args.variants
            with open(os.path.join(out, "manifest.json"), "w") as f:
                json.dump(m, f, indent=1)
                f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(top) for f in fs)
    print(f"mul_mat: {total} bytes -> {rel(top)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    pm = sub.add_parser("model")
    pm.add_argument("gguf")
    pm.add_argument("name")
    pm.add_argument("--golden", required=True, help="golden/<model>")
    pm.add_argument("--written-by", default="unknown", help="what wrote the GGUF (recorded in accuracy.json)")
    pm.add_argument("--images", type=int, default=64)
    pm.add_argument("--large-images", type=int, default=8)
    pm.add_argument("--large-threshold", type=int, default=1000, help="elements per image above which a node is large")
    pm.add_argument("--no-torch", action="store_true", help="skip the full-test-set PyTorch comparison")
    pm.add_argument("--im2col-f16", action="store_true",
                    help="mnist-cnn: emulate older ggml's F16 im2col in ggml_conv_2d (see parity_ggml_mnist.cpp)")
    for p in (pm, sub.add_parser("mul-mat")):
        p.add_argument("--variants", default="generic,avx2,native",
                       help="build variants (.build-ggml/build-<variant>/bin); the first is primary")
        p.add_argument("--out", default=FIXTURES)
    args = ap.parse_args()
    args.argv_rest = [rel(a) if os.path.exists(a) else a for a in sys.argv[2:]]
    os.makedirs(args.out, exist_ok=True)
    record_model(args) if args.cmd == "model" else record_mul_mat(args)


if __name__ == "__main__":
    main()
