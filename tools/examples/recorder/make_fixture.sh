#!/usr/bin/env bash
# The Swift tests' evidence that the general recorder's goldens serve Parity (RecorderGoldenTests): TinyNet with
# 8 inputs, recorded with --config into Tests/ParityTests/Fixtures/recorder-tinynet/ (~150 KB). Deterministic;
# rerunning keeps identical files and refuses different ones (then rerun the recorder with --force on purpose).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=Tests/ParityTests/Fixtures/recorder-tinynet
mkdir -p "$OUT"
/usr/bin/python3 tools/examples/recorder/make_weights.py "$OUT" --count 8
/usr/bin/python3 tools/record_goldens_any.py \
    --module tinynet:TinyNet --path tools/examples/recorder --kwargs '{"channels": 4, "hidden": 64}' \
    --weights "$OUT/model.safetensors" --inputs "$OUT/inputs.npy" --input-name images \
    --name recorder-tinynet --config --preprocessing "uniform [0, 1) noise, seeded"
rm "$OUT/inputs.npy"  # the golden holds them (/inputs/images); inputs_sha256 records the file's hash
