"""Reference PyTorch models and data for Parity's goldens (Fashion-MNIST CNN and MLP).

The architectures are ggml's examples/mnist models (`mnist-cnn`, `mnist-fc`), with one distinct module
per layer so that every layer gets its own forward hook and its own name in named_modules().
Inputs are float32 images [N, 1, 28, 28] = pixel / 255, nothing else.
"""

import gzip
import hashlib
import json
import os
import struct
import subprocess

import numpy as np
import torch
from torch import nn

from safetensors_io import read_safetensors

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


class FashionCNN(nn.Module):
    """ggml mnist-cnn: conv 1→8, ReLU, max-pool, conv 8→16, ReLU, max-pool, flatten, dense 784→10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten(start_dim=1)
        self.dense = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.dense(self.flatten(x))


class FashionMLP(nn.Module):
    """ggml mnist-fc: flatten, fc1 784→500, ReLU, fc2 500→10."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten(start_dim=1)
        self.fc1 = nn.Linear(28 * 28, 500)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        return self.fc2(self.relu1(self.fc1(self.flatten(x))))


# name -> (ggml architecture name, model class, minimum full-test-set accuracy)
MODELS = {
    "fmnist-cnn": ("mnist-cnn", FashionCNN, 0.87),
    "fmnist-mlp": ("mnist-fc", FashionMLP, 0.86),
}
ARCHITECTURES = {arch: cls for arch, cls, _ in MODELS.values()}
MIN_ACCURACY = {arch: acc for arch, _, acc in MODELS.values()}


def reference_framework():
    """"torch X.Y.Z" for the torch that is running.

    Debian's python3-torch 1.13.1 reports torch.__version__ == "1.13.0a0" (its build has no version.txt),
    which would misname the reference. For Debian's own torch, take the upstream version from the
    package version instead ("1.13.1+dfsg-4" -> "1.13.1").
    """
    if torch.__file__.startswith("/usr/lib/python3/dist-packages/"):
        package = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"],
                                 capture_output=True, text=True, check=True).stdout
        return "torch " + package.split("+")[0].split("-")[0]
    return "torch " + torch.__version__


def _pair(value):
    return list(value) if isinstance(value, tuple) else [value, value]


def leaf_modules(model):
    """(name, module) for every leaf module, in named_modules() (= registration) order."""
    return [(name, m) for name, m in model.named_modules() if name and not any(m.children())]


def describe_layer(name, module):
    """The config.json "layers" entry for one module; refuses settings the schema cannot express."""
    if isinstance(module, nn.Conv2d):
        if _pair(module.dilation) != [1, 1] or module.groups != 1 or module.padding_mode != "zeros":
            raise ValueError(f"{name}: dilation/groups/padding_mode are not representable")
        return {"name": name, "op": "Conv2d", "in_channels": module.in_channels,
                "out_channels": module.out_channels, "kernel_size": _pair(module.kernel_size),
                "stride": _pair(module.stride), "padding": _pair(module.padding),
                "bias": module.bias is not None}
    if isinstance(module, nn.ReLU):
        return {"name": name, "op": "ReLU"}
    if isinstance(module, nn.MaxPool2d):
        if _pair(module.padding) != [0, 0] or _pair(module.dilation) != [1, 1] or module.ceil_mode:
            raise ValueError(f"{name}: padding/dilation/ceil_mode are not representable")
        return {"name": name, "op": "MaxPool2d", "kernel_size": _pair(module.kernel_size),
                "stride": _pair(module.stride)}
    if isinstance(module, nn.Flatten):
        if module.end_dim != -1:
            raise ValueError(f"{name}: end_dim {module.end_dim} is not representable")
        return {"name": name, "op": "Flatten", "start_dim": module.start_dim}
    if isinstance(module, nn.Linear):
        return {"name": name, "op": "Linear", "in_features": module.in_features,
                "out_features": module.out_features, "bias": module.bias is not None}
    raise TypeError(f"{name}: unsupported module {type(module).__name__}")


def describe_layers(model):
    return [describe_layer(name, m) for name, m in leaf_modules(model)]


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_reference(model_dir):
    """Build the model described by MODEL_DIR/config.json and load MODEL_DIR/<weights>.

    Returns (config, model in eval mode, weights path). Fails if the config's layer list does not
    describe the architecture it names, or if the weights do not match the model exactly.
    """
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    try:
        model = ARCHITECTURES[config["architecture"]]()
    except KeyError:
        raise ValueError(f"{model_dir}/config.json: unknown architecture {config.get('architecture')!r}")
    if describe_layers(model) != config["layers"]:
        raise ValueError(f"{model_dir}/config.json: layers do not describe {config['architecture']}")
    weights_path = os.path.join(model_dir, config["weights"])
    state = {name: torch.from_numpy(a) for name, a in read_safetensors(weights_path).items()}
    model.load_state_dict(state, strict=True)  # strict: names and shapes must match exactly
    model.eval()
    return config, model, weights_path


def _read_idx(path):
    """Read an IDX file (gzipped or not; detected from the gzip magic) into a numpy array."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:  # 0x08 = unsigned byte, the only type Fashion-MNIST uses
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(data_dir, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{data_dir}: neither {stem} nor {stem}.gz")


def load_fashion_mnist(split, data_dir=DEFAULT_DATA_DIR):
    """(images uint8 [N, 28, 28], labels uint8 [N]) for split "train" or "t10k"."""
    images = _read_idx(_find(data_dir, f"{split}-images-idx3-ubyte"))
    labels = _read_idx(_find(data_dir, f"{split}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def to_model_input(images):
    """uint8 [N, 28, 28] -> float32 tensor [N, 1, 28, 28] = pixel / 255 (division done in float32)."""
    x = images.astype(np.float32) / np.float32(255)
    return torch.from_numpy(x.reshape(-1, 1, 28, 28))
