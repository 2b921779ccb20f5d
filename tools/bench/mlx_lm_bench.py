"""`parity bench` helper: mlx-lm on the CPU (`.build-venv-mlxlm`) on an MLX Llama directory, loaded by
mlx_lm.load as users load it. Times prompt processing (pp N: one forward pass over N tokens) and generation (tg N:
N single-token passes with mlx-lm's KV cache, from an empty context, as llama-bench's tg test does) and prints one
JSON object (docs/bench.md, "helper output"). Token ids do not change the compute; the prompt is 1, 2, ..., N."""
import argparse
import sys

from bench_common import add_token_arguments, emit, now_ns, peak_rss_bytes, time_tokens

parser = argparse.ArgumentParser()
parser.add_argument("--directory", required=True)
add_token_arguments(parser)
args = parser.parse_args()

try:
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.models.cache import make_prompt_cache
except ImportError as e:
    emit({"absent": f"{sys.executable} lacks mlx-lm ({e}); tools/llama/setup-venvs.sh makes .build-venv-mlxlm"})
    sys.exit(0)

mx.set_default_device(mx.cpu)
t0 = now_ns()
model, _ = load(args.directory)
mx.eval(model.parameters())
load_seconds = (now_ns() - t0) / 1e9
prompt = mx.array([[1 + i for i in range(args.prompt_tokens)]])
token = mx.array([[1]])


def pp():
    mx.eval(model(prompt))


def tg():
    cache = make_prompt_cache(model)
    for _ in range(args.gen_tokens):
        mx.eval(model(token, cache=cache))


throughput = time_tokens(pp, tg, args)
import mlx_lm
emit({"version": f"mlx {mx.__version__}, mlx-lm {getattr(mlx_lm, '__version__', '?')}", "file": args.directory,
      "load_seconds": load_seconds, "throughput": throughput, "peak_rss_bytes": peak_rss_bytes(), "notes": "CPU device"})
