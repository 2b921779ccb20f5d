import Foundation
import ParityCore
import ParityFormats
import Testing

@Suite("safetensors reader and writer")
struct SafetensorsTests {
    /// A small file with one tensor of every dtype (sub-byte types sized to end on a byte boundary).
    static func everyDtypeWriter() throws -> SafetensorsWriter {
        var writer = SafetensorsWriter(metadata: [("format", "pt"), ("note", "every dtype")])
        for (i, dtype) in DType.allCases.enumerated() {
            let count = dtype == .f6E2M3 || dtype == .f6E3M2 ? 4 : 6
            let bytes = (0..<dtype.byteCount(elements: count)!).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ i) }
            try writer.add(name: "t_\(dtype.rawValue.lowercased())", dtype: dtype, shape: [count / 2, 2], bytes: bytes)
        }
        return writer
    }

    @Test("every dtype round-trips byte for byte, with metadata, aligned and padded like safetensors-rs")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        let writer = try Self.everyDtypeWriter()
        try writer.write(to: dir.file("all.safetensors"))
        let file = try SafetensorsFile(path: dir.file("all.safetensors"))
        #expect(file.metadata.map(\.key) == ["format", "note"])
        #expect(file.headerSize % 8 == 0)
        #expect(file.entries.count == DType.allCases.count)
        for item in writer.items {
            let entry = try #require(file.entry(named: item.name))
            #expect(entry.dtype == item.dtype && entry.shape == item.shape)
            #expect(try file.rawBytes(entry) == item.bytes)
            // Multi-byte types start at a multiple of their size (safetensors-rs sorts by alignment).
            if item.dtype.bits >= 8 { #expect(entry.dataRange.lowerBound % (item.dtype.bits / 8) == 0, "\(item.name) misaligned") }
        }
    }

    @Test("float dtypes convert exactly: f16/bf16 values are the round-to-nearest-even of the f32 input")
    func floatConversion() throws {
        let values: [Float] = [0, -0.0, 1, -2.5, 65504, 1e-8, 3.14159265, .infinity, 1 + 1.0 / 2048]
        let dir = try TemporaryDirectory()
        var writer = SafetensorsWriter()
        for dtype in [DType.f32, .f16, .bf16, .f64] { try writer.add(name: dtype.rawValue, tensor: Tensor(shape: [values.count], data: values), as: dtype) }
        try writer.write(to: dir.file("f.safetensors"))
        let file = try SafetensorsFile(path: dir.file("f.safetensors"))
        #expect(try file.tensor(named: "F32").data == values)
        #expect(try file.tensor(named: "F64").data == values)
        #expect(try file.tensor(named: "F16").data == values.map { Float(Float16($0)) })
        #expect(try file.tensor(named: "BF16").data == values.map { FloatCodecs.bfloat16ToFloat(FloatCodecs.floatToBFloat16($0)) })
        #expect(try file.tensor(named: "F16").data.last == 1, "1 + 2^-11 is a tie and rounds to even (1.0) in f16")
    }

    /// A valid two-tensor file, built by hand so each malformation below changes exactly one thing.
    static func handBuilt(header: String, data: [UInt8], declaredSize: UInt64? = nil) -> [UInt8] {
        var out: [UInt8] = []
        ElementCodec.appendLE(&out, declaredSize ?? UInt64(header.utf8.count))
        return out + Array(header.utf8) + data
    }

    @Test("malformed headers are rejected with the file, location and reason", arguments: try nonEmpty([
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#, 16, "a hole"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12, "an overlap"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 12, "tensors cover 8 bytes"),
        (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, "needs 12"),
        (#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, 8, "unknown dtype"),
        (#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, 2, "byte boundary"),
        (#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}"#, 8, "non-negative"),
        (#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, 8, "overflows"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, 8, "end before"),
        (#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8, "metadata values must be strings"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8, "duplicate key"),
        (#"["a"]"#, 0, "must start with '{'"),
        (#"{"a":{"dtype":"F32","shape":[2]}}"#, 8, "data_offsets"),
    ], "malformed headers"))
    func malformed(header: String, dataBytes: Int, reason: String) throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("bad.safetensors")
        try writeBytes(Self.handBuilt(header: header, data: [UInt8](repeating: 0, count: dataBytes)), to: path)
        #expect {
            try SafetensorsFile(path: path)
        } throws: { error in
            guard let e = error as? ParityError, case let .malformed(file, _, why) = e else { return false }
            return file == path && why.contains(reason)
        }
    }

    @Test("absurd or truncated header sizes are refused before anything is allocated")
    func headerSize() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("h.safetensors")
        for (declared, reason) in [(UInt64(1) << 63, "100 MB limit"), (UInt64(100_000_001), "100 MB limit"), (UInt64(64), "past the end")] {
            try writeBytes(Self.handBuilt(header: "{}", data: [], declaredSize: declared), to: path)
            #expect { try SafetensorsFile(path: path) } throws: { "\($0)".contains(reason) }
        }
        try writeBytes([1, 2, 3], to: path)
        #expect { try SafetensorsFile(path: path) } throws: { "\($0)".contains("8-byte header size") }
    }

    @Test("truncating a valid file at every offset gives an error, never a crash")
    func truncation() throws {
        let dir = try TemporaryDirectory()
        var writer = SafetensorsWriter(metadata: [("format", "pt")])
        try writer.add(name: "w", tensor: Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]), as: .f16)
        try writer.add(name: "b", tensor: Tensor(shape: [3], data: [7, 8, 9]))
        let bytes = writer.serialized()
        let path = dir.file("t.safetensors")
        for length in 0..<bytes.count {
            try writeBytes(Array(bytes[0..<length]), to: path)
            #expect(throws: ParityError.self, "truncated at \(length)") { try SafetensorsFile(path: path) }
        }
        try writeBytes(bytes, to: path)
        #expect(try SafetensorsFile(path: path).tensor(named: "b").data == [7, 8, 9])
    }

    @Test("complex tensors are readable as bytes but refuse float conversion")
    func complex() throws {
        let dir = try TemporaryDirectory()
        var writer = SafetensorsWriter()
        try writer.add(name: "z", dtype: .c64, shape: [1], bytes: [UInt8](repeating: 0, count: 8))
        try writer.write(to: dir.file("c.safetensors"))
        let file = try SafetensorsFile(path: dir.file("c.safetensors"))
        #expect(try file.rawBytes(file.entries[0]).count == 8)
        #expect(throws: ParityError.self) { try file.tensor(named: "z") }
    }
}

/// A file written by the official safetensors library (0.8.0, `safetensors.numpy.save_file`, via
/// tools/fixtures/make_safetensors_fixtures.py) with one tensor per dtype and edge values; the expected header
/// fields, bytes and values were parsed in Python from the same file.
@Suite("safetensors written by the official library")
struct OfficialSafetensorsTests {
    @Test("every dtype: header fields, bytes and values as the library wrote them", arguments: try nonEmpty(["official_all_dtypes", "official_f4"], "official fixtures"))
    func official(name: String) throws {
        let base = Repo.fixtures + "/safetensors/" + name
        let file = try SafetensorsFile(path: base + ".safetensors")
        let expected = try JSONParser.parse(readBytes(base + ".expected.json"))
        let tensors = try nonEmpty(try #require(expected["tensors"]?.objectValue), "\(name).expected.json tensors")
        #expect(file.entries.count == tensors.count)
        for (tensorName, spec) in tensors {
            let entry = try #require(file.entry(named: tensorName), "missing \(tensorName)")
            #expect(entry.dtype.rawValue == spec["dtype"]?.stringValue)
            #expect(entry.shape == spec["shape"]?.arrayValue?.compactMap(\.intValue))
            #expect([entry.dataRange.lowerBound, entry.dataRange.upperBound] == spec["data_offsets"]?.arrayValue?.compactMap(\.intValue))
            let hex = try file.rawBytes(entry).map { String(format: "%02x", $0) }.joined()
            #expect(hex == spec["raw_hex"]?.stringValue, "\(tensorName) bytes")
            guard entry.dtype.isRealValued else { continue }  // checked: complex dtypes have no float values; bytes compared above
            let values = try file.tensor(entry).data
            let wanted: [Float] = try #require(spec["values"]?.arrayValue, "\(tensorName): no values recorded").map { v in
                switch v.stringValue {
                case "nan": return .nan
                case "inf": return .infinity
                case "-inf": return -.infinity
                default: return Float(v.doubleValue ?? .nan)  // f64 values round to float32 exactly as the decoder does
                }
            }
            #expect(values.count == wanted.count)
            for (i, (a, b)) in zip(values, wanted).enumerated() {
                #expect(a == b || (a.isNaN && b.isNaN), "\(tensorName)[\(i)]: \(a) vs \(b)")
            }
        }
    }
}
