#!/usr/bin/env python3
"""Record golden activations (format_version 2, kind "sentence-embedding") for a sentence-transformers BERT
directory (all-MiniLM-L6-v2), from transformers' own `BertModel` (eager attention) in float32 with a float64 re-run
as the noise floor, followed by sentence-transformers' Pooling (mean) and Normalize computed as that library does.

    tools/llama/setup-venvs.sh llama   # once: .build-venv-llama (Debian's torch 1.13 + transformers 4.46.3)
    tools/minilm/setup.sh              # once: the model package
    .build-venv-llama/bin/python tools/minilm/record_goldens.py "$(tools/minilm/model-dir.sh)" \
        --sentences golden/minilm-l6/sentences.txt --node-sentences 1 --pad-to 5 --out golden/minilm-l6/golden.h5

The --node-sentences (0-based lines of the sentence file, padded to --pad-to tokens: padding is exercised even for
one sentence) are recorded node by node, every module of every layer in --layers (default: all; the root attribute
`omitted_modules` names any layer left out). Every sentence of the file goes through the model too, and its token
ids, mask and sentence embedding (float32 and float64) are stored under /reference.

Size (golden/ stays under 20 MB): each token row of the node batch costs ~150 KB (18 distinct [T, 384]-or-[T, 1536]
float32 tensors per layer, which gzip barely shrinks), so the node batch is a few rows. A module that returns its
child's very tensor (`same_as`: dropouts, `attention`, `output`, `encoder.layer.N`) is an HDF5 virtual dataset
mapping the twin's data (any HDF5 reader reads it as the values; no bytes twice), and attributes stay in the object
header (compact storage) instead of a heap per dataset.

Never replaces an existing file silently (per-dataset diff; exit 1 if it differs, unless --replace). Exit 2 on bad
input.
"""

import argparse
import copy
import datetime
import json
import os
import re
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools", "llama"))
sys.path.insert(0, os.path.join(REPO, "tools"))
from llama_capture import Capture  # noqa: E402
from golden_file import install_golden, temporary_golden  # noqa: E402
from record_goldens import is_mask, noise_floor, sha256_file, storable, topological_order  # noqa: E402
import parity_models  # noqa: E402

FORMAT_VERSION = 2
LAYER = re.compile(r"encoder\.layer\.(\d+)(?=[./@:]|$)")


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def load(model_dir):
    config_path = os.path.join(model_dir, "config.json")
    try:
        with open(config_path) as f:
            config = json.load(f)
        with open(os.path.join(model_dir, "modules.json")) as f:
            modules = json.load(f)
        pooling_dir = next(m["path"] for m in modules if m["type"] == "sentence_transformers.models.Pooling")
        with open(os.path.join(model_dir, pooling_dir, "config.json")) as f:
            pooling = json.load(f)
    except (OSError, ValueError, StopIteration) as e:
        fail(f"{model_dir}: not a sentence-transformers BERT directory ({e})")
    if config.get("model_type") != "bert":
        fail(f"{config_path}: model_type is {config.get('model_type')!r}; this recorder handles \"bert\"")
    if not pooling.get("pooling_mode_mean_tokens") or any(
            pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")):
        fail(f"{model_dir}/{pooling_dir}/config.json: this recorder computes mean pooling only")
    normalizes = any(m["type"] == "sentence_transformers.models.Normalize" for m in modules)
    from transformers import AutoTokenizer, BertModel
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # sentence-transformers' Transformer module loads AutoModel (a BertModel with its pooler) and discards the
    # pooler's output; the pooler is left out here so every recorded module is one the embedding depends on.
    model = BertModel.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager", add_pooling_layer=False)
    model.eval()
    return config, tokenizer, model, normalizes


def tokenize(tokenizer, sentences, pad_to=None):
    padding = {"padding": "max_length", "max_length": pad_to} if pad_to else {"padding": True, "max_length": 256}
    batch = tokenizer(sentences, truncation=True, return_tensors="np", **padding)
    ids = batch["input_ids"].astype(np.int64)
    mask = batch["attention_mask"].astype(np.int64)
    types = batch["token_type_ids"].astype(np.int64)
    return ids, mask, types


def mean_pool(tokens, mask):
    """sentence-transformers Pooling, pooling_mode_mean_tokens (models/Pooling.py)."""
    expanded = mask.unsqueeze(-1).expand(tokens.size()).to(tokens.dtype)
    summed = torch.sum(tokens * expanded, 1)
    counts = torch.clamp(expanded.sum(1), min=1e-9)
    return summed / counts


def normalize(x):
    """sentence-transformers Normalize: torch.nn.functional.normalize(x, p=2, dim=1)."""
    return torch.nn.functional.normalize(x, p=2, dim=1)


def capture(model, ids, mask, types, normalizes):
    input_ids, attention_mask, token_type_ids = torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)
    position_ids = torch.arange(ids.shape[1], dtype=torch.long).unsqueeze(0).repeat(ids.shape[0], 1)
    given = [("/inputs/input_ids", input_ids), ("/inputs/token_type_ids", token_type_ids),
             ("/inputs/position_ids", position_ids), ("/inputs/attention_mask", attention_mask)]
    out = {}

    def call():
        out["model"] = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, output_attentions=True, return_dict=True)
    cap = Capture(model).run(given, call)
    last = out["model"].last_hidden_state
    producer = cap.resolve(last)
    with torch.no_grad():
        pooled = mean_pool(last, attention_mask)
        cap.register("/activations/pooling", pooled, kind="module", op="Pooling", module="pooling", call=0,
                     inputs=[producer, "/inputs/attention_mask"], input_args=["token_embeddings", "attention_mask"],
                     note="sentence-transformers Pooling (mean): sum(x * mask) / clamp(sum(mask), 1e-9)")
        if normalizes:
            cap.register("/activations/normalize", normalize(pooled), kind="module", op="Normalize", module="normalize", call=0,
                         inputs=["/activations/pooling"], input_args=["sentence_embedding"],
                         note="sentence-transformers Normalize: F.normalize(x, p=2, dim=1)")
    return cap


