#!/usr/bin/python3
"""Regenerate the bundled image models' goldens with the general recorder and require them bit for bit.

    /usr/bin/python3 tools/golden_recorder/check_bundled.py            # all; exit 0 only if every dataset is equal

For each model, the general recorder (tools/record_goldens_any.py) is given the model by import path, the committed
model.safetensors, and the inputs as a user would give them (a .npy of the first 64 Fashion-MNIST test images,
pixel / 255, and a .npy of their labels, written to a temporary directory). Its file is written to that directory
(the committed golden is never touched) and compared with the committed golden.h5:

- every dataset: dtype, shape and bytes equal (this is the requirement: exit 1 otherwise);
- every dataset's attributes (order, op, layout, input, noise floors, source) and HDF5 storage (chunks, gzip,
  shuffle): equal (also required);
- root attributes: listed when they differ. Expected differences, printed and not failed: `created` (the time),
  `generator` (the command is the general recorder's), and the general recorder's added provenance attributes
  (`recorder`, `torch_version`, `numpy_version`, `reference_module`, `reference_kwargs`, `source_sha256`,
  `inputs_sha256`). Any other root attribute that differs fails.

Models: fmnist-cnn and fmnist-mlp from their hand-written classes (parity_models:FashionCNN / FashionMLP, whose
forward() is their own code, not the config-driven ConfigSequential that recorded the committed files), and the
user model fixture user-mlp-256 from parity_models:ConfigSequential with its layer list as --kwargs.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(HERE)
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
import parity_models as pm  # noqa: E402
from golden_recorder import recorder as rec  # noqa: E402

EXPECTED_ROOT_DIFFERENCES = {"created", "generator", "recorder", "torch_version", "numpy_version", "reference_module",
                             "reference_kwargs", "source_sha256", "inputs_sha256"}

MODELS = [
    # (committed directory, --module, --kwargs from config.json or None)
    ("golden/fmnist-cnn", "parity_models:FashionCNN", None),
    ("golden/fmnist-mlp", "parity_models:FashionMLP", None),
    ("Tests/ParityTests/Fixtures/user-mlp-256", "parity_models:ConfigSequential", "layers"),
]


def check(model_dir, module, kwargs_key, scratch):
    directory = os.path.join(REPO, model_dir)
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    images, labels = pm.load_fashion_mnist("t10k")
    count = 64  # what the committed goldens hold (their generator says --count 64)
    inputs, labels_path = os.path.join(scratch, "images.npy"), os.path.join(scratch, "labels.npy")
    np.save(inputs, pm.model_input(config, images[:count]).numpy())
    np.save(labels_path, labels[:count].astype(np.int64))
    out = os.path.join(scratch, "golden.h5")
    command = [sys.executable, os.path.join(TOOLS, "record_goldens_any.py"), "--module", module,
               "--weights", os.path.join(directory, "model.safetensors"), "--inputs", inputs, "--input-name", "images",
               "--input-source", f"fashion-mnist t10k images 0..{count - 1}", "--labels", labels_path,
               "--labels-source", f"fashion-mnist t10k labels 0..{count - 1}", "--name", config["name"],
               "--seed", str(pm.training_seed(config)), "--out", out]
    if kwargs_key:
        command += ["--kwargs", json.dumps({kwargs_key: config[kwargs_key]})]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        return False
    rows, root = rec.compare_files(os.path.join(directory, "golden.h5"), out)
    ok = True
    print(f"\n{model_dir}/golden.h5 vs the general recorder ({module}):")
    print(f"  {'dataset':<28} {'bytes':<10} {'attributes':<11} storage")
    for name, equal, attrs, stores in rows:
        print(f"  {name:<28} {'equal' if equal else 'DIFFERENT':<10} {'equal' if not attrs else 'DIFFERENT':<11} "
              f"{'equal' if not stores else 'DIFFERENT'}")
        for line in attrs + stores:
            print("      " + line)
        ok &= equal and not attrs and not stores
    for key, (old, new) in root.items():
        expected = key in EXPECTED_ROOT_DIFFERENCES
        print(f"  root @{key}: {old!r} -> {new!r}" + ("" if expected else "   UNEXPECTED"))
        ok &= expected
    print(f"  {model_dir}: {len(rows)} datasets, " + ("all bit for bit equal" if ok else "NOT EQUAL"))
    return ok


def main():
    results = []
    for model_dir, module, kwargs_key in MODELS:
        with tempfile.TemporaryDirectory(prefix="golden-check-") as scratch:
            results.append((model_dir, check(model_dir, module, kwargs_key, scratch)))
    print()
    for model_dir, ok in results:
        print(f"{model_dir}: {'PASS (every dataset, its attributes and storage bit for bit equal)' if ok else 'FAIL'}")
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
