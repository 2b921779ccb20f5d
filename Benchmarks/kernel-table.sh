#!/bin/sh
# Regenerates the measured table in docs/kernels.md (between the kernel-table markers) from one run of
# ggml/side_by_side.sh: Parity's and ggml's quantized matvec kernels interleaved in one process, medians of
# ROUNDS rounds (default 15), and the core's read bandwidth. Usage: Benchmarks/kernel-table.sh [ROUNDS]
set -e
here=$(cd "$(dirname "$0")" && pwd)
# MLX's own CPU quantized_matmul, for the MLX affine rows (run just before, in the same shell; "absent" without MLX).
python=${MLX_PYTHON:-$here/../.build-venv-mlx/bin/python}
mlx4=absent mlx8=absent
if [ -x "$python" ]; then
    mlx_out=$("$python" "$here/ggml/mlx_qmm.py" 2>&1 || true)
    mlx4=$(echo "$mlx_out" | awk '$1 == 4 { print $2 }'); mlx4=${mlx4:-absent}
    mlx8=$(echo "$mlx_out" | awk '$1 == 8 { print $2 }'); mlx8=${mlx8:-absent}
fi
doc=$here/../docs/kernels.md
table=$(mktemp)
trap 'rm -f "$table"' EXIT
{
    echo "<!-- kernel-table:begin (Benchmarks/kernel-table.sh writes this block; do not edit by hand) -->"
    echo "Measured $(date -u +%Y-%m-%d) on $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)), 4096×4096, one thread:"
    echo
    "$here/ggml/side_by_side.sh" "${1:-15}" --markdown "$mlx4" "$mlx8"
    echo "<!-- kernel-table:end -->"
} > "$table"
awk -v table="$table" '
    /<!-- kernel-table:begin/ { while ((getline line < table) > 0) print line; skipping = 1; next }
    /<!-- kernel-table:end -->/ { skipping = 0; next }
    !skipping { print }
' "$doc" > "$doc.new"
mv "$doc.new" "$doc"
cat "$table"
