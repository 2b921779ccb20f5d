import Foundation
import ParityCore
import ParityFormats
import Testing

/// Fixtures written by tools/make_quant_fixtures.py (see its docstring and manifest.json): gguf-py 0.19.0's
/// quantizers/dequantizers, and ggml's own C reference code (ggml-quants.c, ggml-cpu/quants.c of ggml 0.10.1)
/// compiled from source for what gguf-py lacks (k-quant and activation quantizers, the CPU dot products).
enum QuantFixtures {
    static let dir = Repo.fixtures + "/ggml-quants"

    static func bytes(_ name: String) throws -> [UInt8] { try readBytes(dir + "/" + name) }

    static func floats(_ name: String) throws -> [Float] {
        let raw = try bytes(name)
        return raw.withUnsafeBytes { b in (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
    }

    static func manifest() throws -> [String: Any] {
        let data = Data(try bytes("manifest.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(dir)/manifest.json is not a JSON object")
    }

    static let rows = 16, cols = 256, randomRows = 8, activationRows = 4
}

/// Bytes of one row of `count` values of `type`.
private func rowSize(_ type: GGMLType, _ count: Int = QuantFixtures.cols) -> Int { type.rowBytes(ne0: count)! }

/// nil when equal; else the number of differing blocks, the first one's index and both versions of its bytes.
private func blockMismatch(ours: [UInt8], theirs: [UInt8], type: GGMLType) -> String? {
    guard ours.count == theirs.count else { return "sizes differ: \(ours.count) vs \(theirs.count) bytes" }
    let size = type.typeSize
    let blocks = ours.count / size
    var bad: [Int] = []
    var differingBits = 0
    for b in 0..<blocks {
        var differs = false
        for i in (b * size)..<((b + 1) * size) where ours[i] != theirs[i] {
            differs = true
            differingBits += (ours[i] ^ theirs[i]).nonzeroBitCount
        }
        if differs { bad.append(b) }
    }
    guard let first = bad.first else { return nil }
    func hex(_ v: ArraySlice<UInt8>) -> String { v.map { String(format: "%02x", $0) }.joined() }
    let range = (first * size)..<((first + 1) * size)
    return "\(bad.count) of \(blocks) \(type.name) blocks differ (\(differingBits) bits); first bad block \(first) (row \(first * type.blockSize / QuantFixtures.cols)):\n  ours   \(hex(ours[range]))\n  theirs \(hex(theirs[range]))"
}

/// nil when bit-identical; else counts and the first bad block's differing values (at most 8).
private func valueMismatch(ours: [Float], theirs: [Float], blockSize: Int) -> String? {
    guard ours.count == theirs.count else { return "counts differ: \(ours.count) vs \(theirs.count)" }
    var badValues = 0
    var badBlocks = Set<Int>()
    var firstBlock: Int?
    for i in 0..<ours.count where ours[i].bitPattern != theirs[i].bitPattern {
        badValues += 1
        badBlocks.insert(i / blockSize)
        if firstBlock == nil { firstBlock = i / blockSize }
    }
    guard let block = firstBlock else { return nil }
    let details = ((block * blockSize)..<((block + 1) * blockSize)).filter { ours[$0].bitPattern != theirs[$0].bitPattern }.prefix(8)
        .map { "[\($0)] ours \(ours[$0]) (0x\(String(ours[$0].bitPattern, radix: 16))) theirs \(theirs[$0]) (0x\(String(theirs[$0].bitPattern, radix: 16)))" }
    return "\(badValues) values in \(badBlocks.count) blocks differ; first bad block \(block):\n  " + details.joined(separator: "\n  ")
}

private func dequantize(_ bytes: [UInt8], _ type: GGMLType, count: Int) -> [Float] {
    bytes.withUnsafeBytes { GGMLQuants.dequantize($0, type: type, count: count) }
}

@Suite("ggml quantization")
struct GGMLQuantsTests {
    /// Types with a `src`-derived fixture: quantized by gguf-py (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4, F16, BF16)
    /// or by ggml's C reference (the k-quants, Q8_1, Q8_K).
    static let fixtureTypes: [GGMLType] = [.f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .mxfp4, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_1, .q8_K]
    static let kQuants: [GGMLType] = [.q2_K, .q3_K, .q4_K, .q5_K, .q6_K]
    static let dotTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .mxfp4, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    // MARK: Type table

    @Test("type ids, names and block sizes match ggml (C struct sizes, not gguf-py's table)")
    func typeTable() throws {
        // ggml.h enum ggml_type and ggml-common.h static_asserts.
        let expected: [(GGMLType, UInt32, String, Int, Int)] = [
            (.f32, 0, "f32", 1, 4), (.f16, 1, "f16", 1, 2), (.q4_0, 2, "q4_0", 32, 18), (.q4_1, 3, "q4_1", 32, 20),
            (.q5_0, 6, "q5_0", 32, 22), (.q5_1, 7, "q5_1", 32, 24), (.q8_0, 8, "q8_0", 32, 34), (.q8_1, 9, "q8_1", 32, 36),
            (.q2_K, 10, "q2_K", 256, 84), (.q3_K, 11, "q3_K", 256, 110), (.q4_K, 12, "q4_K", 256, 144),
            (.q5_K, 13, "q5_K", 256, 176), (.q6_K, 14, "q6_K", 256, 210), (.q8_K, 15, "q8_K", 256, 292),
            (.i8, 24, "i8", 1, 1), (.i16, 25, "i16", 1, 2), (.i32, 26, "i32", 1, 4), (.i64, 27, "i64", 1, 8),
            (.f64, 28, "f64", 1, 8), (.bf16, 30, "bf16", 1, 2), (.mxfp4, 39, "mxfp4", 32, 17), (.nvfp4, 40, "nvfp4", 64, 36),
        ]
        for (type, id, name, block, bytes) in expected {
            #expect(type.rawValue == id)
            #expect(type.name == name)
            #expect(type.blockSize == block && type.typeSize == bytes, "\(name): \(type.layout) != (\(block), \(bytes))")
            #expect(GGMLType.named(name) == type && GGMLType.named(name.uppercased()) == type)
        }
        // sizeof(block_*) as compiled by the fixture generator, for every block type including the unsupported ones.
        let table = try #require(QuantFixtures.manifest()["c_block_table"] as? [String: [Int]], "manifest.json lacks c_block_table")
        #expect(table.count >= 26)
        for (name, entry) in table {
            let type = try #require(GGMLType.named(name), "ggml type \(name) is not a GGMLType case")
            #expect([type.blockSize, type.typeSize] == entry, "\(name): ours \(type.layout), C \(entry)")
        }
        #expect(GGMLType.allCases.filter(\.isSupported).count == 16)
        #expect(GGMLType.iq2_xxs.unsupportedReason?.contains("iq2_xxs") == true)
        #expect(GGMLType(rawValue: 4) == nil && GGMLType.describeUnknown(4).contains("Q4_2"))
        #expect(GGMLType.q4_K.rowBytes(ne0: 512) == 288 && GGMLType.q4_K.rowBytes(ne0: 100) == nil && GGMLType.f16.rowBytes(ne0: 3) == 6)
        #expect(GGMLType.q8_K.isQuantized && !GGMLType.bf16.isQuantized && GGMLType.q8_1.isActivationOnly)
    }

    @Test("vec_dot_type follows ggml-cpu.c's type_traits_cpu")
    func vecDotTypes() {
        let expected: [GGMLType: GGMLType] = [
            .f32: .f32, .f16: .f16, .bf16: .bf16, .q4_0: .q8_0, .q5_0: .q8_0, .q8_0: .q8_0, .mxfp4: .q8_0, .iq4_nl: .q8_0,
            .q4_1: .q8_1, .q5_1: .q8_1, .q2_K: .q8_K, .q3_K: .q8_K, .q4_K: .q8_K, .q5_K: .q8_K, .q6_K: .q8_K, .iq2_xxs: .q8_K,
            .tq2_0: .q8_K, .q8_K: .f32,
        ]
        for (type, dot) in expected { #expect(type.vecDotType == dot, "\(type.name)") }
        for type in Self.dotTypes + [.f32, .f16, .bf16] { #expect(GGMLQuants.hasVecDot(type), "\(type.name)") }
        #expect(!GGMLQuants.hasVecDot(.q8_K) && !GGMLQuants.hasVecDot(.q8_1))
    }

    // MARK: Dequantization

    @Test("dequantize equals the oracle bit for bit (gguf-py; ggml's C for q8_K; d·q for q8_1)", arguments: try nonEmpty(fixtureTypes, "fixture types"))
    func dequantizeFixture(type: GGMLType) throws {
        let count = QuantFixtures.rows * QuantFixtures.cols
        let q = try QuantFixtures.bytes("\(type.name).q.bin")
        #expect(q.count == QuantFixtures.rows * rowSize(type))
        let ours = dequantize(q, type, count: count)
        let theirs = try QuantFixtures.floats("\(type.name).deq.f32")
        if let problem = valueMismatch(ours: ours, theirs: theirs, blockSize: type.blockSize) {
            Issue.record("\(type.name) dequantize (\(count / type.blockSize) blocks): \(problem)")
        }
    }

    @Test("dequantize random block bytes equals the oracle bit for bit", arguments: try nonEmpty(fixtureTypes, "fixture types"))
    func dequantizeRandomBytes(type: GGMLType) throws {
        let count = QuantFixtures.randomRows * QuantFixtures.cols
        let q = try QuantFixtures.bytes("\(type.name).rand.q.bin")
        let ours = dequantize(q, type, count: count)
        let theirs = try QuantFixtures.floats("\(type.name).rand.deq.f32")
        if let problem = valueMismatch(ours: ours, theirs: theirs, blockSize: type.blockSize) {
            Issue.record("\(type.name) dequantize of random blocks (\(count / type.blockSize) blocks): \(problem)")
        }
    }

    @Test("F32 dequantize is the identity on bits")
    func f32Identity() {
        let values: [Float] = [0, -0.0, 1, .infinity, -.infinity, .leastNonzeroMagnitude, Float(bitPattern: 0x7FC0_1234)]
        let bytes = try! GGMLQuants.quantize(values, to: .f32)
        #expect(dequantize(bytes, .f32, count: values.count).map(\.bitPattern) == values.map(\.bitPattern))
    }

    /// The decoders must never crash on arbitrary bytes, and must give finite values whenever the scale fields
    /// are finite (and small enough that scale × largest code stays finite).
    @Test("decoder fuzz: random bytes never crash; finite scales give finite values")
    func decoderFuzz() {
        var rng = SplitMix64(seed: 0x5EED_0F_6617)
        // f16 scale fields per type (byte offsets in a block); Q8_K has an f32 d at 0; MXFP4 an E8M0 byte at 0.
        let halfScales: [GGMLType: [Int]] = [
            .q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0], .q8_1: [0, 2],
            .q2_K: [80, 82], .q3_K: [108], .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208],
        ]
        for type in GGMLType.allCases where type.isSupported {
            let blocks = 64
            let count = blocks * type.blockSize
            var bytes = (0..<(blocks * type.typeSize)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = dequantize(bytes, type, count: count)                  // any bytes: no trap
            for b in 0..<blocks {
                let base = b * type.typeSize
                // A finite half: exponent field below 0x1F; magnitudes up to 2^15 × 65504 codes are still finite.
                func finiteHalf() -> UInt16 { UInt16.random(in: 0...0xFFFF, using: &rng) & 0xF3FF }
                switch type {
                case .f16:
                    let h = finiteHalf()
                    bytes[base] = UInt8(h & 0xFF); bytes[base + 1] = UInt8(h >> 8)
                case .bf16:
                    bytes[base + 1] &= 0xBF                           // exponent below 0xFF
                case .f32:
                    bytes[base + 3] &= 0xBF
                case .q8_K:
                    let d = Float.random(in: -1e6...1e6, using: &rng).bitPattern
                    for k in 0..<4 { bytes[base + k] = UInt8(truncatingIfNeeded: d >> (8 * UInt32(k))) }
                case .mxfp4:
                    bytes[base] = UInt8.random(in: 0...250, using: &rng)  // 2^(250−128)·12 < Float.greatestFiniteMagnitude
                default:
                    for off in halfScales[type]! {
                        let h = finiteHalf()
                        bytes[base + off] = UInt8(h & 0xFF); bytes[base + off + 1] = UInt8(h >> 8)
                    }
                }
            }
            let values = dequantize(bytes, type, count: count)
            let bad = values.indices.filter { !values[$0].isFinite }
            #expect(bad.isEmpty, "\(type.name): \(bad.count) non-finite values, first at \(bad.first ?? -1) (block \((bad.first ?? 0) / type.blockSize))")
        }
    }

    // MARK: Quantization

    @Test("quantize equals the oracle's bytes (gguf-py for the six reference types and F16/BF16; ggml's C for k-quants, q8_1, q8_K)",
          arguments: try nonEmpty(fixtureTypes, "fixture types"))
    func quantizeFixture(type: GGMLType) throws {
        let src = try QuantFixtures.floats("src.f32")
        let theirs = try QuantFixtures.bytes("\(type.name).q.bin")
        let ours = try GGMLQuants.quantize(src, to: type)
        if let problem = blockMismatch(ours: ours, theirs: theirs, type: type) {
            let oracle = (try QuantFixtures.manifest()["types"] as? [String: [String: Any]])?[type.name]?["quantizer"] as? String ?? "?"  // checked: only names the oracle in the message
            Issue.record("\(type.name) quantize vs \(oracle): \(problem)")
        }
        #expect(try GGMLQuants.quantize(src, to: type) == ours, "\(type.name): quantization is not deterministic")
    }

    /// Many more blocks per type (2,048 blocks of 32 from 256 rows; 1,024 blocks of 256 from 1,024 rows), which
    /// this test regenerates with the same exact float32 recipe as tools/make_quant_fixtures.py's `bulk_rows`;
    /// the fixture holds FNV-1a-32 hashes of the oracle's blocks, so a mismatch names the block and shows our
    /// bytes (the generator can print theirs).
    @Test("bulk quantization: block hashes equal the oracle's for 2048 (or 1024) blocks per type",
          arguments: try nonEmpty([GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .mxfp4, .q8_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K], "bulk types"))
    func bulkQuantize(type: GGMLType) throws {
        let cols = QuantFixtures.cols
        let rows = type.blockSize == 256 ? 1024 : 256
        let n = rows * cols
        var rng = SplitMix64(seed: 0x51A7_F1C5)
        var x = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let u0 = Float(rng.next() >> 40) * 0x1p-24, u1 = Float(rng.next() >> 40) * 0x1p-24
            let u2 = Float(rng.next() >> 40) * 0x1p-24, u3 = Float(rng.next() >> 40) * 0x1p-24
            let row = i / cols
            x[i] = (((u0 + u1) + u2) + u3 - 2) * Float(sign: .plus, exponent: row % 16 - 8, significand: 1)
            if row % 4 == 3 && (i % cols) % 37 == 0 { x[i] *= 64 }
        }
        let ours = try GGMLQuants.quantize(x, to: type)
        let hashes = try QuantFixtures.bytes("\(type.name).bulk.fnv32")
        let blocks = n / type.blockSize
        #expect(hashes.count == 4 * blocks)
        var bad: [Int] = []
        for b in 0..<blocks {
            var h: UInt32 = 0x811C_9DC5
            for byte in ours[(b * type.typeSize)..<((b + 1) * type.typeSize)] { h = (h ^ UInt32(byte)) &* 0x0100_0193 }
            let theirs = UInt32(hashes[4 * b]) | UInt32(hashes[4 * b + 1]) << 8 | UInt32(hashes[4 * b + 2]) << 16 | UInt32(hashes[4 * b + 3]) << 24
            if h != theirs { bad.append(b) }
        }
        if let first = bad.first {
            let bytes = ours[(first * type.typeSize)..<((first + 1) * type.typeSize)].map { String(format: "%02x", $0) }.joined()
            Issue.record("\(type.name): \(bad.count) of \(blocks) bulk blocks differ from the oracle; first bad block \(first): ours \(bytes)")
        }
    }

    @Test("activation quantizers (q8_0, q8_1, q8_K) equal ggml's C on the activation rows", arguments: try nonEmpty([GGMLType.q8_0, .q8_1, .q8_K], "activation types"))
    func activationQuantizers(type: GGMLType) throws {
        let act = try QuantFixtures.floats("act.src.f32")
        let ours = try GGMLQuants.quantize(act, to: type)
        if let problem = blockMismatch(ours: ours, theirs: try QuantFixtures.bytes("act.\(type.name).q.bin"), type: type) {
            Issue.record("\(type.name) activation quantize vs ggml quantize_row_\(type.name)_ref: \(problem)")
        }
    }

    /// The k-quant bytes are compared with ggml's C above. This adds a property check that does not depend on
    /// the fixtures being regenerated correctly: on ordinary rows (normal, uniform, Laplace) the round-trip RMSE
    /// is at most that of naive symmetric round-to-nearest with the same bits per group and an f32 scale per
    /// group (16 values for Q2_K/Q3_K/Q6_K, 32 for Q4_K/Q5_K). Rows with outliers or a large offset are left out:
    /// there the 6-bit quantized sub-scales can lose to a per-group f32 scale, which is a property of the format.
    @Test("k-quant round-trip RMSE is no worse than naive symmetric rounding on ordinary rows", arguments: try nonEmpty(kQuants, "k-quants"))
    func kQuantRoundTrip(type: GGMLType) throws {
        let src = try QuantFixtures.floats("src.f32")
        let (bits, group): (Int, Int) = [.q2_K: (2, 16), .q3_K: (3, 16), .q4_K: (4, 32), .q5_K: (5, 32), .q6_K: (6, 16)][type]!
        let roundTrip = dequantize(try GGMLQuants.quantize(src, to: type), type, count: src.count)
        var ours = 0.0, naive = 0.0
        for row in [0, 11, 14] {
            let x = Array(src[(row * QuantFixtures.cols)..<((row + 1) * QuantFixtures.cols)])
            let y = Array(roundTrip[(row * QuantFixtures.cols)..<((row + 1) * QuantFixtures.cols)])
            let levels = Double((1 << (bits - 1)) - 1)
            for g in stride(from: 0, to: x.count, by: group) {
                let amax = x[g..<(g + group)].map { abs(Double($0)) }.max()!
                let d = amax > 0 ? amax / levels : 1
                for i in g..<(g + group) {
                    let q = max(-levels, min(levels, (Double(x[i]) / d).rounded()))
                    naive += (q * d - Double(x[i])) * (q * d - Double(x[i]))
                    ours += (Double(y[i]) - Double(x[i])) * (Double(y[i]) - Double(x[i]))
                }
            }
        }
        #expect(ours <= naive, "\(type.name): squared error \(ours) > naive \(naive)")
        #expect(roundTrip.allSatisfy { $0.isFinite })
    }

    @Test("quantize rejects counts that are not whole blocks and types without a quantizer")
    func quantizeErrors() throws {
        #expect(throws: ParityError.self) { try GGMLQuants.quantize([Float](repeating: 1, count: 33), to: .q4_0) }
        #expect(throws: ParityError.self) { try GGMLQuants.quantize([Float](repeating: 1, count: 256), to: .iq2_xxs) }
        do {
            _ = try GGMLQuants.quantize([Float](repeating: 1, count: 100), to: .q4_K)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("block size 256"))
        }
        #expect(try GGMLQuants.quantize([], to: .q6_K) == [])
    }

    @Test("reference-quantizer edge cases: all-zero, ±0, ties round half away from zero, huge values")
    func quantizeEdgeCases() throws {
        // Q8_0: amax 127 → d = 1, and x·id = k + 0.5 rounds away from zero (roundf), not to even.
        var block = [Float](repeating: 0, count: 32)
        block[0] = 127; block[1] = 0.5; block[2] = -0.5; block[3] = 1.5; block[4] = -2.5
        let q8 = try GGMLQuants.quantize(block, to: .q8_0)
        #expect(q8[0] == 0x00 && q8[1] == 0x3C, "d = 1.0 as f16")
        #expect(q8[2..<7].map { Int8(bitPattern: $0) } == [127, 1, -1, 2, -3])
        // Q4_0: d = max/−8 from the signed max; an all-zero block stores d = −0 (0x8000) like ggml.
        let zeros = try GGMLQuants.quantize([Float](repeating: 0, count: 32), to: .q4_0)
        #expect(zeros[0] == 0x00 && zeros[1] == 0x80 && zeros[2...].allSatisfy { $0 == 0x88 })
        // K-quants and Q8_K on zeros: all-zero blocks decode to zeros.
        for type in Self.kQuants + [.q8_K] {
            let q = try GGMLQuants.quantize([Float](repeating: 0, count: 256), to: type)
            #expect(dequantize(q, type, count: 256).allSatisfy { $0 == 0 }, "\(type.name)")
        }
        // Large finite values stay finite where the f16 scales can hold them.
        for type in GGMLType.allCases where type.canQuantize && type.isQuantized {
            let x = (0..<256).map { Float($0 % 7 - 3) * 1e4 }
            let y = dequantize(try GGMLQuants.quantize(x, to: type), type, count: 256)
            #expect(y.allSatisfy { $0.isFinite }, "\(type.name)")
        }
    }

    // MARK: Dot products

    /// Three checks per (weight row, activation row): (1) bit-equality with ggml's generic C kernel
    /// (`ggml_vec_dot_<t>_<vec_dot_type>_generic`, run by the fixture generator); (2) agreement with the dot of
    /// the dequantized rows in Double, corrected exactly for Q8_1's f16 `s` (ggml uses m_x·s_y where the
    /// dequantized dot has m_x·Σ d_y·q_y), within the float32 rounding bound
    /// |err| ≤ (blocks + 16)·2⁻²⁴·Σ (|w_i| + |m_i|)·|a_i|, where m_i is the block's min term (0 for symmetric types):
    /// one rounding per block term and per accumulation (blocks + the 8 lanes of the k-quant kernels), one for
    /// dequantizing w_i and a_i; (3) for the single-scale types, an integer-sum reference: per-block Σ q_x·q_y
    /// recovered exactly from the dequantized values, combined in C's float order, equal bit for bit.
    @Test("vecDot equals ggml's generic C kernel, the dequantized dot within rounding, and an integer-sum reference", arguments: try nonEmpty(dotTypes, "dot types"))
    func vecDot(type: GGMLType) throws {
        let dotType = type.vecDotType
        let n = QuantFixtures.cols
        let weights = try QuantFixtures.bytes("\(type.name).q.bin")
        let acts = try QuantFixtures.bytes("act.\(dotType.name).q.bin")
        let expected = try QuantFixtures.floats("\(type.name).vecdot.f32")
        let wRow = rowSize(type), aRow = rowSize(dotType)
        #expect(expected.count == QuantFixtures.rows * QuantFixtures.activationRows)
        // Byte ranges of the codes, zeroed to read the min term m_i by dequantizing (affine types only).
        let codeBytes: [GGMLType: Range<Int>] = [.q4_1: 4..<20, .q5_1: 4..<24, .q2_K: 16..<80, .q4_K: 16..<144, .q5_K: 16..<176]
        var bitMismatches: [String] = [], boundFailures: [String] = [], integerFailures: [String] = []
        for r in 0..<QuantFixtures.rows {
            let w = Array(weights[(r * wRow)..<((r + 1) * wRow)])
            let wDeq = dequantize(w, type, count: n)
            var mins = [Float](repeating: 0, count: n)
            if let codes = codeBytes[type] {
                var z = w
                for b in 0..<(wRow / type.typeSize) { for i in codes { z[b * type.typeSize + i] = 0 } }
                mins = dequantize(z, type, count: n)
            }
            for k in 0..<QuantFixtures.activationRows {
                let a = Array(acts[(k * aRow)..<((k + 1) * aRow)])
                let ours = w.withUnsafeBytes { wb in a.withUnsafeBytes { ab in GGMLQuants.vecDot(weights: wb, type: type, activations: ab, count: n) } }
                let theirs = expected[r * QuantFixtures.activationRows + k]
                if ours.bitPattern != theirs.bitPattern { bitMismatches.append("w\(r)·a\(k): ours \(ours) ggml \(theirs)") }

                let aDeq = dequantize(a, dotType, count: n)
                var reference = 0.0, magnitude = 0.0
                for i in 0..<n {
                    reference += Double(wDeq[i]) * Double(aDeq[i])
                    magnitude += (abs(Double(wDeq[i])) + abs(Double(mins[i]))) * abs(Double(aDeq[i]))
                }
                if dotType == .q8_1 {
                    for b in 0..<(n / 32) {
                        let s = Double(FloatCodecs.halfToFloat(UInt16(a[b * 36 + 2]) | UInt16(a[b * 36 + 3]) << 8))
                        let blockSum = aDeq[(b * 32)..<((b + 1) * 32)].reduce(0.0) { $0 + Double($1) }
                        reference += Double(mins[b * 32]) * (s - blockSum)
                        magnitude += abs(Double(mins[b * 32]) * s)
                    }
                }
                let bound = Double(n / type.blockSize + 16) * 0x1p-24 * magnitude
                if !(abs(Double(ours) - reference) <= bound) {
                    boundFailures.append("w\(r)·a\(k): vecDot \(ours), dequantized dot \(reference), |diff| \(abs(Double(ours) - reference)) > bound \(bound)")
                }
                if let integerReference = integerSumReference(type, w, wDeq, a, aDeq), ours.bitPattern != integerReference.bitPattern {
                    integerFailures.append("w\(r)·a\(k): vecDot \(ours), integer-sum reference \(integerReference)")
                }
            }
        }
        let total = expected.count
        let bitMismatchesCount = bitMismatches.count
        #expect(bitMismatchesCount == 0, "\(type.name): \(bitMismatchesCount) of \(total) dots differ from ggml_vec_dot_\(type.name)_\(dotType.name)_generic; first: \(bitMismatches.first ?? "")")
        let boundFailuresCount = boundFailures.count
        #expect(boundFailuresCount == 0, "\(type.name): \(boundFailuresCount) of \(total) dots outside the rounding bound; first: \(boundFailures.first ?? "")")
        let integerFailuresCount = integerFailures.count
        #expect(integerFailuresCount == 0, "\(type.name): \(integerFailuresCount) of \(total) dots differ from the integer-sum reference; first: \(integerFailures.first ?? "")")
    }

    /// For Q4_0, Q5_0, Q8_0 and MXFP4 weights against Q8_0 activations: each block's Σ q_x·q_y recovered from
    /// the dequantized values (exact in Double: every product d_x·q_x·d_y·q_y has ≤ 35 significant bits), then
    /// the block terms combined in each C kernel's own float order.
    private func integerSumReference(_ type: GGMLType, _ w: [UInt8], _ wDeq: [Float], _ a: [UInt8], _ aDeq: [Float]) -> Float? {
        guard [.q4_0, .q5_0, .q8_0, .mxfp4].contains(type) else { return nil }
        var sumf: Float = 0
        for b in 0..<(wDeq.count / 32) {
            let wb = b * type.typeSize
            let dx = type == .mxfp4 ? Float(sign: .plus, exponent: Int(w[wb]) - 128, significand: 1)
                                    : FloatCodecs.halfToFloat(UInt16(w[wb]) | UInt16(w[wb + 1]) << 8)
            let dy = FloatCodecs.halfToFloat(UInt16(a[b * 34]) | UInt16(a[b * 34 + 1]) << 8)
            var exact = 0.0
            for i in (b * 32)..<((b + 1) * 32) { exact += Double(wDeq[i]) * Double(aDeq[i]) }
            let scale = Double(dx) * Double(dy)
            let sumi = scale == 0 ? 0 : Float((exact / scale).rounded())
            switch type {
            case .q4_0: sumf += sumi * dx * dy
            case .q5_0: sumf += (dx * dy) * sumi
            case .q8_0: sumf += sumi * (dx * dy)
            default: sumf += (dy * dx) * sumi
            }
        }
        return sumf
    }

    @Test("F32/F16/BF16 vecDot: float products accumulated in double, as ggml_vec_dot_f32/f16/bf16's scalar path")
    func floatVecDot() throws {
        var rng = SplitMix64(seed: 42)
        let x = (0..<1000).map { _ in Float.random(in: -4...4, using: &rng) }
        let y = (0..<1000).map { _ in Float.random(in: -4...4, using: &rng) }
        for type in [GGMLType.f32, .f16, .bf16] {
            let xq = try GGMLQuants.quantize(x, to: type), yq = try GGMLQuants.quantize(y, to: type)
            let xd = dequantize(xq, type, count: x.count), yd = dequantize(yq, type, count: y.count)
            var sum = 0.0
            for i in 0..<x.count { sum += Double(xd[i] * yd[i]) }
            let ours = xq.withUnsafeBytes { a in yq.withUnsafeBytes { b in GGMLQuants.vecDot(weights: a, type: type, activations: b, count: x.count) } }
            #expect(ours == Float(sum), "\(type.name)")
        }
    }
}
