import Foundation
import ParityCore

/// GGUF metadata value types, with the spec's numbers as raw values.
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8, array = 9,
         uint64 = 10, int64 = 11, float64 = 12

    /// gguf-dump's spelling.
    public var name: String { String(describing: self).uppercased() }

    /// Fewest bytes one element of this type can take in a file: bounds element counts before allocating.
    var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

/// A GGUF metadata value.
public indirect enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), float32(Float), bool(Bool)
    case string(String)
    case array(GGUFValueType, [GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    public var description: String {
        switch self {
        case let .uint8(v): return "\(v)"
        case let .int8(v): return "\(v)"
        case let .uint16(v): return "\(v)"
        case let .int16(v): return "\(v)"
        case let .uint32(v): return "\(v)"
        case let .int32(v): return "\(v)"
        case let .float32(v): return "\(v)"
        case let .bool(v): return "\(v)"
        case let .string(s): return "'\(s)'"
        case let .uint64(v): return "\(v)"
        case let .int64(v): return "\(v)"
        case let .float64(v): return "\(v)"
        case let .array(_, items):
            let shown = items.prefix(8).map(\.description).joined(separator: ", ")
            return "[\(shown)\(items.count > 8 ? ", ... (\(items.count) items)" : "")]"
        }
    }

    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    /// Any unsigned or non-negative signed integer (counts are "by convention u64, readers accept u32 too").
    public var intValue: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return Int(exactly: v)
        case let .int64(v): return Int(v)
        default: return nil
        }
    }
}

/// One tensor-info record.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    /// ggml's `ne`: ne[0] is the innermost (fastest-varying) axis; numpy/PyTorch shape = reversed(ne).
    public let ne: [Int]
    public let type: GGMLType
    /// Offset relative to the start of the data section.
    public let offset: Int
    public let byteCount: Int
    public var elementCount: Int { ne.reduce(1, *) }
    /// The row-major (PyTorch/numpy) shape.
    public var shape: [Int] { ne.reversed() }
}

/// A GGUF file, validated on open the way ggml's gguf.cpp validates it, memory-mapped, tensor data read on
/// demand. Big-endian files and version 1 are refused with a clear message; every error names the offset.
public struct GGUFFile: Sendable {
    public static let magic: [UInt8] = Array("GGUF".utf8)
    public static let defaultAlignment = 32
    /// GGML_MAX_NAME (64, including the terminating NUL).
    public static let maxNameBytes = 63
    /// GGML_MAX_DIMS.
    public static let maxDims = 4
    static let maxArrayNesting = 8

    public let path: String
    public let version: UInt32
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataStart: Int
    let file: MappedFile

    public init(path: String) throws(ParityError) { try self.init(file: MappedFile(path: path)) }

