#!/usr/bin/env bash
# Creates (or reuses) the Python venv used by the fixture generators that need gguf-py, at
# .build-venv-tools in the repository root (ignored by git through the `.build-*` rule), with pinned
# versions. The venv's base interpreter is $PYTHON if set, else the first python3.12 / python3.11 / python3 on
# PATH that is not Debian's /usr/bin/python3 (pyenv's here); Debian's is the last resort (it needs the
# python3-venv package). Prints the venv's python path on the last line.
#
#   tools/python-tools.sh                       # create / update, print the interpreter path
#   "$(tools/python-tools.sh | tail -1)" tools/make_quant_fixtures.py
#
# tools/make_quant_fixtures.py also compiles ggml's C reference code: it needs `cc` and fetches the pinned
# ggml-py sdist with pip (or uses PARITY_GGML_SRC=/path/to/ggml). Nothing here is needed to run the tests:
# the fixtures are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.build-venv-tools
PINS=(gguf==0.19.0 numpy==2.4.6)

PY=""
for candidate in "${PYTHON:-}" python3.12 python3.11 python3 /usr/bin/python3; do
  [ -n "$candidate" ] || continue
  # pyenv shims exist for versions that are not installed: ask the interpreter itself.
  exe="$("$candidate" -c 'import venv, sys; print(sys.executable)' 2>/dev/null)" || continue
  if [ "$exe" = /usr/bin/python3 ] || [ "$(readlink -f "$exe")" = "$(readlink -f /usr/bin/python3 2>/dev/null)" ]; then
    [ "$candidate" = /usr/bin/python3 ] || continue    # Debian's only as the last resort
  fi
  PY="$exe"; break
done
[ -n "$PY" ] || { echo "python-tools.sh: no python3 found" >&2; exit 2; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $PY ($("$PY" --version 2>&1))" >&2
  "$PY" -m venv "$VENV"
fi
# Install only when a pin is not satisfied, so repeated runs are fast and need no network.
if ! "$VENV/bin/python" - "${PINS[@]}" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    assert version(name) == want, pin
EOF
then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" >&2
fi
echo "$(pwd)/$VENV/bin/python"
