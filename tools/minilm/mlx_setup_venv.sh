#!/usr/bin/env bash
# Creates (or reuses) .build-venv-mlxemb: mlx-embeddings (the MLX BERT runtime) on MLX's Linux CPU build, the
# oracle for Tests/ParityTests/Fixtures/minilm-mlx (tools/minilm/mlx_record_fixtures.py). Prints its python.
#
# mlx/mlx-cpu pinned as .build-venv-mlx has them (tools/mlx/setup-venv.sh). mlx-embeddings 0.1.0 imports
# transformers (>= 5, its tokenizer) and mlx_vlm.utils (sanitize_weights) at module level, which imports Pillow;
# mlx-vlm is installed without its dependencies (its server/audio/video stack is never imported on this path), so
# what mlx_vlm.utils does import (requests, Pillow) is listed here.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.build-venv-mlxemb
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "mlx==0.32.4" "mlx-cpu==0.32.4" "numpy==2.4.6" >&2
"$VENV/bin/pip" install --quiet --no-deps "mlx-embeddings==0.1.0" "mlx-vlm==0.7.10" >&2
# Pinned: unpinned, a newer transformers 5.x stopped pulling in `requests`, which mlx_vlm.utils imports.
"$VENV/bin/pip" install --quiet "transformers==5.24.0" "huggingface_hub==2.4.0" "tokenizers==0.23.3" "pillow==13.0.0" \
    "requests>=2.31,<3" >&2
"$VENV/bin/python" -c 'import mlx_embeddings.utils, mlx_embeddings.convert, mlx.core as mx; print("mlx", mx.__version__)' >&2
echo "$PWD/$VENV/bin/python"