    public init(file: MappedFile) throws(ParityError) {
        self.file = file
        path = file.path
        var reader = GGUFByteReader(file: file)
        let magic = try reader.bytes(4, what: "magic")
        guard magic == GGUFFile.magic else {
            if magic == Array("FUGG".utf8) {
                throw .unsupported(file: path, reason: "big-endian GGUF (magic 'FUGG'); Parity reads little-endian GGUF only")
            }
            throw .malformed(file: path, at: "offset 0", reason: "bad magic \(magic.map { String(format: "%02x", $0) }.joined()), expected 'GGUF'")
        }
        let version: UInt32 = try reader.scalar(what: "version")
        if version & 0xFFFF == 0 && version != 0 {
            throw .unsupported(file: path, reason: "version field \(version) looks byte-swapped: a big-endian GGUF, which Parity does not read")
        }
        guard version >= 2 else {
            throw .unsupported(file: path, reason: "GGUF version \(version): versions 1 (and 0) are obsolete and not read (ggml rejects them too)")
        }
        guard version <= 3 else { throw .unsupported(file: path, reason: "GGUF version \(version) is newer than 3") }
        self.version = version
        let tensorCount: UInt64 = try reader.scalar(what: "tensor_count")
        let kvCount: UInt64 = try reader.scalar(what: "metadata_kv_count")
        // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8 + 4 + 4 + 8.
        guard kvCount <= UInt64(reader.remaining / 13) else {
            throw .malformed(file: path, at: "offset 16", reason: "metadata_kv_count \(kvCount) cannot fit in the \(file.count)-byte file")
        }
        guard tensorCount <= UInt64(reader.remaining / 24) else {
            throw .malformed(file: path, at: "offset 8", reason: "tensor_count \(tensorCount) cannot fit in the \(file.count)-byte file")
        }
        var metadata: [(key: String, value: GGUFValue)] = []
        var keys = Set<String>()
        for _ in 0..<Int(kvCount) {
            let keyOffset = reader.offset
            let key = try reader.string(what: "metadata key")
            guard keys.insert(key).inserted else { throw .malformed(file: path, at: "offset \(keyOffset)", reason: "duplicate metadata key '\(key)'") }
            let typeOffset = reader.offset
            let rawType: UInt32 = try reader.scalar(what: "value type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw .malformed(file: path, at: "offset \(typeOffset)", reason: "unknown metadata value type \(rawType) for '\(key)'")
            }
            metadata.append((key, try reader.value(of: type, key: key, depth: 0)))
        }
        var alignment = GGUFFile.defaultAlignment
        if let entry = metadata.first(where: { $0.key == "general.alignment" }) {
            guard case let .uint32(a) = entry.value else {
                throw .malformed(file: path, at: "key 'general.alignment'", reason: "must be UINT32, is \(entry.value.type.name)")
            }
            guard a > 0, a & (a - 1) == 0 else {
                throw .malformed(file: path, at: "key 'general.alignment'", reason: "\(a) is not a power of two")
            }
            alignment = Int(a)
        }
        self.alignment = alignment
        self.metadata = metadata

        var infos: [(name: String, ne: [Int], type: GGMLType, offset: UInt64, at: Int)] = []
        var names = Set<String>()
        for _ in 0..<Int(tensorCount) {
            let at = reader.offset
            let name = try reader.string(what: "tensor name")
            guard name.utf8.count <= GGUFFile.maxNameBytes else {
                throw .malformed(file: path, at: "offset \(at)", reason: "tensor name '\(name.prefix(80))' is \(name.utf8.count) bytes; ggml allows \(GGUFFile.maxNameBytes)")
            }
            guard names.insert(name).inserted else { throw .malformed(file: path, at: "offset \(at)", reason: "duplicate tensor name '\(name)'") }
            let nDims: UInt32 = try reader.scalar(what: "n_dims of '\(name)'")
            guard nDims <= GGUFFile.maxDims else {
                throw .malformed(file: path, at: "offset \(at)", reason: "tensor '\(name)' has \(nDims) dimensions; ggml allows at most \(GGUFFile.maxDims)")
            }
            var ne: [Int] = []
            var elements = 1
            for _ in 0..<nDims {
                let d: UInt64 = try reader.scalar(what: "dimension of '\(name)'")
                guard d <= UInt64(Int64.max) else { throw .malformed(file: path, at: "offset \(reader.offset - 8)", reason: "dimension \(d) of '\(name)' is negative as int64") }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                guard !overflow else { throw .malformed(file: path, at: "offset \(at)", reason: "dimensions of '\(name)' overflow the element count") }
                elements = product
                ne.append(Int(d))
            }
            let typeAt = reader.offset
            let rawType: UInt32 = try reader.scalar(what: "type of '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw .malformed(file: path, at: "offset \(typeAt)", reason: "tensor '\(name)' has unknown ggml type \(rawType)")
            }
            let offset: UInt64 = try reader.scalar(what: "offset of '\(name)'")
            infos.append((name, ne, type, offset, at))
        }
        dataStart = (reader.offset + alignment - 1) / alignment * alignment
        var tensors: [GGUFTensorInfo] = []
        var expected = 0
        for info in infos {
            let ne0 = info.ne.first ?? 1
            guard ne0 % info.type.blockSize == 0 else {
                throw .malformed(file: path, at: "offset \(info.at)",
                                 reason: "tensor '\(info.name)' of type \(info.type.name) has \(ne0) elements per row, not a multiple of the block size \(info.type.blockSize)")
            }
            let elements = info.ne.reduce(1, *)
            let (bytes, overflow) = (elements / info.type.blockSize).multipliedReportingOverflow(by: info.type.typeSize)
            guard !overflow else { throw .malformed(file: path, at: "offset \(info.at)", reason: "byte size of '\(info.name)' overflows") }
            guard info.offset == UInt64(expected) else {
                throw .malformed(file: path, at: "offset \(info.at)",
                                 reason: "tensor '\(info.name)' data offset \(info.offset) is not \(expected), the padded end of the previous tensor (ggml requires data in tensor-info order, each tensor padded to \(alignment))")
            }
            // ggml reads the whole data section, each tensor padded to the alignment (gguf-py writes that padding
            // after every tensor, the last included), so the padded extent must be in the file.
            let padded = (bytes + alignment - 1) / alignment * alignment
            guard dataStart + expected + padded <= file.count else {
                throw .malformed(file: path, at: "offset \(info.at)",
                                 reason: "tensor '\(info.name)' data [\(dataStart + expected), \(dataStart + expected + padded)) (padded to \(alignment)) runs past the end of the \(file.count)-byte file")
            }
            tensors.append(GGUFTensorInfo(name: info.name, ne: info.ne, type: info.type, offset: expected, byteCount: bytes))
            expected += (bytes + alignment - 1) / alignment * alignment
        }
        self.tensors = tensors
    }

