#!/usr/bin/python3
"""Regenerate MODEL_DIR/golden.h5 from MODEL_DIR/config.json + model.safetensors with PyTorch forward hooks.

    /usr/bin/python3 tools/regen_goldens.py golden/fmnist-cnn [--replace] [--count 64]
    /usr/bin/python3 tools/regen_goldens.py path/to/your-model      # any model its config.json describes

MODEL_DIR may be any reference directory: the model is built from config.json's "layers" list (Conv2d, ReLU,
MaxPool2d, Flatten, Linear, run in list order; tools/parity_models.py ConfigSequential) and the weights must
load into it with load_state_dict(strict=True). Inputs are Fashion-MNIST test images reshaped to the config's
"input" shape. The bundled models are recorded the same way.

Never replaces an existing golden.h5 silently: the new file is written next to it, a per-dataset diff is
printed, and the old file is replaced only with --replace (and only if something changed). Without
--replace, exit status 1 means the regenerated data differs from the existing golden. The output is
deterministic: only the root attribute `created` differs between runs on the same weights.
See golden/README.md for the file layout.
"""

import argparse
import copy
import datetime
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_models as pm  # noqa: E402
# diff_goldens is re-exported: tools/minilm/record_goldens.py imports it from here.
from golden_file import diff_goldens, install_golden, temporary_golden  # noqa: E402,F401

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INPUT_PATH = "/inputs/images"
LAYOUTS = {4: "NCHW", 3: "NCL", 2: "NC"}
COMPRESS_ABOVE_BYTES = 1024