def describe_inline_ops(records):
    """Name the inline tensors of BertModel (computed between modules) by what they are computed from, and give the
    attention probabilities (first seen as the input of the attention dropout) their /attention name."""
    renames = {}
    for path, rec in list(records.items()):
        if rec["kind"] != "intermediate":
            continue
        reader, argument = rec["first_read_by"], rec["argument"]
        if reader == "embeddings.LayerNorm":
            rec.update(op="add", note="inputs_embeds + token_type_embeddings, then += position_embeddings",
                       inputs=["/activations/embeddings.word_embeddings", "/activations/embeddings.token_type_embeddings",
                               "/activations/embeddings.position_embeddings"],
                       input_args=["inputs_embeds", "token_type_embeddings", "position_embeddings"])
        elif reader == "encoder" and argument == "attention_mask":
            rec.update(op="extended_attention_mask", inputs=["/inputs/attention_mask"], input_args=["attention_mask"],
                       note="get_extended_attention_mask: (1.0 - mask[:, None, None, :]) * torch.finfo(float32).min")
        elif reader.endswith(".attention.self.dropout"):
            attention = reader[: -len(".dropout")]
            rec.update(kind="attention", op="attention_probs", module=attention, layout="BHTS",
                       note="softmax(query @ key^T / sqrt(head_dim) + extended mask, dim=-1), heads split from the projections",
                       inputs=[f"/activations/{attention}.query", f"/activations/{attention}.key",
                               "/intermediates/encoder.attention_mask"],
                       input_args=["q", "k", "attention_mask"])
            for key in ("first_read_by", "argument"):
                rec.pop(key)
            renames[path] = f"/attention/{attention}/probs"
        elif reader.endswith(".output.LayerNorm"):
            block = reader[: -len(".LayerNorm")]  # encoder.layer.N.attention.output or encoder.layer.N.output
            rec.update(op="add", note="residual: dropout(dense(hidden_states)) + input_tensor",
                       inputs=[f"/activations/{block}.dense", records[f"/activations/{block}"]["inputs"][1]],
                       input_args=["hidden_states", "input_tensor"])
        else:
            raise RuntimeError(f"{path}: an inline tensor this recorder cannot describe")
    for old, new in renames.items():
        records[new] = records.pop(old)
    for rec in records.values():
        rec["inputs"] = [renames.get(p, p) for p in rec.get("inputs", [])]
        if rec.get("same_as"):
            rec["same_as"] = renames.get(rec["same_as"], rec["same_as"])
        if rec.get("outputs"):
            rec["outputs"] = [renames.get(p, p) for p in rec["outputs"]]


def layout(path, array):
    if path.endswith("/probs"):
        return "BHTS"
    if path == "/intermediates/encoder.attention_mask":
        return "B11S"
    return {3: "BTC", 2: "BT" if array.dtype.kind == "i" else "BC", 1: "T"}.get(array.ndim, "")


