#!/usr/bin/env bash
# Weight-verification fixtures written outside Parity: gguf-py (GGUFWriter, gguf.quants) and real MLX
# (mx.quantize, mx.save_safetensors), each with single corrupted elements / blocks recorded in a manifest.
#
#   tools/weights/make_fixtures.sh
#
# Writes Tests/ParityTests/Fixtures/weights/ (gguf-*.gguf, mlx-*.safetensors, user-mlp-256-*, fmnist-cnn-*, two
# manifests). The importance-matrix files (imatrix-*) are made by tools/weights/make_imatrix_fixtures.py, which
# needs llama.cpp's build (tools/llama/build-llama.sh).
# Needs .build-venv-fixtures (gguf-py 0.19.0: tools/fixtures/setup-venv.sh) and .build-venv-mlx (MLX 0.32.4:
# tools/mlx/setup-venv.sh). Deterministic: the same bytes on every run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
GGUF_PY=.build-venv-fixtures/bin/python
MLX_PY=.build-venv-mlx/bin/python
for py in "$GGUF_PY" "$MLX_PY"; do
    [ -x "$py" ] || { echo "missing $py (tools/fixtures/setup-venv.sh, tools/mlx/setup-venv.sh)" >&2; exit 2; }
done
OUT=Tests/ParityTests/Fixtures/weights
STAGING="$(mktemp -d)"
trap 'rm -rf "$STAGING"' EXIT
"$GGUF_PY" tools/weights/make_corrupted_gguf.py "$STAGING"
"$MLX_PY" tools/weights/make_corrupted_mlx.py "$STAGING"
mkdir -p "$OUT"
# imatrix-* come from tools/weights/make_imatrix_fixtures.py (needs llama.cpp's build) and are kept.
rm -rf "$OUT"/gguf-* "$OUT"/mlx-* "$OUT"/user-mlp-256-* "$OUT"/fmnist-cnn-*
cp -R "$STAGING"/. "$OUT"/
echo "wrote $OUT ($(du -sh "$OUT" | cut -f1))"
