import Foundation
import ParityCore
import ParityFormats
import Testing

@Suite("GGUF container")
struct GGUFTests {
    static func sampleWriter(alignment: Int = 32) throws -> GGUFWriter {
        var w = try GGUFWriter(architecture: "test", alignment: alignment)
        try w.set("general.name", .string("sample ✓"))
        try w.set("t.u8", .uint8(255)); try w.set("t.i8", .int8(-128)); try w.set("t.u16", .uint16(65535)); try w.set("t.i16", .int16(-32768))
        try w.set("t.u32", .uint32(.max)); try w.set("t.i32", .int32(.min)); try w.set("t.f32", .float32(-0.5)); try w.set("t.bool", .bool(true))
        try w.set("t.u64", .uint64(.max)); try w.set("t.i64", .int64(.min)); try w.set("t.f64", .float64(1e-300))
        try w.set("t.strings", .array(.string, [.string("a"), .string(""), .string("ü")]))
        try w.set("t.nested", .array(.array, [.array(.int32, [.int32(1), .int32(2)]), .array(.int32, [])]))
        try w.add(name: "a", type: .f32, ne: [3, 2], bytes: ElementCodec.encode([1, 2, 3, 4, 5, 6], as: .f32)!)
        try w.add(name: "b", type: .f16, ne: [5], bytes: ElementCodec.encode([1, -1, 0.5, 65504, 0], as: .f16)!)
        try w.add(name: "c", type: .f32, ne: [1, 1, 4, 1], bytes: ElementCodec.encode([9, 8, 7, 6], as: .f32)!)
        return w
    }

    @Test("every metadata type, nested arrays and tensor data round-trip; offsets are padded running sums", arguments: try nonEmpty([32, 64], "alignments"))
    func roundTrip(alignment: Int) throws {
        let dir = try TemporaryDirectory()
        let writer = try Self.sampleWriter(alignment: alignment)
        try writer.write(to: dir.file("s.gguf"))
        let file = try GGUFFile(path: dir.file("s.gguf"))
        #expect(file.version == 3 && file.alignment == alignment)
        #expect(file.metadata.map(\.key) == writer.metadata.map(\.key))
        #expect(file.metadata.map(\.value) == writer.metadata.map(\.value))
        #expect(file.tensors.map(\.name) == ["a", "b", "c"])
        #expect(file.tensors.map(\.offset) == [0, alignment, 2 * alignment])
        #expect(file.dataStart % alignment == 0)
        #expect(try file.values(file.tensors[0]) == [1, 2, 3, 4, 5, 6])
        #expect(try file.values(file.tensors[1]) == [1, -1, 0.5, 65504, 0])
        #expect(file.tensors[0].shape == [2, 3])
        #expect(file["general.alignment"] == (alignment == 32 ? nil : .uint32(UInt32(alignment))))
    }