def write(path, *, config, model_dir, sentences, node_sentences, layers, f32, f64, everything, generator):
    describe_inline_ops(f32.records)
    describe_inline_ops(f64.records)
    if list(f32.records) != list(f64.records):
        raise RuntimeError("the float32 and float64 runs recorded different datasets")
    topological_order(f32.records)
    omitted = sorted(set(range(config["num_hidden_layers"])) - set(layers))
    # HDF5 1.10 file format: virtual datasets (the `same_as` aliases) need it; libhdf5 ≥ 1.10 reads it.
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
        f.attrs["format"] = "parity-golden"
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["kind"] = "sentence-embedding"
        f.attrs["model"] = "minilm-l6"
        f.attrs["architecture"] = "bert"
        f.attrs["reference_framework"] = parity_models.reference_framework()
        import transformers
        f.attrs["reference_library"] = f"transformers {transformers.__version__} (BertModel); sentence-transformers Pooling/Normalize recomputed"
        f.attrs["reference_class"] = "BertModel"
        f.attrs["attn_implementation"] = "eager"
        f.attrs["weights_sha256"] = sha256_file(os.path.join(model_dir, "model.safetensors"))
        f.attrs["weights_files"] = json.dumps({"model.safetensors": f.attrs["weights_sha256"]})
        f.attrs["generator"] = generator
        f.attrs["seed"] = np.int64(-1)
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        f.attrs["prompts"] = json.dumps([sentences[i] for i in node_sentences], ensure_ascii=False)
        f.attrs["modules_not_run"] = json.dumps(f32.not_run)
        f.attrs["modules_called_more_than_once"] = json.dumps({k: v for k, v in f32.calls.items() if v > 1})
        f.attrs["reference_sentences"] = json.dumps(sentences, ensure_ascii=False)
        f.attrs["omitted_modules"] = json.dumps([f"encoder.layer.{n}" for n in omitted])
        kept = [p for p in f32.records if not (LAYER.search(p) and int(LAYER.search(p).group(1)) in omitted)]
        order = {p: i for i, p in enumerate(sorted(kept, key=lambda p: f32.records[p]["order"]))}
        # Data first, then the aliases that read it (a `same_as` twin may come later in forward order).
        aliases = {p: stored_twin(p, f32.records) for p in kept}
        aliases = {p: t for p, t in aliases.items() if t is not None
                   and np.array_equal(storable(f32.records[p]["array"]), storable(f32.records[t]["array"]))}
        for path_ in sorted(kept, key=lambda p: p in aliases):
            rec = f32.records[path_]
            rec["order"] = order[path_]
            group_path, leaf = path_.rsplit("/", 1)
            group = f.require_group(group_path or "/")
            array = storable(rec["array"])
            attrs = {"order": np.int64(rec["order"]), "layout": rec.get("layout") or layout(path_, array), "kind": rec["kind"]}
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
            if array.dtype.kind == "f" and not is_mask(rec["array"]):
                max_abs, rel = noise_floor(rec["array"], f64.records[path_]["array"])
                attrs["noise_floor_max_abs"] = np.float64(max_abs)
                attrs["noise_floor_rel_l2"] = np.float64(rel)
            if path_ in aliases:
                add_alias(group, leaf, f[aliases[path_]], **attrs)
            else:
                add_compressed(group, leaf, array, **attrs)
        ids, mask, types, e32, e64 = everything
        reference = f.require_group("reference")
        add_compressed(reference, "input_ids", ids.astype(np.int32), layout="BT", source="the tokenizer's ids, padded to the longest")
        add_compressed(reference, "attention_mask", mask.astype(np.int32), layout="BT", source="1 = token, 0 = padding")
        add_compressed(reference, "token_type_ids", types.astype(np.int32), layout="BT", source="all 0 (one segment)")
        add_compressed(reference, "embeddings", e32, layout="BC", source="float32 sentence embeddings (BertModel + Pooling + Normalize)")
        add_compressed(reference, "embeddings_f64", e64, layout="BC", source="float64 re-run of the same")


# The most an object header keeps compact before moving attributes to a heap of their own (a few KB per dataset).
COMPACT_ATTRIBUTES = 64


def stored_twin(path, records):
    """The dataset that holds the data of a `same_as` chain's end (a module returning its child's very tensor)."""
    twin = records[path].get("same_as") or None
    seen = {path}
    while twin and records[twin].get("same_as") and twin not in seen:
        seen.add(twin)
        twin = records[twin]["same_as"]
    return twin


