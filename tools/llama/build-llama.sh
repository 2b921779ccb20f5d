#!/usr/bin/env bash
# Build llama.cpp's own tools (llama-quantize, llama-imatrix, llama-perplexity, llama-bench, llama-eval-callback,
# llama-embedding, llama-tokenize) from sources obtained only from PyPI: the source distribution of
# `llama-cpp-python` vendors the whole llama.cpp repository (with ggml, gguf-py and convert_hf_to_gguf.py) under
# vendor/llama.cpp. The sdist's SHA-256 is pinned below; it carries no git metadata.
#
#   tools/llama/build-llama.sh [generic|native]      (default: native)
#     native   llama.cpp's default release configuration (GGML_NATIVE=ON, -march=native)
#     generic  every x86 SIMD option off: ggml's scalar reference paths, the same numerics on any x86-64
# Output: .build-llama/build-<variant>/bin/llama-*; the sources at .build-llama/src/llama_cpp_python-<v>/vendor/llama.cpp
# (convert_hf_to_gguf.py and gguf-py live there). About 6 minutes on 2 cores. Nothing here is needed by `swift test`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/tools/lib/sdist.sh"
BUILD="${PARITY_LLAMA_BUILD:-$ROOT/.build-llama}"
PKG=llama-cpp-python
VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
JOBS="${JOBS:-2}"
VARIANT="${1:-native}"
TARGETS=(llama-quantize llama-imatrix llama-perplexity llama-bench llama-eval-callback llama-embedding llama-tokenize)

need_cmake_and_gxx
fetch_sdist "$BUILD" "$PKG" "$VERSION" "$SHA256" "llama_cpp_python-$VERSION/vendor/llama.cpp/convert_hf_to_gguf.py"
SRC="$BUILD/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
test -f "$SRC/tools/quantize/quantize.cpp"

ggml_variant_flags "$VARIANT" || { echo "usage: $0 [generic|native]" >&2; exit 2; }
OUT="$BUILD/build-$VARIANT"
cmake -S "$SRC" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF "${ggml_flags[@]}" >/dev/null
cmake --build "$OUT" -j "$JOBS" --target "${TARGETS[@]}" >/dev/null
for t in "${TARGETS[@]}"; do test -x "$OUT/bin/$t"; done
echo "built ${TARGETS[*]} in $OUT/bin (llama.cpp from $PKG $VERSION)"
