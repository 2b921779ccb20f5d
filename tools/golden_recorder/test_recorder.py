#!/usr/bin/python3
"""Tests of the general golden recorder (tools/record_goldens_any.py) on Debian's /usr/bin/python3.

    /usr/bin/python3 tools/golden_recorder/test_recorder.py

- a TorchScript file of TinyNet records the same datasets, bit for bit, as TinyNet by import path;
- a model that is not a chain (a residual add between modules) is refused with exit 2 naming the module;
- weights that do not load strictly are exit 2 naming the weights file;
- token ids (a text file of rows) feed an embedding model as int64 /inputs/input_ids;
- an existing golden is kept when the new data is identical (exit 0), refused when it differs (exit 1, file
  unchanged) and replaced only with --force;
- format_version 2 (--pretrained) refuses a class that is no transformers LlamaForCausalLM / BertModel, naming it,
  and format_version 1 arguments mixed in (exit 2, nothing written). Recording tiny-llama and minilm-l6 in
  format_version 2 needs transformers: tools/golden_recorder/check_bundled.py proves those bit for bit.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(HERE)
EXAMPLE = os.path.join(TOOLS, "examples", "recorder")
sys.path.insert(0, TOOLS)
sys.path.insert(0, EXAMPLE)
from golden_recorder import recorder as rec  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402
from tinynet import TinyNet, TinyResidual  # noqa: E402

RECORDER = os.path.join(TOOLS, "record_goldens_any.py")


def run(*args):
    result = subprocess.run([sys.executable, RECORDER, *args], capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


class RecorderTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="recorder-test-")
        torch.manual_seed(1)
        self.weights = os.path.join(self.dir, "model.safetensors")
        write_safetensors(self.weights, {k: v.numpy() for k, v in TinyNet().state_dict().items()})
        self.inputs = os.path.join(self.dir, "inputs.npy")
        np.save(self.inputs, torch.rand(4, 1, 16, 16).numpy())

    def tearDown(self):
        shutil.rmtree(self.dir)

    def record_tinynet(self, out, *extra):
        return run("--module", "tinynet:TinyNet", "--path", EXAMPLE, "--weights", self.weights,
                   "--inputs", self.inputs, "--out", out, "--name", "t", *extra)

    def datasets(self, path):
        found = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: found.__setitem__(n, (o[()].tobytes(), o.attrs.get("op"), o.attrs.get("input")))
                         if isinstance(o, h5py.Dataset) else None)
        return found

    def test_torchscript_records_what_the_module_records(self):
        status, output = self.record_tinynet(os.path.join(self.dir, "module.h5"))
        self.assertEqual(status, 0, output)
        script = os.path.join(self.dir, "tinynet.pt")
        torch.jit.script(TinyNet()).save(script)  # other random weights inside: --weights must replace them all
        status, output = run("--torchscript", script, "--weights", self.weights, "--inputs", self.inputs,
                             "--out", os.path.join(self.dir, "script.h5"), "--name", "t")
        self.assertEqual(status, 0, output)
        module, scripted = self.datasets(os.path.join(self.dir, "module.h5")), \
            self.datasets(os.path.join(self.dir, "script.h5"))
        self.assertEqual(sorted(module), sorted(scripted))
        self.assertEqual(len(module), 9)  # input, 7 leaf modules, float64 logits
        for name in module:
            self.assertEqual(module[name], scripted[name], name)

    def test_a_residual_add_between_modules_is_refused_naming_the_module(self):
        torch.manual_seed(2)
        weights = os.path.join(self.dir, "residual.safetensors")
        write_safetensors(weights, {k: v.numpy() for k, v in TinyResidual().state_dict().items()})
        inputs = os.path.join(self.dir, "x.npy")
        np.save(inputs, np.ones((2, 8), np.float32))
        status, output = run("--module", "tinynet:TinyResidual", "--path", EXAMPLE, "--weights", weights,
                             "--inputs", inputs, "--out", os.path.join(self.dir, "r.h5"))
        self.assertEqual(status, 2, output)
        self.assertIn("block reads a tensor that is neither a model input nor a leaf module's output", output)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "r.h5")))

    def test_weights_that_do_not_load_strictly_are_bad_input(self):
        status, output = run("--module", "tinynet:TinyNet", "--path", EXAMPLE, "--kwargs", '{"hidden": 32}',
                             "--weights", self.weights, "--inputs", self.inputs, "--out", os.path.join(self.dir, "x.h5"))
        self.assertEqual(status, 2, output)
        self.assertIn(f"{self.weights}: does not load into the model with strict=True", output)

    def test_an_existing_golden_is_kept_refused_or_forced(self):
        out = os.path.join(self.dir, "golden.h5")
        self.assertEqual(self.record_tinynet(out)[0], 0)
        before = open(out, "rb").read()
        status, output = self.record_tinynet(out)
        self.assertEqual(status, 0, output)
        self.assertIn("identical to the existing", output)
        self.assertEqual(open(out, "rb").read(), before)
        np.save(self.inputs, np.zeros((4, 1, 16, 16), np.float32))  # other inputs: other data
        status, output = self.record_tinynet(out)
        self.assertEqual(status, 1, output)
        self.assertIn("NOT replaced", output)
        self.assertEqual(open(out, "rb").read(), before)
        status, output = self.record_tinynet(out, "--force")
        self.assertEqual(status, 0, output)
        self.assertIn("REPLACED", output)
        with h5py.File(out, "r") as f:
            self.assertFalse(f["inputs/input"][()].any())

    def test_format_version_2_refuses_a_class_without_a_kind_naming_it(self):
        out = os.path.join(self.dir, "v2.h5")
        status, output = run("--module", "tinynet:TinyResidual", "--path", EXAMPLE, "--pretrained", self.dir,
                             "--prompts", self.inputs, "--out", out)
        self.assertEqual(status, 2, output)
        self.assertIn("--module tinynet:TinyResidual: no format_version 2 kind for this class", output)
        status, output = run("--kind", "causal-lm", "--module", "tinynet:TinyResidual", "--path", EXAMPLE,
                             "--pretrained", self.dir, "--prompts", self.inputs, "--out", out)
        self.assertEqual(status, 2, output)
        self.assertIn("tinynet.TinyResidual is not a transformers LlamaForCausalLM", output)
        self.assertFalse(os.path.exists(out))

    def test_format_version_2_refuses_format_version_1_arguments(self):
        out = os.path.join(self.dir, "v2.h5")
        status, output = run("--kind", "causal-lm", "--pretrained", self.dir, "--weights", self.weights,
                             "--prompts", self.inputs, "--out", out)
        self.assertEqual(status, 2, output)
        self.assertIn("--weights: format_version 2 reads the weights and tokenizer from --pretrained", output)
        status, output = run("--format-version", "1", "--pretrained", self.dir, "--module", "tinynet:TinyNet",
                             "--path", EXAMPLE, "--weights", self.weights, "--inputs", self.inputs, "--out", out)
        self.assertEqual(status, 2, output)
        self.assertIn("--pretrained / --kind record format_version 2", output)
        self.assertFalse(os.path.exists(out))


class TokenModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(16, 8)
        self.proj = torch.nn.Linear(8, 4)

    def forward(self, ids):
        return self.proj(self.embed(ids))


class TokenIdTests(unittest.TestCase):
    def test_token_ids_feed_an_embedding_model(self):
        directory = tempfile.mkdtemp(prefix="recorder-test-")
        try:
            torch.manual_seed(3)
            weights = os.path.join(directory, "model.safetensors")
            write_safetensors(weights, {k: v.numpy() for k, v in TokenModel().state_dict().items()})
            ids = os.path.join(directory, "ids.txt")
            with open(ids, "w") as f:
                f.write("1 2 3 15\n0 7 7 9\n")
            out = os.path.join(directory, "golden.h5")
            status, output = run("--module", "test_recorder:TokenModel", "--path", HERE, "--weights", weights,
                                 "--token-ids", ids, "--out", out)
            self.assertEqual(status, 0, output)
            with h5py.File(out, "r") as f:
                self.assertEqual(f["inputs/input_ids"].dtype, np.int64)
                self.assertEqual(f["inputs/input_ids"][()].tolist(), [[1, 2, 3, 15], [0, 7, 7, 9]])
                self.assertEqual(f["activations/embed"].attrs["input"], "/inputs/input_ids")
                self.assertEqual(f["activations/proj"].shape, (2, 4, 4))
                self.assertEqual(json.loads(f.attrs["inputs_sha256"]), {ids: rec.sha256_file(ids)})
        finally:
            shutil.rmtree(directory)


if __name__ == "__main__":
    unittest.main()
