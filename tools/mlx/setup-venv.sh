#!/usr/bin/env bash
# Creates (or reuses) the venv with real MLX (Linux CPU build) used as the oracle for the MLX fixtures,
# at .build-venv-mlx in the repository root (ignored by git through the `.build-*` rule).
# Prints the venv's python path on the last line.
#
#   tools/mlx/setup-venv.sh
#   "$(tools/mlx/setup-venv.sh | tail -1)" tools/mlx/make_quant_fixtures.py
#
# Unpinned on purpose (the fixtures record the MLX they came from): the checked-in fixtures were made with
# mlx 0.32.4 + mlx-cpu 0.32.4, numpy 2.4.6, Python 3.11.7 (Tests/ParityTests/Fixtures/mlx-quant/manifest.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.build-venv-mlx

PY=""
for candidate in "${PYTHON:-}" python3.12 python3.11 python3; do
  [ -n "$candidate" ] || continue
  if "$candidate" -c 'import venv, sys; print(sys.executable)' >/dev/null 2>&1; then
    PY="$("$candidate" -c 'import sys; print(sys.executable)')"; break
  fi
done
[ -n "$PY" ] || { echo "setup-venv.sh: no python3 found" >&2; exit 2; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $PY ($("$PY" --version 2>&1))" >&2
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet mlx mlx-cpu numpy >&2
"$VENV/bin/python" -c 'import mlx.core as mx, numpy; print("mlx", mx.__version__, "numpy", numpy.__version__)' >&2
echo "$PWD/$VENV/bin/python"
