import CParityKernels
import ParityCore
import ParityFormats
import Testing

/// The float16 affine kernels of CParityKernels (mlx_f16.c: `quantized_matmul` and `dequantize`) against the
/// Swift element loops that reproduce MLX (`MLXQuantization.quantizedMatmulReference` / `dequantizeReference`,
/// themselves checked against MLX's own outputs by MLXQuantizationTests), bit for bit, on every path this CPU
/// has (F16C, and the portable C forced) — random and adversarial weights and activations.
@Suite("float16 MLX affine kernels equal the scalar reference bit for bit")
struct F16KernelTests {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 24
        }
        mutating func unit() -> Float { Float(next() % 1_000_001) / 1_000_000 }
        mutating func sign() -> Float { next() % 2 == 0 ? 1 : -1 }
        /// A value already in float16.
        mutating func half(_ magnitude: Float) -> Float { FloatCodecs.roundToHalf(sign() * magnitude * unit()) }
    }

    /// NaN stands for NaN (payloads of NaN arithmetic depend on operand order, which no kernel contract fixes).
    static func same(_ a: Float, _ b: Float) -> Bool { a.isNaN ? b.isNaN : a.bitPattern == b.bitPattern }

    struct Shape: CustomTestStringConvertible, Sendable {
        let rows, cols, group, bits, n: Int
        let adversarial: Bool
        var testDescription: String { "\(rows)×\(cols) g\(group) b\(bits) n\(n)\(adversarial ? " adversarial" : "")" }
    }

    /// Row counts that are not multiples of the 32- and 8-row tiles (45 = 32 + 8 + 5), single rows, group sizes
    /// 32/64/128, 4- and 8-bit codes (the engines' cases) plus 1, 2 (same kernels) and 3 bits (which the kernels
    /// decline: the scalar loop must still run). Columns are whole groups, so always a multiple of 32.
    static let shapes: [Shape] = [
        Shape(rows: 45, cols: 256, group: 64, bits: 4, n: 3, adversarial: false),
        Shape(rows: 7, cols: 128, group: 32, bits: 8, n: 2, adversarial: false),
        Shape(rows: 9, cols: 384, group: 128, bits: 4, n: 1, adversarial: false),
        Shape(rows: 33, cols: 128, group: 32, bits: 4, n: 2, adversarial: false),
        Shape(rows: 64, cols: 256, group: 128, bits: 8, n: 3, adversarial: false),
        Shape(rows: 1, cols: 64, group: 64, bits: 4, n: 1, adversarial: false),
        Shape(rows: 40, cols: 128, group: 64, bits: 2, n: 2, adversarial: false),
        Shape(rows: 17, cols: 64, group: 32, bits: 1, n: 1, adversarial: false),
        Shape(rows: 11, cols: 96, group: 32, bits: 3, n: 2, adversarial: false),
        Shape(rows: 45, cols: 256, group: 64, bits: 4, n: 4, adversarial: true),
        Shape(rows: 37, cols: 384, group: 128, bits: 8, n: 3, adversarial: true),
        Shape(rows: 13, cols: 128, group: 32, bits: 4, n: 2, adversarial: true),
    ]

    /// A float16 affine weight of `shape` with random codes. Adversarial scales/biases: per group one of normal,
    /// subnormal, huge (products overflow float16), ±0, ±Inf, NaN.
    static func weight(_ shape: Shape, _ g: inout Generator) throws -> MLXQuantized {
        let codes = (0..<(shape.rows * shape.cols)).map { _ in UInt8(truncatingIfNeeded: g.next() % (1 << UInt64(shape.bits))) }
        let groups = shape.rows * shape.cols / shape.group
        func value(_ g: inout Generator, typical: Float) -> Float {
            guard shape.adversarial else { return g.half(typical) }
            switch g.next() % 32 {
            case 0: return g.half(0x1p-16)  // subnormal
            case 1: return g.half(40000)  // products and sums beyond 65504
            case 2: return g.sign() * 0
            case 3: return g.sign() * .infinity
            case 4: return .nan
            default: return g.half(typical)
            }
        }
        // Specials only in every fourth row: a NaN or Inf weight poisons its whole row, and the other rows must
        // still show finite sums overflowing to ±Inf.
        let groupsPerRow = shape.cols / shape.group
        let scales = (0..<groups).map { i in (i / groupsPerRow) % 4 == 1 ? value(&g, typical: 0.05) : g.half(0.05) }
        let biases = (0..<groups).map { i in (i / groupsPerRow) % 4 == 1 ? value(&g, typical: 1) : g.half(1) }
        return try MLXQuantized(mode: .affine, groupSize: shape.group, bits: shape.bits, rows: shape.rows, cols: shape.cols,
                                scaleType: .f16, packed: MLXQuantization.pack(codes, bits: shape.bits),
                                scales: MLXFloatType.f16.encode(scales), biases: MLXFloatType.f16.encode(biases))
    }

    /// Activations in float16; adversarial ones include 30000–60000 (overflowing products and sums: first row of x
    /// only), subnormals, ±0, ±Inf and NaN (third row of x only, where there is one), and values with one low
    /// mantissa bit (products that land exactly between two halves).
    static func activations(_ shape: Shape, _ g: inout Generator) -> [Float] {
        (0..<(shape.n * shape.cols)).map { i in
            guard shape.adversarial else { return g.half(4) }
            let m = i / shape.cols
            switch g.next() % 16 {
            case 0: return m == 0 ? g.sign() * FloatCodecs.roundToHalf(30000 + 30000 * g.unit()) : g.half(4)
            case 1: return g.half(0x1p-18)
            case 2: return g.sign() * 0
            case 3: return m == 2 && g.next() % 8 == 0 ? g.sign() * .infinity : g.half(2)
            case 4: return m == 2 && g.next() % 8 == 0 ? .nan : g.half(2)
            case 5, 6, 7: return g.sign() * (1 + 0x1p-10) * Float(sign: .plus, exponent: Int(g.next() % 5) - 2, significand: 1)
            default: return g.half(4)
            }
        }
    }

    /// Compares `quantizedMatmul` and `dequantize` on each path with the reference loops.
    @Test("quantized_matmul and dequantize, float16 affine, on every kernel path",
          arguments: try nonEmpty(F16KernelTests.shapes, "shapes"))
    func matchesReference(_ shape: Shape) throws {
        var g = Generator(state: UInt64(shape.rows * 7919 + shape.cols * 31 + shape.bits + (shape.adversarial ? 1 : 0)))
        let q = try Self.weight(shape, &g)
        let x = Self.activations(shape, &g)
        let expected = try MLXQuantization.quantizedMatmulReference(x: x, rows: shape.n, weight: q, xType: .f16)
        let expectedWeights = MLXQuantization.dequantizeReference(q)
        #expect(expected.count == shape.n * shape.rows)
        // Mode 0: the best path of this CPU, 1: portable C only.
        for mode: Int32 in [0, 1] {
            let forced = ForcedKernelPath.force(mode)
            defer { forced.release() }
            let path = pk_has_avx2() != 0 ? "F16C" : "portable"
            let got = try MLXQuantization.quantizedMatmul(x: x, rows: shape.n, weight: q, xType: .f16)
            var mismatches = 0
            for i in expected.indices where !Self.same(got[i], expected[i]) {
                mismatches += 1
                if mismatches <= 3 { Issue.record("\(shape.testDescription) \(path): output [\(i / shape.rows), \(i % shape.rows)] = \(got[i]) vs reference \(expected[i])") }
            }
            #expect(mismatches == 0, "\(shape.testDescription) \(path): \(mismatches) of \(expected.count) matmul outputs differ")
            for output: MLXFloatType? in [nil, .f16, .f32] {
                let weights = MLXQuantization.dequantize(q, outputType: output)
                let reference = output == nil ? expectedWeights : MLXQuantization.dequantizeReference(q, outputType: output)
                let bad = weights.indices.filter { !Self.same(weights[$0], reference[$0]) }
                #expect(bad.isEmpty, "\(shape.testDescription) \(path) dequantize → \(output?.rawValue ?? "default"): \(bad.count) values differ, first at \(bad.first ?? -1)")
            }
        }
        if shape.adversarial {
            // The adversarial inputs must actually reach the cases they are for, in the reference's own arithmetic.
            var ties = 0, subnormalProducts = 0, overflows = 0, nans = 0
            for m in 0..<shape.n {
                for r in 0..<shape.rows {
                    for c in 0..<shape.cols {
                        let p = x[m * shape.cols + c] * expectedWeights[r * shape.cols + c]
                        let magnitude = p.bitPattern & 0x7FFF_FFFF
                        if magnitude >= 0x3880_0000, magnitude < 0x4780_0000, magnitude & 0x1FFF == 0x1000 { ties += 1 }
                        if p != 0, abs(p) < 0x1p-14 { subnormalProducts += 1 }
                    }
                    let y = expected[m * shape.rows + r]
                    if y.isInfinite { overflows += 1 }
                    if y.isNaN { nans += 1 }
                }
            }
            #expect(ties > 0 && subnormalProducts > 0 && overflows > 0 && nans > 0,
                    "coverage: \(ties) tied products, \(subnormalProducts) subnormal products, \(overflows) infinite and \(nans) NaN outputs")
        }
    }

    /// The float32 product (float16 scales, float32 activations: MLX promotes to float32) for several rows of x,
    /// which runs the tiled kernel of mlx_f16.c.
    @Test("quantized_matmul in float32 over several rows of x, on every kernel path",
          arguments: try nonEmpty(F16KernelTests.shapes, "shapes"))
    func float32MatchesReference(_ shape: Shape) throws {
        var g = Generator(state: UInt64(shape.rows * 104_729 + shape.cols + shape.bits))
        let q = try Self.weight(shape, &g)
        // Float32 activations with bits below float16 precision, so a float16 rounding anywhere would show.
        let x = Self.activations(shape, &g).map { $0 * (1 + 0x1p-20) }
        for n in Set([2, max(2, shape.n)]).sorted() {
            let xs = Array((x + x).prefix(n * shape.cols))
            let expected = try MLXQuantization.quantizedMatmulReference(x: xs, rows: n, weight: q, xType: .f32)
            for mode: Int32 in [0, 1] {
                let forced = ForcedKernelPath.force(mode)
                defer { forced.release() }
                let path = pk_has_avx2() != 0 ? "AVX2" : "portable"
                let got = try MLXQuantization.quantizedMatmul(x: xs, rows: n, weight: q, xType: .f32)
                let bad = expected.indices.filter { !Self.same(got[$0], expected[$0]) }
                #expect(bad.isEmpty, "\(shape.testDescription) n=\(n) \(path): \(bad.count) of \(expected.count) outputs differ, first at \(bad.first ?? -1)")
            }
        }
    }

    @Test("affine quantize codes (F16C/AVX2 and portable) equal min(max(rint((w − bias) / scale), 0), max), NaN → 0")
    func affineCodes() {
        var g = Generator(state: 77)
        // Ties (k + 0.5 after the division), negatives, values beyond the top code, ±0, ±Inf, NaN; 61 values so
        // the tail after the 8-wide loop runs too.
        var w: [Float] = [0.5, 1.5, 2.5, -0.5, -0.3, 0, -0.0, 14.5, 15.5, 16, 300, -300, .infinity, -.infinity, .nan, 1e30, -1e30]
        while w.count < 61 { w.append(g.sign() * 20 * g.unit()) }
        for (scale, bias, top): (Float, Float, Float) in [(1, 0, 15), (0.37, -2.1, 15), (-0.05, 0.4, 255), (1e-7, 0, 255), (0, 0, 15), (.nan, 0, 3)] {
            let expected = w.map { v -> UInt8 in
                let q = min(max(((v - bias) / scale).rounded(.toNearestOrEven), 0), top)
                return q.isNaN ? 0 : UInt8(q)
            }
            for mode: Int32 in [0, 1] {
                let forced = ForcedKernelPath.force(mode)
                defer { forced.release() }
                var codes = [UInt8](repeating: 0xEE, count: w.count)
                pk_mlx_affine_codes(w, Int64(w.count), scale, bias, top, &codes)
                #expect(codes == expected, "scale \(scale) bias \(bias) max \(top), \(pk_has_avx2() != 0 ? "AVX2" : "portable")")
            }
        }
    }

    @Test("sums that overflow float16 become Inf at the step they overflow, and later terms cannot bring them back")
    func sumOverflow() throws {
        // One row, eight columns, codes 1 with scale 1, bias 0: w = 1 everywhere, so the sum is the running sum of
        // x: 40000 + 30000 = 70000 > 65504 → +Inf, and −60000 added after leaves Inf (a float32 accumulator
        // rounded once at the end would give 10000).
        let codes = [UInt8](repeating: 1, count: 32)
        let q = try MLXQuantized(mode: .affine, groupSize: 32, bits: 4, rows: 1, cols: 32, scaleType: .f16,
                                 packed: MLXQuantization.pack(codes, bits: 4), scales: MLXFloatType.f16.encode([1]),
                                 biases: MLXFloatType.f16.encode([0]))
        var x = [Float](repeating: 0, count: 32)
        x[0] = 40000; x[1] = 30000; x[2] = -60000
        for mode: Int32 in [0, 1] {
            let forced = ForcedKernelPath.force(mode)
            defer { forced.release() }
            let y = try MLXQuantization.quantizedMatmul(x: x, rows: 1, weight: q, xType: .f16)
            #expect(y == [.infinity], "path \(mode == 0 ? "best" : "portable")")
        }
        #expect(try MLXQuantization.quantizedMatmulReference(x: x, rows: 1, weight: q, xType: .f16) == [.infinity])
    }
}
