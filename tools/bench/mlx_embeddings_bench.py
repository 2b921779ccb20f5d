"""`parity bench` helper: an MLX BERT directory through mlx-embeddings on the CPU (`mlx_embeddings.utils.load`,
then `model(input_ids, attention_mask=…, token_type_ids=…).text_embeds`: mean pooling over the real tokens and L2
normalisation), timed with the protocol Parity writes (bench_common.time_sentences). Inputs become mx.arrays and
are evaluated before any clock starts. Run with .build-venv-mlxemb's python (tools/minilm/mlx_setup_venv.sh)."""
import argparse
import sys

from bench_common import emit, now_ns, peak_rss_bytes, sentence_protocol, time_sentences

parser = argparse.ArgumentParser()
parser.add_argument("--directory", required=True)
parser.add_argument("--protocol", required=True)
args = parser.parse_args()
try:
    import importlib.metadata as md

    import mlx.core as mx
    from mlx_embeddings.utils import load
except ImportError as e:
    emit({"absent": f"{e} (tools/minilm/mlx_setup_venv.sh makes .build-venv-mlxemb)"})
    sys.exit(0)
mx.set_default_device(mx.cpu)
protocol = sentence_protocol(args.protocol)

t0 = now_ns()
model, _ = load(args.directory)
mx.eval(model.parameters())
load_seconds = (now_ns() - t0) / 1e9


def prepare(batch):
    ids, mask, types, tokens = batch
    arrays = (mx.array(ids.astype("int32")), mx.array(mask.astype("int32")), mx.array(types.astype("int32")))
    mx.eval(*arrays)
    return arrays


def forward(batch):
    ids, mask, types = batch
    out = model(ids, attention_mask=mask, token_type_ids=types).text_embeds.astype(mx.float32)
    mx.eval(out)
    return out


latencies, throughput, min_cosine = time_sentences(forward, protocol, prepare)
emit({"version": f"mlx-embeddings {md.version('mlx-embeddings')}, mlx {mx.__version__}", "file": args.directory,
      "load_seconds": load_seconds, "latency_ns": latencies, "throughput": throughput, "accuracy": min_cosine,
      "peak_rss_bytes": peak_rss_bytes(),
      "notes": "CPU device; accuracy: min cosine of the reference sentences to PyTorch's embeddings"})
