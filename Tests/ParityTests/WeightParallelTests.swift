import Foundation
import ParityCore
import ParityFormats
import ParityVerify
import Testing

/// A large tensor is checked in row ranges over the cores and the ranges' results merged in index order. The merged
/// report must be the single pass's exactly — status, counts, every rule's fraction, the worst element and the first
/// listed issues — on clean and corrupted tensors alike. Ranges are forced small here (7 of them, cutting through
/// the corruptions) so that issues, worst elements and statistics meet at range boundaries.
@Suite("weights: the row-range split gives the serial report")
struct WeightParallelTests {
    static let split = WeightCheckExecution(parallel: true, minimumChunkElements: 1, maximumChunks: 7)
    static let rows = 24, cols = 256

    static func values(seed: UInt64) -> [Float] {
        var rng = WeightTestRandom(seed: seed)
        // Normal rows with a few outliers: blocks with clipping, varied scales, and codes across the grid.
        return (0..<(rows * cols)).map { _ in rng.normal() * (rng.uniform() < 0.01 ? 0.5 : 0.05) }
    }

    static let ggufTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .mxfp4]

    @Test("GGUF: split and serial checks agree on clean and corrupted tensors (codes, scales, mins, dense elements)",
          arguments: try nonEmpty(ggufTypes, "ggml types"))
    func gguf(type: GGMLType) throws {
        let values = Self.values(seed: 11)
        let clean = try GGMLQuants.quantize(values, to: type)
        var corruptions: [(String, [UInt8])] = [("clean", clean)]
        if type == .f32 || type == .f16 || type == .bf16 {
            // Dense: one element's bits changed every 600 elements (more than the listed issues, across ranges).
            let width = type == .f32 ? 4 : 2
            var bytes = clean
            for i in stride(from: 5, to: values.count, by: 600) { bytes[i * width + width - 1] ^= 0x01 }
            corruptions.append(("elements", bytes))
        } else {
            let (scaleAt, minAt, codes, flip) = WeightBoundsTests.layout(type)
            let blocks = clean.count / type.typeSize
            var code = clean, scale = clean, offset = clean
            for b in stride(from: 1, to: blocks, by: 5) { code[b * type.typeSize + codes.lowerBound + (b % codes.count)] ^= flip }
            for b in stride(from: 2, to: blocks, by: 7) {
                if type == .mxfp4 { scale[b * type.typeSize + scaleAt] &+= 1 } else {
                    let at = b * type.typeSize + scaleAt
                    let h = (UInt16(scale[at]) | UInt16(scale[at + 1]) << 8) &+ 0x0400  // ×2
                    scale[at] = UInt8(h & 0xFF); scale[at + 1] = UInt8(h >> 8)
                }
            }
            corruptions += [("codes", code), ("scales ×2", scale)]
            if let minAt {
                for b in stride(from: 3, to: blocks, by: 4) { offset[b * type.typeSize + minAt + 1] ^= 0x04 }
                corruptions.append(("mins", offset))
            }
        }
        for (what, bytes) in corruptions {
            let serial = WeightVerifier.checkGGUF(bytes, type: type, reference: values, rowLength: Self.cols)
            let split = WeightVerifier.checkGGUF(bytes, type: type, reference: values, rowLength: Self.cols, execution: Self.split)
            if what != "clean" { #expect(serial.status == .outOfBounds && serial.elementsOutOfBounds + serial.blocksOutOfBounds > 0, "\(type.name) \(what): not caught") }
            expectSameJudgement(split, serial, "\(type.name) \(what) (split vs serial)")
        }
    }

    static let mlxCases: [(MLXQuantMode, Int, Int, MLXFloatType)] = [(.nvfp4, 4, 16, .bf16), (.mxfp4, 4, 32, .bf16), (.mxfp8, 8, 32, .bf16),
                                                                        (.affine, 4, 64, .f16), (.affine, 8, 64, .bf16), (.affine, 3, 32, .f32)]

    @Test("MLX: split and serial checks, with and without the table fast path, agree on clean and corrupted tensors",
          arguments: try nonEmpty(0..<mlxCases.count, "MLX cases"))
    func mlx(caseIndex: Int) throws {
        let (mode, bits, group, dtype) = Self.mlxCases[caseIndex]
        let values = Self.values(seed: 12)
        let q = try MLXQuantization.quantize(values, rows: Self.rows, cols: Self.cols, dtype: dtype, mode: mode, groupSize: group, bits: bits)
        var codes = (0..<Self.rows).flatMap { q.codes(row: $0) }
        for i in stride(from: 3, to: codes.count, by: 211) { codes[i] ^= UInt8(1 << (bits - 1)) }
        var scales = q.scales
        let width = mode == .affine ? dtype.byteWidth : 1
        for g in stride(from: 2, to: Self.rows * Self.cols / group, by: 9) {
            if mode == .affine && dtype != .f32 { scales[g * width + 1] &+= 0x04 } else { scales[g * width + width - 1] &+= mode == .nvfp4 ? 0x08 : 1 }
        }
        func quantized(_ packed: [UInt32], _ scales: [UInt8]) throws -> MLXQuantized {
            try MLXQuantized(mode: mode, groupSize: group, bits: bits, rows: Self.rows, cols: Self.cols, scaleType: q.scaleType, packed: packed, scales: scales, biases: q.biases)
        }
        let cases = [("clean", q), ("codes", try quantized(MLXQuantization.pack(codes, bits: bits), q.scales)), ("scales", try quantized(q.packed, scales))]
        for (what, c) in cases {
            let serialFull = WeightVerifier.checkMLX(c, reference: values, tableFastPath: false)
            let serial = WeightVerifier.checkMLX(c, reference: values)
            let split = WeightVerifier.checkMLX(c, reference: values, execution: Self.split)
            if what != "clean" { #expect(serial.status == .outOfBounds, "\(mode) b\(bits) \(what): not caught") }
            expectSameJudgement(serial, serialFull, "\(mode) b\(bits) \(what) (fast vs full path)")
            expectSameJudgement(split, serial, "\(mode) b\(bits) \(what) (split vs serial)")
        }
    }
}
