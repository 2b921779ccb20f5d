#!/usr/bin/python3
"""Record goldens (golden.h5, format_version 1) for any PyTorch model: every leaf module's output, with float64 noise
floors and provenance. Debian's /usr/bin/python3 (torch 1.13, numpy, h5py) is enough.

    /usr/bin/python3 tools/record_goldens_any.py --module pkg.module:Class [--kwargs JSON] --weights W.safetensors \\
        --inputs X.npy|X.npz [--out DIR/golden.h5] [--name NAME] [--config] [--force]
    /usr/bin/python3 tools/record_goldens_any.py --torchscript model.pt --weights W.safetensors --token-ids ids.txt ...
    .build-venv-llama/bin/python tools/record_goldens_any.py --module transformers:LlamaForCausalLM \
        --pretrained HF_DIR --prompts FILE|--token-ids FILE [--tokens N]                      # format_version 2
    .build-venv-llama/bin/python tools/record_goldens_any.py --module transformers:BertModel \
        --pretrained ST_DIR --sentences FILE [--node-sentences 1] [--pad-to 5] [--layers ...]  # format_version 2

format_version 2 (--pretrained, --kind or --format-version 2): a Hugging Face checkpoint that is not a chain, loaded
with the class's from_pretrained and recorded through tools/llama/llama_capture.py by the bundled tiny-llama /
minilm-l6 recorders' writers (tools/golden_recorder/transformers_v2.py); the rest of this text is format_version 1.

The model: an nn.Module class by import path (searched in --path, the current directory and tools/), built with
--kwargs (a JSON object), or a TorchScript file whose forward chains submodule calls. Its weights are loaded from
the safetensors file with load_state_dict(strict=True). Inputs: a .npy (one input, named --input-name, default
"input"), a .npz (one input per array, passed positionally in the file's order) or token ids (--token-ids: a .npy
or a text file of equal-length rows of ids). Float inputs must be float32.

Every leaf module is hooked; a pre-hook proves which dataset each one read (a model input or an earlier module's
output, the very tensor, bit-identical). A model that is not such a chain (a leaf reads a tensor computed between
modules, runs twice, or never runs) is refused with the module's name: format_version 1 could not describe it.
The whole model is re-run in float64 (a fresh instance, .double()) for the noise floors and /reference/logits_f64.

Never replaces an existing golden silently: the new file is written beside it and diffed dataset by dataset; if
anything but `created` differs the old file is kept and the exit status is 1, unless --force (alias --replace).
--config also writes config.json (Parity's sequential reference config) beside the golden when every leaf is an op
Parity supports, so the directory can be verified with `parity verify DIR`; an existing config.json that differs
is refused the same way. Exit 2 on bad input. Documented in docs/recording-goldens.md.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_recorder import recorder as rec  # noqa: E402
from golden_recorder import transformers_v2 as v2mod  # noqa: E402
from regen_goldens import diff_goldens  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--module", help="nn.Module class as pkg.module:Class")
    model.add_argument("--torchscript", help="TorchScript file (torch.jit.save) whose forward chains submodule calls")
    parser.add_argument("--kwargs", default="{}", help="constructor keyword arguments, a JSON object (with --module)")
    parser.add_argument("--path", action="append", default=[], help="directory to import --module from (repeatable)")
    parser.add_argument("--weights", help="safetensors file, loaded with load_state_dict(strict=True)")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--inputs", help=".npy (one input) or .npz (one input per array)")
    inputs.add_argument("--token-ids", help=".npy or text file of token id rows (int64 input)")
    parser.add_argument("--input-name", help="dataset name of a .npy / token-id input (default input / input_ids)")
    parser.add_argument("--input-source", help="the inputs' `source` attribute (default: file name and SHA-256)")
    parser.add_argument("--input-layout", help="the inputs' `layout` attribute (default from the rank: NCHW, NCL, NC)")
    parser.add_argument("--labels", help=".npy of integer labels, stored as /labels")
    parser.add_argument("--labels-source", help="the labels' `source` attribute (default: file name and SHA-256)")
    parser.add_argument("--name", help="model name (root attribute `model`; default: the output directory's name)")
    parser.add_argument("--seed", type=int, default=-1, help="training seed to record (default -1: unknown)")
    parser.add_argument("--out", help="golden file to write (default: golden.h5 beside the weights)")
    parser.add_argument("--config", action="store_true", help="also write config.json beside the golden")
    parser.add_argument("--architecture", default="custom", help="config.json architecture (mnist-cnn / mnist-fc "
                        "get those GGUF layouts; default custom: no GGUF layout)")
    parser.add_argument("--preprocessing", default="", help="config.json input.preprocessing text")
    parser.add_argument("--force", "--replace", action="store_true", dest="force",
                        help="replace an existing golden (or config.json) that differs")
    v2 = parser.add_argument_group("format_version 2 (a Hugging Face checkpoint that is not a chain; needs transformers)")
    v2.add_argument("--format-version", type=int, choices=(1, 2), help="default: 2 with --pretrained or --kind, else 1")
    v2.add_argument("--kind", choices=sorted(v2mod.KINDS), help="default: from the --module class (LlamaForCausalLM: "
                    "causal-lm, BertModel: sentence-embedding)")
    v2.add_argument("--pretrained", help="checkpoint directory (config.json, safetensors, tokenizer), loaded with "
                    "the class's from_pretrained in float32, eager attention")
    v2.add_argument("--prompts", help="causal-lm: UTF-8 file, one prompt per line, tokenized by the directory's tokenizer")
    v2.add_argument("--tokens", type=int, default=0, help="causal-lm: tokens per prompt (default: the shortest's)")
    v2.add_argument("--sentences", help="sentence-embedding: UTF-8 file, one sentence per line")
    v2.add_argument("--node-sentences", default="1", help="sentence-embedding: 0-based lines recorded node by node")
    v2.add_argument("--pad-to", type=int, default=5, help="sentence-embedding: tokens the node batch is padded to")
    v2.add_argument("--layers", default="", help="sentence-embedding: encoder layers whose nodes are stored")
    return parser.parse_args(argv)


def generator_command(args, out):
    """The command that regenerates the file: repository-relative paths, without --force (how the previous file was
    handled is not part of what the file holds)."""
    parts = ["tools/record_goldens_any.py"]
    if args.module:
        parts += ["--module", args.module]
        if json.loads(args.kwargs):
            parts += ["--kwargs", json.dumps(json.loads(args.kwargs), sort_keys=True, separators=(",", ":"))]
        for path in args.path:
            parts += ["--path", rec.shown(path)]
    else:
        parts += ["--torchscript", rec.shown(args.torchscript)]
    parts += ["--weights", rec.shown(args.weights)]
    parts += ["--inputs", rec.shown(args.inputs)] if args.inputs else ["--token-ids", rec.shown(args.token_ids)]
    for flag, value in (("--input-name", args.input_name), ("--input-layout", args.input_layout),
                        ("--labels", args.labels and rec.shown(args.labels))):
        if value:
            parts += [flag, value]
    if args.seed != -1:
        parts += ["--seed", str(args.seed)]
    parts += ["--name", args.name, "--out", rec.shown(out)]
    return " ".join(json.dumps(p) if (" " in p or "{" in p) else p for p in parts)


def place(temp, final, force, differs, what):
    """Move `temp` to `final` unless `final` exists and differs (then only with force). Returns the exit status."""
    if not os.path.exists(final):
        os.replace(temp, final)
        print(f"wrote {final} ({os.path.getsize(final)} bytes)")
        return 0
    if not differs():
        print(f"{what} identical to the existing {final}; kept the existing file")
        return 0
    if force:
        os.replace(temp, final)
        print(f"REPLACED {final} ({os.path.getsize(final)} bytes)")
        return 0
    print(f"{what} differs from the existing {final}; NOT replaced (rerun with --force to accept it)")
    return 1


def temp_beside(final):
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(final) + "-", suffix=".tmp", dir=os.path.dirname(final))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    return temp


def main_v2(args):
    """format_version 2 through the bundled recorders' capture and writers (tools/golden_recorder/transformers_v2.py)."""
    try:
        if args.torchscript:
            raise rec.BadInput("--torchscript: format_version 2 records a transformers class given by --module")
        if not args.pretrained or not os.path.isdir(args.pretrained):
            raise rec.BadInput(f"--pretrained {args.pretrained}: format_version 2 needs a checkpoint directory")
        for flag, value in (("--weights", args.weights), ("--inputs", args.inputs),
                            ("--labels", args.labels), ("--config", args.config)):
            if value:
                raise rec.BadInput(f"{flag}: format_version 2 reads the weights and tokenizer from --pretrained")
        spec = args.module
        if not args.kind:
            if not spec:
                raise rec.BadInput("format_version 2: give --module (a transformers class) or --kind")
            args.kind = v2mod.kind_of(rec.import_class(spec, args.path))
            if args.kind is None:
                raise rec.BadInput(f"--module {spec}: no format_version 2 kind for this class; give --kind "
                                   f"({', '.join(sorted(v2mod.KINDS))})")
        spec = spec or v2mod.DEFAULT_CLASS[args.kind]
        cls = v2mod.model_class(spec, args.kind, [os.path.abspath(p) for p in args.path])
        model_dir = os.path.abspath(args.pretrained)
        out = os.path.abspath(args.out or os.path.join(model_dir, "golden.h5"))
        if not os.path.isdir(os.path.dirname(out)):
            raise rec.BadInput(f"{os.path.dirname(out)}: output directory does not exist")
        if args.kind == "causal-lm":
            if bool(args.prompts) == bool(args.token_ids):
                raise rec.BadInput("--kind causal-lm: give --prompts FILE or --token-ids FILE (one of them)")
            record = dict(prompts_path=args.prompts and os.path.abspath(args.prompts), tokens=args.tokens,
                          name=args.name, token_ids_path=args.token_ids and os.path.abspath(args.token_ids))
        else:
            if args.token_ids:
                raise rec.BadInput("--token-ids: sentence-embedding tokenizes --sentences (padding and mask included)")
            if not args.sentences:
                raise rec.BadInput("--kind sentence-embedding: give --sentences FILE")
            if args.name:
                raise rec.BadInput("--name: the sentence-embedding writer (tools/minilm/record_goldens.py) records "
                                   "the model as minilm-l6; it takes no other name")
            try:
                nodes = [int(x) for x in args.node_sentences.split(",")]
                layers = [int(x) for x in args.layers.split(",")] if args.layers else []
            except ValueError as e:
                raise rec.BadInput(f"--node-sentences / --layers: give comma-separated numbers ({e})") from e
            record = dict(sentences_path=os.path.abspath(args.sentences), node_sentences=nodes, pad_to=args.pad_to,
                          layers=layers)
        temp = temp_beside(out)
        try:
            if args.kind == "causal-lm":
                f32, write, extra = v2mod.record_causal_lm(temp, cls=cls, model_dir=model_dir, **record)
            else:
                f32, write, extra = v2mod.record_sentence_embedding(temp, cls=cls, model_dir=model_dir, **record)
            parts = ["tools/record_goldens_any.py", "--kind", args.kind, "--module", spec,
                     "--pretrained", rec.shown(model_dir), *extra]
            if args.name:
                parts += ["--name", args.name]
            parts += ["--out", rec.shown(out)]
            write(" ".join(json.dumps(p) if " " in p else p for p in parts))
            print(f"{args.kind} {cls.__name__} from {rec.shown(model_dir)}: {v2mod.summary(f32)}")
            return place(temp, out, args.force, lambda: (print(f"comparing with existing {out}:"),
                                                           diff_goldens(out, temp))[1], "golden data")
        finally:
            if os.path.exists(temp):
                os.remove(temp)
    except rec.BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if args.format_version == 2 or (args.format_version is None and (args.pretrained or args.kind)):
        return main_v2(args)
    if args.pretrained or args.kind:
        print("error: --pretrained / --kind record format_version 2; drop --format-version 1", file=sys.stderr)
        return 2
    if args.module and args.format_version is None:
        try:
            kind = v2mod.kind_of(rec.import_class(args.module, [os.path.abspath(p) for p in args.path]))
        except rec.BadInput:
            kind = None  # reported by format_version 1 below
        if kind:
            print(f"error: --module {args.module} is a transformers {v2mod.KINDS[kind]}: it records as format_version 2 "
                  f"(kind {kind}) from its checkpoint directory: give --pretrained DIR (docs/recording-goldens.md)",
                  file=sys.stderr)
            return 2
    if not (args.module or args.torchscript) or not args.weights or not (args.inputs or args.token_ids):
        print("error: format_version 1 needs --module or --torchscript, --weights, and --inputs or --token-ids",
              file=sys.stderr)
        return 2
    try:
        try:
            kwargs = json.loads(args.kwargs)
        except ValueError as e:
            raise rec.BadInput(f"--kwargs {args.kwargs!r}: not JSON ({e})") from e
        if not isinstance(kwargs, dict):
            raise rec.BadInput(f"--kwargs {args.kwargs!r}: expected a JSON object")
        if args.torchscript and kwargs:
            raise rec.BadInput("--kwargs applies to --module, not to a TorchScript file")
        source = rec.ModelSource(args.weights, module=args.module, kwargs=kwargs, torchscript=args.torchscript,
                                 search_paths=[os.path.abspath(p) for p in args.path])
        inputs = rec.load_inputs(args.inputs, args.token_ids, args.input_name, args.input_source)
        labels = None
        if args.labels:
            try:
                labels = np.load(args.labels, allow_pickle=False)
            except (ValueError, OSError) as e:
                raise rec.BadInput(f"{args.labels}: not a NumPy .npy file ({e})") from e
            if labels.dtype.kind not in "iu" or labels.shape[:1] != inputs.arrays[0][1].shape[:1]:
                raise rec.BadInput(f"{args.labels}: labels must be integers, one per input row "
                                   f"(got {labels.dtype} {list(labels.shape)})")
        out = os.path.abspath(args.out or os.path.join(os.path.dirname(os.path.abspath(args.weights)), "golden.h5"))
        if not os.path.isdir(os.path.dirname(out)):
            raise rec.BadInput(f"{os.path.dirname(out)}: output directory does not exist")
        args.name = args.name or os.path.basename(os.path.dirname(out))
        records, records64, output64 = rec.run_both(source, inputs)
        config = None
        if args.config:
            config = rec.config_for(records, name=args.name, architecture=args.architecture, inputs=inputs,
                                    seed=args.seed, preprocessing=args.preprocessing)
            if os.path.basename(args.weights) != "model.safetensors" or \
                    os.path.dirname(os.path.abspath(args.weights)) != os.path.dirname(out):
                raise rec.BadInput("--config: a reference directory holds model.safetensors beside golden.h5; "
                                   f"put the weights at {os.path.join(os.path.dirname(out), 'model.safetensors')}")
    except rec.BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except rec.RecordingError as e:
        print(f"error: cannot record this model as format_version 1: {e}"
              + (" (a Hugging Face Llama or BERT checkpoint records as format_version 2: --pretrained DIR, see "
                 "docs/recording-goldens.md)" if args.module else ""), file=sys.stderr)
        return 2

    labels_source = args.labels_source or (args.labels and
                                           f"{os.path.basename(args.labels)} (sha256 {rec.sha256_file(args.labels)})")
    temp = temp_beside(out)
    try:
        rows = rec.write_golden(temp, name=args.name, seed=args.seed, source=source, inputs=inputs, records=records,
                                records64=records64, output64=output64, generator=generator_command(args, out),
                                labels=labels, labels_source=labels_source, input_layout=args.input_layout)
        batch = inputs.arrays[0][1].shape[0]
        print(f"{args.name}: {len(rows)} hooked leaf modules, batch {batch}, model {source.describe()}")
        print(f"{'module':<24} {'op':<12} {'input':<32} {'noise max abs':>13} {'noise rel l2':>13}")
        for name, op, input_path, max_abs, rel_l2 in rows:
            print(f"{name:<24} {op:<12} {input_path:<32} {max_abs:>13.3e} {rel_l2:>13.3e}")
        status = place(temp, out, args.force, lambda: (print(f"comparing with existing {out}:"),
                                                       diff_goldens(out, temp))[1], "golden data")
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    if config is not None:
        path = os.path.join(os.path.dirname(out), "config.json")
        temp = temp_beside(path)
        try:
            with open(temp, "w") as f:
                json.dump(config, f, indent=2)
                f.write("\n")

            def config_differs():
                with open(path) as f:
                    old = json.load(f)
                if old != config:
                    print(f"config.json: existing {json.dumps(old, sort_keys=True)}\n"
                          f"             new      {json.dumps(config, sort_keys=True)}")
                return old != config
            status = max(status, place(temp, path, args.force, config_differs, "config.json"))
        finally:
            if os.path.exists(temp):
                os.remove(temp)
    return status


if __name__ == "__main__":
    sys.exit(main())
