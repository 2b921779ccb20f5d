#!/usr/bin/env python3
"""Merges the two parts into expected.json and prints the summary table. Run by make_planted.sh in the MLX venv
(numpy + h5py; it also compares the ggml node dumps of make_planted_gguf.py with golden.h5):

    .build-venv-mlx/bin/python tools/planted/finish_planted.py GGUF_PART.json MLX_PART.json ST_PART.json OUT/expected.json

A layer counts as "off" in a runtime when its rel L2 against the golden exceeds OFF_REL_L2 (1e-3): the correct
files stay below 2e-4 in both runtimes (float16 MLP weights included: 1.5e-4), every planted mistake is above
5e-3 (the smallest: a dense bias zeroed or doubled, 5.1e-3, because the bias is small next to the logits).
The script stops if a runtime's first off layer is not the layer the case names.
"""
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import planted_common as pc  # noqa: E402

OFF_REL_L2 = 1e-3
LAYERS = {"fmnist-cnn": ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "dense"],
          "fmnist-mlp": ["fc1", "relu1", "fc2"]}  # the ggml nodes (mnist-fc's flatten is a no-op reshape)


def ggml_layers(case, acts):
    """Node dumps (ggml memory order, 64 images) against the golden activations (PyTorch layout)."""
    dump = case["ggml_dump"]["dump_dir"]
    out = {}
    for name in LAYERS[case["model"]]:
        g = acts[name].astype(np.float64)
        a = np.fromfile(os.path.join(dump, name + ".f32"), dtype="<f4").astype(np.float64)
        if name == "flatten":  # ggml's flatten is (h,w,c); the golden's (c,h,w)
            a = a.reshape(-1, 7, 7, 16).transpose(0, 3, 1, 2).reshape(g.shape)
        else:  # conv/pool ne [W,H,C,N] = NCHW memory; 2-D ne [F,N] = [N,F]
            a = a.reshape(g.shape)
        out[name] = {"rel_l2": float(np.linalg.norm(a - g) / np.linalg.norm(g)), "max_abs": float(np.max(np.abs(a - g)))}
    return out


