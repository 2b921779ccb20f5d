import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Everything verification needs to know about one weight format: how to convert to it, how to recognise a
/// file of it, and which runtime semantics run it. Converters and engines stay independent: a format's
/// converter writes with its own tables, its engine reads the way that format's runtime reads.
public protocol FormatSupport: Sendable {
    var name: String { get }
    /// Variants `verify` covers by default (dtypes, quantization types).
    var variants: [String] { get }
    /// Writes `model` in this format; returns one line per tensor describing what was done.
    func convert(_ model: ReferenceModel, variant: String, to path: String) throws -> [String]
    /// Whether the file looks like this format (by content, not by extension).
    func recognizes(_ path: String) -> Bool
    /// Opens a file of this format as the runtime would, and tells which variant it is.
    func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: String)
}

public enum FormatRegistry {
    public static let all: [FormatSupport] = [SafetensorsSupport()]

    public static func named(_ name: String) throws(ParityError) -> FormatSupport {
        guard let format = all.first(where: { $0.name == name }) else {
            throw .usage("unknown format \"\(name)\"; known: \(all.map(\.name).joined(separator: ", "))")
        }
        return format
    }

    public static func detect(_ path: String) throws(ParityError) -> FormatSupport {
        guard FileManager.default.fileExists(atPath: path) else { throw .notFound(path: path, what: "converted file") }
        guard let format = all.first(where: { $0.recognizes(path) }) else {
            throw .unsupported(file: path, reason: "not a format Parity reads (\(all.map(\.name).joined(separator: ", ")))")
        }
        return format
    }
}

public struct SafetensorsSupport: FormatSupport {
    public init() {}
    public var name: String { "safetensors" }
    public var variants: [String] { ["f32", "f16", "bf16"] }

    public func convert(_ model: ReferenceModel, variant: String, to path: String) throws -> [String] {
        try SafetensorsConverter.convert(model, dtype: variant, to: path)
    }

    public func recognizes(_ path: String) -> Bool {
        // An 8-byte little-endian length followed by '{'.
        guard let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 9), head.count == 9 else { return false }
        try? handle.close()
        return head[8] == UInt8(ascii: "{")
    }

    public func open(_ path: String, for model: ReferenceModel) throws -> (engine: FormatEngine, variant: String) {
        let file = try SafetensorsFile(path: path)
        let floatTypes = Set(file.entries.filter { $0.dtype.isFloatingPoint }.map(\.dtype))
        let variant = floatTypes.count == 1 ? SafetensorsConverter.dtypes.first { $0.value == floatTypes.first! }?.key ?? floatTypes.first!.rawValue.lowercased()
            : "mixed(" + floatTypes.map(\.rawValue).sorted().joined(separator: ",") + ")"
        return (PyTorchEngine(weights: file), variant)
    }
}
