#!/usr/bin/env bash
# A "user's own" reference model, made the way the README tells a user to make one: train a Fashion-MNIST MLP
# 784→256→10 described by tools/examples/user-mlp-256.json (fc2's rows are 256 wide, so every GGUF block type and
# every MLX group size applies to it), then record its goldens with the general recorder.
#
#   tools/make_user_model.sh            # writes Tests/ParityTests/Fixtures/user-mlp-256/{config.json,model.safetensors,golden.h5}
#
# Needs Debian's python3-torch, python3-h5py and dataset-fashion-mnist on /usr/bin/python3. Deterministic (one thread,
# fixed seed): rerunning gives byte-identical weights; regen_goldens.py refuses to replace a differing golden.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=Tests/ParityTests/Fixtures/user-mlp-256
/usr/bin/python3 tools/train.py --config tools/examples/user-mlp-256.json --out "$OUT" --epochs 2
/usr/bin/python3 tools/regen_goldens.py "$OUT" --count 64
/usr/bin/python3 tools/check_goldens.py "$OUT"
