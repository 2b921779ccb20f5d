#!/usr/bin/env bash
# Builds and runs the example package tools/examples/gate-conversion, which depends on Parity by path and gates a
# conversion in its own `swift test` (docs/library.md):
#   1. `swift test` with the good conversion must exit 0;
#   2. `GATE_CONVERSION_BROKEN=1 swift test` (the test plants a bug in its converted file) must exit non-zero, and
#      both frameworks' failures must name the node, the metric, the value and the limit (checked by grep).
#
#   tools/examples/run-example.sh            # exit 0 when both hold
#
# Scratch path .build-example (git-ignored; PARITY_EXAMPLE_SCRATCH overrides): kept between runs, so only the first
# run builds Parity from clean as a dependency (a debug build); later runs rebuild what changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
PACKAGE=tools/examples/gate-conversion
SCRATCH=${PARITY_EXAMPLE_SCRATCH:-$PWD/.build-example}
LOGS=$SCRATCH/example-logs
mkdir -p "$LOGS"
swiftpm=(--package-path "$PACKAGE" --scratch-path "$SCRATCH")

start=$(date +%s)
swift build --build-tests "${swiftpm[@]}"
built=$(date +%s)
echo "example: built in $((built - start)) s (Parity as a debug dependency, scratch $SCRATCH)"

if ! swift test --skip-build "${swiftpm[@]}" >"$LOGS/good.log" 2>&1; then
    cat "$LOGS/good.log"
    echo "example: FAIL: swift test failed on the good conversion (log above)" >&2
    exit 1
fi
echo "example: good conversion: swift test passed"

status=0
GATE_CONVERSION_BROKEN=1 swift test --skip-build "${swiftpm[@]}" >"$LOGS/broken.log" 2>&1 || status=$?
tested=$(date +%s)
if [ "$status" -eq 0 ]; then
    cat "$LOGS/broken.log"
    echo "example: FAIL: swift test passed on the broken conversion" >&2
    exit 1
fi
# The planted bug (+1 on fc2.bias[3]) must be named: the node with its metric, value and limit, and the tensor, under
# XCTest ("…: error: XCTestGate.… : failed - <message>") and under Swift Testing (the issue's comment, on a line of its
# own starting with "↳"). Numbers as Parity prints them.
number='[0-9][0-9.e+-]*'
node="node fc2 \\(Linear\\): (rel L2|max abs) $number > limit $number at element \\[[0-9]+, 3\\]"
tensor="tensor fc2.bias: \\|stored − expected\\| $number > limit $number at row 0, column 3"
missing=0
for pattern in "XCTestGate.* failed - .*$node" "XCTestGate.* failed - .*$tensor" "^↳ .*$node" "^↳ .*$tensor"; do
    if ! grep -Eq -- "$pattern" "$LOGS/broken.log"; then
        echo "example: FAIL: the broken run's output has no line matching: $pattern" >&2
        missing=1
    fi
done
if [ "$missing" -ne 0 ]; then
    cat "$LOGS/broken.log"
    exit 1
fi
echo "example: broken conversion: swift test exited $status, naming:"
grep -E -- "$node|$tensor" "$LOGS/broken.log" | sed 's/^/    /' | sort -u | head -8
echo "example: PASS (build $((built - start)) s, both test runs $((tested - built)) s)"
