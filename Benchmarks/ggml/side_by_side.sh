#!/bin/sh
# Parity's quantized matvec kernels and ggml's, side by side in one process (see side_by_side.c), and the core's
# read bandwidth. Usage: ggml/side_by_side.sh [ROUNDS] [--markdown]
# ggml: the static libraries of .build-llama/build-native (llama.cpp vendored in the PyPI sdist of
# llama-cpp-python, GGML_NATIVE=ON, so ggml uses every instruction set of this CPU: AVX-512 VNNI here).
# Parity: Sources/CParityKernels/kernels.c compiled with the toolchain's clang at -O2 without -march, as the
# package builds it in release (its AVX2 paths carry their own target attributes and are chosen at run time).
set -e
here=$(cd "$(dirname "$0")" && pwd)
llama=${LLAMA_DIR:-$here/../../.build-llama}
src=$(ls -d "$llama"/src/llama_cpp_python-*/vendor/llama.cpp | head -1)
kernels=$here/../../Sources/CParityKernels
out=${OUT_DIR:-$here/../.build}
clang=${CLANG:-$(dirname "$(command -v swift)")/clang}
mkdir -p "$out"
"$clang" -O2 -c "$kernels/kernels.c" -I "$kernels/include" -o "$out/parity-kernels.o"
cc -O2 -march=native "$here/side_by_side.c" "$out/parity-kernels.o" -I "$src/ggml/include" -I "$kernels/include" \
    -L "$llama/build-native/ggml/src" -lggml -lggml-cpu -lggml-base -lstdc++ -lm -lpthread -fopenmp -o "$out/side-by-side"
OMP_NUM_THREADS=1 "$out/side-by-side" "$@"