def bf16_emulation(cnn_acts):
    """Case 9 aborts in ggml (mnist-cnn asserts F32): what a runtime that accepts BF16 would compute, in numpy.
    The float16 bit patterns read as bfloat16 shrink the weights by ~1e-11, so the logits are ~ the bias."""
    w = pc.reference_weights("fmnist-cnn")
    dense = pc.dense_hwc(w["dense.weight"])
    as_bf16 = (dense.astype(np.float16).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    flat = cnn_acts["flatten"].reshape(-1, 16, 7, 7).transpose(0, 2, 3, 1).reshape(-1, 784)
    y = flat.astype(np.float64) @ as_bf16.T.astype(np.float64) + w["dense.bias"]
    g = cnn_acts["dense"].astype(np.float64)
    return {"how": "numpy: golden flatten (in (h,w,c) order) @ (the stored uint16 patterns decoded as bfloat16).T + "
                   "dense.bias, float64",
            "weight_max_abs_decoded": float(np.abs(as_bf16).max()), "weight_max_abs_intended": float(np.abs(dense).max()),
            "dense_rel_l2": float(np.linalg.norm(y - g) / np.linalg.norm(g)),
            "correct_of_64": int(np.sum(y.argmax(1) == cnn_acts["_labels"]))}


def first_off(layers):
    for name, m in layers.items():
        if not (m["rel_l2"] <= OFF_REL_L2):
            return name
    return None


def carry_over_ggml_columns(cases):
    """ggml's binaries are optional. When they were not built on this run, a GGUF case whose file is
    byte-identical (same SHA-256) to the one in the committed expected.json keeps the ggml results recorded
    then, marked as such; a new or changed file says "not run". Nothing is claimed that was not run."""
    path = os.path.join(pc.FIXTURES, "expected.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        previous = {c["id"]: c for c in json.load(f)}
    for c in cases:
        if c["format"] != "gguf" or c["mnist_eval"].get("ran"):
            continue
        p = previous.get(c["id"])
        if p and p["files"] == c["files"] and p.get("mnist_eval", {}).get("ran"):
            c["mnist_eval"], c["ggml_dump"] = p["mnist_eval"], p["ggml_dump"]
            c["ggml_columns"] = p.get("ggml_columns", "carried over from an earlier run of make_planted.sh with ggml built: the "
                                      "file's SHA-256 is unchanged and ggml was not built on the latest run")


def main():
    *parts, out = sys.argv[1:]
    cases = []
    for part in parts:
        with open(part) as f:
            cases += json.load(f)
    acts = {}
    for model in LAYERS:
        with h5py.File(os.path.join(pc.golden_dir(model), "golden.h5"), "r") as f:
            acts[model] = {k: f["activations"][k][()] for k in f["activations"]}
            acts[model]["_labels"] = f["labels"][()]

    carry_over_ggml_columns(cases)
    for c in cases:
        if c["format"] == "gguf":
            d = c["ggml_dump"]
            if d.get("loads") and "dump_dir" in d:
                dump = d["dump_dir"]
                d["program"] = ("parity-ggml-mnist (mnist-common.cpp's loader and graph on ggml 0.15.3, generic build, "
                                "1 thread), 64 golden images")
                d["layers_vs_golden"] = ggml_layers(c, acts[c["model"]])
                d["first_layer_off"] = first_off(d["layers_vs_golden"])
                last = LAYERS[c["model"]][-1]
                logits = np.fromfile(os.path.join(dump, last + ".f32"), dtype="<f4").reshape(64, 10)
                d["correct_of_64"] = int(np.sum(logits.argmax(1) == acts[c["model"]]["_labels"]))
                del d["dump_dir"]
        elif c.get("mlx_loads"):
            c["mlx_first_layer_off"] = first_off(c["mlx_layers_vs_golden"])
        if c["diagnosis"] == "dtype-f16-as-bf16":
            c["if_a_runtime_accepted_bf16"] = bf16_emulation(acts["fmnist-cnn"])
        # consistency of the planted label with what the runtime shows, when the runtime runs the file
        seen = c["ggml_dump"].get("first_layer_off", "n/a") if c["format"] == "gguf" and c["ggml_dump"].get("loads") \
            else c.get("mlx_first_layer_off", "n/a") if c["format"] == "mlx" and c.get("mlx_loads") else "n/a"
        if seen != "n/a" and seen != c["layer"]:
            sys.exit(f"case {c['id']}: the runtime's first layer off is {seen}, the case says {c['layer']}")
    cases.sort(key=lambda c: c["id"])
    pc.write_json(out, cases)

    # summary table
    rows = [("#", "file", "layer", "diagnosis", "reader loads", "runtime loads", "runtime acc (64 golden, 10k test)", "first off", "bytes")]
    for c in cases:
        size = sum(v["bytes"] for v in c["files"].values())
        name = c["file"] + ("" if c["committed"] else "  (not committed)")
        if c["format"] == "gguf":
            ev = c["mnist_eval"]
            reader = "gguf-py yes" if c["gguf_py"]["gguf_py_reads"] else "gguf-py NO"
            if not ev.get("ran"):
                rl, acc = "not run", ""
            elif ev["loads"]:
                c64 = c["ggml_dump"].get("correct_of_64")
                rl, acc = "mnist-eval yes", (f"{c64}/64, " if c64 is not None else "") + f"{100 * ev['accuracy']:.2f} % (10k)"
            else:
                rl, acc = "mnist-eval ABORT", ev["error"][:60]
            off = c["ggml_dump"].get("first_layer_off", "-") or "none"
        elif c["format"] == "safetensors":
            reader = "safetensors yes"
            if "pytorch_loads" not in c:
                rl, acc = "not run", ""
            else:
                rl = "load_state_dict yes" if c["pytorch_loads"] else "load_state_dict NO"
                acc = (c["pytorch_error"] or "")[:60]
            off = "-"
        else:
            reader = "mx.load yes" if c["mx_load_reads"] else "mx.load NO"
            if c["mlx_loads"]:
                rl = "load_weights yes"
                acc = f"{c['mlx_correct_of_64']}/64, {100 * c['mlx_accuracy_test10k']:.2f} % (10k)"
                off = c["mlx_first_layer_off"] or "none"
            else:
                rl, acc, off = "load_weights NO", c["mlx_error"][:60], "-"
        rows.append((str(c["id"]), name, c["layer"] or "-", c["diagnosis"] or "null", reader, rl, acc, off, str(size)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    committed = sum(sum(v["bytes"] for v in c["files"].values()) for c in cases if c["committed"])
    print(f"committed case files: {committed} bytes; all cases: "
          f"{sum(sum(v['bytes'] for v in c['files'].values()) for c in cases)} bytes")


if __name__ == "__main__":
    main()
