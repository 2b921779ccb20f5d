import CParityKernels
import ParityCore
import ParityFormats
import Testing

/// The SIMD quantized kernels (CParityKernels, through `GGMLQuants.matVec` and MLX's affine `quantizedMatmul`)
/// must give exactly the numbers of the scalar reference kernels, on every path this CPU can run (AVX-512 for the
/// k-quants, AVX2, portable C).
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
        compareMatVec(type, rows: rows, count: count, weights: weights, activations: activations, label: "")
    }

    /// `GGMLQuants.matVec` (AVX2 and forced portable) against `GGMLQuants.vecDot` row by row, bit for bit.
    static func compareMatVec(_ type: GGMLType, rows: Int, count: Int, weights: [UInt8], activations: [UInt8], label: String) {
        let rowBytes = count / type.blockSize * type.typeSize
        var expected = [Float](repeating: 0, count: rows)
        weights.withUnsafeBytes { w in
            activations.withUnsafeBytes { a in
                for r in 0..<rows {
                    expected[r] = GGMLQuants.vecDot(weights: UnsafeRawBufferPointer(rebasing: w[(r * rowBytes)..<((r + 1) * rowBytes)]),
                                                    type: type, activations: a, count: count)
                }
            }
        }
        // Mode 0: the best path of this CPU (AVX-512 where it has it), 2: AVX2 at most, 1: portable C.
        for mode: Int32 in [0, 2, 1] {
            let forced = ForcedKernelPath.force(mode)
            defer { forced.release() }
            let path = pk_has_avx512() != 0 ? "AVX-512" : pk_has_avx2() != 0 ? "AVX2" : "portable"
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
                        "\(type.name) \(rows)×\(count)\(label) row \(r) (\(path) path): \(got[r]) vs reference \(expected[r])")
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
        let weights = (0..<(rows * GGMLType.q3_K.typeSize)).map { _ in g.byte() }
        let activations = try GGMLQuants.quantize((0..<count).map { _ in g.float(-1...1) }, to: .q8_K)
        var got = [Float](repeating: 0, count: rows)
        weights.withUnsafeBytes { w in activations.withUnsafeBytes { a in got.withUnsafeMutableBufferPointer { out in
            GGMLQuants.matVec(weights: w, type: .q3_K, rows: rows, activations: a, count: count, into: out)
        } } }
        weights.withUnsafeBytes { w in activations.withUnsafeBytes { a in
            for r in 0..<rows {
                let expected = GGMLQuants.vecDot(weights: UnsafeRawBufferPointer(rebasing: w[(r * 110)..<((r + 1) * 110)]), type: .q3_K,
                                                 activations: a, count: count)
                #expect(Self.same(got[r], expected), "Q3_K row \(r): \(got[r]) vs \(expected)")
            }
        } }
    }

    // MARK: k-quants × Q8_K

    /// Offsets of a k-quant block's f16 scales: d (and dmin for Q4_K/Q5_K).
    static func halfOffsets(_ type: GGMLType) -> [Int] { type == .q6_K ? [208] : [0, 2] }

    /// How a k-quant case fills its blocks.
    enum KFill: String, Sendable {
        /// Random code and scale bytes, small normal d/dmin (every 37th block a special half), Q8_K activations
        /// from the quantizer.
        case random
        /// Random bytes everywhere in the activations too: −128 codes, bsums that are not the codes' sums (the
        /// kernels must use the stored bsums, as ggml does), any f32 d.
        case rawActivations
        /// Every code and scale byte 0xFF (the largest codes and 6-bit scales; Q6_K scales −1), activation codes
        /// all −128 and bsums −32768: the integer sums at their extremes.
        case allMax
        /// Every code byte 0x80/0x7F alternating (Q6_K scales −128 and 127), activation codes all 127.
        case extremeScales
        /// Subnormal and negative d/dmin halves (negative dmin flips the mins' sign), a subnormal activation d.
        case tinyAndNegative
    }

    struct KCase: CustomTestStringConvertible, Sendable {
        let type: GGMLType
        let rows, blocks: Int
        let fill: KFill
        var testDescription: String { "\(type.name) \(rows) rows × \(blocks) blocks, \(fill.rawValue)" }
    }

    static func kWeights(_ c: KCase, seed: UInt64) -> [UInt8] {
        var g = Generator(state: seed)
        let size = c.type.typeSize
        var bytes: [UInt8]
        switch c.fill {
        case .random, .rawActivations, .tinyAndNegative: bytes = (0..<(c.rows * c.blocks * size)).map { _ in g.byte() }
        case .allMax: bytes = [UInt8](repeating: 0xFF, count: c.rows * c.blocks * size)
        case .extremeScales: bytes = (0..<(c.rows * c.blocks * size)).map { $0 % 2 == 0 ? 0x80 : 0x7F }
        }
        let specialHalves: [UInt16] = [0x0001, 0x8000, 0x0000, 0x7C00, 0xFC00, 0x7E01, 0x03FF, 0x8001]
        for b in 0..<(c.rows * c.blocks) {
            for (k, offset) in halfOffsets(c.type).enumerated() {
                var half = FloatCodecs.floatToHalf(g.float(-0.05...0.05))
                switch c.fill {
                case .random, .rawActivations: if b % 37 == 5 { half = specialHalves[(b / 37 + k) % specialHalves.count] }
                case .allMax, .extremeScales: half = FloatCodecs.floatToHalf(k == 0 ? 0.04 : -0.03)
                case .tinyAndNegative: half = [0x0001, 0x8003, 0x03FF, 0x83FF, 0x0400][(b + k) % 5]  // subnormal, ±, smallest normal
                }
                bytes[b * size + offset] = UInt8(half & 0xFF)
                bytes[b * size + offset + 1] = UInt8(half >> 8)
            }
        }
        return bytes
    }

    static func kActivations(_ c: KCase, seed: UInt64) throws -> [UInt8] {
        var g = Generator(state: seed)
        let count = c.blocks * 256
        func storeF32(_ bytes: inout [UInt8], _ offset: Int, _ v: Float) {
            withUnsafeBytes(of: v.bitPattern.littleEndian) { for k in 0..<4 { bytes[offset + k] = $0[k] } }
        }
        switch c.fill {
        case .random:
            return try GGMLQuants.quantize((0..<count).map { _ in g.float(-3...3) }, to: .q8_K)
        case .rawActivations:
            var bytes = (0..<(c.blocks * 292)).map { _ in g.byte() }
            for b in 0..<c.blocks { storeF32(&bytes, b * 292, g.float(-0.05...0.05)) }
            return bytes
        case .allMax, .extremeScales:
            let code: UInt8 = c.fill == .allMax ? 0x80 : 0x7F
            var bytes = [UInt8](repeating: code, count: c.blocks * 292)
            for b in 0..<c.blocks {
                storeF32(&bytes, b * 292, 0.02)
                for j in 0..<16 {  // bsums: −32768 (0x8000) for allMax, 16·127 = 2032 (0x07F0) otherwise
                    bytes[b * 292 + 260 + 2 * j] = c.fill == .allMax ? 0x00 : 0xF0
                    bytes[b * 292 + 261 + 2 * j] = c.fill == .allMax ? 0x80 : 0x07
                }
            }
            return bytes
        case .tinyAndNegative:
            var bytes = try GGMLQuants.quantize((0..<count).map { _ in g.float(-3...3) }, to: .q8_K)
            for b in 0..<c.blocks where b % 2 == 0 { storeF32(&bytes, b * 292, Float(bitPattern: 0x0000_0007)) }  // subnormal d
            return bytes
        }
    }

    /// Each k-quant type with a kernel: one block, several blocks, many rows (a rounding-order difference would
    /// show), a 4096-wide row, and every fill.
    static let kCases: [KCase] = [GGMLType.q4_K, .q5_K, .q6_K].flatMap { type in
        [KCase(type: type, rows: 3, blocks: 1, fill: .random), KCase(type: type, rows: 9, blocks: 3, fill: .random),
         KCase(type: type, rows: 64, blocks: 2, fill: .random), KCase(type: type, rows: 4, blocks: 16, fill: .random),
         KCase(type: type, rows: 7, blocks: 5, fill: .rawActivations), KCase(type: type, rows: 3, blocks: 4, fill: .allMax),
         KCase(type: type, rows: 3, blocks: 4, fill: .extremeScales), KCase(type: type, rows: 10, blocks: 3, fill: .tinyAndNegative)]
    }

    @Test("k-quant × Q8_K matVec equals vecDot row by row", arguments: try nonEmpty(kCases, "k-quant cases"))
    func kQuants(_ c: KCase) throws {
        let seed = UInt64(c.rows * 1000 + c.blocks * 10) &+ UInt64(c.type.rawValue) &* 7919
        let weights = Self.kWeights(c, seed: seed)
        let activations = try Self.kActivations(c, seed: seed ^ 0x5151)
        Self.compareMatVec(c.type, rows: c.rows, count: c.blocks * 256, weights: weights, activations: activations,
                           label: " (\(c.fill.rawValue))")
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
            let forced = ForcedKernelPath.force(portable ? 1 : 0)
            defer { forced.release() }
            let got = try MLXQuantization.quantizedMatmul(x: x, rows: c.n, weight: q)
            let mismatches = (0..<got.count).filter { !Self.same(got[$0], expected[$0]) }
            #expect(mismatches.isEmpty, "\(c.testDescription) (\(portable ? "portable" : "run-time choice")): \(mismatches.count) outputs differ, first at \(mismatches.first ?? -1)")
        }
    }
}
