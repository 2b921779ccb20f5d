#!/usr/bin/env bash
# The worked example of docs/recording-goldens.md, end to end: make TinyNet's weights and inputs, record its goldens
# with the general recorder (and config.json), then verify the directory with Parity in every default format.
#
#   tools/examples/recorder/record.sh [OUT_DIR]        # default .build-recorder/tinynet; exit status of parity verify
#
# Needs Debian's /usr/bin/python3 (torch, numpy, h5py) and a built parity (.build/debug or .build/release, else
# `swift build`). Rerunning is safe: the recorder keeps an identical golden and refuses a different one.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${1:-.build-recorder/tinynet}
mkdir -p "$OUT"
/usr/bin/python3 tools/examples/recorder/make_weights.py "$OUT"
/usr/bin/python3 tools/record_goldens_any.py \
    --module tinynet:TinyNet --path tools/examples/recorder --kwargs '{"channels": 4, "hidden": 64}' \
    --weights "$OUT/model.safetensors" --inputs "$OUT/inputs.npy" --input-name images \
    --name tinynet --config --preprocessing "uniform [0, 1) noise, seeded"
PARITY=${PARITY:-}
if [ -z "$PARITY" ]; then
    for candidate in .build/release/parity .build/debug/parity; do
        if [ -x "$candidate" ]; then PARITY=$candidate; break; fi
    done
fi
if [ -z "$PARITY" ]; then swift build --product parity; PARITY=.build/debug/parity; fi
# TinyNet is not one of ggml's mnist structures, so Parity has no GGUF or MLX layout for it: verify its safetensors cells.
"$PARITY" verify "$OUT" --format safetensors
