#!/usr/bin/env bash
# Rebuild the bundled reference golden/tiny-llama from scratch: train (about 2-4 minutes of one CPU core), record the
# goldens from transformers' LlamaForCausalLM, check them independently.
#   tools/llama/make_tiny_llama.sh [--replace]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PY=.build-venv-llama/bin/python
[ -x "$PY" ] || tools/llama/setup-venvs.sh llama
"$PY" tools/llama/train_tiny_llama.py --out golden/tiny-llama
"$PY" tools/llama/record_goldens.py golden/tiny-llama --prompts golden/tiny-llama/prompts.txt --tokens 32 --name tiny-llama "$@"
"$PY" tools/llama/check_llama_goldens.py golden/tiny-llama
