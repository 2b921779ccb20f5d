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
MIN_ACCURACY = {name: acc for name, (_, _, acc) in MODELS.items()}  # for the bundled models, by name


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


def _conv_padding(name, module):
    """Explicit [h, w] padding; PyTorch's string forms as the numbers they mean (stride 1, dilation 1 here):
    'valid' pads nothing, 'same' pads (k - 1) / 2 each side — refused for an even kernel, which PyTorch pads unevenly."""
    if module.padding == "valid":
        return [0, 0]
    if module.padding == "same":
        kernel = _pair(module.kernel_size)
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(f"{name}: padding='same' with kernel {kernel} pads unevenly: not representable")
        return [(k - 1) // 2 for k in kernel]
    return _pair(module.padding)


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
                "stride": _pair(module.stride), "padding": _conv_padding(name, module),
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


def build_layer(spec):
    """The PyTorch module for one config.json "layers" entry: the inverse of describe_layer."""
    op = spec["op"]
    if op == "Conv2d":
        return nn.Conv2d(spec["in_channels"], spec["out_channels"], kernel_size=tuple(spec["kernel_size"]),
                         stride=tuple(spec["stride"]), padding=tuple(spec["padding"]), bias=spec["bias"])
    if op == "ReLU":
        return nn.ReLU()
    if op == "MaxPool2d":
        return nn.MaxPool2d(tuple(spec["kernel_size"]), stride=tuple(spec["stride"]))
    if op == "Flatten":
        return nn.Flatten(start_dim=spec["start_dim"])
    if op == "Linear":
        return nn.Linear(spec["in_features"], spec["out_features"], bias=spec["bias"])
    raise ValueError(f"{spec.get('name')}: op {op!r} is not one Parity supports "
                     "(Conv2d, ReLU, MaxPool2d, Flatten, Linear)")


class ConfigSequential(nn.Module):
    """Any sequential model a config.json "layers" list describes: each entry becomes a module registered
    under its own name, run in list order. For the bundled models this is the same modules, in the same
    order, doing the same operations as FashionCNN / FashionMLP, so their goldens come out bit for bit
    identical (tools/regen_goldens.py checks that by diffing against the committed files)."""

    def __init__(self, layers):
        super().__init__()
        for spec in layers:
            name = spec["name"]
            if not name or "." in name or hasattr(self, name):
                raise ValueError(f"layer name {name!r}: must be a unique module name without dots")
            self.add_module(name, build_layer(spec))

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def load_reference(model_dir):
    """Build the model described by MODEL_DIR/config.json and load MODEL_DIR/<weights>.

    Returns (config, model in eval mode, weights path). Any sequential model of supported ops works; a
    config naming a bundled architecture must describe exactly that architecture. Fails if the weights
    do not match the model exactly (names, shapes: load_state_dict(strict=True)).
    """
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    # Every model is built from its own layer list, bundled or not, so one mechanism records every golden.
    model = ConfigSequential(config["layers"])
    if describe_layers(model) != config["layers"]:
        raise ValueError(f"{model_dir}/config.json: the layer list has keys or values Parity does not read "
                         f"(expected exactly {describe_layers(model)})")
    # A config naming one of ggml's mnist architectures (whose GGUF layout Parity writes) must have its
    # structure: the same layer names and ops in the same order; widths are the model's own.
    known = ARCHITECTURES.get(config.get("architecture"))
    if known is not None:
        structure = [(layer["name"], layer["op"]) for layer in describe_layers(known())]
        if [(layer["name"], layer["op"]) for layer in config["layers"]] != structure:
            raise ValueError(f"{model_dir}/config.json: layers do not have the structure of "
                             f"{config['architecture']} ({structure})")
    weights_path = os.path.join(model_dir, config.get("weights", "model.safetensors"))
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


def training_seed(config):
    """The golden's `seed` attribute: the config's training seed, or -1 when the config records none."""
    return int(config.get("seed", -1))


def model_input(config, images):
    """Fashion-MNIST images as the model described by `config` takes them: pixel / 255, reshaped to the
    config's input shape ([1, 28, 28] for the bundled models; [784] for a model that starts with Linear)."""
    shape = list(config["input"]["shape"])
    if int(np.prod(shape)) != 28 * 28:
        raise ValueError(f"input shape {shape} does not hold a 28x28 Fashion-MNIST image")
    return to_model_input(images).reshape(-1, *shape)


def to_model_input(images):
    """uint8 [N, 28, 28] -> float32 tensor [N, 1, 28, 28] = pixel / 255 (division done in float32)."""
    x = images.astype(np.float32) / np.float32(255)
    return torch.from_numpy(x.reshape(-1, 1, 28, 28))
