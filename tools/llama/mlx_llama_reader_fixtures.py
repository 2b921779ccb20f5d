#!/usr/bin/env python3
"""Small Llama directories written by real mlx-lm, and how `mlx_lm.load` reacts to each (MLXLlamaWeightsTests).

    .build-venv-mlxlm/bin/python tools/llama/mlx_llama_reader_fixtures.py [--out Tests/ParityTests/Fixtures/llama/mlx-reader]

A one-layer Llama (hidden 64, 2 heads x 32, 1 KV head, intermediate 64, vocab 32, seed 0) built with mlx-lm's own
models/llama.py, saved with mlx_lm.utils.save_model / save_config (quantized with mlx_lm.utils.quantize_model), so
every file is what mlx-lm writes. Directories (config.json + model.safetensors; no tokenizer: the reader does not
need one, and mlx_lm.load is run here with the golden tokenizer copied beside them):
  float16          plain, cast to float16
  q4-g32           affine 4-bit, group 32 (quantize_model)
  mxfp4            mxfp4 (group 32, uint8 scales)
  tied-q4-g32      tie_word_embeddings true: no lm_head, the output is the quantized embedding's as_linear
  extra-parameter  q4-g32 plus a stray `model.layers.0.self_attn.q_proj.bias` (written with mx.save_safetensors)
  missing-parameter q4-g32 without `model.norm.weight`
Planted config mistakes on the q4-g32 weights (only config.json is stored; the test puts q4-g32's
model.safetensors beside it, as this script does before loading):
  planted-global-bits     "quantization" (and quantization_config) say 8 bits; the tensors are 4-bit
  planted-module-entry    a per-module entry says model.layers.0.self_attn.q_proj is 8-bit
  planted-no-quantization no "quantization" entry at all
  planted-rope-traditional  rope_traditional true: mlx-lm rotates adjacent pairs (other logits, same weights)
  no-tie-word-embeddings-key  tie_word_embeddings removed (mlx-lm's ModelArgs default is true, transformers' false)
  malformed-no-rms-norm-eps  rms_norm_eps removed (a required ModelArgs field)
  malformed-quantization-config-without-method  no "quantization"; a quantization_config without quant_method
  malformed-module-entry-number  a per-module quantization entry that is a number (neither a dict nor a bool)
manifest.json: per directory the mlx_lm.load outcome (loaded, or the exception's type and first line), and when
loaded the resolved ModelArgs, per module what mlx-lm built (class; group_size/bits/mode of quantized modules), the
SHA-256 of every module's weight as float32 (mx.dequantize(..., dtype=float32) for quantized ones) and the logits
for tokens [1, 5, 9, 3].
"""

import argparse
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np

ARGS = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1, "intermediate_size": 64,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 32, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "max_position_embeddings": 128,
        "architectures": ["LlamaForCausalLM"], "torch_dtype": "float32"}
TOKENS = [1, 5, 9, 3]

LOAD_SCRIPT = r"""
import sys, json, hashlib, numpy as np, mlx.core as mx, mlx.nn as nn, mlx_lm
from mlx.utils import tree_flatten
mx.set_default_device(mx.cpu)
try:
    model, _ = mlx_lm.load(sys.argv[1])
except Exception as e:
    print(json.dumps({"loaded": False, "error_type": type(e).__name__, "error": str(e).strip()})); sys.exit(0)
modules = {}
for path, m in model.named_modules():
    if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
        w = mx.dequantize(m.weight, m.scales, m.get("biases"), group_size=m.group_size, bits=m.bits, mode=m.mode, dtype=mx.float32)
        modules[path] = {"class": type(m).__name__, "group_size": m.group_size, "bits": m.bits, "mode": m.mode}
    elif isinstance(m, (nn.Linear, nn.Embedding, nn.RMSNorm)):
        w = m.weight.astype(mx.float32)
        modules[path] = {"class": type(m).__name__, "dtype": str(m.weight.dtype)}
    else:
        continue
    mx.eval(w)
    modules[path]["shape"] = list(w.shape)
    modules[path]["weight_f32_sha256"] = hashlib.sha256(np.asarray(w).astype("<f4").tobytes()).hexdigest()
logits = model(mx.array([[%s]])).astype(mx.float32); mx.eval(logits)
args = {k: v for k, v in vars(model.args).items() if isinstance(v, (int, float, str, bool, type(None), list))}
print(json.dumps({"loaded": True, "model_args": args, "modules": modules, "logits": np.asarray(logits)[0].tolist()}))
""" % ", ".join(map(str, TOKENS))


def build(tied=False):
    import mlx.core as mx
    from mlx_lm.models import llama
    mx.random.seed(0)
    config = dict(ARGS, tie_word_embeddings=tied)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    # Norm weights away from 1 so a reader that ignores them is caught.
    from mlx.utils import tree_flatten, tree_unflatten
    params = [(k, (mx.random.normal(v.shape) * 0.5 + (1.0 if "norm" in k else 0.0)).astype(mx.float32))
              for k, v in tree_flatten(model.parameters())]
    model.update(tree_unflatten(params))
    mx.eval(model.parameters())
    return model, config


