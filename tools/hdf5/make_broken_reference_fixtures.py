#!/usr/bin/env python3
"""Goldens that disagree with their own reference directory, as fixtures for the reference check
(Sources/ParityModels/ReferenceConsistency.swift, Sources/ParityFormats/GoldenFile.swift):
Tests/ParityTests/Fixtures/broken-reference/<case>.h5 and manifest.json.

    /usr/bin/python3 tools/hdf5/make_broken_reference_fixtures.py      (any Python with h5py + numpy)

Each file is Tests/ParityTests/Fixtures/user-mlp-256/golden.h5 (recorded from PyTorch by tools/regen_goldens.py)
cut to its first 2 images (every dataset whose first axis is the 64 images is sliced; attributes are copied),
then given one defect. The values stay PyTorch's: nothing here computes an activation. A test puts one of
them as golden.h5 beside user-mlp-256's config.json and model.safetensors (whose sha256 the golden records).
`control.h5` has no defect: the same directory with it must load, so each refusal is the defect's doing.
"""
import json
import os

import h5py
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "user-mlp-256", "golden.h5")
OUT = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "broken-reference")
KEEP = 2  # images kept: enough for every shape to have a batch axis, small enough to commit several copies


def copy_sliced(source, path):
    with h5py.File(source, "r") as src, h5py.File(path, "w") as dst:
        dst.attrs.update(dict(src.attrs))
        batch = src["inputs/images"].shape[0]

        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                group = dst.require_group(name)
                group.attrs.update(dict(obj.attrs))
                return
            data = obj[()]
            if data.ndim >= 1 and data.shape[0] == batch:
                data = data[:KEEP]
            dataset = dst.create_dataset(name, data=data)
            dataset.attrs.update(dict(obj.attrs))

        src.visititems(visit)


def set_value(f, dataset, index, value):
    data = f[dataset][()]
    data[index] = value
    f[dataset][...] = data


CASES = {
    "control": ("no defect", lambda f: None),
    "input-attribute": ("/activations/fc2@input = /activations/fc1 (fc2 reads relu1's output)",
                        lambda f: f["activations/fc2"].attrs.__setitem__("input", "/activations/fc1")),
    "input-missing": ("/activations/fc1@input deleted", lambda f: f["activations/fc1"].attrs.__delitem__("input")),
    "nan-activation": ("/activations/fc2[1, 4] = NaN", lambda f: set_value(f, "activations/fc2", (1, 4), np.nan)),
    "inf-input": ("/inputs/images[0, 0, 3, 5] = +Inf", lambda f: set_value(f, "inputs/images", (0, 0, 3, 5), np.inf)),
    "noise-floor-large": ("/activations/fc1@noise_floor_rel_l2 = 10.0",
                          lambda f: f["activations/fc1"].attrs.__setitem__("noise_floor_rel_l2", np.float64(10.0))),
    "noise-floor-negative": ("/activations/relu1@noise_floor_max_abs = -1.0",
                             lambda f: f["activations/relu1"].attrs.__setitem__("noise_floor_max_abs", np.float64(-1.0))),
    "noise-floor-nan": ("/activations/fc2@noise_floor_rel_l2 = NaN",
                        lambda f: f["activations/fc2"].attrs.__setitem__("noise_floor_rel_l2", np.float64(np.nan))),
    "missing-relu1": ("/activations/relu1 deleted (fc2 keeps order 3: the orders have a gap at 2)",
                      lambda f: f.__delitem__("activations/relu1")),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (_, defect) in CASES.items():
        path = os.path.join(OUT, name + ".h5")
        copy_sliced(SOURCE, path)
        with h5py.File(path, "r+") as f:
            defect(f)
    manifest = {
        "made_by": "tools/hdf5/make_broken_reference_fixtures.py",
        "source": "Tests/ParityTests/Fixtures/user-mlp-256/golden.h5, first %d images, attributes copied" % KEEP,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "files": {name + ".h5": description for name, (description, _) in CASES.items()},
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
