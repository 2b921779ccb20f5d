#!/usr/bin/env bash
# Deliberately broken model conversions made OUTSIDE Parity (gguf-py and real MLX), for Parity's diagnosis tests.
#
#   tools/planted/make_planted.sh [--large]
#
# Writes Tests/ParityTests/Fixtures/planted/{gguf,mlx}/ and expected.json (the cases, what was changed, and how
# gguf-py / ggml's mnist-eval / real MLX react). Every case is written and checked in a temporary directory;
# only the committed ones are copied (< 2 MB: the CNN cases and one float16 MLP). --large also copies the two
# uncommitted float16 MLP GGUF cases (2 and 10, ~0.8 MB each) to planted/large/ (git-ignored); their SHA-256 is
# in expected.json either way. Same bytes on every run.
#
# Needs: .build-venv-fixtures (gguf-py 0.19.0: tools/fixtures/setup-venv.sh), .build-venv-mlx (MLX 0.32.4 + h5py:
# tools/mlx/setup-venv.sh); optional .build-ggml/build-generic/bin/{mnist-eval,parity-ggml-mnist}
# (tools/ggml/build-ggml.sh generic) for the ggml columns.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
LARGE=0
for a in "$@"; do
    case "$a" in
        --large) LARGE=1 ;;
        *) echo "usage: $0 [--large]" >&2; exit 2 ;;
    esac
done
GGUF_PY=.build-venv-fixtures/bin/python
MLX_PY=.build-venv-mlx/bin/python
for py in "$GGUF_PY" "$MLX_PY"; do
    [ -x "$py" ] || { echo "missing $py (tools/fixtures/setup-venv.sh, tools/mlx/setup-venv.sh)" >&2; exit 2; }
done
OUT=Tests/ParityTests/Fixtures/planted
STAGING="$(mktemp -d "${TMPDIR:-/tmp}/parity-planted.XXXXXX")"
trap 'rm -rf "$STAGING"' EXIT

"$GGUF_PY" tools/planted/make_planted_gguf.py "$STAGING" "$STAGING/_gguf.json"
"$MLX_PY" tools/planted/make_planted_mlx.py "$STAGING" "$STAGING/_mlx.json"
"$MLX_PY" tools/planted/finish_planted.py "$STAGING/_gguf.json" "$STAGING/_mlx.json" "$STAGING/expected.json"

mkdir -p "$OUT"
rm -rf "$OUT/gguf" "$OUT/mlx" "$OUT/large" "$OUT/expected.json"
cp -r "$STAGING/gguf" "$STAGING/mlx" "$STAGING/expected.json" "$OUT/"
if [ "$LARGE" = 1 ]; then cp -r "$STAGING/large" "$OUT/"; fi
bytes_in() { find "$@" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
echo "wrote $OUT: $(bytes_in "$OUT" -not -path "$OUT/large/*") bytes in committed files$( [ "$LARGE" = 1 ] && echo ", plus large/ $(bytes_in "$OUT/large") bytes (git-ignored)")"
