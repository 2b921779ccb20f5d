#!/usr/bin/env python3
"""Independently check a causal-LM golden file (format_version 2) against its Hugging Face checkpoint.

    .build-venv-llama/bin/python tools/llama/check_llama_goldens.py golden/tiny-llama [--golden FILE]
        [--max-entropy-ratio 0.9]

Shares no code with the recorder (tools/llama/record_goldens.py, llama_capture.py). It
  1. checks the root attributes and the SHA-256 of every weight file;
  2. re-tokenizes the recorded prompts and requires /inputs/input_ids, position_ids and attention_mask;
  3. runs transformers' LlamaForCausalLM plainly (output_hidden_states, output_attentions; no wrapping) and requires
     the logits, every decoder layer's output, the final norm's output, the embeddings and the attention
     probabilities to be bit-identical to the recorded datasets;
  4. feeds every recorded module, alone, the datasets its `inputs` attribute names (as the arguments `input_args`
     names) and requires its recorded output bit for bit: this proves each node's `inputs`;
  5. recomputes q_rope/k_rope from q_proj/k_proj and cos/sin with its own rotate-half formula (bit for bit), and the
     attention entropies from the probabilities;
  6. re-runs the model in float64 and requires /reference/logits_f64 bit for bit and the recorded noise floors of
     logits and layer outputs;
  7. requires attention to be sharp: in every layer the mean entropy over heads is at most --max-entropy-ratio times
     the entropy of uniform causal attention (the point of training the reference: with near-uniform attention a
     GGUF written without the Q/K permutation still agrees on most top-1 tokens).
Exit 0 if everything holds, 1 otherwise, 2 on unreadable input.
"""

import argparse
import hashlib
import json
import os
import sys

import h5py
import numpy as np
import torch

problems = []


def check(condition, message):
    if not condition:
        problems.append(message)
        print("FAIL", message)
    return condition


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def strings(attr):
    return [text(v) for v in attr]


