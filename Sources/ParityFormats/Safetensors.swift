import Foundation
import ParityCore

/// One tensor entry of a safetensors header.
public struct SafetensorsEntry: Equatable, Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range relative to the start of the data buffer (the spec's `data_offsets`).
    public let dataRange: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file, validated on open as the reference implementation (safetensors-rs) validates it:
/// 8-byte little-endian header size no larger than 100 MB and inside the file; a JSON object header
/// (strict UTF-8, no duplicate keys); `__metadata__` null (no metadata) or string→string only; every entry with a known dtype,
/// a non-negative shape and offsets whose length matches shape × dtype size; entries that, sorted by offset,
/// tile the data buffer exactly from 0 to its end (no holes, no overlaps, nothing trailing).
/// The file is memory-mapped; tensor bytes are read on demand.
public struct SafetensorsFile: Sendable {
    /// safetensors-rs `MAX_HEADER_SIZE`.
    public static let maxHeaderSize = 100_000_000

    public let path: String
    public let metadata: [(key: String, value: String)]
    /// Entries in header order.
    public let entries: [SafetensorsEntry]
    /// Absolute file offset of the data buffer (8 + header size).
    public let dataStart: Int
    /// The raw header length as written, including any space padding.
    public let headerSize: Int
    private let file: MappedFile
    /// For a sharded checkpoint read as one (`SafetensorsCheckpoint`): each tensor's own shard. Every entry's
    /// `dataRange` is relative to its shard's data buffer; nil for a single file.
    private let shardOfTensor: [String: SafetensorsFile]?
    /// The shard files of a merged view, in file-name order; `[path]` for a single file.
    public let files: [String]

    public init(path: String) throws(ParityError) {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws(ParityError) {
        self.file = file
        self.path = file.path
        shardOfTensor = nil
        files = [file.path]
        let path = file.path
        guard file.count >= 8 else {
            throw .malformed(file: path, at: "offset 0", reason: "file is \(file.count) bytes; a safetensors file starts with an 8-byte header size")
        }
        let declared: UInt64 = file.data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared <= UInt64(SafetensorsFile.maxHeaderSize) else {
            throw .malformed(file: path, at: "offset 0", reason: "header size \(declared) exceeds the 100 MB limit")
        }
        let n = Int(declared)
        guard 8 + n <= file.count else {
            throw .malformed(file: path, at: "offset 0", reason: "header size \(n) runs past the end of the \(file.count)-byte file")
        }
        headerSize = n
        dataStart = 8 + n
        let header: JSONValue
        do {
            header = try file.data.withUnsafeBytes { all -> JSONValue in
                let bytes = UnsafeRawBufferPointer(rebasing: all[8..<(8 + n)])
                guard bytes.first == UInt8(ascii: "{") else {
                    throw JSONParser.Failure(offset: 0, reason: "header must start with '{'")
                }
                return try JSONParser.parse(bytes)
            }
        } catch let failure as JSONParser.Failure {
            throw .malformed(file: path, at: "offset \(8 + failure.offset)", reason: "header JSON: \(failure.reason)")
        } catch {
            throw .malformed(file: path, at: "offset 8", reason: "header JSON: \(error)")
        }
        guard let members = header.objectValue else {
            throw .malformed(file: path, at: "offset 8", reason: "header is not a JSON object")
        }
        var metadata: [(key: String, value: String)] = []
        var entries: [SafetensorsEntry] = []
        for (name, value) in members {
            if name == "__metadata__" {
                // safetensors-rs declares the metadata `Option<HashMap<String, String>>`: JSON null means "no
                // metadata" (mx.save_safetensors writes null when given none), anything else must be a map.
                if value == .null { continue }
                guard let pairs = value.objectValue else {
                    throw .malformed(file: path, at: "key \"__metadata__\"", reason: "must be null or an object of strings")
                }
                for (key, item) in pairs {
                    guard let text = item.stringValue else {
                        throw .malformed(file: path, at: "key \"__metadata__.\(key)\"", reason: "metadata values must be strings")
                    }
                    metadata.append((key, text))
                }
                continue
            }
            entries.append(try SafetensorsFile.parseEntry(name: name, value: value, path: path))
        }
        // The entries, in offset order, must tile the buffer exactly.
        let bufferLength = file.count - dataStart
        var expectedStart = 0
        for entry in entries.sorted(by: { ($0.dataRange.lowerBound, $0.dataRange.upperBound) < ($1.dataRange.lowerBound, $1.dataRange.upperBound) }) {
            guard entry.dataRange.lowerBound == expectedStart else {
                let kind = entry.dataRange.lowerBound > expectedStart ? "a hole" : "an overlap"
                throw .malformed(file: path, at: "key \"\(entry.name)\"",
                                 reason: "data_offsets start at \(entry.dataRange.lowerBound) but the previous tensor ends at \(expectedStart) (\(kind))")
            }
            expectedStart = entry.dataRange.upperBound
        }
        guard expectedStart == bufferLength else {
            throw .malformed(file: path, at: "offset \(dataStart + min(expectedStart, bufferLength))",
                             reason: "tensors cover \(expectedStart) bytes of data but the file holds \(bufferLength) after the header")
        }
        self.metadata = metadata
        self.entries = entries
    }

    private static func parseEntry(name: String, value: JSONValue, path: String) throws(ParityError) -> SafetensorsEntry {
        let at = "key \"\(name)\""
        guard value.objectValue != nil else { throw .malformed(file: path, at: at, reason: "tensor entry is not an object") }
        guard let dtypeName = value["dtype"]?.stringValue else { throw .malformed(file: path, at: at, reason: "missing string field \"dtype\"") }
        guard let dtype = DType(rawValue: dtypeName) else { throw .malformed(file: path, at: at, reason: "unknown dtype \"\(dtypeName)\"") }
        guard let dims = value["shape"]?.arrayValue else { throw .malformed(file: path, at: at, reason: "missing array field \"shape\"") }
        var shape: [Int] = []
        var elements = 1
        for dim in dims {
            guard let d = dim.uint64Value, d <= UInt64(Int.max) else {
                throw .malformed(file: path, at: at, reason: "shape entries must be non-negative integers, got \(dim.serialized())")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
            guard !overflow else { throw .malformed(file: path, at: at, reason: "shape \(dims.map { $0.serialized() }) overflows the element count") }
            elements = product
            shape.append(Int(d))
        }
        guard let offsets = value["data_offsets"]?.arrayValue, offsets.count == 2,
              let begin = offsets[0].uint64Value, let end = offsets[1].uint64Value,
              begin <= UInt64(Int.max), end <= UInt64(Int.max) else {
            throw .malformed(file: path, at: at, reason: "\"data_offsets\" must be two non-negative integers")
        }
        guard begin <= end else { throw .malformed(file: path, at: at, reason: "data_offsets [\(begin), \(end)] end before they begin") }
        guard let bytes = dtype.byteCount(elements: elements) else {
            throw .malformed(file: path, at: at, reason: "\(elements) elements of \(dtype.rawValue) do not end on a byte boundary")
        }
        guard end - begin == UInt64(bytes) else {
            throw .malformed(file: path, at: at, reason: "data_offsets span \(end - begin) bytes but shape \(shape) of \(dtype.rawValue) needs \(bytes)")
        }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, dataRange: Int(begin)..<Int(end))
    }

    /// One view of several shards (already validated each on its own): `path` names what joined them (the
    /// index), `entries` are every shard's in shard order, and each tensor reads from its own shard.
    /// `dataStart` and `headerSize` are 0: a merged view has no single header.
    public init(merging shards: [SafetensorsFile], path: String) {
        precondition(!shards.isEmpty, "a merged view needs at least one shard")
        file = shards[0].file
        self.path = path
        metadata = []
        entries = shards.flatMap(\.entries)
        dataStart = 0
        headerSize = 0
        var owner: [String: SafetensorsFile] = [:]
        for shard in shards { for entry in shard.entries { owner[entry.name] = shard } }
        shardOfTensor = owner
        files = shards.map(\.path)
    }

    public func entry(named name: String) -> SafetensorsEntry? { entries.first { $0.name == name } }

    /// The file a tensor's bytes are in (its shard's path for a merged view).
    public func file(of entry: SafetensorsEntry) -> String { shardOfTensor?[entry.name]?.path ?? path }

    /// The raw bytes of one tensor.
    public func rawBytes(_ entry: SafetensorsEntry) throws -> [UInt8] {
        if let shard = shardOfTensor?[entry.name] { return try shard.rawBytes(entry) }
        return try file.bytes((dataStart + entry.dataRange.lowerBound)..<(dataStart + entry.dataRange.upperBound))
    }

    /// One tensor's values as float32 (exact for every float type narrower than f32).
    public func tensor(named name: String) throws -> Tensor {
        guard let entry = entry(named: name) else { throw ParityError.notFound(path: path, what: "tensor \"\(name)\"") }
        return try tensor(entry)
    }

    public func tensor(_ entry: SafetensorsEntry) throws -> Tensor {
        if let shard = shardOfTensor?[entry.name] { return try shard.tensor(entry) }
        let range = (dataStart + entry.dataRange.lowerBound)..<(dataStart + entry.dataRange.upperBound)
        let values = try file.withBytes(range) { ElementCodec.decode($0, dtype: entry.dtype, count: entry.elementCount) }
        guard let values else {
            throw ParityError.unsupported(file: path, reason: "tensor \"\(entry.name)\" has dtype \(entry.dtype.rawValue), which has no real value")
        }
        return Tensor(shape: entry.shape, data: values)
    }
}

/// Builds a safetensors file. By default tensors are laid out as safetensors-rs lays them out (sorted by dtype
/// size, largest first, then by name, so every tensor starts aligned to its element size), with the header
/// padded with spaces to a multiple of 8. `mlxLayout` writes as `mx.save_safetensors` does instead: no header
/// padding and every JSON object's keys sorted (nlohmann's std::map), so each entry reads
/// `data_offsets, dtype, shape`. MLX 0.32 lays the data out in its hash map's order, which is not reproducible;
/// here the data is in name order. Both load the same in MLX (checked by tools/mlx/check_parity_outputs.py).
public struct SafetensorsWriter {
    public struct Item { public let name: String; public let dtype: DType; public let shape: [Int]; public let bytes: [UInt8] }
    public private(set) var items: [Item] = []
    public var metadata: [(key: String, value: String)] = []
    public var mlxLayout = false

    public init(metadata: [(key: String, value: String)] = []) { self.metadata = metadata }

    public mutating func add(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) throws(ParityError) {
        guard name != "__metadata__" else { throw .usage("\"__metadata__\" cannot be a tensor name") }
        guard !items.contains(where: { $0.name == name }) else { throw .usage("duplicate tensor name \"\(name)\"") }
        guard let needed = dtype.byteCount(elements: shape.reduce(1, *)), needed == bytes.count else {
            throw .usage("tensor \"\(name)\": \(bytes.count) bytes do not hold shape \(shape) of \(dtype.rawValue)")
        }
        items.append(Item(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    /// Adds a float tensor, converting to `dtype` (f32, f16, bf16 or f64) with round-to-nearest-even.
    public mutating func add(name: String, tensor: Tensor, as dtype: DType = .f32) throws(ParityError) {
        guard let bytes = ElementCodec.encode(tensor.data, as: dtype) else {
            throw .unsupported(file: name, reason: "cannot write float data as \(dtype.rawValue)")
        }
        try add(name: name, dtype: dtype, shape: tensor.shape, bytes: bytes)
    }

    /// The complete file contents.
    public func serialized() -> [UInt8] {
        let ordered = mlxLayout ? items.sorted { $0.name < $1.name } : items.sorted { ($0.dtype.bits, $1.name) > ($1.dtype.bits, $0.name) }
        var members: [(key: String, value: JSONValue)] = []
        if !metadata.isEmpty {
            members.append(("__metadata__", .object(metadata.map { ($0.key, JSONValue.string($0.value)) })))
        }
        var offset = 0
        for item in ordered {
            let dtype: (key: String, value: JSONValue) = ("dtype", .string(item.dtype.rawValue))
            let shape: (key: String, value: JSONValue) = ("shape", .array(item.shape.map { JSONValue.number($0) }))
            let offsets: (key: String, value: JSONValue) = ("data_offsets", .array([.number(offset), .number(offset + item.bytes.count)]))
            members.append((item.name, .object(mlxLayout ? [offsets, dtype, shape] : [dtype, shape, offsets])))
            offset += item.bytes.count
        }
        if mlxLayout { members.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) } }
        var header = Array(JSONValue.object(members).serialized().utf8)
        if !mlxLayout { while header.count % 8 != 0 { header.append(0x20) } }
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        ElementCodec.appendLE(&out, UInt64(header.count))
        out += header
        for item in ordered { out += item.bytes }
        return out
    }

    /// Writes atomically (temporary file + rename).
    public func write(to path: String) throws(ParityError) {
        try AtomicFileWriter.write(serialized(), to: path)
    }
}
