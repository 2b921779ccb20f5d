import ArgumentParser
import Foundation
import ParityCore
import ParityFormats
import ParityVerify

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the header, metadata and tensors of a safetensors file or a golden .h5 file.")

    @Argument(help: "The file to inspect (format detected from content).")
    var file: String

    func run() throws {
        let head = try MappedFile(path: file)
        let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
        if head.count >= 8, try head.bytes(0..<8) == hdf5Signature {
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

    func inspectHDF5() throws {
        let h5 = try HDF5File(readingFrom: file)
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
