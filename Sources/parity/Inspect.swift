import ArgumentParser
import Foundation
import ParityCore
import ParityFormats
import ParityVerify

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the header, metadata and tensors of a GGUF, safetensors, MLX (directory or .npz) or golden .h5 file.")

    @Argument(help: "The file to inspect (format detected from content).")
    var file: String

    func run() throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), isDirectory.boolValue {
            return try inspectMLX()
        }
        let head = try MappedFile(path: file)
        if head.count >= 2, try head.bytes(0..<2) == [0x50, 0x4B] { return try inspectMLX() }
        let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        if head.count >= 4, try head.bytes(0..<4) == GGUFFile.magic || head.bytes(0..<4) == Array("FUGG".utf8) {
            try inspectGGUF()
        } else if head.count >= 8, try head.bytes(0..<8) == hdf5Signature {
            try inspectHDF5()
        } else if head.count >= 9, try head.bytes(8..<9) == [UInt8(ascii: "{")] {
            try inspectSafetensors()
        } else {
            throw ParityError.unsupported(file: file, reason: "not a safetensors or HDF5 file (unrecognised first bytes)")
        }
    }

    func inspectSafetensors() throws {
        let st = try SafetensorsFile(path: file)
        print("safetensors: \(file)")
        print("  header: \(st.headerSize) bytes, data starts at \(st.dataStart), \(st.entries.count) tensors")
        for (key, value) in st.metadata { print("  metadata \(key) = \(value)") }
        print("  " + ["name", "dtype", "shape", "offsets", "bytes", "min", "max", "mean"].joined(separator: "\t"))
        for entry in st.entries.sorted(by: { $0.dataRange.lowerBound < $1.dataRange.lowerBound }) {
            var stats = ["-", "-", "-"]
            if entry.dtype.isRealValued, let t = try? st.tensor(entry), !t.data.isEmpty {
                let mean = t.data.reduce(0.0) { $0 + Double($1) } / Double(t.count)
                stats = [formatNumber(Double(t.data.min()!)), formatNumber(Double(t.data.max()!)), formatNumber(mean)]
            }
            print("  " + ([entry.name, entry.dtype.rawValue, "\(entry.shape)", "[\(entry.dataRange.lowerBound), \(entry.dataRange.upperBound))",
                           "\(entry.dataRange.count)"] + stats).joined(separator: "\t"))
        }
    }

    /// Laid out like gguf-py's gguf-dump: the header fields as pseudo-keys, then metadata, then tensors.
    func inspectGGUF() throws {
        let gguf = try GGUFFile(path: file)
        print("GGUF: \(file)")
        print("* little-endian GGUF v\(gguf.version), alignment \(gguf.alignment), data at offset \(gguf.dataStart)")
        print("* Dumping \(gguf.metadata.count + 3) key/value pair(s)")
        var rows: [(String, String, String)] = [("UINT32", "1", "GGUF.version = \(gguf.version)"),
                                                ("UINT64", "1", "GGUF.tensor_count = \(gguf.tensors.count)"),
                                                ("UINT64", "1", "GGUF.kv_count = \(gguf.metadata.count)")]
        for (key, value) in gguf.metadata {
            var count = "1", type = value.type.name
            if case let .array(elementType, items) = value { count = "\(items.count)"; type = "[\(elementType.name)]" }
            rows.append((type, count, "\(key) = \(value)"))
        }
        for (i, row) in rows.enumerated() {
            print(String(repeating: " ", count: max(0, 6 - "\(i + 1)".count)) + "\(i + 1): " + row.0.padding(toLength: 10, withPad: " ", startingAt: 0)
                  + " | " + String(repeating: " ", count: max(0, 8 - row.1.count)) + row.1 + " | " + row.2)
        }
        print("* Dumping \(gguf.tensors.count) tensor(s)")
        for (i, t) in gguf.tensors.enumerated() {
            let ne = (t.ne + [Int](repeating: 1, count: max(0, 4 - t.ne.count))).map { String(repeating: " ", count: max(0, 5 - "\($0)".count)) + "\($0)" }
            print(String(repeating: " ", count: max(0, 6 - "\(i + 1)".count)) + "\(i + 1): " + String(repeating: " ", count: max(0, 10 - "\(t.elementCount)".count))
                  + "\(t.elementCount) | " + ne.joined(separator: ", ") + " | " + t.type.name.uppercased().padding(toLength: 7, withPad: " ", startingAt: 0)
                  + " | \(t.name)  (offset \(gguf.dataStart + t.offset), \(t.byteCount) bytes)")
        }
    }

    /// An MLX directory (config.json + safetensors shards) or an .npz archive.
    func inspectMLX() throws {
        let files = try MLXModelFiles.load(path: file)
        print("MLX \(files.isDirectory ? "directory" : "npz"): \(file)")
        if let q = files.quantization { print("  quantization: mode \(q.mode), bits \(q.bits), group size \(q.groupSize)") }
        for (module, entry) in files.overrides.sorted(by: { $0.key < $1.key }) {
            print("  quantization override \(module): " + (entry.map { "mode \($0.mode), bits \($0.bits), group size \($0.groupSize)" } ?? "not quantized"))
        }
        print("  " + ["name", "dtype", "shape", "bytes"].joined(separator: "\t"))
        for t in files.tensors { print("  \(t.name)\t\(t.dtype.rawValue)\t\(t.shape)\t\(t.bytes.count)") }
    }

    /// Read through the isolated HDF5 reader, as goldens always are (HDF5Snapshot).
    func inspectHDF5() throws {
        let h5 = try HDF5Snapshot.read(file)
        print("HDF5: \(file)")
        for name in try h5.attributeNames(of: "/") { print("  @\(name) = \(try h5.attribute(name)!)") }
        func walk(_ group: String, depth: Int) throws {
            for member in try h5.members(of: group) {
                let path = (group == "/" ? "" : group) + "/" + member
                let indent = String(repeating: "  ", count: depth)
                if h5.isDataset(path) {
                    let attrs = try h5.attributeNames(of: path).map { "\($0)=\(try h5.attribute($0, of: path)!)" }
                    print("\(indent)\(path)  \(try h5.shape(of: path))  \(attrs.joined(separator: " "))")
                } else {
                    print("\(indent)\(path)/")
                    try walk(path, depth: depth + 1)
                }
            }
        }
        try walk("/", depth: 1)
    }
}
