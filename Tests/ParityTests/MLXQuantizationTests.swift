import Foundation
import ParityCore
import ParityFormats
import Testing

/// One fixture case: a weight dtype and a (mode, bits, group) MLX accepts.
struct MLXQuantCase: Sendable, CustomTestStringConvertible {
    let dtype: MLXFloatType
    let mode: MLXQuantMode
    let bits: Int
    let groupSize: Int
    /// The fixture's tensor-name infix, e.g. `affine.b4.g64`.
    var key: String { "\(mode.rawValue).b\(bits).g\(groupSize)" }
    var testDescription: String { "\(dtype.rawValue) \(key)" }
}

/// Fixtures written by real MLX (tools/mlx/make_quant_fixtures.py; MLX version in manifest.json). The
/// environment variable PARITY_MLX_QUANT_FIXTURES points the tests at another set made by the same script
/// (e.g. a fuzzing set with `--extra-rows 4096`).
enum MLXQuantFixtures {
    static let directory = ProcessInfo.processInfo.environment["PARITY_MLX_QUANT_FIXTURES"] ?? Repo.fixtures + "/mlx-quant"
    static func manifest() throws -> JSONValue { try fixtureJSON(directory + "/manifest.json") }
    /// Rows of the fixture's weight (16 in the committed set; fuzzing sets add rows). The fallback only keeps the
    /// static initializer from trapping: "the fixtures cover every case" fails when the manifest cannot say.
    static let rows = (try? manifest()["weight_shape"]?.arrayValue?.first?.intValue) ?? 16  // checked: by fixtureCoverage
    static let cols = 256, xRows = 3

    static let modeCases: [(MLXQuantMode, Int, Int)] =
        [1, 2, 3, 4, 5, 6, 8].flatMap { b in [32, 64, 128].map { (MLXQuantMode.affine, b, $0) } }
        + [(.mxfp4, 4, 32), (.mxfp8, 8, 32), (.nvfp4, 4, 16)]

    static let cases: [MLXQuantCase] = MLXFloatType.allCases.flatMap { t in
        modeCases.map { MLXQuantCase(dtype: t, mode: $0.0, bits: $0.1, groupSize: $0.2) }
    }

    static func file(_ dtype: MLXFloatType) throws -> SafetensorsFile {
        try SafetensorsFile(path: directory + "/mlx-quant-\(dtype.rawValue).safetensors")
    }

    static func raw(_ file: SafetensorsFile, _ name: String) throws -> RawTensor {
        guard let entry = file.entry(named: name) else { throw ParityError.notFound(path: file.path, what: "tensor \"\(name)\"") }
        return RawTensor(name: name, dtype: entry.dtype, shape: entry.shape, bytes: try file.rawBytes(entry))
    }

    /// MLX's own quantized triple for a case.
    static func mlxQuantized(_ file: SafetensorsFile, _ c: MLXQuantCase) throws -> MLXQuantized {
        let biases = c.mode.hasBiases ? try raw(file, "q.\(c.key).biases") : nil
        return try MLXQuantized(weight: raw(file, "q.\(c.key).weight"), scales: raw(file, "q.\(c.key).scales"), biases: biases,
                                mode: c.mode, groupSize: c.groupSize, bits: c.bits)
    }

    static func floats(_ t: RawTensor) throws -> [Float] {
        guard let v = t.floats() else { throw ParityError.unsupported(file: t.name, reason: "no float values") }
        return v
    }
}

