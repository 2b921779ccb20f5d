"""`parity bench` helper: a BERT sentence embedder (minilm-l6) in PyTorch + transformers on one thread —
BertModel, then sentence-transformers' mean pooling over the attention mask and L2 normalisation — timed with the
protocol Parity writes (bench_common.time_sentences). Half-precision files are widened to float32: torch 1.13's CPU
matmul has no half kernels. Run with .build-venv-llama's python (Debian's torch 1.13 + transformers)."""
import argparse
import sys

from bench_common import emit, now_ns, peak_rss_bytes, sentence_protocol, time_sentences

parser = argparse.ArgumentParser()
parser.add_argument("--reference", required=True, help="the Hugging Face model directory (config.json)")
parser.add_argument("--weights", required=True, help="the safetensors file to run")
parser.add_argument("--protocol", required=True)
args = parser.parse_args()
try:
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel
except ImportError as e:
    emit({"absent": f"{e} (tools/llama/setup-venvs.sh makes .build-venv-llama)"})
    sys.exit(0)
torch.set_num_threads(1)
protocol = sentence_protocol(args.protocol)

t0 = now_ns()
tensors = load_file(args.weights)
dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in tensors.values() if v.is_floating_point()})
config = BertConfig.from_pretrained(args.reference)
model = BertModel(config, add_pooling_layer=False).eval()
state = {k.removeprefix("bert."): v.float() for k, v in tensors.items() if v.is_floating_point()}
state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
missing, unexpected = model.load_state_dict(state, strict=False)
missing = [k for k in missing if not k.endswith("position_ids")]
if missing or unexpected:
    sys.exit(f"{args.weights}: tensors missing {missing[:5]}, unexpected {unexpected[:5]}")
load_seconds = (now_ns() - t0) / 1e9


def prepare(batch):
    ids, mask, types, tokens = batch
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)


def forward(batch):
    ids, mask, types = batch
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


latencies, throughput, min_cosine = time_sentences(forward, protocol, prepare)
emit({"version": f"torch {torch.__version__}, transformers {__import__('transformers').__version__}", "file": args.weights,
      "load_seconds": load_seconds, "latency_ns": latencies, "throughput": throughput, "accuracy": min_cosine,
      "peak_rss_bytes": peak_rss_bytes(),
      "notes": f"1 thread; weights {'/'.join(dtypes)} run as float32; accuracy: min cosine of the reference sentences to PyTorch's embeddings"})
