#!/usr/bin/env python3
"""Run ggml's own examples/mnist `mnist-eval` on GGUF files written by Parity, and record what it says.

Run in the fixtures venv (gguf-py is used to compare tensor data with the gguf-py-written reference files):

    .build-venv-fixtures/bin/python tools/ggml/eval_parity_gguf.py [--parity BIN] [--variants generic,avx2] [--out DIR]

Needs tools/ggml/build-ggml.sh's builds (.build-ggml/build-<variant>/bin/{mnist-eval,parity-ggml-mnist}) and the
parity binary (default .build-ggufcheck/release/parity, else .build/release/parity). OUT defaults to
Tests/ParityTests/Fixtures/ggml/parity-written; it gets accuracy.json (see README.md there) and, only if they
are not bit-identical to the gguf-py fixtures, node dumps.

1. `parity convert MODEL --to gguf --type T -o FILE` for fmnist-cnn f32/f16/bf16 and fmnist-mlp f32/f16/bf16/q8_0.
2. ggml's `mnist-eval FILE t10k-images t10k-labels` (its default thread count) on the full 10,000-image Fashion-MNIST
   test set, for every build variant. The mnist-cnn files other than f32 must be refused (mnist-common.cpp asserts
   F32 for every mnist-cnn tensor): the assertion line and the exit status are recorded. mnist-eval also prints a
   randomly chosen test image, its prediction and timings; those lines are not recorded.
3. The accuracy against PyTorch's (golden/<model>/config.json evaluation.test_accuracy), and the printed lines
   against those recorded for the gguf-py-written files (Fixtures/ggml/<model>-<t>/accuracy.json), when the tensor
   data is identical to that reference file's (checked with gguf-py: names, types, ne and bytes).
4. parity-ggml-mnist (mnist-eval's loader and graph, 1 thread, generic build) on the Parity-written files that have a
   gguf-py fixture: its node dumps for the first 8 images compared bit for bit with Fixtures/ggml/<fixture>/*.f32,
   and its logits for all 10,000 images compared bit for bit with the same program's on the reference file.
Exit status 0 only if every expectation held (f32 files and mlp f16 load and score; cnn non-f32 refused; identical
tensor data gives identical results).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from importlib.metadata import version as pkg_version

import numpy as np
from gguf import GGUFReader

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from record_ggml_fixtures import (GGML_SOURCE, VARIANT_NOTES, bin_dir, build_info, cpu_description,  # noqa: E402
                                  raw_idx, BUILD_ROOT)

FIXTURES = os.path.join(ROOT, "Tests", "ParityTests", "Fixtures", "ggml")
DEFAULT_OUT = os.path.join(FIXTURES, "parity-written")
GGML_SRC = os.path.join(BUILD_ROOT, "src", "ggml_python-0.0.45", "vendor", "ggml")
CASES = [  # (model, type, mnist-eval must load it, gguf-py fixture directory with the same tensor data or None)
    ("fmnist-cnn", "f32", True, "fmnist-cnn-f32"),
    ("fmnist-cnn", "f16", False, None),
    ("fmnist-cnn", "bf16", False, None),
    ("fmnist-mlp", "f32", True, "fmnist-mlp-f32"),
    ("fmnist-mlp", "f16", True, "fmnist-mlp-f16"),
    ("fmnist-mlp", "bf16", True, None),
    ("fmnist-mlp", "q8_0", True, "fmnist-mlp-f16"),   # every matrix falls back to F16: the f16 file's data
]
REFERENCE_GGUF = {  # gguf-py-written files of the fixtures (tools/ggml/record-all.sh)
    "fmnist-cnn-f32": ("fmnist-cnn", []), "fmnist-mlp-f32": ("fmnist-mlp", []), "fmnist-mlp-f16": ("fmnist-mlp", ["--dtype", "f16"]),
}
DUMP_IMAGES = 8
PARITY_SOURCES = ["Sources/ParityFormats/GGUF.swift", "Sources/ParityFormats/GGMLQuants.swift",
                  "Sources/ParityFormats/GGMLTypes.swift", "Sources/ParityModels/GGUFConverter.swift"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git(*args):
    return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True).stdout.strip()


def find_parity(explicit):
    for c in [explicit, os.path.join(ROOT, ".build-ggufcheck/release/parity"), os.path.join(ROOT, ".build/release/parity")]:
        if c and os.access(c, os.X_OK):
            return os.path.abspath(c)
    sys.exit("eval_parity_gguf.py: no parity binary; build it with "
             "`swift build -c release --scratch-path .build-ggufcheck --product parity` or pass --parity BIN")


def tensors_of(path):
    r = GGUFReader(path)
    return [(t.name, t.tensor_type.name, [int(d) for d in t.shape], bytes(t.data.tobytes())) for t in r.tensors]


def run_mnist_eval(variant, gguf_name, cwd, images, labels):
    """mnist-eval, run on the file's basename from cwd so that the file name is all a printed path shows."""
    exe = os.path.join(bin_dir(variant), "mnist-eval")
    p = subprocess.run([exe, gguf_name, images, labels], cwd=cwd, capture_output=True, text=True)
    out_lines = [l for l in p.stdout.splitlines() if not l.startswith("\x1b[")]   # drop the ANSI test image
    err_lines = p.stderr.splitlines()
    kept_out = [l for l in out_lines if l.startswith("main: test_")]
    # Deterministic stderr lines: not timings ("took ... ms"), and the assertion with ggml's source directory removed.
    kept_err = []
    assertion = None
    for l in err_lines:
        if " took " in l or l.startswith("#") or "libthread_db" in l or l.startswith("[") or "wait4" in l:
            continue
        if "GGML_ASSERT" in l:
            l = l.replace(GGML_SRC + os.sep, "")
            assertion = l
        kept_err.append(l)
        if assertion:
            break  # what follows is ggml_print_backtrace's gdb output
    res = {"exit_status": p.returncode,
           "exit": (f"killed by {signal.Signals(-p.returncode).name} (shell status {128 - p.returncode})"
                    if p.returncode < 0 else f"exit {p.returncode}"),
           "printed": kept_out, "stderr": kept_err}
    m_loss = re.search(r"test_loss=([0-9.]+)\+-([0-9.]+)", p.stdout)
    m_acc = re.search(r"test_acc=([0-9.]+)\+-([0-9.]+)%", p.stdout)
    if m_loss and m_acc:
        res.update(accuracy=float(m_acc.group(1)) / 100, accuracy_unc=float(m_acc.group(2)) / 100,
                   loss=float(m_loss.group(1)), loss_unc=float(m_loss.group(2)))
    if assertion:
        res["assertion"] = assertion
        res["note"] = ("the assertion is followed by ggml_print_backtrace's gdb output (not recorded); the path is "
                       "relative to ggml's source directory (vendor/ggml of the ggml-python 0.0.45 sdist)")
    return res


