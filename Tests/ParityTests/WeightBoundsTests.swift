import Foundation
import ParityCore
import ParityFormats
import ParityVerify
import Testing

/// Deterministic test data for the weight bounds: the tests' SplitMix64 stream, drawn in Float precision (24-bit
/// uniforms, Float Box–Muller), which the measured bounds were recorded with.
struct WeightTestRandom {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { generator.next() }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}

/// The value distributions every bound is measured on: ordinary and adversarial rows, and the bundled models'
/// real weights.
enum WeightTestData {
    static func distributions(count: Int) throws -> [(String, [Float])] {
        var rng = WeightTestRandom(seed: 20261129)
        var out: [(String, [Float])] = []
        out.append(("normal", (0..<count).map { _ in rng.normal() * 0.05 }))
        out.append(("uniform", (0..<count).map { _ in rng.uniform() * 2 - 1 }))
        out.append(("laplace", (0..<count).map { _ in let u = rng.uniform() - 0.5; return -0.02 * (u < 0 ? -1 : 1) * log(max(1 - 2 * abs(u), 1e-7)) }))
        out.append(("outliers", (0..<count).map { _ in rng.normal() * (rng.uniform() < 0.01 ? 1 : 0.02) }))
        out.append(("positive", (0..<count).map { _ in abs(rng.normal()) + 0.3 }))
        out.append(("tiny", (0..<count).map { _ in rng.normal() * 1e-4 }))
        out.append(("sparse", (0..<count).map { _ in rng.uniform() < 0.7 ? 0 : rng.normal() }))
        for model in ["fmnist-cnn", "fmnist-mlp"] {
            let file = try SafetensorsFile(path: Repo.golden + "/\(model)/model.safetensors")
            var all: [Float] = []
            for e in file.entries { all += try file.tensor(e).data }
            out.append(("\(model) weights", Array(all.prefix(all.count / 256 * 256))))
        }
        return out
    }
}

