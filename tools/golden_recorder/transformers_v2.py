"""format_version 2 goldens for Hugging Face checkpoints that are not a chain of leaves, through the capture that
records the bundled tiny-llama and minilm-l6 goldens (tools/llama/llama_capture.py).

Every module's `forward` is wrapped for one pass: every module's output is recorded, each input is named by tensor
identity (a model input or an earlier module's output), and a tensor computed between modules (a residual sum, the
heads concatenated, the 4-D mask) is recorded under /intermediates and described by the kind's writer; one it cannot
describe is refused with its name. Two kinds, each written exactly as its bundled recorder writes it (the writers are
those recorders' own functions, imported, not copied):

- causal-lm (tools/llama/record_goldens.py): a LlamaForCausalLM (or a subclass), prompts cut to equal length;
- sentence-embedding (tools/minilm/record_goldens.py): a BertModel (or a subclass) with sentence-transformers'
  mean Pooling and Normalize as the model directory's modules.json lists them.

Needs transformers (.build-venv-llama: Debian's torch 1.13 + transformers 4.46.3).
"""

import copy
import importlib.util
import json
import os
import sys

import torch

from . import recorder as rec

KINDS = {"causal-lm": "LlamaForCausalLM", "sentence-embedding": "BertModel"}
DEFAULT_CLASS = {"causal-lm": "transformers:LlamaForCausalLM", "sentence-embedding": "transformers:BertModel"}