def run_ours(variant, gguf, images, labels, tmp, dump_images=None):
    d = tempfile.mkdtemp(dir=tmp)
    cmd = [os.path.join(bin_dir(variant), "parity-ggml-mnist"), gguf, images, labels, "--threads", "1",
           "--logits", os.path.join(d, "logits.f32"), "--json", os.path.join(d, "summary.json")]
    if dump_images:
        cmd += ["--dump", d, "--dump-images", str(dump_images)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"parity-ggml-mnist failed ({p.returncode}) on {gguf}:\n{p.stderr[-2000:]}")
    return d, np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4"), json.load(open(os.path.join(d, "summary.json")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parity")
    ap.add_argument("--variants", default="generic,avx2")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    parity = find_parity(args.parity)
    variants = args.variants.split(",")
    for v in variants:
        for exe in ("mnist-eval", "parity-ggml-mnist"):
            if not os.access(os.path.join(bin_dir(v), exe), os.X_OK):
                sys.exit(f"{os.path.join(bin_dir(v), exe)} missing: run tools/ggml/build-ggml.sh {v}")
    images = raw_idx(os.path.join(BUILD_ROOT, "data"), "t10k-images-idx3-ubyte")
    labels = raw_idx(os.path.join(BUILD_ROOT, "data"), "t10k-labels-idx1-ubyte")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    failures = []
    tmp = tempfile.mkdtemp(prefix="parity-ggml-eval-")
    env = dict(os.environ, PARITY_GOLDEN_DIR=os.path.join(ROOT, "golden"))
    result = {
        "schema": "parity-written-ggml-eval", "schema_version": 1,
        "what": "ggml's own examples/mnist mnist-eval on GGUF files written by `parity convert --to gguf`, full "
                "Fashion-MNIST test set (10,000 images)",
        "generator": "tools/ggml/eval_parity_gguf.py --variants " + args.variants,
        "ggml": {"source": GGML_SOURCE, "cpu": cpu_description(),
                 "variants": {v: {"build": VARIANT_NOTES.get(v, v), "build_info": build_info(bin_dir(v))} for v in variants},
                 "mnist_eval_threads": "examples/mnist default, min(ncores, (ncores+4)/2)"},
        "parity": {"commit": git("rev-parse", "HEAD"),
                   "tree_dirty": bool(git("status", "--porcelain", "--", "Sources", "Package.swift")),
                   "sources_sha256": {p: sha256(os.path.join(ROOT, p)) for p in PARITY_SOURCES if os.path.exists(os.path.join(ROOT, p))}},
        "data": {"images": "t10k-images-idx3-ubyte", "labels": "t10k-labels-idx1-ubyte",
                 "from": "Debian dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), decompressed",
                 "images_sha256": sha256(images), "labels_sha256": sha256(labels)},
        "gguf_py_version": pkg_version("gguf"),
        "files": {},
        "node_dumps": {},
    }
    try:
        refs = {}
        for fixture, (model, extra) in REFERENCE_GGUF.items():
            path = os.path.join(BUILD_ROOT, "gguf", fixture + ".gguf")
            want = json.load(open(os.path.join(FIXTURES, fixture, "accuracy.json")))["gguf"]["sha256"]
            if not os.path.exists(path) or sha256(path) != want:
                path = os.path.join(tmp, "ref-" + fixture + ".gguf")
                subprocess.run([sys.executable, os.path.join(HERE, "make_reference_gguf.py"), os.path.join(ROOT, "golden", model),
                                path] + extra, check=True, capture_output=True)
            if sha256(path) != want:
                failures.append(f"reference {fixture}: gguf-py wrote sha256 {sha256(path)}, the fixture records {want}")
            refs[fixture] = path

        for model, t, loads, fixture in CASES:
            name = f"{model}-{t}.gguf"
            cmd = ["convert", model, "--to", "gguf", "--type", t, "-o", name]
            p = subprocess.run([parity] + cmd, cwd=tmp, capture_output=True, text=True, env=env)
            if p.returncode != 0:
                sys.exit(f"parity {' '.join(cmd)} failed: {p.stderr}")
            path = os.path.join(tmp, name)
            config = json.load(open(os.path.join(ROOT, "golden", model, "config.json")))
            entry = {"model": model, "type": t, "command": "parity " + " ".join(cmd), "sha256": sha256(path),
                     "bytes": os.path.getsize(path), "tensors": [{"name": n, "type": ty, "ne": ne} for n, ty, ne, _ in tensors_of(path)],
                     "expected": "loads and scores" if loads else "refused: mnist-cnn asserts F32 for every tensor",
                     "pytorch": {"test_accuracy": config["evaluation"]["test_accuracy"],
                                 "test_loss": config["evaluation"]["test_loss"],
                                 "from": f"golden/{model}/config.json evaluation"}}
            ref_acc = None
            if fixture:
                mine, theirs = tensors_of(path), tensors_of(refs[fixture])
                same = mine == theirs
                entry["same_tensor_data_as"] = {
                    "file": f"{fixture}.gguf (tools/ggml/make_reference_gguf.py, gguf-py; fixture Fixtures/ggml/{fixture})",
                    "sha256": sha256(refs[fixture]), "names_types_ne_bytes_identical": same,
                    "file_bytes_identical": open(path, "rb").read() == open(refs[fixture], "rb").read()}
                if not same:
                    failures.append(f"{name}: tensor data differs from {fixture}.gguf")
                ref_acc = json.load(open(os.path.join(FIXTURES, fixture, "accuracy.json")))
            entry["variants"] = {}
            for v in variants:
                r = run_mnist_eval(v, name, tmp, images, labels)
                if loads:
                    if r["exit_status"] != 0 or "accuracy" not in r:
                        failures.append(f"{name} {v}: mnist-eval failed ({r['exit']}): {r['stderr'][-3:]}")
                    else:
                        r["accuracy_minus_pytorch"] = round(r["accuracy"] - entry["pytorch"]["test_accuracy"], 6)
                    if ref_acc and v in ref_acc["variants"]:
                        rp = [s for s in ref_acc["variants"][v]["mnist_eval_printed"]]
                        got = [l.split("main: ", 1)[1] for l in r["printed"]]
                        r["gguf_py_file_printed"] = rp
                        r["same_as_gguf_py_file"] = got == rp
                        if got != rp:
                            failures.append(f"{name} {v}: mnist-eval printed {got}, on the gguf-py file {rp}")
                else:
                    if r["exit_status"] == 0 or "assertion" not in r:
                        failures.append(f"{name} {v}: expected mnist-eval to refuse it, got {r['exit']} {r['printed']}")
                entry["variants"][v] = r
            result["files"][name] = entry

            # parity-ggml-mnist: node dumps of the first images and full-test-set logits vs the reference file
            if fixture and t in ("f32", "f16"):
                v = "generic"
                d_mine, lg_mine, sm = run_ours(v, path, images, labels, tmp, DUMP_IMAGES)
                _, lg_ref, _ = run_ours(v, refs[fixture], images, labels, tmp)
                nodes_ref = json.load(open(os.path.join(FIXTURES, fixture, "nodes.json")))
                dumped = {n["name"]: n for n in json.load(open(os.path.join(d_mine, "nodes.json")))["nodes"]}
                nodes = {}
                for n in nodes_ref["nodes"]:
                    k = min(DUMP_IMAGES, n["images"])
                    per = int(np.prod(n["ne"][:-1]))
                    a = np.fromfile(os.path.join(d_mine, dumped[n["name"]]["file"]), dtype="<f4")[:per * k]
                    b = np.fromfile(os.path.join(FIXTURES, fixture, n["file"]), dtype="<f4")[:per * k]
                    same = a.tobytes() == b.tobytes()
                    nodes[n["name"]] = {"images_compared": k, "values_compared": int(a.size), "bit_identical": same,
                                        "max_abs_diff": float(np.max(np.abs(a.astype(np.float64) - b))) if a.size == b.size else None}
                all_same = all(x["bit_identical"] for x in nodes.values())
                logits_same = lg_mine.tobytes() == lg_ref.tobytes()
                rec = {"tool": f"parity-ggml-mnist ({v} build, --threads 1, --dump-images {DUMP_IMAGES})",
                       "compared_with": f"Fixtures/ggml/{fixture}/<node>.f32 (the same program on the gguf-py-written file)",
                       "nodes": nodes, "all_bit_identical": all_same,
                       "accuracy": sm["accuracy"], "loss": sm["loss_ggml"],
                       "logits_10000_images_bit_identical_to_reference_file": logits_same,
                       "stored": None}
                if not all_same:
                    dest = os.path.join(out, f"{model}-{t}")
                    shutil.rmtree(dest, ignore_errors=True)
                    os.makedirs(dest)
                    for n in nodes_ref["nodes"]:
                        k = min(DUMP_IMAGES, n["images"])
                        per = int(np.prod(n["ne"][:-1]))
                        np.fromfile(os.path.join(d_mine, dumped[n["name"]]["file"]), dtype="<f4")[:per * k].tofile(
                            os.path.join(dest, n["file"]))
                    rec["stored"] = f"{model}-{t}/<node>.f32, first {DUMP_IMAGES} images (ne as in the fixture's nodes.json, last axis {DUMP_IMAGES})"
                    failures.append(f"{name}: node dumps differ from Fixtures/ggml/{fixture} although the tensor data is identical")
                if not logits_same:
                    failures.append(f"{name}: parity-ggml-mnist logits differ from those on {fixture}.gguf")
                result["node_dumps"][name] = rec
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result["passed"] = not failures
    result["failures"] = failures
    with open(os.path.join(out, "accuracy.json"), "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")

    print(f"{'file':24s} {'variant':8s} {'result':42s} PyTorch")
    for name, e in result["files"].items():
        for v, r in e["variants"].items():
            if "accuracy" in r:
                s = f"acc {100 * r['accuracy']:.2f}% loss {r['loss']:.6f}" + (
                    " (= gguf-py file)" if r.get("same_as_gguf_py_file") else "")
            else:
                s = f"refused, {r['exit']}"
            print(f"{name:24s} {v:8s} {s:42s} {100 * e['pytorch']['test_accuracy']:.2f}%")
            if "assertion" in r and v == variants[0]:
                print(f"    {r['assertion']}")
    for name, rec in result["node_dumps"].items():
        print(f"{name}: parity-ggml-mnist node dumps (first {DUMP_IMAGES} images) bit-identical to the gguf-py fixture: "
              f"{rec['all_bit_identical']}; logits (10,000 images) bit-identical: "
              f"{rec['logits_10000_images_bit_identical_to_reference_file']}")
    for fl in failures:
        print("FAIL " + fl)
    print(f"wrote {os.path.relpath(os.path.join(out, 'accuracy.json'), ROOT)}; " + ("all expectations held" if not failures else f"{len(failures)} failures"))
    sys.exit(0 if not failures else 1)


if __name__ == "__main__":
    main()
