import Foundation

/// The conversion under test: a PyTorch float32 safetensors checkpoint rewritten with every tensor in float16
/// (round to nearest even, Swift's `Float16(_:)`), names and shapes unchanged. It stands for the converter a user
/// gates in CI; it knows nothing about Parity.
public enum F16Conversion {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// A tensor's place in a safetensors file.
    public struct Entry {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        public let begin: Int
        public let end: Int
    }

    /// Reads the header: (entries in data order, offset of the data section).
    public static func header(_ data: Data, file: String) throws -> ([Entry], Int) {
        guard data.count >= 8 else { throw Failure(description: "\(file): shorter than a safetensors header") }
        let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard length > 0, 8 + length <= data.count,
              let json = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + length)) as? [String: Any] else {
            throw Failure(description: "\(file): bad safetensors header")
        }
        var entries: [Entry] = []
        for (name, value) in json where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String, let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw Failure(description: "\(file): bad entry for \(name)")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1]))
        }
        return (entries.sorted { $0.begin < $1.begin }, 8 + length)
    }

    /// Converts `input` (float32 tensors only) to float16 at `output`.
    public static func convert(_ input: URL, to output: URL) throws {
        let data = try Data(contentsOf: input)
        let (entries, start) = try header(data, file: input.path)
        var body = Data()
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        for entry in entries.sorted(by: { $0.name < $1.name }) {
            guard entry.dtype == "F32" else { throw Failure(description: "\(input.path): \(entry.name) is \(entry.dtype), not F32") }
            let begin = body.count
            let floats = data.subdata(in: start + entry.begin..<start + entry.end).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            for value in floats {
                withUnsafeBytes(of: Float16(value).bitPattern.littleEndian) { body.append(contentsOf: $0) }
            }
            header[entry.name] = ["dtype": "F16", "shape": entry.shape, "data_offsets": [begin, body.count]]
        }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        headerBytes.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8))
        var file = Data()
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(headerBytes)
        file.append(body)
        try file.write(to: output, options: .atomic)
    }
}
