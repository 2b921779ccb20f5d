#!/usr/bin/env bash
# Convert the reference tiny-llama with the ecosystem's own tools, then record small fixtures about what they wrote.
#
#   tools/llama/make_ecosystem_files.sh [MODEL_DIR]          (default golden/tiny-llama)
#
# Needs: tools/llama/build-llama.sh (llama.cpp's tools and sources in .build-llama/), tools/llama/setup-venvs.sh
# (.build-venv-llama, .build-venv-mlxlm). Writes the converted files to .build-llama/ecosystem/ (git-ignored):
#   gguf/tiny-llama-{f32,f16,bf16,q8_0}.gguf        llama.cpp's convert_hf_to_gguf.py --outtype ...
#   gguf/tiny-llama-{Q4_0,Q4_K_M,Q5_K_M,Q6_K}.gguf  llama-quantize of the f32 GGUF
#   gguf/imatrix.gguf, gguf/tiny-llama-Q4_K_M-imat.gguf   llama-imatrix on training text, llama-quantize --imatrix
#   mlx/tiny-llama-{float32,float16,q4-g64,q8-g64}/  mlx_lm convert (--dtype, or -q --q-bits --q-group-size)
#   planted/tiny-llama-f32-no-qk-permutation.gguf   the converter with its Q/K permutation replaced by the identity
# and then runs tools/llama/record_ecosystem_fixtures.py, which writes Tests/ParityTests/Fixtures/llama/
# (manifest with versions, commands, SHA-256 of every output file, per-tensor type tables, logits and metrics).
# Every command runs single-threaded where the tool allows it, so reruns give the same files.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
MODEL="${1:-golden/tiny-llama}"
BUILD="${PARITY_LLAMA_BUILD:-.build-llama}"
BIN="$BUILD/build-native/bin"
SRC="$BUILD/src/llama_cpp_python-0.3.36/vendor/llama.cpp"
OUT="$BUILD/ecosystem"
PY_LLAMA=.build-venv-llama/bin/python
PY_MLX=.build-venv-mlxlm/bin/python
NAME="$(basename "$MODEL")"
CALIBRATION=/usr/share/common-licenses/GPL-3   # training text (the goldens' prompts come from held-out text)

for need in "$BIN/llama-quantize" "$BIN/llama-imatrix" "$SRC/convert_hf_to_gguf.py" "$PY_LLAMA" "$PY_MLX"; do
    [ -e "$need" ] || { echo "missing $need: run tools/llama/build-llama.sh and tools/llama/setup-venvs.sh" >&2; exit 2; }
done
[ -f "$MODEL/config.json" ] && [ -f "$MODEL/golden.h5" ] || { echo "$MODEL: no config.json / golden.h5" >&2; exit 2; }

rm -rf "$OUT"
mkdir -p "$OUT/gguf" "$OUT/mlx" "$OUT/bin" "$OUT/planted"
LOG="$OUT/commands.tsv"   # seconds <TAB> command, read by record_ecosystem_fixtures.py
: > "$LOG"
run() {  # run a command quietly (its output goes to OUT/logs), record it and its wall time
    local start end log
    log="$OUT/logs/$(printf '%02d' "$(wc -l < "$LOG")").log"
    mkdir -p "$OUT/logs"
    start=$(date +%s.%N)
    if ! "$@" > "$log" 2>&1; then
        echo "FAILED: $*  (see $log)" >&2
        tail -20 "$log" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    printf '%.2f\t%s\n' "$(echo "$end - $start" | bc)" "$*" >> "$LOG"
    echo "ok  $*"
}

# 1. llama.cpp's converter (unmodified; a wrapper supplies torch dtypes torch 1.13 lacks).
for t in f32 f16 bf16 q8_0; do
    run "$PY_LLAMA" tools/llama/convert_hf_to_gguf_compat.py "$SRC" -- "$MODEL" --outtype "$t" \
        --outfile "$OUT/gguf/$NAME-$t.gguf"
done
# 1b. A planted mistake written by the same converter: Q/K rows not permuted (llama.cpp loads it silently).
run "$PY_LLAMA" tools/llama/planted_no_qk_permutation.py "$SRC" -- "$MODEL" --outtype f32 \
    --outfile "$OUT/planted/$NAME-f32-no-qk-permutation.gguf"
# 2. llama-quantize from the f32 GGUF (1 thread).
for t in Q4_0 Q4_K_M Q5_K_M Q6_K; do
    run "$BIN/llama-quantize" "$OUT/gguf/$NAME-f32.gguf" "$OUT/gguf/$NAME-$t.gguf" "$t" 1
done
# 3. An importance matrix from training text, and Q4_K_M with it.
run "$BIN/llama-imatrix" -m "$OUT/gguf/$NAME-f32.gguf" -f "$CALIBRATION" -o "$OUT/gguf/imatrix.gguf" -c 128 -t 1 -b 128
run "$BIN/llama-quantize" --imatrix "$OUT/gguf/imatrix.gguf" "$OUT/gguf/$NAME-f32.gguf" \
    "$OUT/gguf/$NAME-Q4_K_M-imat.gguf" Q4_K_M 1
# 4. mlx-lm's converter.
run "$PY_MLX" -m mlx_lm convert --hf-path "$MODEL" --mlx-path "$OUT/mlx/$NAME-float32" --dtype float32
run "$PY_MLX" -m mlx_lm convert --hf-path "$MODEL" --mlx-path "$OUT/mlx/$NAME-float16" --dtype float16
run "$PY_MLX" -m mlx_lm convert --hf-path "$MODEL" --mlx-path "$OUT/mlx/$NAME-q4-g64" -q --q-bits 4 --q-group-size 64
run "$PY_MLX" -m mlx_lm convert --hf-path "$MODEL" --mlx-path "$OUT/mlx/$NAME-q8-g64" -q --q-bits 8 --q-group-size 64
# 5. A small reader of llama.cpp's logits, linked against the static libllama the tools were built with.
run g++ -O2 -std=c++17 -I"$SRC/include" -I"$SRC/ggml/include" tools/llama/llama_logits.cpp \
    "$BUILD/build-native/src/libllama.a" "$BUILD/build-native/ggml/src/libggml.a" \
    "$BUILD/build-native/ggml/src/libggml-cpu.a" "$BUILD/build-native/ggml/src/libggml-base.a" \
    -fopenmp -lpthread -ldl -o "$OUT/bin/llama_logits"
# 6. Fixtures.
PYTHONPATH="$SRC/gguf-py" "$PY_LLAMA" tools/llama/record_ecosystem_fixtures.py "$MODEL" "$OUT" \
    --fixtures Tests/ParityTests/Fixtures/llama --mlx-python "$PY_MLX"