    /// Writes `mutate(bytes of a valid file)` and expects a `ParityError` whose text contains `reason`.
    func expectRejected(_ reason: String, _ mutate: (inout [UInt8]) -> Void) throws {
        let dir = try TemporaryDirectory()
        var bytes = try Self.sampleWriter().serialized()
        mutate(&bytes)
        try writeBytes(bytes, to: dir.file("bad.gguf"))
        #expect {
            try GGUFFile(path: dir.file("bad.gguf"))
        } throws: { error in
            let text = "\(error)"
            return error is ParityError && text.contains(dir.file("bad.gguf")) && text.contains(reason)
        }
    }

    static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { bytes[offset + i] = b } }
    }

    /// Offset of the first byte of `needle` in `bytes` (to patch a field of a known tensor or key).
    static func find(_ needle: String, in bytes: [UInt8]) -> Int {
        let n = Array(needle.utf8)
        return (0...(bytes.count - n.count)).first { Array(bytes[$0..<($0 + n.count)]) == n }!
    }

    @Test("header-level corruption")
    func header() throws {
        try expectRejected("bad magic") { $0[0] = 0x47; $0[1] = 0x47; $0[2] = 0x4D }
        try expectRejected("big-endian") { $0.replaceSubrange(0..<4, with: Array("FUGG".utf8)) }
        try expectRejected("version 1") { Self.put(UInt32(1), at: 4, in: &$0) }
        try expectRejected("newer than 3") { Self.put(UInt32(4), at: 4, in: &$0) }
        try expectRejected("byte-swapped") { Self.put(UInt32(3 << 24), at: 4, in: &$0) }
        try expectRejected("tensor_count 1099511627776 cannot fit") { Self.put(UInt64(1) << 40, at: 8, in: &$0) }
        try expectRejected("metadata_kv_count") { Self.put(UInt64.max, at: 16, in: &$0) }
    }

    @Test("metadata corruption")
    func metadata() throws {
        // The first key is general.architecture: its length field is at 24, its type right after the key.
        try expectRejected("runs past the end") { Self.put(UInt64(1) << 62, at: 24, in: &$0) }
        try expectRejected("unknown metadata value type 13") { Self.put(UInt32(13), at: 24 + 8 + 20, in: &$0) }
        try expectRejected("not valid UTF-8") { $0[24 + 8] = 0xFF }
        try expectRejected("duplicate metadata key 't.u8'") { b in
            let at = Self.find("t.i8", in: b)
            b.replaceSubrange(at..<(at + 4), with: Array("t.u8".utf8))
        }
        try expectRejected("only 0 and 1 are valid") { b in
            let at = Self.find("t.bool", in: b)
            b[at + 6 + 4] = 2
        }
        try expectRejected("claims 4611686018427387904 STRING elements") { b in
            let at = Self.find("t.strings", in: b)
            Self.put(UInt64(1) << 62, at: at + 9 + 4 + 4, in: &b)
        }
    }

    @Test("tensor-info corruption")
    func tensorInfo() throws {
        // Tensor info "a": name length (8) + "a" (1), n_dims u32, ne u64 × 2, type u32, offset u64.
        func infoStart(_ b: [UInt8]) -> Int { Self.find("\u{01}\0\0\0\0\0\0\0a\u{02}\0\0\0", in: b) + 9 }
        try expectRejected("has 5 dimensions") { b in Self.put(UInt32(5), at: infoStart(b), in: &b) }
        try expectRejected("unknown ggml type 99") { b in Self.put(UInt32(99), at: infoStart(b) + 4 + 16, in: &b) }
        try expectRejected("is not 0, the padded end") { b in Self.put(UInt64(32), at: infoStart(b) + 4 + 16 + 4, in: &b) }
        try expectRejected("runs past the end of the") { b in Self.put(UInt64(1) << 20, at: infoStart(b) + 4 + 8, in: &b) }
        try expectRejected("overflow") { b in Self.put(UInt64(1) << 62, at: infoStart(b) + 4, in: &b); Self.put(UInt64(1) << 62, at: infoStart(b) + 12, in: &b) }
        try expectRejected("duplicate tensor name 'a'") { b in
            let at = Self.find("\u{01}\0\0\0\0\0\0\0b\u{01}\0\0\0", in: b)
            b[at + 8] = UInt8(ascii: "a")
        }
        try expectRejected("not a multiple of the block size 32") { b in Self.put(UInt32(8), at: infoStart(b) + 4 + 16, in: &b) }
    }

    @Test("alignment must be a UINT32 power of two")
    func alignment() throws {
        var w = try GGUFWriter(architecture: "x", alignment: 64)
        try w.set("general.alignment", .uint32(48))
        let dir = try TemporaryDirectory()
        try w.write(to: dir.file("a.gguf"))
        #expect { try GGUFFile(path: dir.file("a.gguf")) } throws: { "\($0)".contains("48 is not a power of two") }
        try w.set("general.alignment", .uint64(64))
        try w.write(to: dir.file("a.gguf"))
        #expect { try GGUFFile(path: dir.file("a.gguf")) } throws: { "\($0)".contains("must be UINT32") }
    }

    @Test("truncation at every offset of a small file is an error, never a crash")
    func truncation() throws {
        let dir = try TemporaryDirectory()
        let bytes = try Self.sampleWriter().serialized()
        let path = dir.file("t.gguf")
        for length in 0..<bytes.count {
            try writeBytes(Array(bytes[0..<length]), to: path)
            #expect(throws: ParityError.self, "truncated at \(length)") { try GGUFFile(path: path) }
        }
    }

    @Test("the writer refuses what ggml's reader would refuse")
    func writerChecks() throws {
        var w = try GGUFWriter(architecture: "x")
        #expect(throws: ParityError.self) { try w.add(name: String(repeating: "n", count: 64), type: .f32, ne: [1], bytes: [0, 0, 0, 0]) }
        #expect(throws: ParityError.self) { try w.add(name: "q", type: .q8_0, ne: [16], bytes: [UInt8](repeating: 0, count: 17)) }
        #expect(throws: ParityError.self) { try w.add(name: "d", type: .f32, ne: [1, 1, 1, 1, 1], bytes: [0, 0, 0, 0]) }
        #expect(throws: ParityError.self) { try w.add(name: "s", type: .f32, ne: [2], bytes: [0, 0, 0, 0]) }
        try w.add(name: "ok", type: .q8_0, ne: [32], bytes: [UInt8](repeating: 0, count: 34))
        #expect(throws: ParityError.self) { try w.add(name: "ok", type: .f32, ne: [1], bytes: [0, 0, 0, 0]) }
        let dir = try TemporaryDirectory()
        try w.write(to: dir.file("q.gguf"))
        #expect(try GGUFFile(path: dir.file("q.gguf"))["general.quantization_version"] == .uint32(2), "added because a tensor is quantized")
    }
}
