import CParityKernels
import ParityCore
import ParityFormats
import Testing

/// The SIMD quantized kernels (CParityKernels, through `GGMLQuants.matVec` and MLX's affine `quantizedMatmul`)
/// must give exactly the numbers of the scalar reference kernels, on both the AVX2 path and the portable path.
/// Bits are compared exactly; NaN results are compared as NaN only, because x86 takes a NaN's payload from the
/// first operand of an instruction and the compiler may swap the operands of a commutative multiply or add.
@Suite("Quantized kernel equivalence", .serialized)
struct QuantKernelEquivalenceTests {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 24
        }
        mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
        mutating func float(_ range: ClosedRange<Float>) -> Float {
            range.lowerBound + Float(next() % 1_000_001) / 1_000_000 * (range.upperBound - range.lowerBound)
        }
    }

    static func same(_ a: Float, _ b: Float) -> Bool { a.isNaN ? b.isNaN : a.bitPattern == b.bitPattern }

    /// Weight rows of random blocks: random code bytes, scales of every kind (normal, subnormal, ±0, ±inf, NaN
    /// in a few blocks) so that the tails, the −128 code and the special-value paths are all exercised.
    static func weightRows(_ type: GGMLType, rows: Int, blocks: Int, seed: UInt64, specials: Bool) -> [UInt8] {
        var g = Generator(state: seed)
        var bytes = (0..<(rows * blocks * type.typeSize)).map { _ in g.byte() }
        let specialHalves: [UInt16] = [0x0001, 0x8000, 0x0000, 0x7C00, 0xFC00, 0x7E01, 0x03FF]
        for b in 0..<(rows * blocks) {
            var half = FloatCodecs.floatToHalf(g.float(-0.05...0.05))
            if specials && b % 37 == 5 { half = specialHalves[(b / 37) % specialHalves.count] }
            bytes[b * type.typeSize] = UInt8(half & 0xFF)
            bytes[b * type.typeSize + 1] = UInt8(half >> 8)
        }
        return bytes
    }

    static func checkMatVec(_ type: GGMLType, rows: Int, blocks: Int, seed: UInt64, rawActivations: Bool) throws {
        let count = blocks * 32
        let weights = weightRows(type, rows: rows, blocks: blocks, seed: seed, specials: !rawActivations)
        var g = Generator(state: seed ^ 0xABCD)
        let activations: [UInt8]
        if rawActivations {
            // Any bytes, −128 codes included (the quantizer itself never writes −128).
            activations = weightRows(.q8_0, rows: 1, blocks: blocks, seed: seed ^ 0x1234, specials: false)
        } else {
            activations = try GGMLQuants.quantize((0..<count).map { _ in g.float(-3...3) }, to: .q8_0)
        }
        let rowBytes = blocks * type.typeSize
        var expected = [Float](repeating: 0, count: rows)
        weights.withUnsafeBytes { w in
            activations.withUnsafeBytes { a in
                for r in 0..<rows {
                    expected[r] = GGMLQuants.vecDot(weights: UnsafeRawBufferPointer(rebasing: w[(r * rowBytes)..<((r + 1) * rowBytes)]),
                                                    type: type, activations: a, count: count)
                }
            }
        }
        for portable in [false, true] {
            pk_force_portable(portable ? 1 : 0)
            defer { pk_force_portable(0) }
            var got = [Float](repeating: -1, count: rows)
            weights.withUnsafeBytes { w in
                activations.withUnsafeBytes { a in
                    got.withUnsafeMutableBufferPointer { out in
                        GGMLQuants.matVec(weights: w, type: type, rows: rows, activations: a, count: count, into: out)
                    }
                }
            }
            for r in 0..<rows {
                #expect(Self.same(got[r], expected[r]),
                        "\(type.name) \(rows)×\(count) row \(r) (\(portable ? "portable" : pk_has_avx2() != 0 ? "AVX2" : "portable")): \(got[r]) vs reference \(expected[r])")
            }
        }
    }

    struct Shape: CustomTestStringConvertible, Sendable {
        let rows, blocks: Int
        let raw: Bool
        var testDescription: String { "\(rows) rows × \(blocks) blocks\(raw ? ", raw activation bytes" : "")" }
    }

    /// Block counts below, at and past the 8-block SIMD step (tails of 1…7), and a 4096-wide row.
    static let shapes: [Shape] = [
        Shape(rows: 3, blocks: 1, raw: false), Shape(rows: 5, blocks: 7, raw: false), Shape(rows: 4, blocks: 8, raw: false),
        Shape(rows: 7, blocks: 13, raw: false), Shape(rows: 2, blocks: 128, raw: false), Shape(rows: 6, blocks: 17, raw: true),
        Shape(rows: 64, blocks: 9, raw: false),  // enough rows that a different rounding order would show
    ]

    @Test("Q8_0 × Q8_0 matVec equals vecDot row by row", arguments: try nonEmpty(shapes, "shapes"))
    func q8_0(_ s: Shape) throws {
        try Self.checkMatVec(.q8_0, rows: s.rows, blocks: s.blocks, seed: UInt64(s.rows * 1000 + s.blocks), rawActivations: s.raw)
    }

    @Test("Q4_0 × Q8_0 matVec equals vecDot row by row", arguments: try nonEmpty(shapes, "shapes"))
    func q4_0(_ s: Shape) throws {
        try Self.checkMatVec(.q4_0, rows: s.rows, blocks: s.blocks, seed: UInt64(s.rows * 1000 + s.blocks + 7), rawActivations: s.raw)
    }

    @Test("types without a SIMD kernel fall back to vecDot row by row")
    func fallback() throws {
        try Self.checkMatVec(.q8_0, rows: 1, blocks: 2, seed: 99, rawActivations: false)  // the SIMD type, for contrast
        let count = 256, rows = 3
        var g = Generator(state: 5)
        let weights = (0..<(rows * GGMLType.q6_K.typeSize)).map { _ in g.byte() }
        let activations = try GGMLQuants.quantize((0..<count).map { _ in g.float(-1...1) }, to: .q8_K)
        var got = [Float](repeating: 0, count: rows)
        weights.withUnsafeBytes { w in activations.withUnsafeBytes { a in got.withUnsafeMutableBufferPointer { out in
            GGMLQuants.matVec(weights: w, type: .q6_K, rows: rows, activations: a, count: count, into: out)
        } } }
        weights.withUnsafeBytes { w in activations.withUnsafeBytes { a in
            for r in 0..<rows {
                let expected = GGMLQuants.vecDot(weights: UnsafeRawBufferPointer(rebasing: w[(r * 210)..<((r + 1) * 210)]), type: .q6_K,
                                                 activations: a, count: count)
                #expect(Self.same(got[r], expected), "Q6_K row \(r): \(got[r]) vs \(expected)")
            }
        } }
    }

    struct AffineCase: CustomTestStringConvertible, Sendable {
        let rows, cols, group, bits, n: Int
        var scaleType = MLXFloatType.f32
        var testDescription: String { "\(rows)×\(cols), \(bits) bits, group \(group), \(n) input rows, \(scaleType.rawValue) scales" }
    }

    /// Rows below, at and past the 16-row SIMD block (tails), both bit widths, several groups per row.
    static let affineCases: [AffineCase] = [
        AffineCase(rows: 16, cols: 64, group: 32, bits: 4, n: 1), AffineCase(rows: 37, cols: 128, group: 64, bits: 4, n: 2),
        AffineCase(rows: 5, cols: 64, group: 32, bits: 8, n: 1), AffineCase(rows: 33, cols: 256, group: 128, bits: 8, n: 3),
        AffineCase(rows: 48, cols: 32, group: 32, bits: 4, n: 1),
        AffineCase(rows: 21, cols: 128, group: 64, bits: 4, n: 2, scaleType: .f16), AffineCase(rows: 17, cols: 64, group: 32, bits: 8, n: 1, scaleType: .bf16),
    ]

    @Test("MLX affine quantized_matmul (float32) equals its definition", arguments: try nonEmpty(affineCases, "affine cases"))
    func mlxAffine(_ c: AffineCase) throws {
        var g = Generator(state: UInt64(c.rows * 31 + c.cols + c.bits))
        let codes = (0..<(c.rows * c.cols)).map { _ in UInt8(g.next() % UInt64(1 << c.bits)) }
        let groups = c.rows * c.cols / c.group
        var scales = (0..<groups).map { _ in g.float(-0.1...0.1) }, biases = (0..<groups).map { _ in g.float(-1...1) }
        scales[groups / 2] = -0.0
        biases[groups - 1] = Float(bitPattern: 0x0000_0003)  // subnormal
        if c.scaleType == .f16 { scales[1] = Float(Float16(bitPattern: 0x0003)); biases[0] = .nan }  // a subnormal half, a NaN bias
        // The values the file holds (rounded to the scale type), which is what the product multiplies.
        scales = c.scaleType.decode(c.scaleType.encode(scales))
        biases = c.scaleType.decode(c.scaleType.encode(biases))
        let q = try MLXQuantized(mode: .affine, groupSize: c.group, bits: c.bits, rows: c.rows, cols: c.cols, scaleType: c.scaleType,
                                 packed: MLXQuantization.pack(codes, bits: c.bits), scales: c.scaleType.encode(scales),
                                 biases: c.scaleType.encode(biases))
        let x = (0..<(c.n * c.cols)).map { _ in g.float(-2...2) }
        // The definition (MLX's _qmm_t in float32): w = scale·q + bias, then sum += x·w in column order.
        var expected = [Float](repeating: 0, count: c.n * c.rows)
        for m in 0..<c.n {
            for r in 0..<c.rows {
                var sum: Float = 0
                for k in 0..<c.cols {
                    let gi = r * (c.cols / c.group) + k / c.group
                    let w = scales[gi] * Float(codes[r * c.cols + k]) + biases[gi]
                    sum += x[m * c.cols + k] * w
                }
                expected[m * c.rows + r] = sum
            }
        }
        for portable in [false, true] {
            pk_force_portable(portable ? 1 : 0)
            defer { pk_force_portable(0) }
            let got = try MLXQuantization.quantizedMatmul(x: x, rows: c.n, weight: q)
            let mismatches = (0..<got.count).filter { !Self.same(got[$0], expected[$0]) }
            #expect(mismatches.isEmpty, "\(c.testDescription) (\(portable ? "portable" : "run-time choice")): \(mismatches.count) outputs differ, first at \(mismatches.first ?? -1)")
        }
    }
}
