#!/usr/bin/env bash
# Build ggml, ggml's own examples/mnist `mnist-eval`, and Parity's ggml programs
# (parity-ggml-mnist, parity-ggml-mulmat) from sources obtained only from PyPI and Debian.
#
# Where ggml comes from: the PyPI source distribution of `ggml-python` (abetlen) vendors the whole
# ggml repository under vendor/ggml, including examples/mnist. Version 0.0.45 vendors ggml 0.15.3
# (vendor/ggml/CMakeLists.txt GGML_VERSION_*); the sdist carries no git metadata, so ggml_commit()
# reports "unknown". The sdist's SHA-256 is pinned below. The build takes about 2 minutes on 2 cores.
#
# Usage: tools/ggml/build-ggml.sh [generic|avx2|native]...      (default: generic avx2 native)
#   generic  GGML_NATIVE=OFF and every x86 SIMD option off: ggml's scalar (reference) C code paths;
#            the same numerics on any x86-64 machine (the variant Parity's node fixtures come from)
#   avx2     GGML_NATIVE=OFF with SSE4.2/AVX/AVX2/BMI2/FMA/F16C and no AVX-512: the usual portable
#            x86-64 release configuration of ggml/llama.cpp (same numerics on any AVX2 machine)
#   native   ggml's default configuration (GGML_NATIVE=ON: -march=native): on this machine's
#            AVX-512 FP16 CPUs its F16 dot products accumulate in half precision
# Output: .build-ggml/build-<variant>/bin/{mnist-eval,parity-ggml-mnist,parity-ggml-mulmat}
# Needs: cmake, g++ (installed with apt-get when missing and running as root), python3 with venv.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TOOLS="$ROOT/tools/ggml"
BUILD="${PARITY_GGML_BUILD:-$ROOT/.build-ggml}"
PKG=ggml-python
VERSION=0.0.45
SDIST=ggml_python-$VERSION.tar.gz
SHA256=10aac52075cf3c7ef2b00d6c35b1c23f7b018dbeff8ae8df67339b4be1166f05
JOBS="${JOBS:-2}"
VARIANTS=("$@")
[ ${#VARIANTS[@]} -eq 0 ] && VARIANTS=(generic avx2 native)

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} with apt-get"
    [ "$(id -u)" = 0 ] || { echo "need root to apt-get install ${need[*]}" >&2; exit 2; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi

mkdir -p "$BUILD/dl"
if [ ! -f "$BUILD/dl/$SDIST" ]; then
    # A throwaway venv only to have a pip; --no-binary for this one package keeps the build
    # dependencies (scikit-build-core, cmake wheel) as wheels so metadata preparation is quick.
    [ -x "$BUILD/pip-venv/bin/pip" ] || python3 -m venv "$BUILD/pip-venv"
    "$BUILD/pip-venv/bin/pip" download --no-deps --no-binary "$PKG" -d "$BUILD/dl" "$PKG==$VERSION"
fi
echo "$SHA256  $BUILD/dl/$SDIST" | sha256sum -c -

SRC="$BUILD/src/ggml_python-$VERSION/vendor/ggml"
if [ ! -f "$SRC/examples/mnist/mnist-eval.cpp" ]; then
    mkdir -p "$BUILD/src"
    tar -xzf "$BUILD/dl/$SDIST" -C "$BUILD/src"
fi
test -f "$SRC/examples/mnist/mnist-common.cpp"

for variant in "${VARIANTS[@]}"; do
    case "$variant" in
        native)  flags=(-DGGML_NATIVE=ON) ;;
        generic) flags=(-DGGML_NATIVE=OFF -DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF
                        -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF) ;;
        avx2)    flags=(-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON
                        -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF) ;;
        *) echo "unknown variant $variant (generic|avx2|native)" >&2; exit 2 ;;
    esac
    out="$BUILD/build-$variant"
    start=$(date +%s)
    # GIT_CEILING_DIRECTORIES: ggml's CMakeLists asks git for "the" commit; the sdist has no .git, and
    # without a ceiling git would answer with the enclosing Parity checkout's commit. So: "unknown".
    GIT_CEILING_DIRECTORIES="$BUILD/src" cmake -S "$TOOLS" -B "$out" -DGGML_SRC="$SRC" -DCMAKE_BUILD_TYPE=Release -DGGML_CCACHE=OFF "${flags[@]}" >"$out.configure.log" 2>&1 \
        || { cat "$out.configure.log"; exit 1; }
    cmake --build "$out" -j "$JOBS" --target mnist-eval parity-ggml-mnist parity-ggml-mulmat
    echo "$variant: built in $(( $(date +%s) - start )) s -> $out/bin"
    {
        echo "package=$PKG==$VERSION sha256=$SHA256"
        echo "ggml_version=$(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\))/\2/p' "$SRC/CMakeLists.txt" | paste -sd.)"
        echo "variant=$variant flags=${flags[*]}"
        echo "compiler=$(g++ --version | head -1)"
        echo "cmake=$(cmake --version | head -1)"
    } > "$out/BUILD-INFO"
done
