import Benchmark
import ParityFormats

/// 4096×4096 matrix-vector products with Parity's kernels, one thread: `swift package benchmark` in Benchmarks/.
/// (`parity-speed kernels` times the same products with a plain best-of-N clock, and ggml/run.sh ggml's own.)
let benchmarks: @Sendable () -> Void = {
    // Wall clock only: the CPU-time metrics tick in 10 ms steps on Linux, coarser than one matvec.
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], warmupIterations: 3,
                                           maxDuration: .seconds(5), maxIterations: 200)
    let rows = 4096, cols = 4096
    var state: UInt64 = 1
    func uniform() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24) * 2 - 1
    }
    let w = (0..<(rows * cols)).map { _ in uniform() }
    let x = (0..<cols).map { _ in uniform() }

    for type in [GGMLType.q8_0, .q4_0, .q4_K, .q5_K, .q6_K] {
        guard let q = try? GGMLQuants.quantize(w, to: type), let xq = try? GGMLQuants.quantize(x, to: type.vecDotType) else {
            fatalError("cannot quantize the benchmark matrix to \(type.name)")
        }
        Benchmark("ggml \(type.name) matvec 4096x4096") { benchmark in
            var y = [Float](repeating: 0, count: rows)
            for _ in benchmark.scaledIterations {
                q.withUnsafeBytes { wb in xq.withUnsafeBytes { xb in y.withUnsafeMutableBufferPointer { yb in
                    GGMLQuants.matVec(weights: wb, type: type, rows: rows, activations: xb, count: cols, into: yb)
                } } }
                blackHole(y[0])
            }
        }
    }

    for bits in [4, 8] {
        let groupSize = 64, groups = rows * cols / groupSize
        let codes = (0..<(rows * cols)).map { _ in UInt8(Float(1 << bits) * (uniform() + 1) / 2.0001) }
        let scales = (0..<groups).map { _ in abs(uniform()) / Float(1 << bits) }, biases = (0..<groups).map { _ in uniform() }
        guard let q = try? MLXQuantized(mode: .affine, groupSize: groupSize, bits: bits, rows: rows, cols: cols, scaleType: .f16,
                                        packed: MLXQuantization.pack(codes, bits: bits), scales: MLXFloatType.f16.encode(scales),
                                        biases: MLXFloatType.f16.encode(biases)) else {
            fatalError("cannot build the \(bits)-bit MLX benchmark matrix")
        }
        Benchmark("mlx affine \(bits)-bit g64 matvec 4096x4096") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try MLXQuantization.quantizedMatmul(x: x, rows: 1, weight: q))
            }
        }
    }
}