def compact_attributes():
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_attr_phase_change(COMPACT_ATTRIBUTES, COMPACT_ATTRIBUTES // 2)
    return dcpl


def add_compressed(group, name, array, **attrs):
    """One chunk (no chunk index), gzip 9 + shuffle above 1 KiB; attributes compact."""
    options = {}
    if array.nbytes > 1024:
        options = {"chunks": array.shape, "compression": "gzip", "compression_opts": 9, "shuffle": True}
    dataset = group.create_dataset(name, data=array, track_times=False, dcpl=compact_attributes(), **options)
    for key, value in attrs.items():
        dataset.attrs[key] = value
    return dataset


def add_alias(group, name, twin, **attrs):
    """A virtual dataset whose values are all of `twin`'s (same file: source ".")."""
    dcpl = compact_attributes()
    space = h5py.h5s.create_simple(twin.shape)
    dcpl.set_virtual(space, b".", twin.name.encode(), h5py.h5s.create_simple(twin.shape))
    dataset = h5py.Dataset(h5py.h5d.create(group.id, name.encode(), h5py.h5t.py_create(twin.dtype), space, dcpl=dcpl))
    for key, value in attrs.items():
        dataset.attrs[key] = value
    return dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--sentences", required=True)
    parser.add_argument("--node-sentences", default="1", help="comma-separated 0-based lines of --sentences recorded node by node")
    parser.add_argument("--pad-to", type=int, default=5, help="tokens the node batch is padded to (≥ its longest sentence)")
    parser.add_argument("--layers", default="", help="encoder layers whose nodes are stored (default all; all run)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--replace", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model_dir = os.path.abspath(args.model_dir)
    if not os.path.isdir(model_dir):
        fail(f"{args.model_dir}: not a directory")
    try:
        with open(args.sentences, encoding="utf-8") as f:
            sentences = [line.rstrip("\n") for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        fail(f"{args.sentences}: {e}")
    try:
        node_sentences = [int(x) for x in args.node_sentences.split(",")]
    except ValueError:
        fail(f"--node-sentences {args.node_sentences!r}: give comma-separated line numbers")
    if not node_sentences or not all(0 <= i < len(sentences) for i in node_sentences):
        fail(f"--node-sentences {args.node_sentences}: the sentence file has lines 0..{len(sentences) - 1}")
    config, tokenizer, model, normalizes = load(model_dir)
    try:
        layers = sorted({int(x) for x in args.layers.split(",")}) if args.layers else list(range(config["num_hidden_layers"]))
    except ValueError:
        fail(f"--layers {args.layers!r}: give comma-separated layer numbers")
    if not layers or layers[0] < 0 or layers[-1] >= config["num_hidden_layers"]:
        fail(f"--layers {args.layers}: the model has layers 0..{config['num_hidden_layers'] - 1}")

    longest = int(tokenize(tokenizer, [sentences[i] for i in node_sentences])[1].sum(1).max())
    if args.pad_to < longest:
        fail(f"--pad-to {args.pad_to}: the node batch's longest sentence has {longest} tokens")
    ids, mask, types = tokenize(tokenizer, [sentences[i] for i in node_sentences], pad_to=args.pad_to)
    f32 = capture(model, ids, mask, types, normalizes)
    model64 = copy.deepcopy(model).double()
    f64 = capture(model64, ids, mask, types, normalizes)
    all_ids, all_mask, all_types = tokenize(tokenizer, sentences)
    with torch.no_grad():
        def embed(m):
            position_ids = torch.arange(all_ids.shape[1]).unsqueeze(0).repeat(all_ids.shape[0], 1)
            hidden = m(input_ids=torch.from_numpy(all_ids), attention_mask=torch.from_numpy(all_mask),
                       token_type_ids=torch.from_numpy(all_types), position_ids=position_ids).last_hidden_state
            pooled = mean_pool(hidden, torch.from_numpy(all_mask))
            return (normalize(pooled) if normalizes else pooled).numpy()
        e32, e64 = embed(model), embed(model64)

    shown = lambda p: os.path.relpath(p, REPO) if os.path.abspath(p).startswith(REPO + os.sep) else p  # noqa: E731
    generator = (f"tools/minilm/record_goldens.py \"$(tools/minilm/model-dir.sh)\" --sentences {shown(os.path.abspath(args.sentences))} "
                 f"--node-sentences {','.join(map(str, node_sentences))} --pad-to {args.pad_to}"
                 + (f" --layers {','.join(map(str, layers))}" if args.layers else ""))
    out = os.path.abspath(args.out)
    with temporary_golden(out) as temp:
        write(temp, config=config, model_dir=model_dir, sentences=sentences, node_sentences=node_sentences, layers=layers,
              f32=f32, f64=f64, everything=(all_ids, all_mask, all_types, e32, e64), generator=generator)
        with h5py.File(temp, "r") as f:
            count = sum(1 for _ in f["activations"]) + sum(1 for _ in f["intermediates"])
        print(f"batch {ids.shape[0]} x {ids.shape[1]} tokens (mask row sums {mask.sum(1).tolist()}), layers {layers}; "
              f"{count} datasets, {os.path.getsize(temp)} bytes; modules that never ran: {f32.not_run}")
        return install_golden(out, temp, replace=args.replace)

if __name__ == "__main__":
    sys.exit(main())
