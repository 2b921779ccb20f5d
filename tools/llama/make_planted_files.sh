#!/usr/bin/env bash
# Planted conversion mistakes written by the ecosystem's own tools, for layer-diff's diagnoses, and a small fixture
# about them (the files themselves are 8 MB each: Parity's tests rebuild them byte for byte and check these SHA-256).
#
#   tools/llama/make_planted_files.sh [MODEL_DIR]          (default golden/tiny-llama)
#
# Needs what tools/llama/make_ecosystem_files.sh needs (its llama_logits binary included). Writes to
# .build-llama-planted/ (git-ignored):
#   tiny-llama-f32-rope-freq-base.gguf   convert_hf_to_gguf.py writing llama.rope.freq_base 500000 (planted_rope_freq_base.py)
#   tiny-llama-f32-rms-eps.gguf          convert_hf_to_gguf.py writing layer_norm_rms_epsilon 1e-6 (planted_rms_eps.py)
#   tiny-llama-f32-no-output.gguf        convert_hf_to_gguf.py dropping lm_head.weight (planted_no_output.py)
#   tiny-llama-f32-kv-heads-tiled.gguf   convert_hf_to_gguf.py with K/V heads expanded to one per query head, tiled
#                                        (planted_kv_heads_expanded.py tiled: the mistake)
#   tiny-llama-f32-kv-heads-repeat-kv.gguf  the same expansion in transformers' repeat_kv order (the control: the same
#                                        attention as multi-head, a different model shape than the reference's)
#   tiny-llama-float32-rope-traditional/ mlx_lm convert + mlx_lm save_config with rope_traditional true (planted_mlx_config.py)
#   tiny-llama-float32-tied/             mlx_lm convert + mlx_lm save_config with tie_word_embeddings true
# then tools/llama/record_planted_fixtures.py writes Tests/ParityTests/Fixtures/llama/planted.json: bytes and SHA-256 of
# every file, and the logits metrics of llama.cpp / mlx-lm themselves on each (they all load).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
MODEL="${1:-golden/tiny-llama}"
BUILD="${PARITY_LLAMA_BUILD:-.build-llama}"
SRC="$BUILD/src/llama_cpp_python-0.3.36/vendor/llama.cpp"
LOGITS="$BUILD/ecosystem/bin/llama_logits"
OUT="${PARITY_PLANTED_OUT:-.build-llama-planted}"
PY_LLAMA=.build-venv-llama/bin/python
PY_MLX=.build-venv-mlxlm/bin/python
NAME="$(basename "$MODEL")"
for need in "$SRC/convert_hf_to_gguf.py" "$LOGITS" "$PY_LLAMA" "$PY_MLX"; do
    [ -e "$need" ] || { echo "missing $need: run tools/llama/build-llama.sh, tools/llama/setup-venvs.sh and tools/llama/make_ecosystem_files.sh" >&2; exit 2; }
done
rm -rf "$OUT"
mkdir -p "$OUT"
for plant in rope_freq_base:rope-freq-base rms_eps:rms-eps no_output:no-output; do
    script="${plant%%:*}" suffix="${plant##*:}"
    echo "planted_$script.py"
    "$PY_LLAMA" "tools/llama/planted_$script.py" "$SRC" -- "$MODEL" --outtype f32 --outfile "$OUT/$NAME-f32-$suffix.gguf" > "$OUT/$suffix.log" 2>&1
done
for order in tiled repeat_kv; do
    echo "planted_kv_heads_expanded.py $order"
    "$PY_LLAMA" tools/llama/planted_kv_heads_expanded.py "$order" "$SRC" -- "$MODEL" --outtype f32 \
        --outfile "$OUT/$NAME-f32-kv-heads-${order//_/-}.gguf" > "$OUT/kv-heads-$order.log" 2>&1
done
for setting in rope_traditional:rope-traditional tie_word_embeddings:tied; do
    key="${setting%%:*}" suffix="${setting##*:}"
    echo "planted_mlx_config.py $key=true"
    "$PY_MLX" tools/llama/planted_mlx_config.py "$MODEL" "$OUT/$NAME-float32-$suffix" "$key=true" > "$OUT/$suffix.log" 2>&1
done
PYTHONPATH="$SRC/gguf-py" "$PY_LLAMA" tools/llama/record_planted_fixtures.py "$MODEL" "$OUT" --llama-logits "$LOGITS" \
    --mlx-python "$PY_MLX" --fixtures Tests/ParityTests/Fixtures/llama/planted.json
