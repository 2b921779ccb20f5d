#!/usr/bin/env python3
"""The natural mlx.nn ports of Parity's two reference architectures, used as the real-MLX oracle.

Attribute names equal the PyTorch module names of golden/<model>/config.json, so mlx.nn parameter paths are
the reference names (`conv1.weight`, `dense.bias`, `fc1.weight`, ...). Everything is channels-last, as mlx.nn
is: input NHWC [N, 28, 28, 1], nn.Conv2d weights [out, kh, kw, in], nn.Linear weights [out, in] (not
transposed), and `flatten` is reshape(N, -1) of the NHWC map, i.e. (h, w, c) order.

    mnist-cnn  conv1 relu1 pool1 conv2 relu2 pool2 flatten dense
    mnist-fc   flatten fc1 relu1 fc2

Nothing here knows about Parity's converter: the layouts are mlx.nn's own, so a wrong conversion either
fails `load_weights(strict=True)` (shape) or shows up as a numeric mismatch against the PyTorch golden.

    build_model(config)                  a model from a config.json dict (`model_type` or `architecture`)
    load_mlx(path_or_paths, config=None) build, quantize per config (mlx-lm's rule), load_weights(strict=True)
    run_layers(model, x_nhwc)            [(layer name, MLX output)] in forward order
    to_reference_layout(name, y, model)  an MLX output in the golden's layout (NCHW / NC, flatten in (c,h,w))
"""
import glob
import json
import os

import mlx.core as mx
import mlx.nn as nn
import numpy as np


class Flatten(nn.Module):
    """reshape(N, -1): on an NHWC map this is (h, w, c) order, unlike torch.nn.Flatten on NCHW."""

    def __call__(self, x):
        return x.reshape(x.shape[0], -1)


class MnistCNN(nn.Module):
    """ggml's mnist-cnn: conv(1->8) relu pool, conv(8->16) relu pool, flatten, dense(784->10)."""

    architecture = "mnist-cnn"
    layer_names = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "dense"]

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, stride=1, padding=1, bias=True)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, stride=1, padding=1, bias=True)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = Flatten()
        self.dense = nn.Linear(7 * 7 * 16, 10, bias=True)

    def __call__(self, x):
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x


class MnistFC(nn.Module):
    """ggml's mnist-fc: flatten, fc1(784->500), relu1, fc2(500->10)."""

    architecture = "mnist-fc"
    layer_names = ["flatten", "fc1", "relu1", "fc2"]

    def __init__(self):
        super().__init__()
        self.flatten = Flatten()
        self.fc1 = nn.Linear(784, 500, bias=True)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(500, 10, bias=True)

    def __call__(self, x):
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x


ARCHITECTURES = {"mnist-cnn": MnistCNN, "mnist-fc": MnistFC}


def build_model(config):
    """A fresh (randomly initialised) model for a config.json dict, chosen by model_type or architecture."""
    arch = config.get("model_type") or config.get("architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (model_type/architecture); known: {sorted(ARCHITECTURES)}")
    model = ARCHITECTURES[arch]()
    # Cross-check the layer list against the config when it has one (Parity's config.json keeps the reference's).
    if "layers" in config:
        names = [layer["name"] for layer in config["layers"]]
        if names != model.layer_names:
            raise ValueError(f"config layers {names} != {arch} layers {model.layer_names}")
    return model


def quantize_like_mlx_lm(model, config, weights):
    """mlx-lm's load_model rule (mlx_lm/utils.py `_quantize`), reproduced: when config.json has a
    "quantization" entry, a per-module entry config["quantization"][path] wins if present; otherwise a module
    is quantized iff it has `to_quantized` and `<path>.scales` is among the weights.
    Returns the list of quantized module paths."""
    quantization = config.get("quantization")
    if quantization is None:
        return []
    chosen = []

    def class_predicate(p, m):
        if p in config["quantization"]:
            decision = config["quantization"][p]
        elif not hasattr(m, "to_quantized"):
            decision = False
        else:
            decision = f"{p}.scales" in weights
        if decision:
            chosen.append(p)
        return decision

    nn.quantize(
        model,
        group_size=quantization["group_size"],
        bits=quantization["bits"],
        mode=quantization.get("mode", "affine"),
        class_predicate=class_predicate,
    )
    return chosen


def read_weights(path):
    """What mlx-lm / mlx do: a directory -> mx.load of every model*.safetensors (plus config.json);
    a file -> mx.load(file) (.safetensors or .npz). Returns (weights dict, config dict or None)."""
    if os.path.isdir(path):
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        files = sorted(glob.glob(os.path.join(path, "model*.safetensors")))
        if not files:
            raise FileNotFoundError(f"No safetensors found in {path}")
        weights = {}
        for wf in files:
            weights.update(mx.load(wf))
        return weights, config
    return dict(mx.load(path)), None


def load_mlx(path, config=None, strict=True):
    """Builds the model for `config` (default: the directory's config.json), quantizes it per config the way
    mlx-lm does, and loads the weights with model.load_weights(list, strict). Returns (model, config, info)."""
    weights, dir_config = read_weights(path)
    config = dir_config if dir_config is not None else config
    if config is None:
        raise ValueError(f"{path}: a weights-only file needs a config")
    model = build_model(config)
    quantized = quantize_like_mlx_lm(model, config, weights)
    model.eval()
    model.load_weights(list(weights.items()), strict=strict)
    mx.eval(model.parameters())
    info = {
        "quantized_modules": quantized,
        "tensors": {k: {"dtype": str(v.dtype).replace("mlx.core.", ""), "shape": list(v.shape)} for k, v in sorted(weights.items())},
    }
    return model, config, info


def run_layers(model, x):
    """Calls the sub-modules one by one in __call__ order; returns [(name, output)] (MLX layouts)."""
    outs = []
    for name in model.layer_names:
        x = getattr(model, name)(x)
        outs.append((name, x))
    mx.eval([y for _, y in outs])
    return outs


def nchw_to_nhwc(images):
    return np.ascontiguousarray(np.asarray(images).transpose(0, 2, 3, 1))


def to_reference_layout(name, y, model):
    """An MLX layer output as float32 numpy in the golden's (PyTorch) layout: 4-D NHWC -> NCHW; the CNN's
    flatten output from (h, w, c) to (c, h, w) column order; other 2-D outputs unchanged."""
    a = np.array(y.astype(mx.float32))
    if a.ndim == 4:
        return np.ascontiguousarray(a.transpose(0, 3, 1, 2))
    if isinstance(model, MnistCNN) and name == "flatten":
        n = a.shape[0]
        return np.ascontiguousarray(a.reshape(n, 7, 7, 16).transpose(0, 3, 1, 2).reshape(n, 784))
    return a
