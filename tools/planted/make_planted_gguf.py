#!/usr/bin/env python3
"""Planted GGUF cases (1-10, 21, 22, 25), written OUTSIDE Parity with llama.cpp's gguf-py (GGUFWriter), then checked with
gguf-py's GGUFReader and run through ggml's own mnist-eval (full test set) and parity-ggml-mnist (per-node dumps
of the 64 golden images, compared later by finish_planted.py). Run by make_planted.sh in the gguf-py venv:

    .build-venv-fixtures/bin/python tools/planted/make_planted_gguf.py STAGING PART.json

Writes STAGING/<case file> for every case and PART.json (the cases with their checks). Deterministic: gguf-py
writes no timestamps, and every array is a pure function of golden/<model>/model.safetensors.
"""
import gzip
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import planted_common as pc  # noqa: E402

GGML_BUILD = os.path.join(pc.ROOT, ".build-ggml")
GGML_VARIANT = "generic"  # the primary variant of Fixtures/ggml (ggml's scalar C code)


def cnn_correct(w):
    """make_reference_gguf.py's layout: (name, array, raw_dtype)."""
    return [
        ("conv1.kernel", w["conv1.weight"], None),                   # (8,1,3,3)  -> ne [3,3,1,8]
        ("conv1.bias", w["conv1.bias"].reshape(1, 8, 1, 1), None),   # -> ne [1,1,8,1]
        ("conv2.kernel", w["conv2.weight"], None),                   # (16,8,3,3) -> ne [3,3,8,16]
        ("conv2.bias", w["conv2.bias"].reshape(1, 16, 1, 1), None),  # -> ne [1,1,16,1]
        ("dense.weight", pc.dense_hwc(w["dense.weight"]), None),     # (10,784)   -> ne [784,10]
        ("dense.bias", w["dense.bias"], None),                       # -> ne [10]
    ]


def mlp_f16_correct(w):
    return [
        ("fc1.weight", w["fc1.weight"].astype(np.float16), None),  # (500,784) -> ne [784,500] F16
        ("fc1.bias", w["fc1.bias"], None),                         # ne [500] F32
        ("fc2.weight", w["fc2.weight"].astype(np.float16), None),  # (10,500)  -> ne [500,10] F16
        ("fc2.bias", w["fc2.bias"], None),                         # ne [10] F32
    ]


def replace(tensors, name, array, raw_dtype=None):
    out, hit = [], 0
    for n, a, r in tensors:
        if n == name:
            out.append((n, array, raw_dtype))
            hit += 1
        else:
            out.append((n, a, r))
    assert hit == 1, name
    return out


def build(cid, cnn, mlp):
    """The tensors of case `cid` (exactly one differs from the correct conversion, except for 1 and 2)."""
    c = cnn_correct(cnn)
    m = mlp_f16_correct(mlp)
    if cid == 1:
        return c
    if cid == 2:
        return m
    if cid == 3:
        return replace(c, "dense.weight", cnn["dense.weight"])
    if cid == 4:
        return replace(c, "conv1.kernel", cnn["conv1.weight"].transpose(0, 1, 3, 2))
    if cid == 5:
        return replace(c, "conv2.kernel", cnn["conv2.weight"][:, :, ::-1, ::-1])
    if cid == 6:
        return replace(c, "conv2.bias", np.zeros((1, 16, 1, 1), dtype=np.float32))
    if cid == 7:
        return replace(c, "dense.bias", cnn["dense.bias"] * np.float32(2))
    if cid == 8:
        return replace(c, "conv1.kernel", cnn["conv1.weight"] * np.float32(2))
    if cid == 9:
        f16 = pc.dense_hwc(cnn["dense.weight"]).astype(np.float16)
        return replace(c, "dense.weight", f16.view(np.uint16), T.BF16)
    if cid == 10:
        return replace(m, "fc2.weight", mlp["fc2.weight"].T.astype(np.float16))
    if cid == 21:
        ohwi = np.ascontiguousarray(cnn["conv2.weight"].transpose(0, 2, 3, 1))  # MLX's [16,3,3,8]
        return replace(c, "conv2.kernel", ohwi.reshape(16, 8, 3, 3))
    if cid == 22:
        return c
    if cid == 25:
        return c + [("conv1.running_var", np.ones(8, dtype=np.float32), None)]
    raise ValueError(cid)