def capture(model, x):
    """Run `model` on `x`, hooking every leaf module.

    Returns [(name, module, input_path, output array)] in forward order. A forward pre-hook checks that
    each module's input is the very tensor produced by the previous step (the model input or an earlier
    module's output) and that it is bit-identical to the copy that is written, so the `input` attribute
    of every activation dataset is proven, not assumed.
    """
    produced = [(INPUT_PATH, x, x.numpy().copy())]  # (HDF5 path, live tensor, copy as written)
    records = []
    input_paths = {}

    def pre_hook(name):
        def hook(module, inputs):
            if name in input_paths:
                raise RuntimeError(f"{name} ran twice; one dataset per module cannot describe that")
            tensor = inputs[0]
            for path, live, stored in reversed(produced):
                if tensor is live:
                    if tensor.detach().numpy().tobytes() != stored.tobytes():
                        raise RuntimeError(f"{name}: input is {path} but no longer bit-identical to it")
                    input_paths[name] = path
                    return
            raise RuntimeError(f"{name}: input is not the model input nor any hooked module's output")
        return hook

    def forward_hook(name):
        def hook(module, inputs, output):
            stored = output.detach().numpy().copy()  # a copy: later in-place ops must not alter it
            produced.append((f"/activations/{name}", output, stored))
            records.append((name, module, input_paths[name], stored))
        return hook

    handles = []
    for name, module in pm.leaf_modules(model):
        handles.append(module.register_forward_pre_hook(pre_hook(name)))
        handles.append(module.register_forward_hook(forward_hook(name)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    missing = {name for name, _ in pm.leaf_modules(model)} - {r[0] for r in records}
    if missing:
        raise RuntimeError(f"modules never ran: {sorted(missing)}")
    return records


def noise_floor(f32, f64):
    """(max |f32 - f64|, ||f32 - f64|| / ||f64||), computed in float64."""
    diff = f32.astype(np.float64) - f64
    norm = np.linalg.norm(f64)
    rel = np.linalg.norm(diff) / norm if norm > 0 else (0.0 if not diff.any() else float("inf"))
    return float(np.abs(diff).max()), float(rel)


def add_dataset(group, name, array, **attrs):
    """Create a dataset; gzip (level 4) + shuffle, chunked, when larger than 1 KiB."""
    options = {}
    if array.nbytes > COMPRESS_ABOVE_BYTES:
        options = {"chunks": True, "compression": "gzip", "compression_opts": 4, "shuffle": True}
    dataset = group.create_dataset(name, data=array, track_times=False, **options)
    for key, value in attrs.items():
        dataset.attrs[key] = value
    return dataset


def write_golden(path, config, model, weights_sha256, generator, images, labels, count):
    """Write the golden file; return [(module, op, input path, noise max abs, noise rel l2)]."""
    x = pm.model_input(config, images[:count])
    records = capture(model, x)
    # The noise floor: the whole model re-run in float64 on the (exactly representable) float64 input.
    records64 = capture(copy.deepcopy(model).double(), x.double())
    if [(r[0], r[2]) for r in records] != [(r[0], r[2]) for r in records64]:
        raise RuntimeError("float32 and float64 runs visited modules differently")

    with h5py.File(path, "w") as f:
        f.attrs["format"] = "parity-golden"
        f.attrs["format_version"] = np.int64(1)
        f.attrs["model"] = config["name"]
        f.attrs["reference_framework"] = pm.reference_framework()
        f.attrs["weights_sha256"] = weights_sha256
        f.attrs["generator"] = generator
        f.attrs["seed"] = np.int64(pm.training_seed(config))
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

        add_dataset(f.create_group("inputs"), "images", x.numpy(),
                    source=f"fashion-mnist t10k images 0..{count - 1}", layout=LAYOUTS[x.ndim])
        add_dataset(f, "labels", labels[:count].astype(np.int64),
                    source=f"fashion-mnist t10k labels 0..{count - 1}")
        activations = f.create_group("activations")
        rows = []
        for order, ((name, module, input_path, out), (_, _, _, out64)) in enumerate(zip(records, records64)):
            max_abs, rel_l2 = noise_floor(out, out64)
            rows.append((name, type(module).__name__, input_path, max_abs, rel_l2))
            add_dataset(activations, name, out, order=np.int64(order), op=type(module).__name__,
                        layout=LAYOUTS[out.ndim], input=input_path,
                        noise_floor_max_abs=np.float64(max_abs), noise_floor_rel_l2=np.float64(rel_l2))
        last = records64[-1]
        add_dataset(f.create_group("reference"), "logits_f64", last[3],
                    source=f"float64 re-run of the whole model (model.double() on the float64 input), "
                           f"output of {last[0]}", layout=LAYOUTS[last[3].ndim])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="reference directory with config.json and model.safetensors")
    parser.add_argument("--replace", action="store_true", help="replace an existing golden.h5 that differs")
    parser.add_argument("--count", type=int, default=64, help="number of test images (default 64)")
    parser.add_argument("--data-dir", default=pm.DEFAULT_DATA_DIR, help="Fashion-MNIST IDX directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    model_dir = os.path.abspath(args.model_dir)
    config, model, weights_path = pm.load_reference(model_dir)
    weights_sha256 = pm.sha256_file(weights_path)
    images, labels = pm.load_fashion_mnist("t10k", args.data_dir)
    if not 0 < args.count <= len(images):
        parser.error(f"--count must be in 1..{len(images)}")
    # The regenerating command, canonicalised (repo-relative, no --replace) so that it does not vary
    # with the working directory or with how the previous file was handled.
    shown_dir = os.path.relpath(model_dir, REPO) if model_dir.startswith(REPO + os.sep) else model_dir
    generator = f"tools/regen_goldens.py {shown_dir} --count {args.count}"

    golden = os.path.join(model_dir, "golden.h5")
    with temporary_golden(golden) as temp:
        rows = write_golden(temp, config, model, weights_sha256, generator, images, labels, args.count)
        print(f"{config['name']}: {len(rows)} hooked modules, {args.count} images")
        print(f"{'module':<10} {'op':<10} {'input':<22} {'noise max abs':>13} {'noise rel l2':>13}")
        for name, op, input_path, max_abs, rel_l2 in rows:
            print(f"{name:<10} {op:<10} {input_path:<22} {max_abs:>13.3e} {rel_l2:>13.3e}")
        return install_golden(golden, temp, args.replace)


if __name__ == "__main__":
    sys.exit(main())
