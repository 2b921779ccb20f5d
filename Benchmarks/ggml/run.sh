#!/bin/sh
# Builds ggml_matvec.c against the ggml that .build-llama/build-native built (llama.cpp vendored in the PyPI
# sdist of llama-cpp-python, GGML_NATIVE=ON) and runs it: ggml's CPU kernels on one thread, for comparison with
# `parity-speed kernels`.
set -e
here=$(cd "$(dirname "$0")" && pwd)
llama=${LLAMA_DIR:-$here/../../.build-llama}
src=$(ls -d "$llama"/src/llama_cpp_python-*/vendor/llama.cpp | head -1)
out=${OUT_DIR:-$here/../.build}
mkdir -p "$out"
cc -O2 -march=native "$here/ggml_matvec.c" -I "$src/ggml/include" -L "$llama/build-native/ggml/src" -lggml -lggml-cpu -lggml-base \
    -lstdc++ -lm -lpthread -fopenmp -o "$out/ggml-matvec"
OMP_NUM_THREADS=1 "$out/ggml-matvec" "$@"
