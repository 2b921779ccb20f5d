#!/usr/bin/env python3
"""What mlx_lm.load does with a Llama config claiming projection biases (MLXLlamaWeightsTests).

    .build-venv-mlxlm/bin/python tools/llama/record_mlx_bias_fixtures.py

mlx-lm's models/llama.py gives q/k/v/o_proj `bias=attention_bias` and gate/down/up_proj `bias=mlp_bias`; its
load_weights(strict=True) then requires every bias. On the weights of Fixtures/llama/mlx-reader/q4-g32 (what
mlx-lm wrote; no biases), writes Tests/ParityTests/Fixtures/llama-mlx-bias/:
  attention-bias-missing/config.json   q4-g32's config with attention_bias true (weights: q4-g32's, no biases)
  mlp-bias-missing/config.json         q4-g32's config with mlp_bias true
  attention-bias-present/              attention_bias true, and the model as mlx-lm builds it with that config,
                                       random biases, quantized and saved by mlx-lm (save_model)
  outcomes.json                        per directory, mlx_lm.load's outcome (loaded, or the exception's first line)
"""

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
READER = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "llama", "mlx-reader")
OUT = os.path.join(REPO, "Tests", "ParityTests", "Fixtures", "llama-mlx-bias")
TOKENIZER = os.path.join(REPO, "golden", "tiny-llama")

LOAD = r"""
import sys, json, mlx.core as mx, mlx_lm
mx.set_default_device(mx.cpu)
try:
    model, _ = mlx_lm.load(sys.argv[1])
except Exception as e:
    print(json.dumps({"loaded": False, "error_type": type(e).__name__, "error": str(e).strip()})); sys.exit(0)
from mlx.utils import tree_flatten
print(json.dumps({"loaded": True, "biases": sorted(k for k, _ in tree_flatten(model.parameters()) if k.endswith(".bias"))}))
"""


def main():
    with open(os.path.join(READER, "q4-g32", "config.json")) as f:
        base = json.load(f)
    os.makedirs(OUT, exist_ok=True)
    for name, key in [("attention-bias-missing", "attention_bias"), ("mlp-bias-missing", "mlp_bias")]:
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(dict(base, **{key: True}), f, indent=4)
    # Biases present: mlx-lm's own Llama with attention_bias, random parameters, quantized as q4-g32 was.
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.models import llama
    from mlx_lm.utils import quantize_model, save_config, save_model
    mx.random.seed(0)
    config = {k: v for k, v in base.items() if k not in ("quantization", "quantization_config")}
    config["attention_bias"] = True
    model = llama.Model(llama.ModelArgs.from_dict(config))
    params = [(k, (mx.random.normal(v.shape) * 0.5 + (1.0 if "norm" in k else 0.0)).astype(mx.float32))
              for k, v in tree_flatten(model.parameters())]
    model.update(tree_unflatten(params))
    qmodel, qconfig = quantize_model(model, config, 32, 4)
    present = os.path.join(OUT, "attention-bias-present")
    shutil.rmtree(present, ignore_errors=True)
    save_model(present, qmodel)
    save_config(copy.deepcopy(qconfig), os.path.join(present, "config.json"))
    os.remove(os.path.join(present, "model.safetensors.index.json"))
    outcomes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ["attention-bias-missing", "mlp-bias-missing", "attention-bias-present"]:
            w = os.path.join(tmp, name)
            shutil.copytree(os.path.join(OUT, name), w)
            if not os.path.exists(os.path.join(w, "model.safetensors")):
                shutil.copy(os.path.join(READER, "q4-g32", "model.safetensors"), w)
            for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
                shutil.copy(os.path.join(TOKENIZER, f), w)
            r = subprocess.run([sys.executable, "-c", LOAD, w], capture_output=True, text=True, check=True)
            outcomes[name] = json.loads(r.stdout.strip().splitlines()[-1])
    from importlib.metadata import version
    with open(os.path.join(OUT, "outcomes.json"), "w") as f:
        json.dump({"generator": "tools/llama/record_mlx_bias_fixtures.py", "mlx_lm": version("mlx-lm"), "mlx": version("mlx"),
                   "directories": outcomes}, f, indent=1)
        f.write("\n")
    for k, v in outcomes.items():
        print(k, v.get("loaded"), (v.get("error") or str(v.get("biases")))[:150].replace("\n", " "))


if __name__ == "__main__":
    main()