    public subscript(key: String) -> GGUFValue? { metadata.first { $0.key == key }?.value }
    public var architecture: String? { self["general.architecture"]?.stringValue }
    public func tensor(named name: String) -> GGUFTensorInfo? { tensors.first { $0.name == name } }

    /// The raw bytes of a tensor's data, as stored (blocks for quantized types).
    public func withData<R>(_ tensor: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try file.withBytes((dataStart + tensor.offset)..<(dataStart + tensor.offset + tensor.byteCount), body)
    }

    public func rawBytes(_ tensor: GGUFTensorInfo) throws -> [UInt8] { try withData(tensor) { Array($0) } }

    /// Dequantized values in memory order (ne[0] fastest), as gguf-py's `dequantize` gives them.
    public func values(_ tensor: GGUFTensorInfo) throws -> [Float] {
        guard tensor.type.isSupported else {
            throw ParityError.unsupported(file: path, reason: "tensor '\(tensor.name)' has ggml type \(tensor.type.name), which Parity cannot decode")
        }
        return try withData(tensor) { GGMLQuants.dequantize($0, type: tensor.type, count: tensor.elementCount) }
    }
}

/// Bounds-checked little-endian reads over a mapped file; every failure names the offset and what was being read.
struct GGUFByteReader {
    let file: MappedFile
    private(set) var offset = 0
    var remaining: Int { file.count - offset }

    init(file: MappedFile) { self.file = file }

    func fail(_ what: String, needing n: Int) -> ParityError {
        .malformed(file: file.path, at: "offset \(offset)", reason: "truncated: \(what) needs \(n) bytes but only \(remaining) remain")
    }

