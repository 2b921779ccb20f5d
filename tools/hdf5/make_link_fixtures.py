#!/usr/bin/env python3
"""HDF5 files written by h5py that a golden reader must refuse without following them, as fixtures for the
isolated reader (Sources/CGoldenReader): Tests/ParityTests/Fixtures/malformed/h5py-*.h5 and manifest-h5py.json.

    .build-venv-mlx/bin/python tools/hdf5/make_link_fixtures.py      (any Python with h5py; the MLX venv has it)

  h5py-external-link.h5   a golden-shaped file whose /activations/fc1 is an EXTERNAL link to /etc/hostname.h5
                          (/x): following it would make libhdf5 open another file; the reader refuses the link.
  h5py-soft-link.h5       /activations/fc1 is a soft link to /inputs/images: refused (a golden holds its objects).
  h5py-string-dataset.h5  /inputs/images is a dataset of strings: read as "not numeric", refused by the golden.

Each has the golden's root attributes, so the reader gets as far as the links (golden/README.md).
"""
import json
import os

import h5py
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "malformed")


def golden_shell(f):
    f.attrs.update({"format": "parity-golden", "format_version": np.int64(1), "model": "fmnist-mlp",
                    "reference_framework": "torch 1.13.1", "weights_sha256": "0" * 64, "generator": "make_link_fixtures.py",
                    "seed": np.int64(1), "created": "2026-11-29T00:00:00+00:00"})
    f.create_dataset("/inputs/images", data=np.zeros((2, 1, 28, 28), dtype=np.float32))
    f.create_dataset("/labels", data=np.zeros(2, dtype=np.int64))
    f.create_group("/activations")


def main():
    made = {}
    path = os.path.join(OUT, "h5py-external-link.h5")
    with h5py.File(path, "w") as f:
        golden_shell(f)
        f["/activations/fc1"] = h5py.ExternalLink("/etc/hostname.h5", "/x")
    made["h5py-external-link.h5"] = "external link /activations/fc1 -> /etc/hostname.h5:/x"
    path = os.path.join(OUT, "h5py-soft-link.h5")
    with h5py.File(path, "w") as f:
        golden_shell(f)
        f["/activations/fc1"] = h5py.SoftLink("/inputs/images")
    made["h5py-soft-link.h5"] = "soft link /activations/fc1 -> /inputs/images"
    path = os.path.join(OUT, "h5py-string-dataset.h5")
    with h5py.File(path, "w") as f:
        golden_shell(f)
        del f["/inputs/images"]
        f.create_dataset("/inputs/images", data=np.array([b"not", b"pixels"]))
    made["h5py-string-dataset.h5"] = "/inputs/images is a dataset of fixed-length byte strings"
    with open(os.path.join(OUT, "manifest-h5py.json"), "w") as f:
        json.dump({"made_by": "tools/hdf5/make_link_fixtures.py", "h5py": h5py.__version__,
                   "hdf5": h5py.version.hdf5_version, "files": made}, f, indent=2, sort_keys=True)
        f.write("\n")
    print("wrote", ", ".join(sorted(made)), "with h5py", h5py.__version__)


if __name__ == "__main__":
    main()
