#!/usr/bin/python3
"""Independently check MODEL_DIR/golden.h5 against a fresh PyTorch run of MODEL_DIR's reference model.

    /usr/bin/python3 tools/check_goldens.py golden/fmnist-cnn

Checks: the file's format attributes; the safetensors sha256 against `weights_sha256`; /inputs/images and
/labels against the Fashion-MNIST test set recomputed from the IDX files; every /activations dataset
against a new run (pass if bit-identical, or else if max abs diff <= 1e-6), including its `order`, `op`,
`layout`, `input` and noise-floor attributes; /reference/logits_f64 against a new float64 run; and the
accuracy on the full 10,000-image test set against the minimum for the architecture.
Exit 0 if everything passes, 1 otherwise.
"""

import argparse
import copy
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity_models as pm  # noqa: E402

TOLERANCE = 1e-6


class Report:
    def __init__(self):
        self.rows = []

    def add(self, check, ok, detail):
        self.rows.append((check, bool(ok), detail))

    @property
    def passed(self):
        return all(ok for _, ok, _ in self.rows)

    def print(self):
        width = max(len(check) for check, _, _ in self.rows)
        for check, ok, detail in self.rows:
            print(f"{check:<{width}}  {'PASS' if ok else 'FAIL'}  {detail}")


def run_with_hooks(model, x):
    """{module name: (forward order, module, output array)} for every leaf module (plain forward hooks)."""
    outputs = {}

    def hook(name):
        def record(module, inputs, output):  # must return None: a returned value replaces the output
            outputs[name] = (len(outputs), module, output.detach().numpy().copy())
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in pm.leaf_modules(model)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def compare(golden, fresh):
    """(verdict text, ok) for one array against a fresh one."""
    if golden.shape != fresh.shape or golden.dtype != fresh.dtype:
        return f"golden {golden.dtype} {list(golden.shape)} vs fresh {fresh.dtype} {list(fresh.shape)}", False
    if golden.tobytes() == fresh.tobytes():
        return "max abs diff 0, bit-identical", True
    max_abs = float(np.abs(golden.astype(np.float64) - fresh.astype(np.float64)).max())
    return f"max abs diff {max_abs:.3g}, " + ("within 1e-6" if max_abs <= TOLERANCE else "exceeds 1e-6"), \
        max_abs <= TOLERANCE


def check(model_dir, data_dir):
    report = Report()
    config, model, weights_path = pm.load_reference(model_dir)
    report.add("model", True, f"{config['name']} ({config['architecture']}) built from config.json + weights")
    test_images, test_labels = pm.load_fashion_mnist("t10k", data_dir)

    with h5py.File(os.path.join(model_dir, "golden.h5"), "r") as f:
        attrs = f.attrs
        format_ok = (attrs.get("format") == "parity-golden" and attrs.get("format_version") == 1
                     and attrs.get("model") == config["name"] and attrs.get("seed") == pm.training_seed(config))
        report.add("root attributes", format_ok,
                   f"format {attrs.get('format')!r} v{attrs.get('format_version')}, model {attrs.get('model')!r}, "
                   f"seed {attrs.get('seed')}, {attrs.get('reference_framework')!r}, created {attrs.get('created')}")
        sha = pm.sha256_file(weights_path)
        report.add("weights_sha256", sha == attrs.get("weights_sha256"), sha)

        images = f["inputs/images"][()]
        count = len(images)
        expected = pm.model_input(config, test_images[:count]).numpy()
        report.add("/inputs/images", images.tobytes() == expected.tobytes(),
                   f"{list(images.shape)} {images.dtype} vs t10k images 0..{count - 1} / 255")
        labels = f["labels"][()]
        report.add("/labels", labels.dtype == np.int64 and np.array_equal(labels, test_labels[:count]),
                   f"{list(labels.shape)} {labels.dtype} vs t10k labels 0..{count - 1}")

        fresh = run_with_hooks(model, torch.from_numpy(images))
        group = f["activations"]
        extra = sorted(set(group) - set(fresh))
        report.add("/activations set", not extra and set(group) == set(fresh),
                   f"{len(group)} datasets for {len(fresh)} leaf modules" + (f"; extra {extra}" if extra else ""))
        by_order = sorted(fresh.items(), key=lambda item: item[1][0])
        for order, (name, (_, module, out)) in enumerate(by_order):
            path = f"/activations/{name}"
            if name not in group:
                report.add(path, False, "missing")
                continue
            dataset = group[name]
            # The input of each module in this sequential forward is the previous step's output.
            expected_input = "/inputs/images" if order == 0 else f"/activations/{by_order[order - 1][0]}"
            expected_attrs = {"order": order, "op": type(module).__name__,
                              "layout": {4: "NCHW", 3: "NCL", 2: "NC"}[out.ndim], "input": expected_input}
            wrong = [k for k, v in expected_attrs.items() if dataset.attrs.get(k) != v]
            wrong += [k for k in ("noise_floor_max_abs", "noise_floor_rel_l2")
                      if not isinstance(dataset.attrs.get(k), np.float64)]
            verdict, ok = compare(dataset[()], out)
            if wrong:
                verdict += f"; wrong attributes {wrong}"
            report.add(path, ok and not wrong, verdict)

        # The float64 reference logits, from a float64 re-run of the whole model.
        with torch.no_grad():
            logits64 = copy.deepcopy(model).double()(torch.from_numpy(images).double()).numpy()
        stored = f["reference/logits_f64"][()]
        same = stored.dtype == np.float64 and stored.tobytes() == logits64.tobytes()
        report.add("/reference/logits_f64", same,
                   "bit-identical to a fresh float64 run" if same else
                   f"differs from a fresh float64 run: {stored.dtype} {list(stored.shape)}")

    x_test = pm.model_input(config, test_images)
    with torch.no_grad():
        predictions = torch.cat([model(x_test[i:i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
    accuracy = (predictions.numpy() == test_labels).mean()
    # A bundled model has a required minimum; any other model must reproduce the accuracy its
    # config.json reports (rounded to 4 digits, as written), when it reports one.
    claimed = config.get("evaluation", {}).get("test_accuracy")
    minimum = pm.MIN_ACCURACY.get(config["name"])
    if minimum is not None:
        ok = accuracy >= minimum
    else:
        ok = claimed is None or round(float(accuracy), 4) == claimed
    report.add("test accuracy", ok,
               f"{accuracy:.4f} on {len(x_test)} images (minimum {minimum}, config.json says {claimed})")
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--data-dir", default=pm.DEFAULT_DATA_DIR, help="Fashion-MNIST IDX directory")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    report = check(os.path.abspath(args.model_dir), args.data_dir)
    report.print()
    print("PASS" if report.passed else "FAIL")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
