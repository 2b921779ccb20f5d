#!/usr/bin/python3
"""Train Parity's reference models on Fashion-MNIST and write golden/<model>/{model.safetensors,config.json}.

    /usr/bin/python3 tools/train.py                 # both models, 5 epochs, seed 20261122
    /usr/bin/python3 tools/train.py fmnist-cnn --epochs 6
    /usr/bin/python3 tools/train.py --config my-model.json --out DIR [--epochs 2]

--config trains any sequential model a config.json "layers" list describes (name, input, layers: the
schema in golden/README.md; tools/parity_models.py ConfigSequential) and writes DIR/config.json (completed
with training and evaluation records) and DIR/model.safetensors; then record its goldens with
tools/regen_goldens.py DIR.

Deterministic on one thread: the model is initialised right after torch.manual_seed(seed) and every
epoch's shuffle comes from a torch.Generator seeded with the same seed.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_models as pm  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEARNING_RATE = 1e-3
BATCH_SIZE = 64


def evaluate(model, x, labels):
    """(accuracy, mean cross-entropy) over the whole set; the loss is averaged in float64."""
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    accuracy = (logits.argmax(1) == labels).double().mean().item()
    loss = F.cross_entropy(logits.double(), labels).item()
    return accuracy, loss


def train(name, epochs, seed, data_dir, spec=None, out_dir=None):
    """Train bundled model `name`, or — with `spec` (a config.json dict) — the sequential model it describes."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    if spec is None:
        architecture, model_class, min_accuracy = pm.MODELS[name]
        model = model_class()
        input_spec = {"name": "images", "shape": [1, 28, 28], "layout": "NCHW", "dtype": "float32",
                      "preprocessing": "pixel / 255 in [0, 1], no other normalisation "
                                       "(what ggml's mnist-eval feeds)"}
    else:
        architecture, min_accuracy = spec.get("architecture", "sequential"), spec.get("min_accuracy", 0.0)
        model = pm.ConfigSequential(spec["layers"])
        input_spec = spec["input"]

    train_images, train_labels = pm.load_fashion_mnist("train", data_dir)
    test_images, test_labels = pm.load_fashion_mnist("t10k", data_dir)
    shape_config = {"input": input_spec}
    x_train, y_train = pm.model_input(shape_config, train_images), torch.from_numpy(train_labels.astype(np.int64))
    x_test, y_test = pm.model_input(shape_config, test_images), torch.from_numpy(test_labels.astype(np.int64))

    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(seed)
    seconds = 0.0  # training only; the per-epoch test evaluation is not counted
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total_loss = 0.0
        for i in range(0, len(order), BATCH_SIZE):  # the last batch has 60000 % 64 = 32 images
            batch = order[i:i + BATCH_SIZE]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
        seconds += time.perf_counter() - start
        model.eval()
        accuracy, test_loss = evaluate(model, x_test, y_test)
        print(f"{name} epoch {epoch + 1}/{epochs}: train loss {total_loss / len(x_train):.4f}, "
              f"test acc {accuracy:.4f}, test loss {test_loss:.4f}, {seconds:.1f} s",
              flush=True)

    if accuracy < min_accuracy:
        raise SystemExit(f"{name}: test accuracy {accuracy:.4f} < required {min_accuracy}")

    out_dir = out_dir or os.path.join(REPO, "golden", name)
    os.makedirs(out_dir, exist_ok=True)
    # .clone(): state_dict tensors may be views; write each parameter as its own contiguous copy.
    tensors = {k: v.detach().clone().numpy() for k, v in model.state_dict().items()}
    weights_path = os.path.join(out_dir, "model.safetensors")
    write_safetensors(weights_path, tensors)
    read_back = read_safetensors(weights_path)
    if read_back.keys() != tensors.keys() or any(
            not np.array_equal(read_back[k], tensors[k]) for k in tensors):
        raise SystemExit(f"{weights_path}: read-back differs from the trained weights")

    config = {
        "name": name,
        "architecture": architecture,
        "task": "image-classification",
        "classes": pm.CLASSES,
        "input": input_spec,
        "layers": pm.describe_layers(model),
        "weights": "model.safetensors",
        "reference_framework": pm.reference_framework(),
        "seed": seed,
        "training": {
            "dataset": f"Fashion-MNIST (Debian dataset-fashion-mnist, train split, {len(x_train)} images)",
            "optimizer": "Adam", "learning_rate": LEARNING_RATE, "batch_size": BATCH_SIZE,
            "epochs": epochs, "loss": "cross_entropy", "shuffle": "torch.Generator seeded with seed",
            "threads": torch.get_num_threads(), "seconds": round(seconds, 1)},
        "evaluation": {"test_images": len(x_test), "test_accuracy": round(accuracy, 4),
                       "test_loss": round(test_loss, 4)},
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"{name}: test acc {accuracy:.4f}, test loss {test_loss:.6f}, trained in {seconds:.1f} s "
          f"-> {os.path.relpath(out_dir, REPO)}/")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"models to train, of {', '.join(pm.MODELS)} (default: all)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--data-dir", default=pm.DEFAULT_DATA_DIR)
    parser.add_argument("--config", help="train the sequential model this config.json describes (needs --out)")
    parser.add_argument("--out", help="output directory for --config")
    args = parser.parse_args()
    if args.config:
        if args.models or not args.out:
            parser.error("--config takes --out and no MODEL names")
        with open(args.config) as f:
            spec = json.load(f)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        train(spec["name"], args.epochs, args.seed, args.data_dir, spec=spec, out_dir=os.path.abspath(args.out))
        return
    unknown = [m for m in args.models if m not in pm.MODELS]
    if unknown:
        parser.error(f"unknown model(s): {', '.join(unknown)}")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name in args.models or list(pm.MODELS):
        train(name, args.epochs, args.seed, args.data_dir)


if __name__ == "__main__":
    main()