@Suite("weight bounds")
struct WeightBoundsTests {
    static let ggufTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .mxfp4]

    @Test("Parity's ggml reference quantizers (byte-identical to ggml's quantize_row_*_ref) stay within every bound", arguments: try nonEmpty(ggufTypes, "test arguments"))
    func ggufReferenceQuantizersPass(type: GGMLType) throws {
        var worst = 0.0, worstScale = 0.0, worstClip = 0.0
        for (name, values) in try WeightTestData.distributions(count: 256 * 32) {
            let bytes = try GGMLQuants.quantize(values, to: type)
            let r = WeightVerifier.checkGGUF(bytes, type: type, reference: values, rowLength: 256)
            #expect(r.elementsOutOfBounds == 0 && r.blocksOutOfBounds == 0, "\(type.name) on \(name): \(r.elementsOutOfBounds) elements, \(r.blocksOutOfBounds) blocks out; first \(r.issues.first.map { "\($0)" } ?? "-")")
            worst = max(worst, r.worstFractionOfBound ?? 0)
            worstScale = max(worstScale, r.worstScaleFractionOfBound ?? 0)
            worstClip = max(worstClip, r.worstClipFractionOfBound ?? 0)
        }
        print("measured ggml-ref \(type.name): worst element error \(String(format: "%.3f", worst)) of its bound, worst scale \(String(format: "%.3f", worstScale)) of its bound, worst clipping \(String(format: "%.3f", worstClip)) of its bound")
        #expect(worst > 0.3, "the element bound should be tight enough to be approached (measured \(worst))")
    }

    /// Byte offsets of a block's main scale (f16 unless noted) and, for affine types, min; and of its codes.
    static func layout(_ type: GGMLType) -> (scale: Int, min: Int?, codes: Range<Int>, flip: UInt8) {
        switch type {
        case .q4_0: return (0, nil, 2..<18, 0x08)
        case .q4_1: return (0, 2, 4..<20, 0x08)
        case .q5_0: return (0, nil, 6..<22, 0x08)
        case .q5_1: return (0, 2, 8..<24, 0x08)
        case .q8_0: return (0, nil, 2..<34, 0x40)
        case .q2_K: return (80, 82, 16..<80, 0x02)
        case .q3_K: return (108, nil, 32..<96, 0x02)
        case .q4_K: return (0, 2, 16..<144, 0x08)
        case .q5_K: return (0, 2, 48..<176, 0x08)
        case .q6_K: return (208, nil, 0..<128, 0x08)
        case .mxfp4: return (0, nil, 1..<17, 0x04)
        default: fatalError()
        }
    }

    @Test("a doubled scale, a shifted min and one changed code are caught in the right block and element", arguments: try nonEmpty(ggufTypes, "test arguments"))
    func ggufCorruptionsCaught(type: GGMLType) throws {
        var rng = WeightTestRandom(seed: 99)
        let values = (0..<(256 * 8)).map { _ in rng.normal() * 0.05 }
        let clean = try GGMLQuants.quantize(values, to: type)
        let (scaleAt, minAt, codes, flip) = Self.layout(type)
        let block = 5, size = type.typeSize, blockSize = type.blockSize
        func dequant(_ b: [UInt8]) -> [Float] { b.withUnsafeBytes { GGMLQuants.dequantize($0, type: type, count: values.count) } }
        func expectCaught(_ corrupted: [UInt8], _ what: String) {
            let before = dequant(clean), after = dequant(corrupted)
            let changed = Set(values.indices.filter { before[$0] != after[$0] })
            let r = WeightVerifier.checkGGUF(corrupted, type: type, reference: values, rowLength: 256)
            #expect(r.status == .outOfBounds, "\(type.name) \(what): not caught")
            #expect(!r.issues.isEmpty && r.issues.allSatisfy { $0.block == block * (blockSize == 256 ? 1 : 1) || blockSize < 256 && $0.block == block }, "\(type.name) \(what): issues \(r.issues.map { $0.block ?? -1 })")
            #expect(r.issues.allSatisfy { changed.contains($0.storedIndex) || $0.rule.hasPrefix("scale") }, "\(type.name) \(what): an unchanged element reported")
            #expect(r.blocksOutOfBounds == 1, "\(type.name) \(what): \(r.blocksOutOfBounds) blocks")
        }
        // Scale ×2: the f16 exponent + 1 (E8M0 + 1 for mxfp4).
        var doubled = clean
        if type == .mxfp4 { doubled[block * size + scaleAt] += 1 } else {
            let h = UInt16(doubled[block * size + scaleAt]) | UInt16(doubled[block * size + scaleAt + 1]) << 8
            let d2 = h &+ 0x0400
            doubled[block * size + scaleAt] = UInt8(d2 & 0xFF); doubled[block * size + scaleAt + 1] = UInt8(d2 >> 8)
        }
        expectCaught(doubled, "scale ×2")
        if let minAt {
            var shifted = clean
            let h = UInt16(shifted[block * size + minAt]) | UInt16(shifted[block * size + minAt + 1]) << 8
            let d2 = h &+ 0x0400  // min ×2
            shifted[block * size + minAt] = UInt8(d2 & 0xFF); shifted[block * size + minAt + 1] = UInt8(d2 >> 8)
            expectCaught(shifted, "min ×2")
        }
        var code = clean
        code[block * size + codes.lowerBound + 3] ^= flip
        let changed = zip(dequant(clean), dequant(code)).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        #expect(changed.count == 1)
        let r = WeightVerifier.checkGGUF(code, type: type, reference: values, rowLength: 256)
        #expect(r.elementsOutOfBounds == 1 && r.issues.map(\.storedIndex) == changed, "\(type.name) one code: reported \(r.issues.map(\.storedIndex)), changed \(changed)")
    }

    static let mlxCases: [(MLXQuantMode, Int, Int)] = [(.affine, 1, 32), (.affine, 2, 32), (.affine, 3, 64), (.affine, 4, 64), (.affine, 5, 32), (.affine, 6, 128),
                                                       (.affine, 8, 32), (.mxfp4, 4, 32), (.mxfp8, 8, 32), (.nvfp4, 4, 16)]

    @Test("mx.quantize (Parity's, bit-identical to MLX) stays within every bound, in f32, f16 and bf16", arguments: try nonEmpty(0..<mlxCases.count, "test arguments"))
    func mlxQuantizePasses(caseIndex: Int) throws {
        let (mode, bits, group) = Self.mlxCases[caseIndex]
        var worst = 0.0, worstScale = 0.0, worstClip = 0.0
        for dtype in MLXFloatType.allCases {
            for (name, values) in try WeightTestData.distributions(count: 256 * 32) {
                let q = try MLXQuantization.quantize(values, rows: values.count / 256, cols: 256, dtype: dtype, mode: mode, groupSize: group, bits: bits)
                let r = WeightVerifier.checkMLX(q, reference: values)
                expectSameJudgement(r, WeightVerifier.checkMLX(q, reference: values, tableFastPath: false), "\(mode) b\(bits) \(dtype) on \(name)")
                #expect(r.elementsOutOfBounds == 0 && r.blocksOutOfBounds == 0, "\(mode) b\(bits) g\(group) \(dtype) on \(name): \(r.elementsOutOfBounds) out; first \(r.issues.first.map { "\($0)" } ?? "-")")
                worst = max(worst, r.worstFractionOfBound ?? 0)
                worstScale = max(worstScale, r.worstScaleFractionOfBound ?? 0)
                worstClip = max(worstClip, r.worstClipFractionOfBound ?? 0)
            }
        }
        print("measured mx.quantize \(mode.rawValue) b\(bits) g\(group): worst element error \(String(format: "%.3f", worst)) of its bound, worst scale \(String(format: "%.3f", worstScale)) of its bound, worst clipping \(String(format: "%.3f", worstClip)) of its bound")
    }

    @Test("MLX: a doubled scale, a shifted bias and one changed code are caught at the right group and element", arguments: try nonEmpty(0..<mlxCases.count, "test arguments"))
    func mlxCorruptionsCaught(caseIndex: Int) throws {
        let (mode, bits, group) = Self.mlxCases[caseIndex]
        var rng = WeightTestRandom(seed: 5)
        let values = (0..<(256 * 4)).map { _ in rng.normal() * 0.05 }
        let q = try MLXQuantization.quantize(values, rows: 4, cols: 256, dtype: .f16, mode: mode, groupSize: group, bits: bits)
        let target = 3  // group index
        func check(_ c: MLXQuantized, _ what: String, elements: Set<Int>?) {
            let r = WeightVerifier.checkMLX(c, reference: values)
            expectSameJudgement(r, WeightVerifier.checkMLX(c, reference: values, tableFastPath: false), "\(mode) b\(bits) \(what)")
            #expect(r.status == .outOfBounds, "\(mode) b\(bits) \(what): not caught")
            #expect(r.issues.allSatisfy { $0.block == target }, "\(mode) b\(bits) \(what): issues in groups \(r.issues.map { $0.block ?? -1 })")
            if let elements { #expect(Set(r.issues.map(\.storedIndex)) == elements, "\(mode) b\(bits) \(what): \(r.issues.map(\.storedIndex)) vs \(elements)") }
        }
        var scales = q.scales
        if mode == .affine {
            let h = UInt16(scales[2 * target]) | UInt16(scales[2 * target + 1]) << 8
            let d2 = h &+ 0x0400
            scales[2 * target] = UInt8(d2 & 0xFF); scales[2 * target + 1] = UInt8(d2 >> 8)
        } else {
            scales[target] += mode == .nvfp4 ? 0x08 : 1
        }
        check(try MLXQuantized(mode: mode, groupSize: group, bits: bits, rows: 4, cols: 256, scaleType: q.scaleType, packed: q.packed, scales: scales, biases: q.biases), "scale ×2", elements: nil)
        if var biases = q.biases {
            let h = UInt16(biases[2 * target]) | UInt16(biases[2 * target + 1]) << 8
            let d2 = h ^ 0x8000  // bias sign flipped
            biases[2 * target] = UInt8(d2 & 0xFF); biases[2 * target + 1] = UInt8(d2 >> 8)
            check(try MLXQuantized(mode: mode, groupSize: group, bits: bits, rows: 4, cols: 256, scaleType: q.scaleType, packed: q.packed, scales: q.scales, biases: biases), "bias sign", elements: nil)
        }
        var codes = q.codes(row: 0) + q.codes(row: 1) + q.codes(row: 2) + q.codes(row: 3)
        let element = target * group + 1
        codes[element] ^= UInt8(1 << (bits - 1))
        let packed = MLXQuantization.pack(codes, bits: bits)
        check(try MLXQuantized(mode: mode, groupSize: group, bits: bits, rows: 4, cols: 256, scaleType: q.scaleType, packed: packed, scales: q.scales, biases: q.biases), "one code", elements: [element])
    }

    @Test("f16/bf16: RNE passes, one changed element fails at its index, consistent truncation is a named finding, mixed rounding fails")
    func denseRounding() throws {
        var rng = WeightTestRandom(seed: 1)
        let values = (0..<4096).map { _ in rng.normal() * 0.1 }
        for type in [GGMLType.f16, .bf16] {
            let rne = try GGMLQuants.quantize(values, to: type)
            let clean = WeightVerifier.checkGGUF(rne, type: type, reference: values, rowLength: 64)
            #expect(clean.status == .pass && clean.finding == nil && clean.identicalToReferenceQuantizer == true)
            var one = rne
            one[2 * 1000] ^= 0x01  // one ulp
            let r = WeightVerifier.checkGGUF(one, type: type, reference: values, rowLength: 64)
            #expect(r.status == .outOfBounds && r.elementsOutOfBounds == 1 && r.issues.first?.storedIndex == 1000 && r.issues.first?.row == 15 && r.issues.first?.column == 40)
            // Truncation toward zero for every element.
            var trunc = [UInt8]()
            for x in values {
                let bits: UInt16
                if type == .bf16 { bits = UInt16(truncatingIfNeeded: x.bitPattern >> 16) } else {
                    let h = Float16(x)
                    bits = abs(Float(h)) > abs(x) ? (x > 0 ? h.nextDown : h.nextUp).bitPattern : h.bitPattern
                }
                trunc += [UInt8(bits & 0xFF), UInt8(bits >> 8)]
            }
            let t = WeightVerifier.checkGGUF(trunc, type: type, reference: values, rowLength: 64)
            #expect(t.status == .pass && t.finding?.contains("truncation") == true && t.identicalToReferenceQuantizer == false, "\(type): \(t.finding ?? "no finding")")
            // Mixed: half the tensor truncated, the rest RNE.
            let mixed = Array(trunc.prefix(4096)) + Array(rne.suffix(4096))
            let m = WeightVerifier.checkGGUF(mixed, type: type, reference: values, rowLength: 64)
            #expect(m.status == .outOfBounds && m.finding?.contains("mixed") == true)
        }
        let f32 = values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
        #expect(WeightVerifier.checkGGUF(f32, type: .f32, reference: values, rowLength: 64).status == .pass)
        var bad = f32
        bad[4 * 7 + 3] ^= 0x80  // sign of element 7
        let r = WeightVerifier.checkGGUF(bad, type: .f32, reference: values, rowLength: 64)
        #expect(r.elementsOutOfBounds == 1 && r.issues.first?.storedIndex == 7)
    }
}

/// The weight check's table-grid fast path judges exactly as the full path: every count, verdict, fraction and
/// reported element the same.
func expectSameJudgement(_ fast: TensorWeightResult, _ full: TensorWeightResult, _ what: String) {
    #expect(fast.status == full.status && fast.elementsOutOfBounds == full.elementsOutOfBounds && fast.blocksOutOfBounds == full.blocksOutOfBounds,
            "\(what): fast path \(fast.status) \(fast.elementsOutOfBounds)/\(fast.blocksOutOfBounds), full \(full.status) \(full.elementsOutOfBounds)/\(full.blocksOutOfBounds)")
    #expect(fast.worstFractionOfBound == full.worstFractionOfBound && fast.worstScaleFractionOfBound == full.worstScaleFractionOfBound
            && fast.worstClipFractionOfBound == full.worstClipFractionOfBound && fast.worstRMSFractionOfBound == full.worstRMSFractionOfBound,
            "\(what): fractions differ between the fast and the full path")
    #expect(fast.worst == full.worst && fast.issues == full.issues && fast.finding == full.finding, "\(what): reported elements differ between the fast and the full path")
}