def save(model, config, directory):
    from mlx_lm.utils import save_config, save_model
    shutil.rmtree(directory, ignore_errors=True)
    save_model(directory, model)
    save_config(copy.deepcopy(config), os.path.join(directory, "config.json"))
    os.remove(os.path.join(directory, "model.safetensors.index.json"))  # mlx-lm never reads it; keeps fixtures small


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/ParityTests/Fixtures/llama/mlx-reader")
    ap.add_argument("--tokenizer", default="golden/tiny-llama")
    ap.add_argument("--work", default=".build-mlxllama/reader")
    args = ap.parse_args()
    import mlx.core as mx
    from importlib.metadata import version
    from mlx.utils import tree_map
    from mlx_lm.utils import quantize_model

    out = args.out
    os.makedirs(out, exist_ok=True)
    # float16
    model, config = build()
    model.update(tree_map(lambda v: v.astype(mx.float16), model.parameters()))
    save(model, config, os.path.join(out, "float16"))
    # q4-g32 and mxfp4
    model, config = build()
    qmodel, qconfig = quantize_model(model, config, 32, 4)
    save(qmodel, qconfig, os.path.join(out, "q4-g32"))
    model, config = build()
    m4, c4 = quantize_model(model, config, None, None, mode="mxfp4")
    save(m4, c4, os.path.join(out, "mxfp4"))
    # tied
    model, config = build(tied=True)
    tmodel, tconfig = quantize_model(model, config, 32, 4)
    save(tmodel, tconfig, os.path.join(out, "tied-q4-g32"))
    # extra / missing parameter: mlx-lm's q4-g32 weights re-saved with MLX
    q4 = mx.load(os.path.join(out, "q4-g32", "model.safetensors"))
    for name, change in [("extra-parameter", lambda w: dict(w, **{"model.layers.0.self_attn.q_proj.bias": mx.zeros((64,))})),
                         ("missing-parameter", lambda w: {k: v for k, v in w.items() if k != "model.norm.weight"})]:
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        mx.save_safetensors(os.path.join(d, "model.safetensors"), change(q4), metadata={"format": "mlx"})
        shutil.copy(os.path.join(out, "q4-g32", "config.json"), d)
    # planted configs (stored without weights)
    planted = {}
    c = copy.deepcopy(qconfig); c["quantization"] = dict(c["quantization"], bits=8)
    planted["planted-global-bits"] = c
    c = copy.deepcopy(qconfig); c["quantization"] = dict(c["quantization"], **{"model.layers.0.self_attn.q_proj": {"group_size": 32, "bits": 8}})
    planted["planted-module-entry"] = c
    c = copy.deepcopy(qconfig); c.pop("quantization"); c.pop("quantization_config")
    planted["planted-no-quantization"] = c
    c = copy.deepcopy(qconfig); c["rope_traditional"] = True
    planted["planted-rope-traditional"] = c
    c = copy.deepcopy(qconfig); c.pop("tie_word_embeddings")
    planted["no-tie-word-embeddings-key"] = c
    c = copy.deepcopy(qconfig); c.pop("rms_norm_eps")
    planted["malformed-no-rms-norm-eps"] = c
    c = copy.deepcopy(qconfig); c.pop("quantization"); c["quantization_config"] = {"group_size": 32, "bits": 4}
    planted["malformed-quantization-config-without-method"] = c
    c = copy.deepcopy(qconfig); c["quantization"] = dict(c["quantization"], **{"model.layers.0.mlp.up_proj": 4})
    planted["malformed-module-entry-number"] = c
    from mlx_lm.utils import save_config
    for name, cfg in planted.items():
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        if "quantization" not in cfg:  # save_config would copy quantization into quantization_config
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(dict(sorted(cfg.items())), f, indent=4)
        else:
            save_config(cfg, os.path.join(d, "config.json"))

    # mlx_lm.load each, in a work copy with a tokenizer (and q4-g32's weights for the config-only ones)
    manifest = {"made_by": "tools/llama/mlx_llama_reader_fixtures.py", "versions": {"mlx": mx.__version__, "mlx-lm": version("mlx-lm")},
                "model_args": ARGS, "tokens": TOKENS, "directories": {}}
    for name in sorted(os.listdir(out)):
        d = os.path.join(out, name)
        if not os.path.isdir(d):
            continue
        w = os.path.join(args.work, name)
        shutil.rmtree(w, ignore_errors=True)
        shutil.copytree(d, w)
        if not os.path.exists(os.path.join(w, "model.safetensors")):
            shutil.copy(os.path.join(out, "q4-g32", "model.safetensors"), w)
        for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
            shutil.copy(os.path.join(args.tokenizer, f), w)
        r = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, w], capture_output=True, text=True)
        outcome = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"loaded": False, "error": r.stderr[-500:]}
        outcome["weights"] = "own model.safetensors" if os.path.exists(os.path.join(d, "model.safetensors")) else "q4-g32/model.safetensors"
        manifest["directories"][name] = outcome
        print(f"{name:28s} loaded {outcome['loaded']} {outcome.get('error_type', '')} {outcome.get('error', '')[:120]}")
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"fixture bytes: {total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
