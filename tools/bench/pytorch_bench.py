"""`parity bench` helper: PyTorch (Debian's torch 1.13, one thread) on an image model's safetensors weights.
Run by /usr/bin/python3. Builds the reference architecture from config.json (Conv2d, ReLU, MaxPool2d, Flatten,
Linear), loads the weights (f16/bf16 widened to f32: PyTorch 1.13's CPU conv has no half kernels), times compute
only, and prints one JSON object (docs/bench.md, "helper output")."""
import argparse
import json
import sys

from bench_common import add_common_arguments, emit, now_ns, peak_rss_bytes, read_safetensors, test_set, time_images

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--weights", required=True)
add_common_arguments(parser)
args = parser.parse_args()

try:
    import torch
except ImportError as e:
    emit({"absent": f"{sys.executable} has no torch ({e})"})
    sys.exit(0)

torch.set_num_threads(1)
config = json.load(open(args.config))
x, y = test_set(args.test_set)

t0 = now_ns()
weights, dtypes = read_safetensors(args.weights)
modules = []
for layer in config["layers"]:
    op = layer["op"]
    if op == "Conv2d":
        modules.append((layer["name"], torch.nn.Conv2d(layer["in_channels"], layer["out_channels"], layer["kernel_size"],
                                                       stride=layer["stride"], padding=layer["padding"], bias=layer["bias"])))
    elif op == "ReLU":
        modules.append((layer["name"], torch.nn.ReLU()))
    elif op == "MaxPool2d":
        modules.append((layer["name"], torch.nn.MaxPool2d(layer["kernel_size"], stride=layer["stride"])))
    elif op == "Flatten":
        modules.append((layer["name"], torch.nn.Flatten(layer.get("start_dim", 1))))
    elif op == "Linear":
        modules.append((layer["name"], torch.nn.Linear(layer["in_features"], layer["out_features"], bias=layer["bias"])))
    else:
        emit({"absent": f"this helper does not build a {op} layer"})
        sys.exit(0)
model = torch.nn.Sequential(__import__("collections").OrderedDict(modules))
model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
model.eval()
load_seconds = (now_ns() - t0) / 1e9


def forward(batch):
    with torch.no_grad():
        return model(torch.from_numpy(batch)).numpy()


latencies, throughput, accuracy = time_images(forward, x, y, [int(b) for b in args.batches.split(",")], args.repetitions,
                                              args.warmup, args.latency_runs, args.images)
emit({"version": f"torch {torch.__version__}", "file": args.weights, "load_seconds": load_seconds,
      "latency_ns": latencies, "throughput": throughput, "accuracy": accuracy, "peak_rss_bytes": peak_rss_bytes(),
      "notes": f"1 thread; weights {'/'.join(dtypes)} computed in float32"})