def write_gguf(path, arch, tensors):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = gguf.GGUFWriter(path, arch)  # general.architecture only, as make_reference_gguf.py
    for name, array, raw_dtype in tensors:
        array = np.ascontiguousarray(array)
        if raw_dtype is None:
            writer.add_tensor(name, array)
        else:
            writer.add_tensor(name, array, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def read_back(path, tensors):
    """gguf-py's GGUFReader: does it read the file, and are names / ne / bytes what was written?"""
    try:
        reader = gguf.GGUFReader(path)
        arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
        got = {t.name: t for t in reader.tensors}
        listing = []
        for name, array, _ in tensors:
            t = got[name]
            ne = [int(d) for d in t.shape]
            assert ne == list(reversed(array.shape)), (name, ne, array.shape)
            assert bytes(t.data.tobytes()) == np.ascontiguousarray(array).tobytes(), name
            listing.append({"name": name, "type": t.tensor_type.name, "ne": ne})
        assert len(got) == len(tensors)
        return {"gguf_py_reads": True, "gguf_py_error": None, "architecture": arch, "tensors": listing}
    except Exception as e:  # recorded, not fatal: whether gguf-py reads it is the point
        return {"gguf_py_reads": False, "gguf_py_error": f"{type(e).__name__}: {e}"}


def idx_files(staging):
    data = os.path.join(GGML_BUILD, "data")
    names = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if all(os.path.exists(os.path.join(data, n)) for n in names):
        return [os.path.join(data, n) for n in names]
    out = []
    for n in names:
        dst = os.path.join(staging, "_data", n)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with gzip.open(os.path.join(pc.DATA_DIR, n + ".gz"), "rb") as f, open(dst, "wb") as g:
            shutil.copyfileobj(f, g)
        out.append(dst)
    return out


def first_images(staging, images, labels, n=500):
    """The first n test images/labels as IDX files (one physical batch of 500 for the node dumps)."""
    out = []
    for src, header, item in ((images, 16, 784), (labels, 8, 1)):
        with open(src, "rb") as f:
            data = bytearray(f.read(header + n * item))
        data[4:8] = n.to_bytes(4, "big")
        dst = os.path.join(staging, "_data", f"first{n}-" + os.path.basename(src))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(bytes(data))
        out.append(dst)
    return out


def failure_line(stderr):
    """The GGML_ASSERT / error line of a failed run (no addresses, no timings)."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip()]
    for l in lines:
        if "GGML_ASSERT" in l or "failed" in l.lower() or "error" in l.lower():
            return re.sub(r"^.*?/(examples/mnist/|tools/ggml/)", r"\1", l)
    return lines[-1] if lines else ""


def run_mnist_eval(path, images, labels):
    exe = os.path.join(GGML_BUILD, "build-" + GGML_VARIANT, "bin", "mnist-eval")
    if not os.access(exe, os.X_OK):
        return {"ran": False, "reason": f"{os.path.relpath(exe, pc.ROOT)} not built (tools/ggml/build-ggml.sh)"}
    r = subprocess.run([exe, path, images, labels], capture_output=True, text=True)
    res = {"ran": True, "binary": os.path.relpath(exe, pc.ROOT), "test_images": 10000, "rc": r.returncode}
    m_acc = re.search(r"test_acc=([0-9.]+)\+-([0-9.]+)%", r.stdout)
    m_loss = re.search(r"test_loss=([0-9.]+)\+-([0-9.]+)", r.stdout)
    if r.returncode == 0 and m_acc and m_loss:
        res.update({"loads": True, "accuracy": round(float(m_acc.group(1)) / 100, 6), "loss": float(m_loss.group(1)),
                    "printed": f"test_loss={m_loss.group(1)}+-{m_loss.group(2)} test_acc={m_acc.group(1)}+-{m_acc.group(2)}%"})
    else:
        res.update({"loads": False, "error": failure_line(r.stderr)})
    return res


def run_dump(path, images, labels, dump_dir):
    """parity-ggml-mnist (mnist-common.cpp's loader and graph, 1 thread): node dumps of the first 64 test
    images (= golden.h5 /inputs/images); finish_planted.py compares them with the goldens."""
    exe = os.path.join(GGML_BUILD, "build-" + GGML_VARIANT, "bin", "parity-ggml-mnist")
    if not os.access(exe, os.X_OK):
        return {"ran": False, "reason": f"{os.path.relpath(exe, pc.ROOT)} not built"}
    os.makedirs(dump_dir, exist_ok=True)
    r = subprocess.run([exe, path, images, labels, "--threads", "1", "--dump", dump_dir, "--dump-images", "64"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"ran": True, "loads": False, "rc": r.returncode, "error": failure_line(r.stderr)}
    return {"ran": True, "loads": True, "dump_dir": dump_dir}


def main():
    staging, part = sys.argv[1], sys.argv[2]
    cnn, mlp = pc.reference_weights("fmnist-cnn"), pc.reference_weights("fmnist-mlp")
    images, labels = idx_files(staging)
    images500, labels500 = first_images(staging, images, labels)
    cases = []
    for case in pc.case_dicts("gguf"):
        path = os.path.join(staging, case["file"])
        tensors = build(case["id"], cnn, mlp)
        write_gguf(path, pc.ARCH[case["model"]], tensors)
        case["written_with"] = f"gguf-py {version('gguf')} GGUFWriter (numpy {np.__version__})"
        case["files"] = pc.files_info(path)
        case["gguf_py"] = read_back(path, tensors)
        case["mnist_eval"] = run_mnist_eval(path, images, labels)
        case["ggml_dump"] = run_dump(path, images500, labels500, os.path.join(staging, "_dumps", str(case["id"])))
        cases.append(case)
        ev = case["mnist_eval"]
        print(f"gguf case {case['id']:2d} {case['file']:45s} gguf-py reads: {case['gguf_py']['gguf_py_reads']}  "
              f"mnist-eval: {ev.get('accuracy', ev.get('error', ev.get('reason')))}", flush=True)
    pc.write_json(part, cases)


if __name__ == "__main__":
    main()
