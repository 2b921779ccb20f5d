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
BUILD="${PARITY_MNIST_BUILD:-$ROOT/.build-mnist}"
PKG=ggml-python
VERSION=0.0.45
SDIST=ggml_python-$VERSION.tar.gz
SHA256=10aac52075cf3c7ef2b00d6c35b1c23f7b018dbeff8ae8df67339b4be1166f05
JOBS="${JOBS:-2}"
VARIANT="${1:-native}"

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

SRC="$BUILD/src/ggml_python-$VERSION/vendor/ggml"
if [ ! -f "$SRC/examples/mnist/mnist-eval.cpp" ]; then
    mkdir -p "$BUILD/src"
    tar -xzf "$BUILD/dl/$SDIST" -C "$BUILD/src"
fi
test -f "$SRC/examples/mnist/mnist-eval.cpp"

case "$VARIANT" in
    native)  flags=(-DGGML_NATIVE=ON) ;;
    generic) flags=(-DGGML_NATIVE=OFF -DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF -DGGML_FMA=OFF
                    -DGGML_F16C=OFF -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF) ;;
    *) echo "usage: $0 [native|generic]" >&2; exit 2 ;;
esac
OUT="$BUILD/build-$VARIANT"
cmake -S "$SRC" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DGGML_BUILD_EXAMPLES=ON -DGGML_BUILD_TESTS=OFF \
      -DBUILD_SHARED_LIBS=OFF "${flags[@]}" >/dev/null
cmake --build "$OUT" -j "$JOBS" --target mnist-eval >/dev/null
test -x "$OUT/bin/mnist-eval"
echo "built mnist-eval in $OUT/bin (ggml from $PKG $VERSION)"
