#!/usr/bin/env bash
# Runs `parity bench` (release build) and splices its markdown tables into README.md between
# <!-- bench:begin --> and <!-- bench:end -->, so the README's results table is produced by the command, never typed.
#   tools/bench/update-readme.sh [parity bench arguments...]     (default: every bundled model and format)
#   tools/bench/update-readme.sh --from FILE                       (splice a finished `parity bench --markdown FILE` run)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
if [ "${1:-}" = "--from" ]; then
    cp "$2" "$OUT"
else
    swift build -c release --product parity >/dev/null
    .build/release/parity bench "$@" --markdown "$OUT" >/dev/null
fi
/usr/bin/python3 - "$OUT" <<'PY'
import sys
table = open(sys.argv[1]).read()
readme = open("README.md").read()
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
if begin not in readme or end not in readme:
    sys.exit("README.md has no bench markers")
head, rest = readme.split(begin, 1)
_, tail = rest.split(end, 1)
open("README.md", "w").write(head + begin + "\n" + table + end + tail)
PY
echo "README.md: benchmark tables updated"
