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
BUILD="${PARITY_LLAMA_BUILD:-$ROOT/.build-llama}"
PKG=llama-cpp-python
VERSION=0.3.36
SDIST=llama_cpp_python-$VERSION.tar.gz
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
JOBS="${JOBS:-2}"
VARIANT="${1:-native}"
TARGETS=(llama-quantize llama-imatrix llama-perplexity llama-bench llama-eval-callback llama-embedding llama-tokenize)

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "need root to apt-get install ${need[*]}" >&2; exit 2; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

mkdir -p "$BUILD/dl"
if [ ! -f "$BUILD/dl/$SDIST" ]; then
    [ -x "$BUILD/pip-venv/bin/pip" ] || python3 -m venv "$BUILD/pip-venv"
    "$BUILD/pip-venv/bin/pip" download --no-deps --no-binary "$PKG" -d "$BUILD/dl" "$PKG==$VERSION"
fi
echo "$SHA256  $BUILD/dl/$SDIST" | sha256sum -c - >/dev/null

SRC="$BUILD/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
if [ ! -f "$SRC/convert_hf_to_gguf.py" ]; then
    mkdir -p "$BUILD/src"
    tar -xzf "$BUILD/dl/$SDIST" -C "$BUILD/src"
fi
test -f "$SRC/tools/quantize/quantize.cpp"

case "$VARIANT" in
    native)  flags=(-DGGML_NATIVE=ON) ;;
    generic) flags=(-DGGML_NATIVE=OFF -DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF -DGGML_FMA=OFF
                    -DGGML_F16C=OFF -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF) ;;
    *) echo "usage: $0 [generic|native]" >&2; exit 2 ;;
esac
OUT="$BUILD/build-$VARIANT"
cmake -S "$SRC" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF "${flags[@]}" >/dev/null
cmake --build "$OUT" -j "$JOBS" --target "${TARGETS[@]}" >/dev/null
for t in "${TARGETS[@]}"; do test -x "$OUT/bin/$t"; done
echo "built ${TARGETS[*]} in $OUT/bin (llama.cpp from $PKG $VERSION)"
