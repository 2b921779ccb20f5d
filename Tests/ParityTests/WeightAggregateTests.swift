import Foundation
import ParityCore
import ParityFormats
import ParityVerify
import Testing

/// The rules added after the independent review of the weight check (issue 10): the block RMS rule of the refit
/// types, exact codes for Q8_0 and MLX affine under one input hypothesis, and non-finite values from finite
/// references. The data go through Parity's reference quantizers (byte-identical to ggml's `quantize_row_*_ref`
/// and to `mx.quantize`, proven by GGMLQuantsTests and MLXQuantizationTests), then get corrupted.
@Suite("weights: aggregate and exact-code rules")
struct WeightAggregateTests {
    static let refitTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1]

    /// Normal weights, 64 rows of 256: every block has codes across its grid.
    static func normalRows() -> [Float] {
        var rng = WeightTestRandom(seed: 7)
        return (0..<(64 * 256)).map { _ in rng.normal() * 0.02 }
    }

    static func f16Bits(_ bytes: [UInt8], at i: Int) -> Float { FloatCodecs.halfToFloat(UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8) }
    static func setF16(_ bytes: inout [UInt8], at i: Int, _ v: Float) {
        let h = FloatCodecs.floatToHalf(v)
        bytes[i] = UInt8(h & 0xFF); bytes[i + 1] = UInt8(h >> 8)
    }

    @Test("Q4_0/Q4_1/Q5_0/Q5_1: every code moved one level fails in every block (block RMS rule), though each element alone is within the refit allowance",
          arguments: try nonEmpty(refitTypes, "refit types"))
    func everyCodeShifted(type: GGMLType) throws {
        let values = Self.normalRows()
        let clean = try GGMLQuants.quantize(values, to: type)
        let good = WeightVerifier.checkGGUF(clean, type: type, reference: values, rowLength: 256)
        #expect(good.status == .pass)
        let rms = try #require(good.worstRMSFractionOfBound, "the RMS rule applies to \(type.name)")
        #expect(rms < 0.05, "nearest rounding leaves no excess: \(rms)")
        // XOR of each code's lowest bit (both nibbles): every code moves by exactly one level.
        var shifted = clean
        let codes = WeightBoundsTests.layout(type).codes
        for b in 0..<(clean.count / type.typeSize) { for i in codes { shifted[b * type.typeSize + i] ^= 0x11 } }
        let r = WeightVerifier.checkGGUF(shifted, type: type, reference: values, rowLength: 256)
        let blocks = values.count / type.blockSize
        print("measured \(type.name) every code ±1: \(r.blocksOutOfBounds) of \(blocks) blocks out, \(r.elementsOutOfBounds) elements by rule 1; worst RMS \(String(format: "%.2f", r.worstRMSFractionOfBound ?? 0)) of its bound")
        #expect(r.status == .outOfBounds && r.blocksOutOfBounds == blocks, "\(type.name): \(r.blocksOutOfBounds) of \(blocks) blocks")
        #expect(r.issues.contains { $0.rule.hasPrefix("block RMS error") } || r.elementsOutOfBounds > 0)
    }

    @Test("Q4_1: a min moved by a whole step fails in every block, by half a step in nearly every block")
    func shiftedMin() throws {
        let values = Self.normalRows()
        let clean = try GGMLQuants.quantize(values, to: .q4_1)
        let blocks = values.count / 32
        for (fraction, share) in [(Float(1), 1.0), (Float(0.5), 0.9)] {
            var bytes = clean
            for b in 0..<blocks {
                let at = b * GGMLType.q4_1.typeSize
                Self.setF16(&bytes, at: at + 2, Self.f16Bits(bytes, at: at + 2) + fraction * Self.f16Bits(bytes, at: at))
            }
            let r = WeightVerifier.checkGGUF(bytes, type: .q4_1, reference: values, rowLength: 256)
            print("measured q4_1 every min + \(fraction) step: \(r.blocksOutOfBounds) of \(blocks) blocks out")
            #expect(r.status == .outOfBounds && Double(r.blocksOutOfBounds) >= share * Double(blocks), "min + \(fraction) step: \(r.blocksOutOfBounds) of \(blocks)")
        }
        // One block's min moved by one step is named in that block.
        var one = clean
        Self.setF16(&one, at: 7 * 20 + 2, Self.f16Bits(one, at: 7 * 20 + 2) + Self.f16Bits(one, at: 7 * 20))
        let r = WeightVerifier.checkGGUF(one, type: .q4_1, reference: values, rowLength: 256)
        #expect(r.status == .outOfBounds && r.blocksOutOfBounds == 1 && r.issues.allSatisfy { $0.block == 7 }, "\(r.issues)")
    }

    @Test("Q4_0: every block scale ×0.85…×1.2 — the share of blocks the rules catch (measured, printed); ×0.85 and ×1.2 fail the tensor")
    func scaledQ4_0() throws {
        let values = Self.normalRows()
        let clean = try GGMLQuants.quantize(values, to: .q4_0)
        let blocks = values.count / 32
        for factor: Float in [0.85, 0.9, 1.1, 1.15, 1.2] {
            var bytes = clean
            for b in 0..<blocks { Self.setF16(&bytes, at: b * 18, Self.f16Bits(bytes, at: b * 18) * factor) }
            let r = WeightVerifier.checkGGUF(bytes, type: .q4_0, reference: values, rowLength: 256)
            print("measured q4_0 every scale ×\(factor): \(r.blocksOutOfBounds) of \(blocks) blocks out (worst RMS \(String(format: "%.2f", r.worstRMSFractionOfBound ?? 0)) of its bound, worst scale \(String(format: "%.2f", r.worstScaleFractionOfBound ?? 0)))")
            if factor <= 0.85 || factor >= 1.2 { #expect(r.status == .outOfBounds, "×\(factor)") }
        }
    }

    /// Moves code `i` one level toward the reference (the hardest direction to see) and checks the tensor.
    static func detectedShare(count: Int, check: (Int) throws -> Bool) rethrows -> Double {
        var detected = 0
        for i in 0..<count where try check(i) { detected += 1 }
        return Double(detected) / Double(count)
    }

    @Test("Q8_0: one code moved one level toward its reference is caught wherever it is, whatever the input's rounding (f32, f16, bf16)",
          arguments: try nonEmpty(["f32", "f16", "bf16"], "input roundings"))
    func q8_0OneLevel(input: String) throws {
        var rng = WeightTestRandom(seed: 11)
        let reference = (0..<(2 * 256)).map { _ in rng.normal() * 0.05 }
        let round: (Float) -> Float = input == "f16" ? { FloatCodecs.halfToFloat(FloatCodecs.floatToHalf($0)) }
            : input == "bf16" ? { FloatCodecs.bfloat16ToFloat(FloatCodecs.floatToBFloat16($0)) } : { $0 }
        let clean = try GGMLQuants.quantize(reference.map(round), to: .q8_0)
        let good = WeightVerifier.checkGGUF(clean, type: .q8_0, reference: reference, rowLength: 256)
        #expect(good.status == .pass, "\(input): \(good.issues.first.map { "\($0)" } ?? "")")
        let expectedLabel = input == "f32" ? "the reference values" : "rounded to \(input)"
        #expect(good.rule.contains(expectedLabel), "the hypothesis the file fits is named: \(good.rule)")
        let share = Self.detectedShare(count: reference.count) { i in
            var bytes = clean
            let at = (i / 32) * 34 + 2 + i % 32
            let d = Self.f16Bits(bytes, at: (i / 32) * 34)
            let c = Int8(bitPattern: bytes[at])
            let toward: Int8 = reference[i] > d * Float(c) ? 1 : -1
            guard Int(c) + Int(toward) <= 127 && Int(c) + Int(toward) >= -127 else { return true }  // checked: no code beyond ±127 exists
            bytes[at] = UInt8(bitPattern: c + toward)
            return WeightVerifier.checkGGUF(bytes, type: .q8_0, reference: reference, rowLength: 256).status == .outOfBounds
        }
        print("measured q8_0 (\(input) input) one code ±1 toward the reference: \(String(format: "%.1f", share * 100)) % detected")
        // Only an element within 2⁻²⁰·|t| of a rounding tie can hide (the float evaluation allowance).
        #expect(share >= 0.995, "\(input): \(share)")
    }

    @Test("MLX affine 8-bit: one code moved one level toward its reference is caught wherever it is, in f32, f16 and bf16",
          arguments: try nonEmpty([MLXFloatType.f32, .f16, .bf16], "dtypes"))
    func affine8OneLevel(dtype: MLXFloatType) throws {
        var rng = WeightTestRandom(seed: 13)
        let reference = (0..<(2 * 256)).map { _ in rng.normal() * 0.05 }
        let clean = try MLXQuantization.quantize(reference, rows: 2, cols: 256, dtype: dtype, mode: .affine, groupSize: 64, bits: 8)
        let good = WeightVerifier.checkMLX(clean, reference: reference)
        #expect(good.status == .pass, "\(dtype): \(good.issues.first.map { "\($0)" } ?? "")")
        let scales = clean.scaleValues, biases = try #require(clean.biasValues)
        let codes = MLXQuantization.unpack(clean.packed, bits: 8, count: reference.count)
        let share = try Self.detectedShare(count: reference.count) { i in
            var moved = codes
            let g = i / 64
            let y = scales[g] * Float(codes[i]) + biases[g]
            let up = (reference[i] > y) == (scales[g] > 0)
            guard up ? codes[i] < 255 : codes[i] > 0 else { return true }  // checked: no code beyond the grid exists
            moved[i] = up ? codes[i] + 1 : codes[i] - 1
            let q = try MLXQuantized(mode: .affine, groupSize: 64, bits: 8, rows: 2, cols: 256, scaleType: dtype,
                                     packed: MLXQuantization.pack(moved, bits: 8), scales: dtype.encode(scales), biases: dtype.encode(biases))
            return WeightVerifier.checkMLX(q, reference: reference).status == .outOfBounds
        }
        print("measured MLX affine-b8 (\(dtype) scales) one code ±1 toward the reference: \(String(format: "%.1f", share * 100)) % detected")
        #expect(share >= 0.995, "\(dtype): \(share)")
    }

    @Test("f16: a finite reference stored as inf (70000 overflows f16) fails as out of the type's range")
    func overflowToInfinity() throws {
        let reference: [Float] = [70000, 1, -2, 0.5]
        var bytes: [UInt8] = []
        for v in reference { let h = FloatCodecs.floatToHalf(v); bytes += [UInt8(h & 0xFF), UInt8(h >> 8)] }
        #expect(FloatCodecs.halfToFloat(FloatCodecs.floatToHalf(70000)).isInfinite, "RNE of 70000 in f16 is inf")
        let r = WeightVerifier.checkGGUF(bytes, type: .f16, reference: reference, rowLength: 4)
        #expect(r.status == .outOfBounds && r.elementsOutOfBounds == 1)
        #expect(r.issues.first?.rule.hasPrefix("out of the type's range") == true && r.issues.first?.column == 0, "\(r.issues)")
        #expect(r.identicalToReferenceQuantizer == false)
    }

    /// One Q4_1 block with scale d, min m and codes `code(j)` (element j: low nibble of byte j, j + 16: high nibble).
    static func q4_1Block(d: Float, m: Float, code: (Int) -> UInt8) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 20)
        setF16(&b, at: 0, d)
        setF16(&b, at: 2, m)
        for j in 0..<16 { b[4 + j] = code(j) | code(j + 16) << 4 }
        return b
    }

    @Test("rule 3: a coarse scale with every element within half a nominal step (a narrow group far from zero on one code) passes; a doubled scale with re-chosen codes fails")
    func coarseScaleThatFitsNoWorse() throws {
        var rng = WeightTestRandom(seed: 17)
        let reference = (0..<32).map { _ in 0.5 + 0.001 * (2 * rng.uniform() - 1) }
        // Every value on code 1 of d = 0.5, m = 0: |error| ≤ 0.001, while the nominal step is (0.501 − 0)/15 ≈ 0.033.
        let oneCode = WeightVerifier.checkGGUF(Self.q4_1Block(d: 0.5, m: 0) { _ in 1 }, type: .q4_1, reference: reference, rowLength: 32)
        #expect(oneCode.status == .pass, "\(oneCode.issues)")
        #expect((oneCode.worstScaleFractionOfBound ?? 0) > 1, "the scale is beyond the ratio bound: the exception is what lets it pass")
        // Twice the nominal scale with the nearest codes: values 7–8 steps up, errors up to a nominal step.
        let nominal = (reference.max()! - 0) / 15
        let d = 2 * nominal
        let doubled = WeightVerifier.checkGGUF(Self.q4_1Block(d: d, m: 0) { j in UInt8(min(15, (reference[j] / FloatCodecs.halfToFloat(FloatCodecs.floatToHalf(d))).rounded())) },
                                               type: .q4_1, reference: reference, rowLength: 32)
        #expect(doubled.status == .outOfBounds && doubled.issues.first?.rule.hasPrefix("scale") == true, "\(doubled.issues)")
    }

    @Test("bf16: a transposed tensor fails without a misleading 'mixed rounding' finding (its truncation-equal elements are coincidences)")
    func transposedBF16HasNoRoundingFinding() throws {
        var rng = WeightTestRandom(seed: 19)
        let n = 64
        let reference = (0..<(n * n)).map { _ in rng.normal() * 0.1 }
        var bytes: [UInt8] = []
        for r in 0..<n { for c in 0..<n { let h = FloatCodecs.floatToBFloat16(reference[c * n + r]); bytes += [UInt8(h & 0xFF), UInt8(h >> 8)] } }
        let t = WeightVerifier.checkGGUF(bytes, type: .bf16, reference: reference, rowLength: n)
        // Off the diagonal every element differs but for bf16 collisions (8 significant bits: a few pairs coincide).
        #expect(t.status == .outOfBounds && t.elementsOutOfBounds >= n * n - 2 * n, "\(t.elementsOutOfBounds)")
        #expect(t.finding == nil, "\(t.finding ?? "")")
    }
}

