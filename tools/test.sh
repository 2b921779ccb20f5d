#!/usr/bin/env bash
# The test suite: install what is missing, then `swift test` (XCTest-free; Swift Testing). Needs no Python:
# everything Python produced (goldens, fixtures) is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
exec swift test "$@"
