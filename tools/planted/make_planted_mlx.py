#!/usr/bin/env python3
"""Planted MLX cases (11-20, 23, 24, 26), written OUTSIDE Parity with real MLX (mx.save_safetensors / mx.savez), then loaded
the way mlx-lm does (tools/mlx/models.py: mx.load, model.load_weights(strict=True)) and, when MLX accepts them,
run on the 64 golden images (per layer, against golden.h5) and on the full test set. Run by make_planted.sh in
the MLX venv:

    .build-venv-mlx/bin/python tools/planted/make_planted_mlx.py STAGING PART.json

Writes STAGING/<case file> (a directory with config.json + model.safetensors, or a .npz) and PART.json.
"""
import json
import os
import platform
import sys

import h5py
import mlx.core as mx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import planted_common as pc  # noqa: E402

sys.path.insert(0, os.path.join(pc.ROOT, "tools", "mlx"))
import models  # noqa: E402  (the mlx.nn port of both models: the correct MLX layout)


def cnn_correct(w):
    return {
        "conv1.weight": np.ascontiguousarray(w["conv1.weight"].transpose(0, 2, 3, 1)),  # OIHW -> OHWI [8,3,3,1]
        "conv1.bias": w["conv1.bias"],
        "conv2.weight": np.ascontiguousarray(w["conv2.weight"].transpose(0, 2, 3, 1)),  # [16,3,3,8]
        "conv2.bias": w["conv2.bias"],
        "dense.weight": pc.dense_hwc(w["dense.weight"]),                                 # [10,784], (h,w,c) columns
        "dense.bias": w["dense.bias"],
    }


