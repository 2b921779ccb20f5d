#!/usr/bin/python3
"""Regenerate the bundled image models' goldens with the general recorder and require them bit for bit.

    /usr/bin/python3 tools/golden_recorder/check_bundled.py            # all; exit 0 only if every dataset is equal
    /usr/bin/python3 tools/golden_recorder/check_bundled.py tiny-llama # only the models whose directory ends so

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

format_version 2: tiny-llama (`--module transformers:LlamaForCausalLM --pretrained golden/tiny-llama` with the
committed prompts) and minilm-l6 (`--module transformers:BertModel --pretrained "$(tools/minilm/model-dir.sh)"` with
the committed sentences), recorded by .build-venv-llama's Python (Debian's torch 1.13 + transformers 4.46.3; make it
with tools/llama/setup-venvs.sh llama) and compared the same way: every dataset, its attributes and its storage
(including minilm-l6's virtual `same_as` datasets, read as their values) equal; root attributes other than `created`
and `generator` equal.
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


LLAMA_PYTHON = os.path.join(REPO, ".build-venv-llama", "bin", "python")

MODELS_V2 = [
    # (committed golden, the general recorder's arguments after the interpreter and the script)
    ("golden/tiny-llama", lambda: ["--module", "transformers:LlamaForCausalLM",
                                   "--pretrained", os.path.join(REPO, "golden/tiny-llama"),
                                   "--prompts", os.path.join(REPO, "golden/tiny-llama/prompts.txt"), "--tokens", "32"]),
    ("golden/minilm-l6", lambda: ["--module", "transformers:BertModel", "--pretrained", minilm_dir(),
                                  "--sentences", os.path.join(REPO, "golden/minilm-l6/sentences.txt"),
                                  "--node-sentences", "1", "--pad-to", "5"]),
]


def minilm_dir():
    result = subprocess.run([os.path.join(TOOLS, "minilm", "model-dir.sh")], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"tools/minilm/model-dir.sh: {result.stderr.strip()}")
    return result.stdout.strip()


def check_v2(model_dir, arguments, scratch):
    if not os.path.exists(LLAMA_PYTHON):
        print(f"{model_dir}: {LLAMA_PYTHON} is missing: run tools/llama/setup-venvs.sh llama")
        return False
    out = os.path.join(scratch, "golden.h5")
    command = [LLAMA_PYTHON, os.path.join(TOOLS, "record_goldens_any.py"), *arguments(), "--out", out]
    return compare(model_dir, command, out, command[3])


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
    return compare(model_dir, command, out, module)


def compare(model_dir, command, out, module):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        return False
    rows, root = rec.compare_files(os.path.join(REPO, model_dir, "golden.h5"), out)
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


def main(argv=None):
    only = (sys.argv[1:] if argv is None else argv)
    chosen = lambda model_dir: not only or any(model_dir.endswith(name) for name in only)  # noqa: E731
    results = []
    for model_dir, module, kwargs_key in MODELS:
        if chosen(model_dir):
            with tempfile.TemporaryDirectory(prefix="golden-check-") as scratch:
                results.append((model_dir, check(model_dir, module, kwargs_key, scratch)))
    for model_dir, arguments in MODELS_V2:
        if chosen(model_dir):
            with tempfile.TemporaryDirectory(prefix="golden-check-") as scratch:
                results.append((model_dir, check_v2(model_dir, arguments, scratch)))
    if not results:
        print(f"error: no bundled model matches {only}", file=sys.stderr)
        return 2
    print()
    for model_dir, ok in results:
        print(f"{model_dir}: {'PASS (every dataset, its attributes and storage bit for bit equal)' if ok else 'FAIL'}")
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
