#!/usr/bin/env python3
"""Record golden activations (golden file format_version 2, kind "causal-lm") for a Hugging Face Llama checkpoint
directory, from transformers' own `LlamaForCausalLM` (eager attention) in float32, with a float64 re-run as the
noise floor.

    tools/llama/setup-venvs.sh llama # once: .build-venv-llama (Debian's torch 1.13 + transformers 4.46.3)
    .build-venv-llama/bin/python tools/llama/record_goldens.py HF_DIR --prompts FILE [--tokens N] [--out FILE] [--replace]
    .build-venv-llama/bin/python tools/llama/record_goldens.py golden/tiny-llama --prompts golden/tiny-llama/prompts.txt --tokens 32

HF_DIR: config.json with model_type "llama"; model.safetensors, or shards listed in model.safetensors.index.json;
a tokenizer (tokenizer.json and/or tokenizer.model). FILE: UTF-8, one prompt per line (blank lines ignored). Each
prompt is tokenized with the directory's tokenizer (BOS added as the tokenizer does) and cut to N tokens (default:
the shortest prompt's length), so the batch has equal lengths and every position is real (no padding).

Writes HF_DIR/golden.h5 unless --out is given; never replaces an existing file silently (prints a per-dataset diff;
exit 1 if it differs, unless --replace). The layout is documented in golden/README.md ("Golden files for causal
language models"). Exit 2 on bad input.
"""

import argparse
import copy
import datetime
import hashlib
import json
import os
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from llama_capture import Capture  # noqa: E402
from golden_file import install_golden, temporary_golden  # noqa: E402
from regen_goldens import add_dataset  # noqa: E402
import parity_models  # noqa: E402