def same(name, actual, expected):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return check(False, f"{name}: shape {list(actual.shape)} != recorded {list(expected.shape)}")
    identical = actual.tobytes() == expected.astype(actual.dtype).tobytes() and actual.dtype == expected.dtype
    if not identical:
        d = np.abs(actual.astype(np.float64) - expected.astype(np.float64)).max()
        return check(False, f"{name}: not bit-identical to the recomputation (max |diff| {d:.3e})")
    return True


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--golden", help="default MODEL_DIR/golden.h5")
    parser.add_argument("--max-entropy-ratio", type=float, default=0.9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from transformers import AutoTokenizer, LlamaForCausalLM

    path = args.golden or os.path.join(args.model_dir, "golden.h5")
    try:
        golden = h5py.File(path, "r")
    except OSError as e:
        print(f"error: {path}: {e}", file=sys.stderr)
        return 2
    root = dict(golden.attrs)
    check(text(root.get("format")) == "parity-golden", "root format is not parity-golden")
    check(int(root.get("format_version", 0)) == 2, "format_version is not 2")
    check(text(root.get("kind")) == "causal-lm", "kind is not causal-lm")
    hashes = json.loads(text(root["weights_files"]))
    for file, digest in hashes.items():
        check(sha256_file(os.path.join(args.model_dir, file)) == digest, f"{file}: SHA-256 differs from the golden's")

    model = LlamaForCausalLM.from_pretrained(args.model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    config = model.config
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    ids = golden["inputs/input_ids"][()]
    batch, length = ids.shape
    prompts = json.loads(text(root["prompts"]))
    expected_ids = np.array([tokenizer(p)["input_ids"][:length] for p in prompts], dtype=np.int32)
    same("/inputs/input_ids (re-tokenized prompts)", ids, expected_ids)
    same("/inputs/position_ids", golden["inputs/position_ids"][()],
         np.tile(np.arange(length, dtype=np.int32), (batch, 1)))
    same("/inputs/attention_mask", golden["inputs/attention_mask"][()], np.ones((batch, length), np.int32))

    # 3. A plain forward pass.
    input_ids = torch.from_numpy(ids.astype(np.int64))
    position_ids = torch.arange(length).unsqueeze(0).repeat(batch, 1)
    mask = torch.ones(batch, length, dtype=torch.long)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, output_hidden_states=True,
                    output_attentions=True, use_cache=False, return_dict=True)
    acts = golden["activations"]
    layers = config.num_hidden_layers
    same("logits = /activations/lm_head", out.logits.numpy(), acts["lm_head"][()])
    same("hidden_states[0] = /activations/model.embed_tokens", out.hidden_states[0].numpy(),
         acts["model.embed_tokens"][()])
    for i in range(layers - 1):
        same(f"hidden_states[{i + 1}] = /activations/model.layers.{i}", out.hidden_states[i + 1].numpy(),
             acts[f"model.layers.{i}"][()])
    same("hidden_states[-1] = /activations/model.norm", out.hidden_states[-1].numpy(), acts["model.norm"][()])
    for i in range(layers):
        same(f"attentions[{i}] = probs of layer {i}", out.attentions[i].numpy(),
             golden[f"attention/model.layers.{i}.self_attn/probs"][()])

    # The `order` attribute is a topological order of the `inputs` graph, and every input names a dataset.
    orders = {}
    golden.visititems(lambda n, o: orders.__setitem__("/" + n, o) if isinstance(o, h5py.Dataset)
                      and "order" in o.attrs else None)
    for dataset_path, d in orders.items():
        for source in strings(d.attrs.get("inputs", [])):
            if check(source in orders, f"{dataset_path}: input {source} is not a recorded dataset"):
                check(int(orders[source].attrs["order"]) < int(d.attrs["order"]),
                      f"{dataset_path}: order {int(d.attrs['order'])} is not after its input {source}")
    check(sorted(int(d.attrs["order"]) for d in orders.values()) == list(range(len(orders))),
          "order is not 0..n-1")

    # 4. Every module alone on its recorded inputs.
    modules = dict(model.named_modules())
    checked = 0
    for name in acts:
        d = acts[name]
        if text(d.attrs.get("kind")) != "module":
            continue
        module = modules[text(d.attrs["module"])]
        arguments = {}
        for source, label in zip(strings(d.attrs["inputs"]), strings(d.attrs["input_args"])):
            value = golden[source][()]
            tensor = torch.from_numpy(value.astype(np.int64) if value.dtype.kind == "i" else value)
            if label.endswith("]"):
                key, index = label[:-1].split("[")
                arguments.setdefault(key, {})[int(index)] = tensor
            else:
                arguments[label] = tensor
        for key, value in list(arguments.items()):
            if isinstance(value, dict):
                arguments[key] = tuple(value[i] for i in range(len(value)))
        if "options" in d.attrs:
            arguments.update(json.loads(text(d.attrs["options"])))
        with torch.no_grad():
            result = module(**arguments)
        if not isinstance(result, torch.Tensor):
            result = result[0]
        same(f"/activations/{name} recomputed alone from its inputs", result.numpy(), d[()])
        checked += 1
    print(f"{checked} modules reproduced in isolation from their recorded inputs")

    # 5. RoPE and entropy.
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = config.hidden_size // heads
    cos = torch.from_numpy(acts["model.rotary_emb"][()]).unsqueeze(1)
    sin = torch.from_numpy(acts["model.rotary_emb:1"][()]).unsqueeze(1)
    ratios = []
    for i in range(layers):
        group = golden[f"attention/model.layers.{i}.self_attn"]
        for proj, n, key in (("q_proj", heads, "q_rope"), ("k_proj", kv_heads, "k_rope")):
            x = torch.from_numpy(acts[f"model.layers.{i}.self_attn.{proj}"][()])
            x = x.view(batch, length, n, head_dim).transpose(1, 2)
            same(f"layer {i} {key}", (x * cos + rotate_half(x) * sin).numpy(), group[key][()])
        p = group["probs"][()].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = np.where(p > 0, -p * np.log(p), 0.0).sum(-1)
        same(f"layer {i} entropy", entropy, group["entropy"][()])
        uniform = np.log(np.arange(2, length + 1, dtype=np.float64)).mean()
        ratio = entropy[:, :, 1:].mean() / uniform
        ratios.append(ratio)
        print(f"layer {i}: attention entropy per head {np.round(entropy[:, :, 1:].mean(axis=(0, 2)), 3).tolist()} "
              f"nats; uniform {uniform:.3f}; mean/uniform {ratio:.3f}")
        check(ratio <= args.max_entropy_ratio,
              f"layer {i}: mean attention entropy is {ratio:.3f} of uniform's, above {args.max_entropy_ratio}")

    # 5b. The inline ops between modules, from the datasets their `inputs` name.
    groups = kv_heads and heads // kv_heads
    inline = 0
    for kind in ("intermediates", "attention"):
        def visit(name, d):
            nonlocal inline
            if not isinstance(d, h5py.Dataset) or "op" not in d.attrs:
                return
            op, sources = text(d.attrs["op"]), strings(d.attrs.get("inputs", []))
            arrays = [torch.from_numpy(golden[s][()]) for s in sources]
            if op == "mul":
                value = arrays[0] * arrays[1]
            elif op == "add":
                value = arrays[0] + arrays[1]
            elif op == "attention_output":
                probs, v = arrays
                v = v.view(batch, length, kv_heads, head_dim).transpose(1, 2)
                v = v[:, :, None].expand(batch, kv_heads, groups, length, head_dim).reshape(batch, heads, length,
                                                                                            head_dim)
                value = torch.matmul(probs, v).transpose(1, 2).contiguous().reshape(batch, length, -1)
            elif op == "attention_probs":
                q, k, m = arrays
                k = k[:, :, None].expand(batch, kv_heads, groups, length, head_dim).reshape(batch, heads, length,
                                                                                            head_dim)
                scores = torch.matmul(q, k.transpose(2, 3)) / (head_dim ** 0.5) + m
                value = torch.softmax(scores, dim=-1, dtype=torch.float32)
            elif op == "causal_mask":
                keep = torch.tril(torch.ones(length, length, dtype=torch.bool))[None, None] & \
                    (arrays[0][:, None, None, :] == 1)
                value = torch.where(keep, torch.tensor(0.0), torch.tensor(torch.finfo(torch.float32).min))
            elif op == "arange":
                value = torch.arange(length, dtype=torch.int32)
            else:
                check(False, f"/{kind}/{name}: unknown op {op}")
                return
            same(f"/{kind}/{name} ({op}) recomputed from {sources}", value.numpy(), d[()])
            inline += 1
        golden[kind].visititems(visit)
    print(f"{inline} inline ops (residual adds, SwiGLU product, attention output and probabilities, mask) "
          "reproduced from their recorded inputs")

    # 6. float64.
    model64 = model.double()
    with torch.no_grad():
        out64 = model64(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                        output_hidden_states=True, use_cache=False, return_dict=True)
    same("/reference/logits_f64", out64.logits.numpy(), golden["reference/logits_f64"][()])
    floors = [("lm_head", out.logits, out64.logits), ("model.norm", out.hidden_states[-1], out64.hidden_states[-1])]
    floors += [(f"model.layers.{i}", out.hidden_states[i + 1], out64.hidden_states[i + 1]) for i in range(layers - 1)]
    for name, a32, a64 in floors:
        diff = a32.numpy().astype(np.float64) - a64.numpy()
        check(float(np.abs(diff).max()) == float(acts[name].attrs["noise_floor_max_abs"]),
              f"/activations/{name}: noise_floor_max_abs differs from a fresh float64 run")
    golden.close()
    if problems:
        print(f"{len(problems)} problem(s)")
        return 1
    print(f"OK: {path} reproduces bit for bit; attention entropy/uniform per layer "
          f"{[round(float(r), 3) for r in ratios]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