def mlp_f16_correct(w):
    return {k: w[k].astype(np.float16) for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")}


def build(cid, cnn, mlp):
    c = cnn_correct(cnn)
    changed = None
    if cid in (11, 12):
        return c
    if cid == 13:
        changed = ("dense.weight", np.ascontiguousarray(c["dense.weight"].T))
    elif cid == 14:
        changed = ("dense.weight", cnn["dense.weight"])
    elif cid == 15:
        changed = ("conv2.weight", cnn["conv2.weight"])
    elif cid == 16:
        changed = ("conv1.weight", np.ascontiguousarray(c["conv1.weight"].transpose(0, 2, 1, 3)))
    elif cid == 17:
        changed = ("dense.bias", np.zeros(10, dtype=np.float32))
    elif cid == 18:
        changed = ("conv2.weight", c["conv2.weight"] * np.float32(0.5))
    elif cid == 20:
        changed = ("conv2.weight", np.ascontiguousarray(cnn["conv2.weight"]).reshape(16, 3, 3, 8))
    elif cid == 23:
        return c
    elif cid == 24:
        c = dict(c)
        c["conv1.running_var"] = np.ones(8, dtype=np.float32)
        return c
    elif cid == 26:
        changed = ("dense.weight", np.ascontiguousarray(c["dense.weight"].T).reshape(10, 784))
    elif cid == 19:
        c = mlp_f16_correct(mlp)
        changed = ("fc1.bias", c["fc1.bias"] * np.float16(2))
    else:
        raise ValueError(cid)
    assert changed[0] in c
    c = dict(c)
    c[changed[0]] = changed[1]
    return c


def mlx_config(model):
    config = {"model_type": pc.ARCH[model]}  # first, as mlx-lm configs have it
    config.update(pc.reference_config(model))
    return config


def write_case(path, model, weights):
    arrays = {k: mx.array(v) for k, v in sorted(weights.items())}
    if path.endswith(".npz"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mx.savez(path, **arrays)
        return
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(mlx_config(model), f, indent=2, ensure_ascii=False)
        f.write("\n")
    mx.save_safetensors(os.path.join(path, "model.safetensors"), arrays, metadata={"format": "mlx"})


def evaluate(path, model, golden, test):
    res = {}
    try:
        models.read_weights(path)  # mx.load: can MLX read the file at all?
        res["mx_load_reads"] = True
    except Exception as e:
        return {"mx_load_reads": False, "mlx_loads": False, "mlx_error": f"{type(e).__name__}: {e}"}
    try:
        m, _, info = models.load_mlx(path, config=mlx_config(model), strict=True)
    except Exception as e:
        res.update({"mlx_loads": False, "mlx_error": f"{type(e).__name__}: {e}"})
        return res
    res["mlx_loads"] = True
    res["mlx_error"] = None
    res["mlx_tensors"] = info["tensors"]
    outs = models.run_layers(m, mx.array(models.nchw_to_nhwc(golden["images"])))
    layers = {}
    for name, y in outs:
        a = models.to_reference_layout(name, y, m).astype(np.float64)
        g = golden["acts"][name].astype(np.float64)
        layers[name] = {"rel_l2": float(np.linalg.norm(a - g) / np.linalg.norm(g)),
                        "max_abs": float(np.max(np.abs(a - g)))}
    logits = models.to_reference_layout(outs[-1][0], outs[-1][1], m)
    pred = logits.argmax(1)
    res["mlx_accuracy"] = float(np.mean(pred == golden["labels"]))
    res["mlx_correct_of_64"] = int(np.sum(pred == golden["labels"]))
    res["mlx_argmax_agrees_with_golden_of_64"] = int(np.sum(pred == golden["acts"][outs[-1][0]].argmax(1)))
    res["mlx_layers_vs_golden"] = layers
    images, labels = test
    preds = []
    for i in range(0, len(images), 1000):
        out = m(mx.array(models.nchw_to_nhwc(images[i:i + 1000])))
        preds.append(np.array(out.astype(mx.float32)).argmax(1))
    res["mlx_accuracy_test10k"] = float(np.mean(np.concatenate(preds) == labels))
    return res


def load_into(path, model):
    """What MLX says when `model`'s mlx.nn port loads these weights (strict): the wrong file for that model."""
    weights, _ = models.read_weights(path)
    m = models.build_model(mlx_config(model))
    try:
        m.load_weights(list(weights.items()), strict=True)
        return {"model": model, "mlx_loads": True, "mlx_error": None}
    except Exception as e:
        return {"model": model, "mlx_loads": False, "mlx_error": f"{type(e).__name__}: {e}"}


def main():
    staging, part = sys.argv[1], sys.argv[2]
    mx.set_default_device(mx.cpu)
    cnn, mlp = pc.reference_weights("fmnist-cnn"), pc.reference_weights("fmnist-mlp")
    goldens = {}
    for model in ("fmnist-cnn", "fmnist-mlp"):
        with h5py.File(os.path.join(pc.golden_dir(model), "golden.h5"), "r") as f:
            goldens[model] = {"images": np.asarray(f["inputs/images"][()], dtype=np.float32),
                              "labels": f["labels"][()],
                              "acts": {k: f["activations"][k][()] for k in f["activations"]}}
    test = pc.idx_test_set()
    cases = []
    for case in pc.case_dicts("mlx"):
        path = os.path.join(staging, case["file"])
        write_case(path, case["model"], build(case["id"], cnn, mlp))
        case["written_with"] = (f"mlx {mx.__version__} " + ("mx.savez" if path.endswith(".npz") else
                                "mx.save_safetensors(metadata={format: mlx}) + config.json")
                                + f" (numpy {np.__version__}, Python {platform.python_version()})")
        case["files"] = pc.files_info(path)
        case["mlx_load"] = ("models.load_mlx: mx.load, build_model(config), "
                            "model.load_weights(list(weights.items()), strict=True)"
                            + ("; config = golden/fmnist-cnn/config.json + model_type (an .npz has none)"
                               if path.endswith(".npz") else ""))
        case.update(evaluate(path, case["model"], goldens[case["model"]], test))
        if "checked_against" in case:
            case["mlx_against_checked_model"] = load_into(path, case["checked_against"])
        cases.append(case)
        print(f"mlx  case {case['id']:2d} {case['file']:45s} loads: {case['mlx_loads']}  "
              f"{case.get('mlx_accuracy', case.get('mlx_error'))}", flush=True)
    pc.write_json(part, cases)


if __name__ == "__main__":
    main()