private func hex(_ bytes: ArraySlice<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

/// Bit-identical, except that any two NaNs count as equal: NaN payloads are not reproduced (MLX's software
/// float16 conversion writes 0xFD00 for 0·Inf, for instance). The checked-in fixtures hold no NaN; fuzzing sets
/// with overflowing float16 rows do.
private func sameBits(_ a: Float, _ b: Float) -> Bool { a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }

@Suite("MLX quantization")
struct MLXQuantizationTests {
    // MARK: Against MLX's arrays

    @Test("mx.quantize: packed weight, scales and biases are MLX's bytes", arguments: try nonEmpty(MLXQuantFixtures.cases, "MLX quantization cases"))
    func quantizeMatchesMLX(_ c: MLXQuantCase) throws {
        let file = try MLXQuantFixtures.file(c.dtype)
        let wRaw = try MLXQuantFixtures.raw(file, "w")
        #expect(wRaw.dtype == c.dtype.dtype && wRaw.shape == [MLXQuantFixtures.rows, MLXQuantFixtures.cols])
        let w = try MLXQuantFixtures.floats(wRaw)
        let ours = try MLXQuantization.quantize(w, rows: MLXQuantFixtures.rows, cols: MLXQuantFixtures.cols, dtype: c.dtype,
                                                mode: c.mode, groupSize: c.groupSize, bits: c.bits)
        let mlxWeight = try MLXQuantFixtures.raw(file, "q.\(c.key).weight")
        let mlxScales = try MLXQuantFixtures.raw(file, "q.\(c.key).scales")
        let mlxBiases = c.mode.hasBiases ? try MLXQuantFixtures.raw(file, "q.\(c.key).biases") : nil
        #expect(mlxWeight.dtype == .u32 && mlxWeight.shape == ours.weightShape)
        #expect(mlxScales.dtype == ours.scalesDType && mlxScales.shape == ours.scalesShape, "MLX scales \(mlxScales.dtype) \(mlxScales.shape)")
        if let mlxBiases { #expect(mlxBiases.dtype == ours.scalesDType && mlxBiases.shape == ours.scalesShape) }
        #expect(c.mode.hasBiases == (ours.biases != nil))

        // Per group: codes, scale bytes and bias bytes.
        let mlx = try MLXQuantFixtures.mlxQuantized(file, c)
        let sw = c.mode == .affine ? c.dtype.byteWidth : 1
        let g = c.groupSize, groupsPerRow = MLXQuantFixtures.cols / g
        var bad: [(row: Int, group: Int)] = []
        for r in 0..<MLXQuantFixtures.rows {
            let oc = ours.codes(row: r), mc = mlx.codes(row: r)
            for j in 0..<groupsPerRow {
                let gi = r * groupsPerRow + j, s = (gi * sw)..<((gi + 1) * sw)
                if oc[(j * g)..<((j + 1) * g)] != mc[(j * g)..<((j + 1) * g)] || ours.scales[s] != mlx.scales[s]
                    || ours.biases?[s] != mlx.biases?[s] {
                    bad.append((r, j))
                }
            }
        }
        if let first = bad.first {
            let gi = first.row * groupsPerRow + first.group, s = (gi * sw)..<((gi + 1) * sw)
            let cols = (first.group * g)..<((first.group + 1) * g)
            let input = w[(first.row * MLXQuantFixtures.cols + cols.lowerBound)..<(first.row * MLXQuantFixtures.cols + cols.upperBound)]
            Issue.record("""
                \(bad.count) of \(MLXQuantFixtures.rows * groupsPerRow) groups differ; first: row \(first.row), group \(first.group)
                  input:  \(Array(input))
                  ours:   scale \(hex(ours.scales[s])) (\(ours.scaleValues[gi]))\(ours.biases.map { " bias \(hex($0[s])) (\(ours.biasValues![gi]))" } ?? "") codes \(Array(ours.codes(row: first.row)[cols]))
                  MLX:    scale \(hex(mlx.scales[s])) (\(mlx.scaleValues[gi]))\(mlx.biases.map { " bias \(hex($0[s])) (\(mlx.biasValues![gi]))" } ?? "") codes \(Array(mlx.codes(row: first.row)[cols]))
                """)
        }
        // And the whole arrays, byte for byte.
        #expect(ours.weightBytes == mlxWeight.bytes)
        #expect(ours.scales == mlxScales.bytes)
        #expect(ours.biases == mlxBiases?.bytes)
    }

    @Test("mx.dequantize: MLX's arrays dequantize to MLX's bytes", arguments: try nonEmpty(MLXQuantFixtures.cases, "MLX quantization cases"))
    func dequantizeMatchesMLX(_ c: MLXQuantCase) throws {
        let file = try MLXQuantFixtures.file(c.dtype)
        let q = try MLXQuantFixtures.mlxQuantized(file, c)
        var outputs: [(name: String, type: MLXFloatType?)] = [("deq.\(c.key)", nil)]
        if file.entry(named: "deqf32.\(c.key)") != nil { outputs.append(("deqf32.\(c.key)", .f32)) }
        for (name, type) in outputs {
            let expected = try MLXQuantFixtures.raw(file, name)
            let defaultType: MLXFloatType = c.mode == .affine ? c.dtype : .bf16
            #expect(expected.dtype == (type ?? defaultType).dtype, "\(name): MLX returned \(expected.dtype.rawValue)")
            #expect(expected.shape == [q.rows, q.cols])
            let ours = MLXQuantization.dequantize(q, outputType: type)
            let theirs = try MLXQuantFixtures.floats(expected)
            #expect(ours.count == theirs.count, "\(name): \(ours.count) values, MLX \(theirs.count)")
            // Values of the output type widen exactly, so comparing the float32 bits compares MLX's bytes.
            let diff = zip(ours, theirs).enumerated().filter { !sameBits($0.element.0, $0.element.1) }
            if let first = diff.first {
                Issue.record("\(name): \(diff.count) of \(ours.count) values differ; first at [\(first.offset / q.cols), \(first.offset % q.cols)]: ours \(first.element.0), MLX \(first.element.1)")
            }
        }
    }

    @Test("mx.quantized_matmul (transpose=True) is reproduced exactly", arguments: try nonEmpty(MLXQuantFixtures.cases, "MLX quantization cases"))
    func quantizedMatmulMatchesMLX(_ c: MLXQuantCase) throws {
        let file = try MLXQuantFixtures.file(c.dtype)
        let q = try MLXQuantFixtures.mlxQuantized(file, c)
        var runs: [(x: String, y: String, type: MLXFloatType)] = [("x", "mm.\(c.key)", .f32)]
        if c.dtype != .f32 { runs.append(("xh", "mmh.\(c.key)", c.dtype)) }
        for run in runs {
            let xRaw = try MLXQuantFixtures.raw(file, run.x)
            let expected = try MLXQuantFixtures.raw(file, run.y)
            #expect(xRaw.dtype == run.type.dtype && expected.shape == [MLXQuantFixtures.xRows, q.rows])
            let x = try MLXQuantFixtures.floats(xRaw), theirs = try nonEmpty(try MLXQuantFixtures.floats(expected), "\(run.y)")
            let ours = try MLXQuantization.quantizedMatmul(x: x, rows: MLXQuantFixtures.xRows, weight: q, xType: run.type)
            // Same operations in the same order → bit-identical; no reassociation tolerance is needed.
            let differing = zip(ours, theirs).filter { !sameBits($0.0, $0.1) }
            let maxAbs = zip(ours, theirs).map { abs($0.0 - $0.1) }.max() ?? 0
            #expect(differing.isEmpty, "\(run.y): \(differing.count) of \(ours.count) outputs differ, max |Δ| \(maxAbs); first ours \(differing.first?.0 ?? 0) vs MLX \(differing.first?.1 ?? 0)")
            #expect(ours.count == MLXQuantFixtures.xRows * q.rows && ours.count == theirs.count)
        }
    }

    @Test("the fixtures cover every case and were made by real MLX")
    func fixtureCoverage() throws {
        let manifest = try MLXQuantFixtures.manifest()
        #expect(manifest["weight_shape"]?.arrayValue?.compactMap(\.intValue) == [MLXQuantFixtures.rows, MLXQuantFixtures.cols])
        let version = manifest["mlx_version"]?.stringValue ?? ""
        #expect(!version.isEmpty)
        let keys = try #require(manifest["cases"]?.arrayValue, "manifest.json has no cases").compactMap { $0["key"]?.stringValue }
        #expect(Set(keys) == Set(MLXQuantFixtures.modeCases.map { "\($0.0.rawValue).b\($0.1).g\($0.2)" }))
        var groups = 0
        for t in MLXFloatType.allCases {
            let file = try MLXQuantFixtures.file(t)
            #expect(file.metadata.contains { $0.key == "mlx_version" && $0.value == version })
            for c in MLXQuantFixtures.cases where c.dtype == t {
                #expect(file.entry(named: "q.\(c.key).weight") != nil, "\(t.rawValue) \(c.key)")
                groups += MLXQuantFixtures.rows * MLXQuantFixtures.cols / c.groupSize
            }
        }
        print("MLX quantization fixtures: mlx \(version), \(MLXQuantFixtures.cases.count) cases, \(groups) groups compared byte for byte")
    }

    // MARK: MLX's documented properties (python/tests/test_quantized.py, test_quantize_dequantize)

    @Test("affine: |w − ŵ| ≤ |scale + 1e-6| on MLX's test_quantize_dequantize data; where MLX itself breaks it, identically")
    func errorBoundedByScale() throws {
        // MLX's test: w = normal((128, 512)), every group size and bit width, float32.
        var rng = SplitMix64(seed: 7)
        let rows = 128, cols = 512
        let w = (0..<(rows * cols)).map { _ in rng.normal() }
        for bits in MLXQuantMode.affine.allowedBits {
            for g in MLXQuantMode.affine.allowedGroupSizes {
                let q = try MLXQuantization.quantize(w, rows: rows, cols: cols, mode: .affine, groupSize: g, bits: bits)
                let wHat = MLXQuantization.dequantize(q), s = q.scaleValues
                let violations = (0..<w.count).filter { abs(w[$0] - wHat[$0]) > abs(s[$0 / g] + 1e-6) }
                #expect(violations.isEmpty, "bits \(bits) group \(g): \(violations.count) elements exceed |scale|")
            }
        }
        // On the fixture's adversarial rows the property is MLX's own, not a law: it fails for MLX too on the tiny
        // (row 4), 1/16-grid (row 5) and symmetric (row 11) rows — snapping the larger end to a level leaves the
        // other end up to a level (2 bits: many levels) off. Ours must fail in exactly the same places.
        let file = try MLXQuantFixtures.file(.f32)
        let fw = try MLXQuantFixtures.floats(MLXQuantFixtures.raw(file, "w"))
        var mlxViolatingRows = Set<Int>()
        for c in MLXQuantFixtures.cases where c.dtype == .f32 && c.mode == .affine {
            let q = try MLXQuantization.quantize(fw, rows: MLXQuantFixtures.rows, cols: MLXQuantFixtures.cols, mode: .affine,
                                                 groupSize: c.groupSize, bits: c.bits)
            let wHat = MLXQuantization.dequantize(q), s = q.scaleValues
            let mlxHat = try MLXQuantFixtures.floats(MLXQuantFixtures.raw(file, "deq.\(c.key)"))
            let mlxS = try MLXQuantFixtures.floats(MLXQuantFixtures.raw(file, "q.\(c.key).scales"))
            let ours = (0..<fw.count).filter { abs(fw[$0] - wHat[$0]) > abs(s[$0 / c.groupSize] + 1e-6) }
            let theirs = (0..<fw.count).filter { abs(fw[$0] - mlxHat[$0]) > abs(mlxS[$0 / c.groupSize] + 1e-6) }
            #expect(ours == theirs, "\(c.key): \(ours.count) elements exceed |scale| for us, \(theirs.count) for MLX")
            mlxViolatingRows.formUnion(theirs.map { $0 / MLXQuantFixtures.cols })
        }
        #expect(mlxViolatingRows.filter { $0 < 16 }.isSubset(of: [4, 5, 11]), "MLX exceeds |scale| on rows \(mlxViolatingRows.sorted())")
    }

    @Test("zeros round-trip to exactly zero in every mode, bit width, group size and dtype")
    func zerosRoundTrip() throws {
        let rows = 4, cols = 512, zeros = [Float](repeating: 0, count: 4 * 512)
        for t in MLXFloatType.allCases {
            for (mode, bits, g) in MLXQuantFixtures.modeCases {
                let q = try MLXQuantization.quantize(zeros, rows: rows, cols: cols, dtype: t, mode: mode, groupSize: g, bits: bits)
                #expect(MLXQuantization.dequantize(q).allSatisfy { $0 == 0 }, "\(t.rawValue) \(mode.rawValue) b\(bits) g\(g)")
                if mode == .mxfp4 || mode == .mxfp8 { #expect(q.scales.allSatisfy { $0 == 127 }, "MLX gives an all-zero group the E8M0 scale 2^0") }
                if mode == .nvfp4 { #expect(q.scales.allSatisfy { $0 == 0 }) }
            }
        }
    }

    // MARK: Validation

    private func expectUsageError(_ contains: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try body()
            Issue.record("expected a usage error containing \"\(contains)\"", sourceLocation: sourceLocation)
        } catch let error as ParityError {
            guard case .usage(let message) = error else {
                Issue.record("expected ParityError.usage, got \(error)", sourceLocation: sourceLocation); return
            }
            #expect(message.contains(contains), "message: \(message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("unsupported combinations throw a usage error that says what is allowed")
    func invalidCombinations() throws {
        let w = [Float](repeating: 0.5, count: 2 * 256)
        expectUsageError("7 bits is not supported (supported: 1, 2, 3, 4, 5, 6, 8)") {
            _ = try MLXQuantization.quantize(w, rows: 2, cols: 256, mode: .affine, groupSize: 64, bits: 7)
        }
        expectUsageError("group size 16 is not supported (supported: 32, 64, 128)") {
            _ = try MLXQuantization.quantize(w, rows: 2, cols: 256, mode: .affine, groupSize: 16, bits: 4)
        }
        // The MNIST dense layer: 784 is divisible by neither 32 nor 64.
        expectUsageError("the last dimension (784) must be divisible by the group size 32") {
            _ = try MLXQuantization.quantize([Float](repeating: 0, count: 10 * 784), rows: 10, cols: 784, groupSize: 32, bits: 4)
        }
        expectUsageError("group size 64 is not supported (supported: 32)") {
            _ = try MLXQuantization.quantize(w, rows: 2, cols: 256, mode: .mxfp4, groupSize: 64)
        }
        expectUsageError("3 bits is not supported (supported: 4)") {
            _ = try MLXQuantization.quantize(w, rows: 2, cols: 256, mode: .nvfp4, bits: 3)
        }
        expectUsageError("4 bits is not supported (supported: 8)") {
            _ = try MLXQuantization.quantize(w, rows: 2, cols: 256, mode: .mxfp8, bits: 4)
        }
        expectUsageError("is not one of affine, mxfp4, mxfp8, nvfp4") { _ = try MLXQuantMode.parse("int4") }
        // Defaults per mode (quantization_params_from_mode).
        #expect(MLXQuantMode.allCases.map { "\($0.rawValue) \($0.defaultGroupSize)/\($0.defaultBits)" }
            == ["affine 64/4", "mxfp4 32/4", "mxfp8 32/8", "nvfp4 16/4"])
        let q = try MLXQuantization.quantize(w, rows: 2, cols: 256)
        #expect(q.mode == .affine && q.groupSize == 64 && q.bits == 4)
    }

    @Test("stored tensors that do not fit the parameters are refused")
    func mismatchedTensors() throws {
        let file = try MLXQuantFixtures.file(.f16)
        let c = MLXQuantCase(dtype: .f16, mode: .affine, bits: 4, groupSize: 64)
        let w = try MLXQuantFixtures.raw(file, "q.\(c.key).weight"), s = try MLXQuantFixtures.raw(file, "q.\(c.key).scales")
        let b = try MLXQuantFixtures.raw(file, "q.\(c.key).biases")
        #expect(throws: ParityError.self) { _ = try MLXQuantized(weight: w, scales: s, biases: b, mode: .affine, groupSize: 32, bits: 4) }
        #expect(throws: ParityError.self) { _ = try MLXQuantized(weight: w, scales: s, biases: nil, mode: .affine, groupSize: 64, bits: 4) }
        #expect(throws: ParityError.self) { _ = try MLXQuantized(weight: w, scales: s, biases: b, mode: .mxfp4) }
        // The engine's entry point (nn.QuantizedLinear): shapes must match the layer.
        let x = [Float](repeating: 1, count: 256)
        let rows = MLXQuantFixtures.rows
        let y = try MLXQuantization.quantizedMatmul(x: x, rows: 1, weight: w, scales: s, biases: b, outFeatures: rows, inFeatures: 256,
                                                    mode: "affine", groupSize: 64, bits: 4)
        #expect(y.count == rows)
        #expect(throws: ParityError.self) {
            _ = try MLXQuantization.quantizedMatmul(x: x, rows: 1, weight: w, scales: s, biases: b, outFeatures: rows, inFeatures: 512,
                                                    mode: "affine", groupSize: 64, bits: 4)
        }
    }

    // MARK: Packing and scalar formats

    @Test("packing is MLX's LSB-first bitstream; 3/5/6-bit codes span bytes as extract_bits reads them")
    func packing() {
        // 3 bits, 8 codes in 3 bytes: w0 = b0&7, w1 = (b0>>3)&7, w2 = (b0>>6) | (b1&1)<<2, …
        let words3 = MLXQuantization.pack([1, 2, 3, 4, 5, 6, 7, 0] + [UInt8](repeating: 0, count: 24), bits: 3)
        #expect(words3[0] & 0xFF_FFFF == 0x1F_58D1)
        #expect(MLXQuantization.pack([1, 2, 3, 4, 5, 6, 7, 8], bits: 4) == [0x8765_4321], "1st element in the 4 least significant bits")
        #expect(MLXQuantization.pack([0xAB, 0xCD, 0xEF, 0x01], bits: 8) == [0x01EF_CDAB])
        var rng = SplitMix64(seed: 3)
        for bits in 1...8 {
            let count = 96  // a multiple of 32 elements fills whole words for every width
            let codes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) & UInt8((1 << bits) - 1) }
            let words = MLXQuantization.pack(codes, bits: bits)
            #expect(words.count == count * bits / 32)
            #expect(MLXQuantization.unpack(words, bits: bits, count: count) == codes, "bits \(bits)")
            guard [3, 5, 6].contains(bits) else { continue }  // checked: the other widths are byte-aligned
            // MLX's extract_bits on the little-endian bytes.
            let bytes = words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }
            let bytesPerPack = bits == 5 ? 5 : 3  // 8 codes per 3 bytes (3 bits), 8 per 5 (5 bits), 4 per 3 (6 bits)
            var decoded: [UInt8] = []
            for p in stride(from: 0, to: bytes.count, by: bytesPerPack) {
                let b = Array(bytes[p..<(p + bytesPerPack)])
                switch bits {
                case 3:
                    decoded += [b[0] & 0x7, (b[0] & 0x38) >> 3, ((b[0] & 0xc0) >> 6) + ((b[1] & 0x1) << 2), (b[1] & 0xe) >> 1,
                                (b[1] & 0x70) >> 4, ((b[1] & 0x80) >> 7) + ((b[2] & 0x3) << 1), (b[2] & 0x1c) >> 2, (b[2] & 0xe0) >> 5]
                case 5:
                    decoded += [b[0] & 0x1f, ((b[0] & 0xe0) >> 5) + ((b[1] & 0x3) << 3), (b[1] & 0x7c) >> 2,
                                ((b[1] & 0x80) >> 7) + ((b[2] & 0xf) << 1), ((b[2] & 0xf0) >> 4) + ((b[3] & 0x1) << 4),
                                (b[3] & 0x3e) >> 1, ((b[3] & 0xc0) >> 6) + ((b[4] & 0x7) << 2), (b[4] & 0xf8) >> 3]
                default:
                    decoded += [b[0] & 0x3f, ((b[0] >> 6) & 0x03) + ((b[1] & 0x0f) << 2), ((b[1] >> 4) & 0x0f) + ((b[2] & 0x03) << 4),
                                (b[2] >> 2) & 0x3f]
                }
            }
            #expect(decoded.count == count)
            #expect(decoded == codes, "extract_bits<\(bits)>")
        }
    }

    @Test("ToFP8 rounds to nearest even, saturates from 448 and keeps the sign")
    func toFP8() {
        // Every E4M3 value survives encode(decode(code)).
        for code in 0...255 where code & 0x7F != 0x7F {
            let v = FloatCodecs.f8E4M3ToFloat(UInt8(code))
            #expect(MLXQuantization.floatToE4M3(v) == UInt8(code) || (v == 0 && code == 0x80), "code 0x\(String(code, radix: 16))")
        }
        #expect(MLXQuantization.floatToE4M3(1.0625) == 0x38, "1 + 1/16 is halfway between 1 and 1.125: ties to even")
        #expect(MLXQuantization.floatToE4M3(1.1875) == 0x3A, "halfway between 1.125 and 1.25: ties to even (1.25)")
        #expect(MLXQuantization.floatToE4M3(447) == 0x7E && MLXQuantization.floatToE4M3(440) == 0x7E, "440 ties to even (448)")
        #expect(MLXQuantization.floatToE4M3(470) == 0x7E && MLXQuantization.floatToE4M3(1e9) == 0x7E, "never the NaN code 0x7F")
        #expect(MLXQuantization.floatToE4M3(-1e9) == 0xFE && MLXQuantization.floatToE4M3(.infinity) == 0x7E
                && MLXQuantization.floatToE4M3(.nan) == 0x7E)
        #expect(MLXQuantization.floatToE4M3(Float(sign: .plus, exponent: -10, significand: 1)) == 0x00, "half the smallest subnormal ties to zero")
        #expect(MLXQuantization.floatToE4M3(Float(sign: .plus, exponent: -10, significand: 1) * 1.5) == 0x01)
        #expect(MLXQuantization.e8m0ToFloat(127) == 1 && MLXQuantization.e8m0ToFloat(0) == Float(sign: .plus, exponent: -127, significand: 1)
                && MLXQuantization.e8m0ToFloat(255) == .infinity)
    }
}

