#!/usr/bin/env bash
# The main job: install what is missing, build Parity, and verify every bundled reference model in every
# format and variant against its PyTorch goldens. Exit 0 only if everything passes.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
swift build -c release --product parity
exec .build/release/parity verify "$@"