FORMAT_VERSION = 2


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weight_files(model_dir):
    """The safetensors files of a checkpoint as transformers finds them: model.safetensors, else the shards its index
    lists. transformers leaves a tensor the index lists but its shard lacks randomly initialised (a warning only) and
    lets a later shard overwrite a tensor in two shards, so those (and a shard path leaving the directory) are bad
    input here, as in Parity's reader (SafetensorsCheckpoint)."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return ["model.safetensors"]
    if os.path.exists(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            if not isinstance(weight_map, dict) or not weight_map:
                raise ValueError("weight_map is not a non-empty object")
        except (ValueError, KeyError, TypeError) as e:
            fail(f"{index}: not a safetensors index ({e})")
        for tensor, shard in weight_map.items():
            parts = shard.split("/") if isinstance(shard, str) else [""]
            if not isinstance(shard, str) or shard.startswith("/") or ".." in parts or "" in parts:
                fail(f"{index}: weight_map[{tensor!r}] = {shard!r} is not a file inside the checkpoint directory")
        shards = sorted(set(weight_map.values()))
        from safetensors import safe_open
        holders = {}
        for shard in shards:
            path = os.path.join(model_dir, shard)
            if not os.path.exists(path):
                fail(f"{path}: shard {shard} listed in {index} not found")
            with safe_open(path, "pt") as f:
                for tensor in f.keys():
                    holders.setdefault(tensor, []).append(shard)
        for tensor, found in sorted(holders.items()):
            if len(found) > 1:
                fail(f"{os.path.join(model_dir, found[0])}: tensor {tensor!r} is in shards {' and '.join(found)}")
            if weight_map.get(tensor) != found[0]:
                where = f"puts it in {weight_map[tensor]}" if tensor in weight_map else "does not list it"
                fail(f"{os.path.join(model_dir, found[0])}: tensor {tensor!r} is here, but {index}'s weight_map {where}")
        for tensor, shard in weight_map.items():
            if tensor not in holders:
                fail(f"{os.path.join(model_dir, shard)}: has no tensor {tensor!r}, which {index}'s weight_map puts in it")
        return shards
    fail(f"{model_dir}: no model.safetensors nor model.safetensors.index.json")


def load_checkpoint(model_dir):
    config_path = os.path.join(model_dir, "config.json")
    try:
        with open(config_path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{config_path}: {e}")
    if config.get("model_type") != "llama":
        fail(f"{config_path}: model_type is {config.get('model_type')!r}; this recorder handles \"llama\"")
    files = weight_files(model_dir)
    from transformers import AutoTokenizer, LlamaForCausalLM
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except Exception as e:  # noqa: BLE001 - any tokenizer failure is bad input
        fail(f"{model_dir}: cannot load its tokenizer ({e})")
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return config, files, tokenizer, model


def tokenize(tokenizer, prompts_path, tokens):
    try:
        with open(prompts_path, encoding="utf-8") as f:
            prompts = [line.rstrip("\n") for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{prompts_path}: {e}")
    if not prompts:
        fail(f"{prompts_path}: no prompts")
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    length = tokens or min(len(i) for i in ids)
    for n, i in enumerate(ids):
        if len(i) < length:
            fail(f"{prompts_path}: prompt {n + 1} has {len(i)} tokens, fewer than --tokens {length}")
    return prompts, np.array([i[:length] for i in ids], dtype=np.int64)


def forward(model, ids):
    """The inputs and the forward call; tensors are new objects each time, registered by the capture."""
    input_ids = torch.from_numpy(ids)
    batch, length = ids.shape
    position_ids = torch.arange(length, dtype=torch.long).unsqueeze(0).repeat(batch, 1)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    given = [("/inputs/input_ids", input_ids), ("/inputs/position_ids", position_ids),
             ("/inputs/attention_mask", attention_mask)]

    def call():
        return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                     output_attentions=True, use_cache=False, return_dict=True)
    return given, call


def capture(model, ids):
    given, call = forward(model, ids)
    return Capture(model).run(given, call)


def layout(path, record):
    if "layout" in record:
        return record["layout"]
    array = record["array"]
    if path.endswith("/probs"):
        return "BHTS"
    if array.ndim == 4:
        return "B1TS" if array.shape[1] == 1 else "BHTS"
    return {3: "BTC", 2: "BT", 1: "T"}.get(array.ndim, "")


def is_mask(array):
    return array.dtype.kind == "f" and array.size and array.min() <= -1e30


def noise_floor(f32, f64):
    diff = f32.astype(np.float64) - f64
    norm = np.linalg.norm(f64)
    rel = np.linalg.norm(diff) / norm if norm > 0 else (0.0 if not diff.any() else float("inf"))
    return float(np.abs(diff).max()) if diff.size else 0.0, float(rel)


def attention_entropy(probs):
    """Per (batch, head, query) entropy of the attention rows, nats, float64; and log(number of visible keys)."""
    p = probs.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    entropy = terms.sum(axis=-1)
    uniform = np.log(np.arange(1, p.shape[-1] + 1, dtype=np.float64))  # query t sees t + 1 keys (causal)
    return entropy, uniform


def describe_inline_ops(records):
    """Name what each inline tensor of a Llama layer was computed from (the code between modules, which no hook sees).

    The capture knows which module first read such a tensor; this adds the op and the datasets it was computed from,
    as transformers' LlamaDecoderLayer / LlamaAttention / LlamaMLP compute them (check_llama_goldens.py recomputes
    each one from these inputs and requires it bit for bit). Attention probabilities get the same treatment: they
    are returned by self_attn but computed from q_rope, k_rope and the mask.
    """
    for path, rec in records.items():
        if rec["kind"] == "intermediate":
            reader, argument = rec["first_read_by"], rec["argument"]
            layer = reader.rsplit(".", 2)[0] if reader.count(".") >= 3 else reader
            if reader.endswith(".mlp.down_proj"):
                mlp = reader[: -len(".down_proj")]
                rec.update(op="mul", note="act_fn(gate_proj(x)) * up_proj(x)",
                           inputs=[f"/activations/{mlp}.act_fn", f"/activations/{mlp}.up_proj"],
                           input_args=["a", "b"])
            elif reader.endswith(".post_attention_layernorm"):
                layer = reader[: -len(".post_attention_layernorm")]
                rec.update(op="add", note="residual: the decoder layer's input + self_attn's output",
                           inputs=[records[f"/activations/{layer}"]["inputs"][0], f"/activations/{layer}.self_attn"],
                           input_args=["a", "b"])
            elif reader.endswith(".self_attn.o_proj"):
                attention = reader[: -len(".o_proj")]
                rec.update(op="attention_output",
                           note="probs @ repeat_kv(v_proj split into KV heads), heads concatenated: "
                                "(B, H, T, D) -> transpose(1, 2) -> (B, T, H*D)",
                           inputs=[f"/attention/{attention}/probs", f"/activations/{attention}.v_proj"],
                           input_args=["probs", "v"])
            elif argument == "attention_mask":
                rec.update(op="causal_mask", inputs=["/inputs/attention_mask"], input_args=["attention_mask"],
                           note="4-D additive mask LlamaModel builds: 0 where key <= query and attention_mask is 1, "
                                "torch.finfo(float32).min elsewhere")
            elif argument == "cache_position":
                rec.update(op="arange", note="arange(T): positions of the tokens in the (empty) cache")
        elif path.endswith("/probs"):
            attention = rec["module"]
            base = path[len("/attention/"): -len("/probs")]
            mask = dict(zip(records[f"/activations/{attention}"]["input_args"],
                            records[f"/activations/{attention}"]["inputs"]))["attention_mask"]
            rec.update(op="attention_probs",
                       note="softmax(q_rope @ repeat_kv(k_rope)^T / sqrt(head_dim) + mask, dim=-1) in float32",
                       inputs=[f"/attention/{base}/q_rope", f"/attention/{base}/k_rope", mask],
                       input_args=["q", "k", "attention_mask"])


def topological_order(records):
    """Renumber `order` so every dataset comes after every dataset its `inputs` name (ties: recording order).

    Recording order is almost topological already, but attention probabilities are only seen when self_attn returns,
    after o_proj's input that was computed from them.
    """
    done, order = set(), []

    def visit(path, trail=()):
        if path in done:
            return
        if path in trail:
            raise RuntimeError(f"cycle through {path}")
        for source in records[path].get("inputs", []):
            visit(source, trail + (path,))
        done.add(path)
        order.append(path)
    for path in list(records):
        visit(path)
    for index, path in enumerate(order):
        records[path]["order"] = index


def storable(array):
    if array.dtype == np.int64:
        if array.size and (array.min() < -2**31 or array.max() >= 2**31):
            raise RuntimeError("integer input beyond int32")
        return array.astype(np.int32)
    return array


def write_golden(path, *, name, config, model_dir, files, prompts, ids, f32, f64, generator, seed):
    if list(f32.records) != list(f64.records):
        raise RuntimeError("the float32 and float64 runs recorded different datasets")
    describe_inline_ops(f32.records)
    topological_order(f32.records)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "parity-golden"
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["kind"] = "causal-lm"
        f.attrs["model"] = name
        f.attrs["architecture"] = config["model_type"]
        f.attrs["reference_framework"] = parity_models.reference_framework()
        import transformers
        f.attrs["reference_library"] = f"transformers {transformers.__version__}"
        f.attrs["reference_class"] = type(f32.model).__name__
        f.attrs["attn_implementation"] = "eager"
        hashes = {file: sha256_file(os.path.join(model_dir, file)) for file in files}
        if files == ["model.safetensors"]:
            f.attrs["weights_sha256"] = hashes["model.safetensors"]
        f.attrs["weights_files"] = json.dumps(hashes, sort_keys=True)
        f.attrs["generator"] = generator
        f.attrs["seed"] = np.int64(seed)
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        f.attrs["prompts"] = json.dumps(prompts, ensure_ascii=False)
        f.attrs["modules_not_run"] = json.dumps(f32.not_run)
        f.attrs["modules_called_more_than_once"] = json.dumps({k: v for k, v in f32.calls.items() if v > 1})

        for path_, rec in f32.records.items():
            group_path, leaf = path_.rsplit("/", 1)
            group = f.require_group(group_path or "/")
            array = storable(rec["array"])
            attrs = {"order": np.int64(rec["order"]), "layout": layout(path_, rec), "kind": rec["kind"]}
            for key in ("op", "module", "first_read_by", "argument", "same_as", "note"):
                if rec.get(key):
                    attrs[key] = rec[key]
            if rec["kind"] != "input":
                attrs["inputs"] = np.array(rec["inputs"], dtype=h5py.string_dtype())
                attrs["input_args"] = np.array(rec["input_args"], dtype=h5py.string_dtype())
            if "call" in rec:
                attrs["call"] = np.int64(rec["call"])
            if rec.get("options"):
                attrs["options"] = json.dumps(rec["options"], sort_keys=True)
            if rec.get("outputs"):
                attrs["outputs"] = np.array(rec["outputs"], dtype=h5py.string_dtype())
            array64 = f64.records[path_]["array"]
            if array.dtype.kind == "f" and not is_mask(rec["array"]):
                max_abs, rel = noise_floor(rec["array"], array64)
                attrs["noise_floor_max_abs"] = np.float64(max_abs)
                attrs["noise_floor_rel_l2"] = np.float64(rel)
            add_dataset(group, leaf, array, **attrs)
            if path_.endswith("/probs"):
                entropy, uniform = attention_entropy(rec["array"])
                rows = entropy[:, :, 1:]  # query 0 sees one key: entropy 0 for any attention
                add_dataset(group, "entropy", entropy, layout="BHT",
                            source=f"-sum(p log p) over keys of {path_}, float64, nats",
                            mean_per_head=rows.mean(axis=(0, 2)),
                            uniform_mean=np.float64(np.broadcast_to(uniform[1:], rows.shape).mean()),
                            max_prob_mean_per_head=rec["array"].astype(np.float64).max(-1)[:, :, 1:].mean(axis=(0, 2)))

        logits64 = f64.records["/activations/lm_head"]["array"]
        add_dataset(f.require_group("reference"), "logits_f64", logits64, layout="BTC",
                    source="float64 re-run of the whole model (model.double(), same token ids), output of lm_head")
    return hashes


def summarize(path):
    with h5py.File(path, "r") as f:
        print(f"{'dataset':<58} {'shape':<16} {'noise max abs':>13} reads")
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "order" in obj.attrs:
                nf = obj.attrs.get("noise_floor_max_abs")
                reads = ", ".join(x.decode() if isinstance(x, bytes) else x for x in obj.attrs.get("inputs", []))
                print(f"/{name:<57} {'x'.join(map(str, obj.shape)):<16} "
                      f"{('%.2e' % nf) if nf is not None else '-':>13} {reads}")
        f.visititems(visit)
        print("attention entropy (nats, mean over batch and queries 1..T-1) vs uniform:")
        for group in sorted(f["attention"]):
            e = f["attention"][group]["entropy"]
            print(f"  {group:<32} per head {np.round(e.attrs['mean_per_head'], 3).tolist()} "
                  f"uniform {e.attrs['uniform_mean']:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--prompts", required=True, help="UTF-8 text file, one prompt per line")
    parser.add_argument("--tokens", type=int, default=0, help="tokens per prompt (default: the shortest prompt's)")
    parser.add_argument("--out", help="golden file to write (default MODEL_DIR/golden.h5)")
    parser.add_argument("--name", help="model name recorded in the file (default: the directory's name)")
    parser.add_argument("--replace", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    model_dir = os.path.abspath(args.model_dir)
    if not os.path.isdir(model_dir):
        fail(f"{args.model_dir}: not a directory")
    config, files, tokenizer, model = load_checkpoint(model_dir)
    prompts, ids = tokenize(tokenizer, args.prompts, args.tokens)
    if ids.max() >= config["vocab_size"]:
        fail(f"{args.prompts}: token id {ids.max()} is beyond vocab_size {config['vocab_size']}")
    seed = -1
    training = os.path.join(model_dir, "training.json")
    if os.path.exists(training):
        with open(training) as f:
            seed = json.load(f).get("seed", -1)

    shown = lambda p: os.path.relpath(p, REPO) if os.path.abspath(p).startswith(REPO + os.sep) else p  # noqa: E731
    generator = (f"tools/llama/record_goldens.py {shown(model_dir)} --prompts {shown(os.path.abspath(args.prompts))} "
                 f"--tokens {ids.shape[1]}")
    f32 = capture(model, ids)
    f64 = capture(copy.deepcopy(model).double(), ids)

    out = os.path.abspath(args.out) if args.out else os.path.join(model_dir, "golden.h5")
    with temporary_golden(out) as temp:
        write_golden(temp, name=args.name or os.path.basename(model_dir), config=config, model_dir=model_dir,
                     files=files, prompts=prompts, ids=ids, f32=f32, f64=f64, generator=generator, seed=seed)
        print(f"{len(f32.records)} datasets, batch {ids.shape[0]} x {ids.shape[1]} tokens; "
              f"modules that never ran: {f32.not_run}")
        summarize(temp)
        return install_golden(out, temp, args.replace)


if __name__ == "__main__":
    sys.exit(main())