    mutating func bytes(_ n: Int, what: String) throws(ParityError) -> [UInt8] {
        guard n >= 0, n <= remaining else { throw fail(what, needing: n) }
        let out = file.data.withUnsafeBytes { Array(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + n)])) }
        offset += n
        return out
    }

    mutating func scalar<T: FixedWidthInteger>(what: String) throws(ParityError) -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw fail(what, needing: size) }
        let value = file.data.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        offset += size
        return value
    }

    mutating func string(what: String) throws(ParityError) -> String {
        let at = offset
        let length: UInt64 = try scalar(what: "length of \(what)")
        guard length <= UInt64(remaining) else {
            throw .malformed(file: file.path, at: "offset \(at)", reason: "\(what) length \(length) runs past the end of the file (\(remaining) bytes remain)")
        }
        let raw = try bytes(Int(length), what: what)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw .malformed(file: file.path, at: "offset \(at + 8)", reason: "\(what) is not valid UTF-8")
        }
        return text
    }

    mutating func value(of type: GGUFValueType, key: String, depth: Int) throws(ParityError) -> GGUFValue {
        let what = "value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try scalar(what: what))
        case .int8: return .int8(Int8(bitPattern: try scalar(what: what) as UInt8))
        case .uint16: return .uint16(try scalar(what: what))
        case .int16: return .int16(try scalar(what: what))
        case .uint32: return .uint32(try scalar(what: what))
        case .int32: return .int32(try scalar(what: what))
        case .uint64: return .uint64(try scalar(what: what))
        case .int64: return .int64(try scalar(what: what))
        case .float32: return .float32(Float(bitPattern: try scalar(what: what)))
        case .float64: return .float64(Double(bitPattern: try scalar(what: what)))
        case .bool:
            let at = offset
            let b: UInt8 = try scalar(what: what)
            guard b <= 1 else { throw .malformed(file: file.path, at: "offset \(at)", reason: "BOOL \(what) is \(b); only 0 and 1 are valid") }
            return .bool(b == 1)
        case .string: return .string(try string(what: what))
        case .array:
            let at = offset
            guard depth < GGUFFile.maxArrayNesting else {
                throw .malformed(file: file.path, at: "offset \(at)", reason: "arrays nested deeper than \(GGUFFile.maxArrayNesting) in '\(key)'")
            }
            let rawType: UInt32 = try scalar(what: "array element type of '\(key)'")
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw .malformed(file: file.path, at: "offset \(at)", reason: "unknown array element type \(rawType) in '\(key)'")
            }
            let count: UInt64 = try scalar(what: "array length of '\(key)'")
            guard count <= UInt64(remaining / elementType.minimumSize) else {
                throw .malformed(file: file.path, at: "offset \(at + 4)", reason: "array '\(key)' claims \(count) \(elementType.name) elements; the file cannot hold them")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { items.append(try value(of: elementType, key: key, depth: depth + 1)) }
            return .array(elementType, items)
        }
    }
}

/// Writes GGUF v3 as ggml's reader requires: KV pairs in insertion order, tensor infos in `ne` order, data
/// in tensor-info order with each tensor's offset the padded running sum, zero padding to `alignment`.
/// `general.quantization_version` is added when any tensor is quantized (ggml requires it then).
public struct GGUFWriter {
    public struct Tensor { public let name: String; public let type: GGMLType; public let ne: [Int]; public let bytes: [UInt8] }
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    public private(set) var tensors: [Tensor] = []
    public let alignment: Int
    /// GGML_QNT_VERSION.
    public static let quantizationVersion: UInt32 = 2

    public init(architecture: String, alignment: Int = GGUFFile.defaultAlignment) throws(ParityError) {
        guard alignment > 0, alignment & (alignment - 1) == 0 else { throw .usage("GGUF alignment \(alignment) is not a power of two") }
        self.alignment = alignment
        try set("general.architecture", .string(architecture))
        if alignment != GGUFFile.defaultAlignment { try set("general.alignment", .uint32(UInt32(alignment))) }
    }

    /// Sets a metadata key, replacing an earlier value of the same key in place (gguf-py warns and overwrites).
    public mutating func set(_ key: String, _ value: GGUFValue) throws(ParityError) {
        guard !key.isEmpty, key.utf8.count <= 65535 else { throw .usage("GGUF key '\(key.prefix(40))' must be 1...65535 bytes") }
        if case let .array(type, items) = value, items.contains(where: { $0.type != type }) {
            throw .usage("GGUF array '\(key)' mixes element types")
        }
        if let i = metadata.firstIndex(where: { $0.key == key }) { metadata[i].value = value } else { metadata.append((key, value)) }
    }

    /// Adds a tensor whose `bytes` are already in `type`'s storage format, `ne` in ggml order.
    public mutating func add(name: String, type: GGMLType, ne: [Int], bytes: [UInt8]) throws(ParityError) {
        guard name.utf8.count <= GGUFFile.maxNameBytes else { throw .usage("tensor name '\(name)' is longer than \(GGUFFile.maxNameBytes) bytes") }
        guard !tensors.contains(where: { $0.name == name }) else { throw .usage("duplicate tensor name '\(name)'") }
        guard (1...GGUFFile.maxDims).contains(ne.count), ne.allSatisfy({ $0 >= 0 }) else { throw .usage("tensor '\(name)': ne \(ne) must have 1...4 non-negative dims") }
        guard ne[0] % type.blockSize == 0 else {
            throw .usage("tensor '\(name)': ne[0] = \(ne[0]) is not a multiple of \(type.name)'s block size \(type.blockSize)")
        }
        let expected = ne.reduce(1, *) / type.blockSize * type.typeSize
        guard bytes.count == expected else { throw .usage("tensor '\(name)': \(bytes.count) bytes, \(type.name) ne \(ne) needs \(expected)") }
        tensors.append(Tensor(name: name, type: type, ne: ne, bytes: bytes))
    }

