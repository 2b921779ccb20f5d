#!/usr/bin/env bash
# The Python environments of the tiny-llama tools (none is needed by `swift test`):
#   .build-venv-llama  Debian's python3 + torch 1.13 (python3-torch, python3-h5py, python3-numpy 1.24.2) seen through
#                      --system-site-packages, plus transformers 4.46.3 / tokenizers 0.20.3 (the last pair that runs on
#                      torch 1.13), sentencepiece, protobuf (sentencepiece's generated module needs protobuf >= 6),
#                      safetensors. numpy is pinned to Debian's version so pip does not shadow it with numpy 2.
#   .build-venv-mlxlm  mlx-lm + mlx[cpu] (MLX's Linux CPU wheels) + h5py, its own numpy.
#   tools/llama/setup-venvs.sh [llama|mlxlm|all]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
what="${1:-all}"
if [ "$what" = llama ] || [ "$what" = all ]; then
    V="$ROOT/.build-venv-llama"
    [ -x "$V/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$V"
    "$V/bin/pip" install -q "numpy==$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')" \
        "transformers==4.46.3" "tokenizers==0.20.3" "sentencepiece==0.2.3" "protobuf==7.36.2" "safetensors==0.8.0"
    "$V/bin/python" -c "import torch, transformers, sentencepiece, h5py"
fi
if [ "$what" = mlxlm ] || [ "$what" = all ]; then
    V="$ROOT/.build-venv-mlxlm"
    [ -x "$V/bin/python" ] || python3 -m venv "$V"
    "$V/bin/pip" install -q "mlx-lm==0.32.2" "mlx[cpu]==0.32.4" h5py sentencepiece
    "$V/bin/python" -c "import mlx.core, mlx_lm"
fi
