"""`parity bench` helper: PyTorch + transformers (`.build-venv-llama`: Debian's torch 1.13, one thread) on a Llama
reference directory, optionally with the weights of a converted safetensors file. Times prompt processing (pp N:
one forward pass over N tokens) and generation (tg N: N single-token forward passes with the KV cache, from an
empty context, as llama-bench's tg test does) and prints one JSON object (docs/bench.md, "helper output").
Token ids do not change the compute; the prompt is 1, 2, ..., N (mod the vocabulary)."""
import argparse
import sys

from bench_common import add_token_arguments, emit, now_ns, peak_rss_bytes, time_tokens, read_safetensors

parser = argparse.ArgumentParser()
parser.add_argument("--reference", required=True)
parser.add_argument("--weights", required=True)
add_token_arguments(parser)
args = parser.parse_args()

try:
    import torch
    from transformers import LlamaForCausalLM
except ImportError as e:
    emit({"absent": f"{sys.executable} lacks torch/transformers ({e}); tools/llama/setup-venvs.sh makes .build-venv-llama"})
    sys.exit(0)

torch.set_num_threads(1)
t0 = now_ns()
model = LlamaForCausalLM.from_pretrained(args.reference, torch_dtype=torch.float32)
weights, dtypes = read_safetensors(args.weights)
# strict=False only for buffers transformers recomputes (rotary inv_freq); any other missing or extra tensor is an error.
result = model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
missing = [k for k in result.missing_keys if not k.endswith("rotary_emb.inv_freq")]
if missing or result.unexpected_keys:
    raise SystemExit(f"{args.weights}: missing {missing}, unexpected {result.unexpected_keys}")
model.eval()
load_seconds = (now_ns() - t0) / 1e9
vocab = model.config.vocab_size
prompt = torch.tensor([[1 + i % (vocab - 1) for i in range(args.prompt_tokens)]])
token = torch.tensor([[1]])


def pp():
    with torch.no_grad():
        model(input_ids=prompt, use_cache=False)


def tg():
    with torch.no_grad():
        past = None
        for _ in range(args.gen_tokens):
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            past = out.past_key_values


throughput = time_tokens(pp, tg, args)
emit({"version": f"torch {torch.__version__}", "file": args.weights, "load_seconds": load_seconds, "throughput": throughput,
      "peak_rss_bytes": peak_rss_bytes(), "notes": f"1 thread, transformers LlamaForCausalLM; weights {'/'.join(dtypes)} in float32"})
