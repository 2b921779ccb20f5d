"""Load any PyTorch model, hook every leaf module for one forward pass, write golden.h5 (format_version 1).

Format_version 1 (golden/README.md) describes a chain: every leaf module reads exactly one tensor, which is a model
input or an earlier leaf module's output, and runs once. That is what this recorder proves for every module (a
forward pre-hook checks the tensor's identity and bytes); a model whose leaves read something computed between
modules (a residual add, a concatenation) or run twice is refused with the module's name, not recorded wrongly.
"""

import copy
import datetime
import hashlib
import importlib
import inspect
import json
import os
import sys

import h5py
import numpy as np
import torch
from torch import nn

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
import parity_models as pm  # noqa: E402
from regen_goldens import COMPRESS_ABOVE_BYTES, LAYOUTS, add_dataset, noise_floor  # noqa: E402,F401
from safetensors_io import read_safetensors  # noqa: E402

FORMAT_VERSION = 1


class BadInput(Exception):
    """A file or argument the recorder cannot use (exit 2); the message names it and the problem."""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shown(path):
    """A path as the `generator` attribute shows it: repository-relative inside the checkout, else absolute."""
    path = os.path.abspath(path)
    return os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else path


# -- the model -----------------------------------------------------------------------------------------------------

def import_class(spec, search_paths=()):
    """`pkg.module:Class` -> the class (search_paths are tried first, then the current directory and tools/)."""
    if spec.count(":") != 1:
        raise BadInput(f"--module {spec!r}: expected pkg.module:Class")
    module_name, class_name = spec.split(":")
    for path in reversed([os.getcwd(), *search_paths]):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BadInput(f"--module {spec!r}: cannot import {module_name} ({e})") from e
    cls = module
    for part in class_name.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise BadInput(f"--module {spec!r}: {module_name} has no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise BadInput(f"--module {spec!r}: {class_name} is not an nn.Module class")
    return cls


def source_files(cls):
    """{shown path: sha256} of the Python files defining `cls` and its nn.Module bases outside torch itself."""
    files = {}
    for klass in cls.__mro__:
        if klass is nn.Module or not issubclass(klass, nn.Module) or klass.__module__.startswith("torch."):
            continue
        path = inspect.getsourcefile(klass)
        if path:
            files[shown(path)] = sha256_file(path)
    return files


class ScriptLeaf(nn.Module):
    """A hookable stand-in for one submodule of a TorchScript model: its forward is the submodule's compiled forward.

    Loaded ScriptModules take no Python hooks (and their parent's compiled forward calls them directly), so a
    TorchScript model is run here call by call from its forward graph; see `script_chain`."""

    def __init__(self, scripted):
        super().__init__()
        object.__setattr__(self, "scripted", scripted)  # not a child: this wrapper is the leaf
        self.op = scripted.original_name

    def forward(self, x):
        return self.scripted(x)


class ScriptChain(nn.Module):
    """A TorchScript module whose forward is a chain of submodule calls, as hookable Python modules."""

    def __init__(self, scripted):
        super().__init__()
        object.__setattr__(self, "scripted", scripted)
        self.steps = []
        for name, sub in script_chain(scripted, ""):
            leaf = ScriptLeaf(sub)
            self.steps.append(name)
            # Registered under the TorchScript submodule's own path, dots replaced (add_module forbids dots);
            # `leaf_names` maps them back.
            self.add_module(name.replace(".", "\x00"), leaf)

    def forward(self, *args):
        x = args[0] if len(args) == 1 else args
        for name in self.steps:
            x = getattr(self, name.replace(".", "\x00"))(x)
        return x


def script_chain(scripted, prefix):
    """[(submodule path, leaf ScriptModule)] in call order, if `scripted.forward` only chains submodule calls.

    Reads the forward graph: `prim::GetAttr` of self, `prim::CallMethod[name="forward"]` on the result with the
    previous value, constants, and `prim::Return`. A submodule with children is expanded the same way. Anything else
    (an aten op between modules) cannot be recorded as a chain and is refused, naming it."""
    graph = scripted.forward.graph
    self_value = next(graph.inputs())
    submodules, chain = {}, []
    previous = list(graph.inputs())[1:]
    for node in graph.nodes():
        kind = node.kind()
        if kind == "prim::Constant":
            continue
        if kind == "prim::GetAttr" and next(node.inputs()) == self_value:
            submodules[node.output()] = node.s("name")
            continue
        if kind == "prim::CallMethod" and node.s("name") == "forward":
            inputs = list(node.inputs())
            target = submodules.get(inputs[0])
            if target is None or inputs[1:] != previous:
                raise BadInput(f"TorchScript {prefix or 'model'}: call {node} does not continue the chain of "
                               f"submodule calls (format_version 1 records chains only)")
            sub = getattr(scripted, target)
            path = prefix + target
            if list(sub.named_children()):
                chain += script_chain(sub, path + ".")
            else:
                chain.append((path, sub))
            previous = [node.output()]
            continue
        raise BadInput(f"TorchScript {prefix or 'model'}: the forward computes {kind} between submodule calls; "
                       f"format_version 1 records chains of submodule calls only")
    returned = list(graph.return_node().inputs())
    if returned != previous:
        raise BadInput(f"TorchScript {prefix or 'model'}: forward does not return its last submodule's output")
    return chain


def leaf_modules(model):
    """(name, module) of every leaf module, in named_modules() order, named as the model names them."""
    return [(name.replace("\x00", "."), m) for name, m in model.named_modules() if name and not any(m.children())]


def op_name(module):
    return module.op if isinstance(module, ScriptLeaf) else type(module).__name__


class ModelSource:
    """Where the model comes from; `build()` makes a fresh instance with the weights loaded, in eval mode."""

    def __init__(self, weights, module=None, kwargs=None, torchscript=None, search_paths=()):
        if (module is None) == (torchscript is None):
            raise BadInput("give exactly one of --module and --torchscript")
        self.module, self.kwargs, self.torchscript = module, kwargs or {}, torchscript
        self.weights = weights
        if not os.path.isfile(weights):
            raise BadInput(f"{weights}: weights file not found")
        try:
            self.state = read_safetensors(weights)
        except (ValueError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadInput(f"{weights}: {e}") from e
        if module is not None:
            self.cls = import_class(module, search_paths)
            self.sources = source_files(self.cls)
        else:
            if not os.path.isfile(torchscript):
                raise BadInput(f"{torchscript}: TorchScript file not found")
            self.sources = {shown(torchscript): sha256_file(torchscript)}

    def build(self, double=False):
        """double: the float64 twin (converted before wrapping: a TorchScript wrapper holds no parameters itself)."""
        if self.module is not None:
            try:
                model = self.cls(**self.kwargs)
            except TypeError as e:
                raise BadInput(f"--module {self.module} --kwargs {json.dumps(self.kwargs)}: {e}") from e
        else:
            try:
                scripted = torch.jit.load(self.torchscript, map_location="cpu")
            except RuntimeError as e:
                raise BadInput(f"{self.torchscript}: not a TorchScript file torch can load ({e})") from e
            model = scripted
        state = {name: torch.from_numpy(array.copy()) for name, array in self.state.items()}
        try:
            model.load_state_dict(state, strict=True)  # names and shapes must match exactly
        except RuntimeError as e:
            raise BadInput(f"{self.weights}: does not load into the model with strict=True: {e}") from e
        model.eval()
        if double:
            model = model.double()
        return ScriptChain(model) if self.torchscript is not None else model

    def describe(self):
        return self.module if self.module is not None else shown(self.torchscript)


# -- the inputs ----------------------------------------------------------------------------------------------------

class Inputs:
    """The model's positional inputs: [(name, array)] plus provenance {shown path: sha256}."""

    def __init__(self, arrays, files, sources):
        self.arrays, self.files, self.sources = arrays, files, sources


def load_inputs(path=None, token_ids=None, name=None, source=None):
    if (path is None) == (token_ids is None):
        raise BadInput("give exactly one of --inputs and --token-ids")
    file = path or token_ids
    if not os.path.isfile(file):
        raise BadInput(f"{file}: inputs file not found")
    try:
        if token_ids is not None:
            if file.endswith(".npy"):
                ids = np.load(file, allow_pickle=False)
            else:  # text: one row of whitespace-separated token ids per line
                with open(file) as f:
                    rows = [[int(t) for t in line.split()] for line in f if line.strip()]
                if not rows or len({len(r) for r in rows}) != 1:
                    raise BadInput(f"{file}: token id rows must be non-empty and of equal length")
                ids = np.array(rows, dtype=np.int64)
            if ids.dtype.kind not in "iu" or ids.ndim != 2:
                raise BadInput(f"{file}: token ids must be an integer array [batch, tokens], got {ids.dtype} {list(ids.shape)}")
            arrays = [(name or "input_ids", ids.astype(np.int64))]
        elif file.endswith(".npz"):
            with np.load(file, allow_pickle=False) as npz:
                arrays = [(key, npz[key]) for key in npz.files]
            if name is not None:
                raise BadInput("--input-name applies to a .npy file; a .npz names its arrays itself")
        else:
            arrays = [(name or "input", np.load(file, allow_pickle=False))]
    except (ValueError, OSError) as e:
        raise BadInput(f"{file}: not a NumPy .npy/.npz file ({e})") from e
    if not arrays:
        raise BadInput(f"{file}: no arrays")
    for key, array in arrays:
        if array.dtype.kind == "f" and array.dtype != np.float32:
            raise BadInput(f"{file}: {key} is {array.dtype}; goldens record float32 inputs (convert them first)")
        if array.dtype.kind not in "fiu":
            raise BadInput(f"{file}: {key} has dtype {array.dtype}, not numbers")
        if array.ndim == 0 or array.shape[0] == 0:
            raise BadInput(f"{file}: {key} has shape {list(array.shape)}; the first axis is the batch")
    digest = sha256_file(file)
    text = source or f"{os.path.basename(file)} (sha256 {digest})"
    return Inputs(arrays, {shown(file): digest}, {key: text for key, _ in arrays})


# -- one forward pass, every leaf module hooked -----------------------------------------------------------------------

class RecordingError(Exception):
    """The model is not a chain format_version 1 can record; the message names the module."""


def capture(model, tensors, input_paths):
    """Run `model(*tensors)` hooking every leaf module: [(name, module, input path, output array)] in forward order.

    A forward pre-hook checks that each module's one tensor argument is the very tensor a model input or an earlier
    module produced and still bit-identical to the stored copy, so every `input` attribute is proven."""
    produced = [(path, t, t.detach().numpy().copy()) for path, t in zip(input_paths, tensors)]
    records, read = [], {}

    def pre_hook(name):
        def hook(module, args):
            if name in read:
                raise RecordingError(f"{name} ran twice; format_version 1 stores one dataset per module")
            tensor_args = [a for a in args if isinstance(a, torch.Tensor)]
            if len(tensor_args) != 1 or len(args) != 1:
                raise RecordingError(f"{name} was called with {len(args)} positional arguments; format_version 1 "
                                     "records modules that read exactly one tensor")
            tensor = tensor_args[0]
            for path, live, stored in reversed(produced):
                if tensor is live:
                    if tensor.detach().numpy().tobytes() != stored.tobytes():
                        raise RecordingError(f"{name}: its input {path} was changed in place after it was recorded")
                    read[name] = path
                    return
            raise RecordingError(f"{name} reads a tensor that is neither a model input nor a leaf module's output "
                                 "(computed between modules, e.g. a residual add or a reshape); format_version 1 "
                                 "records chains of modules only — wrap that computation in a module")
        return hook

    def forward_hook(name):
        def hook(module, args, output):
            if not isinstance(output, torch.Tensor):
                raise RecordingError(f"{name} returned {type(output).__name__}, not a tensor")
            stored = output.detach().numpy().copy()  # a copy: a later in-place op must not alter it
            produced.append((f"/activations/{name}", output, stored))
            records.append((name, module, read[name], stored))
        return hook

    leaves = leaf_modules(model)
    if not leaves:
        raise RecordingError("the model has no submodules to hook")
    handles = []
    for name, module in leaves:
        handles.append(module.register_forward_pre_hook(pre_hook(name)))
        handles.append(module.register_forward_hook(forward_hook(name)))
    try:
        with torch.no_grad():
            output = model(*tensors)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name, _ in leaves if name not in read]
    if missing:
        raise RecordingError(f"modules that never ran: {missing}; format_version 1 records every leaf module")
    last = records[-1][3]
    if not isinstance(output, torch.Tensor) or output.shape != last.shape or \
            output.detach().numpy().tobytes() != last.tobytes():
        raise RecordingError("the model's output is not its last leaf module's output")
    return records, output.detach().numpy().copy()


def run_both(source, inputs):
    """The float32 run and the float64 re-run (a fresh model, .double(), float inputs converted exactly)."""
    paths = [f"/inputs/{name}" for name, _ in inputs.arrays]
    x32 = [torch.from_numpy(a.copy()) for _, a in inputs.arrays]
    x64 = [t.double() if t.is_floating_point() else t.clone() for t in x32]
    records, _ = capture(source.build(), x32, paths)
    records64, output64 = capture(source.build(double=True), x64, paths)
    if [(r[0], r[2]) for r in records] != [(r[0], r[2]) for r in records64]:
        raise RecordingError("the float32 and float64 runs visited the modules differently")
    return records, records64, output64


# -- the file ------------------------------------------------------------------------------------------------------

def write_golden(path, *, name, seed, source, inputs, records, records64, output64, generator, labels=None,
                 labels_source=None, input_layout=None):
    """Write golden.h5 (format_version 1, golden/README.md) with provenance; returns the table of hooked modules."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "parity-golden"
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["model"] = name
        f.attrs["reference_framework"] = pm.reference_framework()
        f.attrs["weights_sha256"] = sha256_file(source.weights)
        f.attrs["generator"] = generator
        f.attrs["seed"] = np.int64(seed)
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        # Provenance beyond format_version 1's required attributes (readers ignore attributes they do not know).
        f.attrs["recorder"] = "tools/record_goldens_any.py"
        f.attrs["torch_version"] = str(torch.__version__)  # TorchVersion, a str subclass h5py refuses
        f.attrs["numpy_version"] = str(np.__version__)
        f.attrs["reference_module"] = source.describe()
        f.attrs["reference_kwargs"] = json.dumps(source.kwargs, sort_keys=True)
        f.attrs["source_sha256"] = json.dumps(source.sources, sort_keys=True)
        f.attrs["inputs_sha256"] = json.dumps(inputs.files, sort_keys=True)

        group = f.create_group("inputs")
        for key, array in inputs.arrays:
            layout = input_layout or LAYOUTS.get(array.ndim, "")
            add_dataset(group, key, array, source=inputs.sources[key], layout=layout)
        if labels is not None:
            add_dataset(f, "labels", labels.astype(np.int64), source=labels_source)
        activations = f.create_group("activations")
        rows = []
        for order, ((module_name, module, input_path, out), (_, _, _, out64)) in enumerate(zip(records, records64)):
            max_abs, rel_l2 = noise_floor(out, out64) if out.size else (0.0, 0.0)
            rows.append((module_name, op_name(module), input_path, max_abs, rel_l2))
            add_dataset(activations, module_name, out, order=np.int64(order), op=op_name(module),
                        layout=LAYOUTS.get(out.ndim, ""), input=input_path,
                        noise_floor_max_abs=np.float64(max_abs), noise_floor_rel_l2=np.float64(rel_l2))
        last = records64[-1][0]
        add_dataset(f.create_group("reference"), "logits_f64", output64,
                    source=f"float64 re-run of the whole model (model.double() on the float64 input), output of {last}",
                    layout=LAYOUTS.get(output64.ndim, ""))
    return rows


def config_for(records, *, name, architecture, inputs, seed, preprocessing):
    """The config.json Parity reads for a sequential reference directory (golden/README.md), if every leaf is an op it
    supports and the leaves form one chain from the model's single input; else a RecordingError saying why."""
    if len(inputs.arrays) != 1:
        raise RecordingError("config.json describes models with one input")
    input_name, array = inputs.arrays[0]
    layers, previous = [], f"/inputs/{input_name}"
    for module_name, module, input_path, _ in records:
        if input_path != previous:
            raise RecordingError(f"{module_name} reads {input_path}, not the previous module's output {previous}: "
                                 "config.json describes a sequence")
        if "." in module_name:
            raise RecordingError(f"{module_name}: config.json layer names are top-level module names (no dots)")
        try:
            layers.append(pm.describe_layer(module_name, module))
        except (TypeError, ValueError) as e:
            raise RecordingError(f"config.json cannot describe {e}") from e
        previous = f"/activations/{module_name}"
    return {"name": name, "architecture": architecture,
            "input": {"name": input_name, "shape": list(array.shape[1:]), "layout": LAYOUTS.get(array.ndim, ""),
                      "dtype": str(array.dtype), "preprocessing": preprocessing},
            "layers": layers, "weights": "model.safetensors", "reference_framework": pm.reference_framework(),
            "seed": seed}


# -- reading and comparing two goldens -------------------------------------------------------------------------------

def storage(dataset):
    """How HDF5 stores a dataset (part of "the same file format", not of its values)."""
    return {"chunks": dataset.chunks, "compression": dataset.compression, "compression_opts": dataset.compression_opts,
            "shuffle": dataset.shuffle, "dtype": str(dataset.dtype), "shape": dataset.shape}


def compare_files(committed, regenerated):
    """Per dataset: bytes identical, attributes identical, storage identical; root attributes that differ.

    Returns (rows, root_differences) with rows = [(dataset, bytes equal, attribute differences, storage differences)]."""
    def collect(path):
        found = {}
        with h5py.File(path, "r") as f:
            root = dict(f.attrs)

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    found["/" + name] = (obj[()], dict(obj.attrs), storage(obj))
            f.visititems(visit)
        return root, found

    old_root, old = collect(committed)
    new_root, new = collect(regenerated)
    rows = []
    for name in sorted(set(old) | set(new)):
        if name not in old or name not in new:
            rows.append((name, False, ["only in the " + ("regenerated" if name in new else "committed") + " file"], []))
            continue
        (a, a_attrs, a_store), (b, b_attrs, b_store) = old[name], new[name]
        equal = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        attrs = [f"@{k}: {a_attrs.get(k, '<absent>')!r} -> {b_attrs.get(k, '<absent>')!r}"
                 for k in sorted(set(a_attrs) | set(b_attrs))
                 if not (k in a_attrs and k in b_attrs and type(a_attrs[k]) is type(b_attrs[k])
                         and np.array_equal(a_attrs[k], b_attrs[k]))]
        stores = [f"{k}: {a_store[k]!r} -> {b_store[k]!r}" for k in a_store if a_store[k] != b_store[k]]
        rows.append((name, equal, attrs, stores))
    root = {k: (old_root.get(k, "<absent>"), new_root.get(k, "<absent>"))
            for k in sorted(set(old_root) | set(new_root))
            if not (k in old_root and k in new_root and type(old_root[k]) is type(new_root[k])
                    and np.array_equal(old_root[k], new_root[k]))}
    return rows, root
