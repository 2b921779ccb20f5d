import Foundation
import ParityCore
import ParityFormats

/// Parity's kernels on a 4096×4096 matrix, one thread, best of `runs` (thread CPU time): the same shapes and
/// random data as Benchmarks/ggml/ggml_matvec.c, whose numbers are ggml's own kernels for comparison.
func timeKernels(runs: Int = 20) throws {
    let rows = 4096, cols = 4096
    var state: UInt64 = 1
    func uniform() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24) * 2 - 1
    }
    let w = (0..<(rows * cols)).map { _ in uniform() }
    let x = (0..<cols).map { _ in uniform() }

    for type in [GGMLType.q8_0, .q4_0, .q4_K, .q5_K, .q6_K] {
        let q = try GGMLQuants.quantize(w, to: type)
        let xq = try GGMLQuants.quantize(x, to: type.vecDotType)
        var y = [Float](repeating: 0, count: rows)
        let seconds = best(runs: runs) {
            q.withUnsafeBytes { wb in xq.withUnsafeBytes { xb in y.withUnsafeMutableBufferPointer { yb in
                GGMLQuants.matVec(weights: wb, type: type, rows: rows, activations: xb, count: cols, into: yb)
            } } }
        }
        print(String(format: "parity %-5@ 4096x4096 matvec: %8.1f us  (%.2f GB/s of weights)  y[0]=%g",
                     type.name, seconds * 1e6, Double(q.count) / seconds / 1e9, y[0]))
    }

    for bits in [4, 8] {
        // MLX's default group size 64, float16 scales and biases (what mlx_lm.convert writes for a float16 model).
        let groupSize = 64, groups = rows * cols / groupSize
        let codes = (0..<(rows * cols)).map { _ in UInt8(Float(1 << bits) * (uniform() + 1) / 2.0001) }
        let scales = (0..<groups).map { _ in abs(uniform()) / Float(1 << bits) }, biases = (0..<groups).map { _ in uniform() }
        let q = try MLXQuantized(mode: .affine, groupSize: groupSize, bits: bits, rows: rows, cols: cols, scaleType: .f16,
                                 packed: MLXQuantization.pack(codes, bits: bits), scales: MLXFloatType.f16.encode(scales),
                                 biases: MLXFloatType.f16.encode(biases))
        var y: [Float] = []
        let seconds = try best(runs: runs) { y = try MLXQuantization.quantizedMatmul(x: x, rows: 1, weight: q) }
        let bytes = q.packed.count * 4 + q.scales.count + (q.biases?.count ?? 0)
        print(String(format: "parity mlx affine %d-bit g64 4096x4096 matvec: %8.1f us  (%.2f GB/s of weights)  y[0]=%g",
                     bits, seconds * 1e6, Double(bytes) / seconds / 1e9, y[0]))
    }
    // The core's read bandwidth is measured by ggml/run.sh (C with AVX2 loads: Swift's SIMD16 loop did not reach it).
}
