#!/usr/bin/env bash
# Deliberately broken model conversions made OUTSIDE Parity (gguf-py and real MLX), for Parity's diagnosis tests.
#
#   tools/planted/make_planted.sh [--large]
#
# Writes Tests/ParityTests/Fixtures/planted/{gguf,mlx,safetensors}/ and expected.json (the cases, what was changed, and how
# gguf-py / ggml's mnist-eval / real MLX react). Every case is written and checked in a temporary directory;
# only the committed ones are copied (< 2 MB: the CNN cases and one float16 MLP). --large also copies the two
# uncommitted float16 MLP GGUF cases (2 and 10, ~0.8 MB each) to planted/large/ (git-ignored); their SHA-256 is
# in expected.json either way. Same bytes on every run.
#
# Needs: .build-venv-fixtures (gguf-py 0.19.0 + safetensors: tools/fixtures/setup-venv.sh), .build-venv-mlx (MLX 0.32.4 + h5py:
# tools/mlx/setup-venv.sh); optional .build-ggml/build-generic/bin/{mnist-eval,parity-ggml-mnist}
# (tools/ggml/build-ggml.sh generic) for the ggml columns (without them, a GGUF file whose bytes are unchanged
# keeps the ggml columns recorded by an earlier run, marked "ggml_columns"; a new file gets "ran": false);
# optional torch in /usr/bin/python3 for the PyTorch column of the safetensors cases.
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
"$GGUF_PY" tools/planted/make_planted_safetensors.py "$STAGING" "$STAGING/_st.json"
# PyTorch's own verdict on the safetensors cases needs Debian's python3 with torch (tools/setup-debian.sh).
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    /usr/bin/python3 tools/planted/check_planted_torch.py "$STAGING" "$STAGING/_st.json"
else
    echo "torch not importable by /usr/bin/python3: the safetensors cases get no PyTorch column" >&2
fi
"$MLX_PY" tools/planted/finish_planted.py "$STAGING/_gguf.json" "$STAGING/_mlx.json" "$STAGING/_st.json" "$STAGING/expected.json"

mkdir -p "$OUT"
rm -rf "$OUT/gguf" "$OUT/mlx" "$OUT/safetensors" "$OUT/large" "$OUT/expected.json"
cp -r "$STAGING/gguf" "$STAGING/mlx" "$STAGING/safetensors" "$STAGING/expected.json" "$OUT/"
if [ "$LARGE" = 1 ]; then cp -r "$STAGING/large" "$OUT/"; fi
bytes_in() { find "$@" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
echo "wrote $OUT: $(bytes_in "$OUT" -not -path "$OUT/large/*") bytes in committed files$( [ "$LARGE" = 1 ] && echo ", plus large/ $(bytes_in "$OUT/large") bytes (git-ignored)")"