def _load_tool(name, relative):
    """A bundled recorder as a module (by file: tools/llama and tools/minilm both have a record_goldens.py)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(rec.TOOLS, relative))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def llama_recorder():
    sys.path.insert(0, os.path.join(rec.TOOLS, "llama"))
    return _load_tool("llama_record_goldens", "llama/record_goldens.py")


def minilm_recorder():
    llama_recorder()
    return _load_tool("minilm_record_goldens", "minilm/record_goldens.py")


def kind_of(cls):
    """The golden kind a transformers class records as, by its class hierarchy; None when neither."""
    for kind, base in KINDS.items():
        if any(c.__name__ == base and c.__module__.startswith("transformers.") for c in cls.__mro__):
            return kind
    return None


def model_class(spec, kind, search_paths=()):
    cls = rec.import_class(spec or DEFAULT_CLASS[kind], search_paths)
    found = kind_of(cls)
    if found != kind:
        raise rec.BadInput(f"--module {spec}: {cls.__module__}.{cls.__name__} is not a transformers "
                           f"{KINDS[kind]} (kind {kind} describes that model's inline tensors; "
                           f"this class {'is kind ' + found if found else 'has no format_version 2 kind'})")
    return cls


def record_causal_lm(temp, *, cls, model_dir, prompts_path, tokens, name, token_ids_path=None):
    """tools/llama/record_goldens.py's main, with the model class given. Returns (the float32 capture, write(generator)
    writing the golden to `temp`, the generator arguments that reproduce the inputs)."""
    llama = llama_recorder()
    config, files, tokenizer, model = llama.load_checkpoint(model_dir)
    if type(model) is not cls:
        # load_checkpoint validated the directory (config, weight files, tokenizer) and loaded LlamaForCausalLM;
        # the given subclass is loaded the same way.
        model = cls.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
        model.eval()
    if token_ids_path:
        # Ids as given (no tokenizer, no BOS added); the `prompts` attribute holds them decoded by the directory's
        # tokenizer, special tokens shown, so the file still says what text the rows are.
        ids = rec.load_inputs(token_ids=token_ids_path).arrays[0][1]
        if tokens:
            if tokens > ids.shape[1]:
                raise rec.BadInput(f"{token_ids_path}: rows have {ids.shape[1]} ids, fewer than --tokens {tokens}")
            ids = ids[:, :tokens]
        if ids.min() < 0:
            raise rec.BadInput(f"{token_ids_path}: negative token id {ids.min()}")
        prompts = [tokenizer.decode(row.tolist()) for row in ids]
        source = token_ids_path
    else:
        prompts, ids = llama.tokenize(tokenizer, prompts_path, tokens)
        source = prompts_path
    if ids.max() >= config["vocab_size"]:
        raise rec.BadInput(f"{source}: token id {ids.max()} is beyond vocab_size {config['vocab_size']}")
    seed = -1
    training = os.path.join(model_dir, "training.json")
    if os.path.exists(training):
        with open(training) as f:
            seed = json.load(f).get("seed", -1)
    f32 = llama.capture(model, ids)
    f64 = llama.capture(copy.deepcopy(model).double(), ids)
    generator_args = ["--token-ids" if token_ids_path else "--prompts", rec.shown(source), "--tokens", str(ids.shape[1])]
    return f32, lambda generator: llama.write_golden(
        temp, name=name or os.path.basename(model_dir), config=config, model_dir=model_dir, files=files,
        prompts=prompts, ids=ids, f32=f32, f64=f64, generator=generator, seed=seed), generator_args


def record_sentence_embedding(temp, *, cls, model_dir, sentences_path, node_sentences, pad_to, layers):
    """tools/minilm/record_goldens.py's main, with the model class given."""
    minilm = minilm_recorder()
    try:
        with open(sentences_path, encoding="utf-8") as f:
            sentences = [line.rstrip("\n") for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise rec.BadInput(f"{sentences_path}: {e}") from e
    if not node_sentences or not all(0 <= i < len(sentences) for i in node_sentences):
        raise rec.BadInput(f"--node-sentences {node_sentences}: the sentence file has lines 0..{len(sentences) - 1}")
    config, tokenizer, model, normalizes = minilm.load(model_dir)
    if type(model) is not cls:
        model = cls.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager",
                                    add_pooling_layer=False)
        model.eval()
    all_layers = list(range(config["num_hidden_layers"]))
    chosen = sorted(set(layers)) if layers else all_layers
    if not chosen or chosen[0] < 0 or chosen[-1] >= config["num_hidden_layers"]:
        raise rec.BadInput(f"--layers {layers}: the model has layers 0..{config['num_hidden_layers'] - 1}")
    node = [sentences[i] for i in node_sentences]
    longest = int(minilm.tokenize(tokenizer, node)[1].sum(1).max())
    if pad_to < longest:
        raise rec.BadInput(f"--pad-to {pad_to}: the node batch's longest sentence has {longest} tokens")
    ids, mask, types = minilm.tokenize(tokenizer, node, pad_to=pad_to)
    f32 = minilm.capture(model, ids, mask, types, normalizes)
    model64 = copy.deepcopy(model).double()
    f64 = minilm.capture(model64, ids, mask, types, normalizes)
    all_ids, all_mask, all_types = minilm.tokenize(tokenizer, sentences)
    with torch.no_grad():
        def embed(m):
            position_ids = torch.arange(all_ids.shape[1]).unsqueeze(0).repeat(all_ids.shape[0], 1)
            hidden = m(input_ids=torch.from_numpy(all_ids), attention_mask=torch.from_numpy(all_mask),
                       token_type_ids=torch.from_numpy(all_types), position_ids=position_ids).last_hidden_state
            pooled = minilm.mean_pool(hidden, torch.from_numpy(all_mask))
            return (minilm.normalize(pooled) if normalizes else pooled).numpy()
        e32, e64 = embed(model), embed(model64)
    generator_args = ["--sentences", rec.shown(sentences_path),
                      "--node-sentences", ",".join(map(str, node_sentences)), "--pad-to", str(pad_to)]
    if layers:
        generator_args += ["--layers", ",".join(map(str, chosen))]
    return f32, lambda generator: minilm.write(
        temp, config=config, model_dir=model_dir, sentences=sentences, node_sentences=node_sentences, layers=chosen,
        f32=f32, f64=f64, everything=(all_ids, all_mask, all_types, e32, e64), generator=generator), generator_args


def summary(f32):
    counts = {}
    for record in f32.records.values():
        counts[record["kind"]] = counts.get(record["kind"], 0) + 1
    return (f"{len(f32.records)} datasets ({', '.join(f'{n} {k}' for k, n in counts.items())}); "
            f"modules that never ran: {f32.not_run}")
