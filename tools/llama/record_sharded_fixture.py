#!/usr/bin/env python3
"""Record what transformers writes for a sharded copy of golden/tiny-llama, small enough to commit.

    .build-venv-llama/bin/python tools/llama/record_sharded_fixture.py [--max-shard-size 3MB]

Loads golden/tiny-llama with transformers' LlamaForCausalLM (float32, as stored), saves it with
`save_pretrained(dir, max_shard_size=...)` (safe_serialization: model-0000i-of-0000n.safetensors +
model.safetensors.index.json), and writes Tests/ParityTests/Fixtures/llama-sharded/:
  model.safetensors.index.json  the index exactly as transformers wrote it
  shards.json                   per shard: file name, the raw header bytes (hex: the 8-byte length + JSON, as
                                written), the SHA-256 and size of the whole file; and what tools/llama/record_goldens.py
                                writes for the sharded directory (same prompts and --tokens as the bundled golden):
                                the root attributes that differ from golden/tiny-llama/golden.h5 and the number of
                                datasets, all of which it checks are identical to the bundled golden's
The tensors' bytes are the bundled model's (transformers writes the loaded float32 tensors unchanged; this script
checks that), so a test rebuilds each shard from golden/tiny-llama/model.safetensors + the recorded header and
proves it byte-identical by SHA-256 without committing 8 MB twice.
"""

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

import torch
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(REPO, "golden", "tiny-llama")
OUT = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "llama-sharded")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-shard-size", default="3MB")
    args = parser.parse_args()
    import transformers
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32)
    with tempfile.TemporaryDirectory() as parent:
        tmp = os.path.join(parent, "tiny-llama-sharded")
        model.save_pretrained(tmp, max_shard_size=args.max_shard_size, safe_serialization=True)
        golden_record = record_golden(tmp)
        with open(os.path.join(tmp, "model.safetensors.index.json"), "rb") as f:
            index_bytes = f.read()
        index = json.loads(index_bytes)
        shards = []
        with safe_open(os.path.join(MODEL, "model.safetensors"), "pt") as bundled:
            for name in sorted(set(index["weight_map"].values())):
                path = os.path.join(tmp, name)
                with open(path, "rb") as f:
                    data = f.read()
                (n,) = struct.unpack("<Q", data[:8])
                with safe_open(path, "pt") as shard:
                    for key in shard.keys():
                        if not torch.equal(shard.get_tensor(key), bundled.get_tensor(key)):
                            sys.exit(f"{name}: {key} differs from the bundled tensor; the rebuild would not hold")
                shards.append({"file": name, "header_hex": data[:8 + n].hex(), "size": len(data),
                               "sha256": hashlib.sha256(data).hexdigest()})
    if len(shards) < 2:
        sys.exit(f"max_shard_size {args.max_shard_size} gave {len(shards)} shard; choose a smaller one")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "model.safetensors.index.json"), "wb") as f:
        f.write(index_bytes)
    record = {"generator": "tools/llama/record_sharded_fixture.py --max-shard-size " + args.max_shard_size,
              "transformers": transformers.__version__, "torch": torch.__version__, "shards": shards,
              "golden": golden_record}
    with open(os.path.join(OUT, "shards.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(f"{len(shards)} shards: " + ", ".join(f"{s['file']} {s['size']} B" for s in shards))


def record_golden(sharded):
    """Runs record_goldens.py on the sharded directory with the bundled golden's prompts and length; returns the
    root attributes that differ (None = absent) and the dataset count, after checking every dataset is identical."""
    for name in os.listdir(MODEL):
        if name.startswith("tokenizer") or name == "special_tokens_map.json":
            shutil.copy(os.path.join(MODEL, name), sharded)
    shutil.copy(os.path.join(MODEL, "config.json"), sharded)  # the bundled config, as the test uses it
    out = os.path.join(sharded, "golden.h5")
    subprocess.run([sys.executable, os.path.join(HERE, "record_goldens.py"), sharded, "--prompts",
                    os.path.join(MODEL, "prompts.txt"), "--tokens", "32", "--out", out], check=True, stdout=subprocess.DEVNULL)
    bundled, recorded = h5py.File(os.path.join(MODEL, "golden.h5"), "r"), h5py.File(out, "r")
    names, others = [], []
    bundled.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    recorded.visititems(lambda n, o: others.append(n) if isinstance(o, h5py.Dataset) else None)
    if sorted(names) != sorted(others):
        sys.exit("the sharded golden has other datasets than the bundled one")
    for n in names:
        if not np.array_equal(bundled[n][()], recorded[n][()]) or dict(bundled[n].attrs).keys() != dict(recorded[n].attrs).keys():
            sys.exit(f"dataset {n} differs between the bundled and the sharded golden")
    changed = {}
    for key in sorted(set(bundled.attrs) | set(recorded.attrs)):
        if key in ("created", "generator", "seed"):
            continue  # when and how it was run (seed: the training seed only the bundled model's recorder knew)
        a, b = bundled.attrs.get(key), recorded.attrs.get(key)
        if str(a) != str(b):
            changed[key] = None if b is None else str(b)
    return {"datasets_identical": len(names), "root_attributes_changed": changed}


if __name__ == "__main__":
    main()