    /// Metadata with the keys the writer adds itself (`general.quantization_version` when anything is quantized).
    var finalMetadata: [(key: String, value: GGUFValue)] {
        var meta = metadata
        if tensors.contains(where: { $0.type.isQuantized }), !meta.contains(where: { $0.key == "general.quantization_version" }) {
            meta.append(("general.quantization_version", .uint32(GGUFWriter.quantizationVersion)))
        }
        return meta
    }

    /// Everything before the data section (header, metadata, tensor infos, padding) for tensors of the given
    /// names, types, `ne` and byte sizes, in order: lets a caller stream tensor data it does not hold in memory.
    public static func header(metadata: [(key: String, value: GGUFValue)], tensors: [(name: String, type: GGMLType, ne: [Int], bytes: Int)],
                              alignment: Int) -> [UInt8] {
        var out = GGUFFile.magic
        ElementCodec.appendLE(&out, UInt32(3))
        ElementCodec.appendLE(&out, UInt64(tensors.count))
        ElementCodec.appendLE(&out, UInt64(metadata.count))
        for (key, value) in metadata {
            appendString(&out, key)
            ElementCodec.appendLE(&out, value.type.rawValue)
            append(&out, value)
        }
        var offset = 0
        for t in tensors {
            appendString(&out, t.name)
            ElementCodec.appendLE(&out, UInt32(t.ne.count))
            for d in t.ne { ElementCodec.appendLE(&out, UInt64(d)) }
            ElementCodec.appendLE(&out, t.type.rawValue)
            ElementCodec.appendLE(&out, UInt64(offset))
            offset += (t.bytes + alignment - 1) / alignment * alignment
        }
        while out.count % alignment != 0 { out.append(0) }
        return out
    }

    public func serialized() -> [UInt8] {
        var out = GGUFWriter.header(metadata: finalMetadata, tensors: tensors.map { ($0.name, $0.type, $0.ne, $0.bytes.count) }, alignment: alignment)
        for t in tensors {
            out += t.bytes
            while out.count % alignment != 0 { out.append(0) }
        }
        return out
    }

    /// Writes atomically, tensor by tensor (no second copy of the whole file in memory).
    public func write(to path: String) throws(ParityError) {
        let writer = try AtomicFileWriter(destination: path)
        try writer.write(GGUFWriter.header(metadata: finalMetadata, tensors: tensors.map { ($0.name, $0.type, $0.ne, $0.bytes.count) }, alignment: alignment))
        for t in tensors {
            try writer.write(t.bytes)
            let pad = (alignment - t.bytes.count % alignment) % alignment
            if pad > 0 { try writer.write([UInt8](repeating: 0, count: pad)) }
        }
        try writer.commit()
    }

    public static func appendString(_ out: inout [UInt8], _ s: String) {
        ElementCodec.appendLE(&out, UInt64(s.utf8.count))
        out += Array(s.utf8)
    }

    public static func append(_ out: inout [UInt8], _ value: GGUFValue) {
        switch value {
        case let .uint8(v): out.append(v)
        case let .int8(v): out.append(UInt8(bitPattern: v))
        case let .uint16(v): ElementCodec.appendLE(&out, v)
        case let .int16(v): ElementCodec.appendLE(&out, v)
        case let .uint32(v): ElementCodec.appendLE(&out, v)
        case let .int32(v): ElementCodec.appendLE(&out, v)
        case let .uint64(v): ElementCodec.appendLE(&out, v)
        case let .int64(v): ElementCodec.appendLE(&out, v)
        case let .float32(v): ElementCodec.appendLE(&out, v.bitPattern)
        case let .float64(v): ElementCodec.appendLE(&out, v.bitPattern)
        case let .bool(v): out.append(v ? 1 : 0)
        case let .string(s): appendString(&out, s)
        case let .array(type, items):
            ElementCodec.appendLE(&out, type.rawValue)
            ElementCodec.appendLE(&out, UInt64(items.count))
            for item in items { append(&out, item) }
        }
    }
}
