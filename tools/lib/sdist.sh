# Sourced (not run) by the scripts that build C/C++ tools from a pinned PyPI source distribution
# (tools/llama/build-llama.sh, tools/bench/build-mnist-eval.sh): PyPI is the only source they fetch from, and the
# sdist's SHA-256 is checked before anything in it is used.

# cmake and g++, from apt if missing (root only).
need_cmake_and_gxx() {
    local need=()
    command -v cmake >/dev/null || need+=(cmake)
    command -v g++ >/dev/null || need+=(g++)
    if [ ${#need[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || { echo "need root to apt-get install ${need[*]}" >&2; exit 2; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    fi
}

# fetch_sdist BUILD PKG VERSION SHA256 MARKER
# Downloads PKG==VERSION's source distribution into BUILD/dl (once; pip from a venv in BUILD/pip-venv, no
# dependencies, no wheels), checks its SHA-256 (exits non-zero on a mismatch) and unpacks it under BUILD/src unless
# BUILD/src/MARKER (a file inside the unpacked tree) already exists.
fetch_sdist() {
    local build=$1 pkg=$2 version=$3 sha256=$4 marker=$5
    local sdist="${pkg//-/_}-$version.tar.gz"
    mkdir -p "$build/dl"
    if [ ! -f "$build/dl/$sdist" ]; then
        [ -x "$build/pip-venv/bin/pip" ] || python3 -m venv "$build/pip-venv"
        "$build/pip-venv/bin/pip" download --no-deps --no-binary "$pkg" -d "$build/dl" "$pkg==$version"
    fi
    echo "$sha256  $build/dl/$sdist" | sha256sum -c - >/dev/null
    if [ ! -f "$build/src/$marker" ]; then
        mkdir -p "$build/src"
        tar -xzf "$build/dl/$sdist" -C "$build/src"
    fi
}

# ggml_variant_flags VARIANT: sets the array ggml_flags to ggml's CMake options for VARIANT; returns 1 for an
# unknown VARIANT.
#   native   ggml's default release configuration (GGML_NATIVE=ON, -march=native)
#   generic  every x86 SIMD option off: ggml's scalar reference paths, the same numerics on any x86-64
ggml_variant_flags() {
    case "$1" in
        native)  ggml_flags=(-DGGML_NATIVE=ON) ;;
        generic) ggml_flags=(-DGGML_NATIVE=OFF -DGGML_SSE42=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF
                             -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF) ;;
        *) return 1 ;;
    esac
}
