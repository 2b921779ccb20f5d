"""MLX's own CPU quantized_matmul (affine, float32, transpose=True) on a 4096×4096 matrix and one input row:
median µs of CPU time over 31 runs (process CPU time: MLX runs the op on its stream's worker thread), for the
4- and 8-bit group-64 rows of Benchmarks/kernel-table.sh. Prints "<bits> <µs>" lines, or "absent <reason>"."""
import sys
import time

try:
    import mlx.core as mx
    import numpy as np
except ImportError as error:
    print("absent", error)
    sys.exit(0)

mx.set_default_device(mx.cpu)
rng = np.random.default_rng(1)
w = mx.array(rng.uniform(-1, 1, (4096, 4096)).astype(np.float32))
x = mx.array(rng.uniform(-1, 1, (1, 4096)).astype(np.float32))
for bits in (4, 8):
    wq, scales, biases = mx.quantize(w, group_size=64, bits=bits)
    mx.eval(wq, scales, biases)
    times = []
    for run in range(32):
        start = time.process_time()
        mx.eval(mx.quantized_matmul(x, wq, scales, biases, transpose=True, group_size=64, bits=bits))
        if run > 0:
            times.append(time.process_time() - start)
    times.sort()
    print(bits, times[len(times) // 2] * 1e6)
