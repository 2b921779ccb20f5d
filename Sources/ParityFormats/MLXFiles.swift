import Foundation
import ParityCore

/// MLX quantization parameters of a module (mlx-lm's `quantization` entry).
public struct MLXQuantParameters: Equatable, Sendable {
    public let mode: String
    public let groupSize: Int
    public let bits: Int
    public init(mode: String, groupSize: Int, bits: Int) { self.mode = mode; self.groupSize = groupSize; self.bits = bits }

    public var json: JSONValue { .object([("group_size", .number(groupSize)), ("bits", .number(bits)), ("mode", .string(mode))]) }
}

/// MLX weights as MLX writes and mlx-lm loads them: a `.safetensors` file (`mx.save_safetensors`), an `.npz`
/// (`mx.savez`), or an mlx-lm directory with `config.json` and `model.safetensors` or shards
/// `model-0000N-of-0000M.safetensors` listed in `model.safetensors.index.json`.
public struct MLXModelFiles: Sendable {
    public let path: String
    public let isDirectory: Bool
    /// In name order.
    public let tensors: [RawTensor]
    public let config: JSONValue?
    /// The global quantization entry of config.json, if any.
    public let quantization: MLXQuantParameters?
    /// Per-module entries of the quantization dict: parameters, or nil where the entry is `false`.
    public let overrides: [String: MLXQuantParameters?]

    public func tensor(_ name: String) -> RawTensor? { tensors.first { $0.name == name } }

    /// mlx-lm's `class_predicate` (mlx_lm/utils.py `load_model`): a module's own entry in the quantization dict
    /// decides first (parameters, `true` = the global ones, `false` = not quantized); otherwise the module is
    /// quantized iff `<module>.scales` is among the weights, with the global parameters. A decision that the
    /// weights contradict is refused the way `load_weights(strict=True)` refuses it (missing or extra scales).
    public func quantization(forModule module: String) throws(ParityError) -> MLXQuantParameters? {
        let hasScales = tensor(module + ".scales") != nil
        if let entry = overrides[module] {
            guard let entry else {
                guard !hasScales else { throw .mismatch(file: path, reason: "config.json says module '\(module)' is not quantized, but '\(module).scales' exists (MLX: parameters not in model)") }
                return nil
            }
            guard hasScales else { throw .mismatch(file: path, reason: "config.json quantizes module '\(module)', but '\(module).scales' is missing (MLX: missing parameters)") }
            return entry
        }
        guard hasScales else { return nil }
        guard let quantization else {
            throw .mismatch(file: path, reason: "'\(module).scales' exists but config.json has no \"quantization\" entry")
        }
        return quantization
    }

    public static func load(path: String) throws(ParityError) -> MLXModelFiles {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw .notFound(path: path, what: "MLX file or directory") }
        if !isDir.boolValue {
            let tensors = try readWeights(path)
            return MLXModelFiles(path: path, isDirectory: false, tensors: tensors, config: nil, quantization: nil, overrides: [:])
        }
        let configPath = path + "/config.json"
        let config = try readJSON(configPath)
        var tensors: [RawTensor] = []
        let indexPath = path + "/model.safetensors.index.json"
        if FileManager.default.fileExists(atPath: indexPath) {
            tensors = try readShards(directory: path, indexPath: indexPath)
        } else {
            let shards = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                .filter { $0.hasPrefix("model") && $0.hasSuffix(".safetensors") }.sorted()
            guard !shards.isEmpty else { throw .notFound(path: path + "/model.safetensors", what: "MLX weights") }
            for shard in shards { tensors += try readWeights(path + "/" + shard) }
        }
        let names = tensors.map(\.name)
        if let duplicate = Dictionary(grouping: names, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw .malformed(file: path, at: "tensor '\(duplicate)'", reason: "appears in more than one weight file")
        }
        let (quantization, overrides) = try parseQuantization(config, path: configPath)
        return MLXModelFiles(path: path, isDirectory: true, tensors: tensors.sorted { $0.name < $1.name }, config: config,
                             quantization: quantization, overrides: overrides)
    }

    static func readJSON(_ path: String) throws(ParityError) -> JSONValue {
        let file = try MappedFile(path: path)
        do { return try JSONParser.parse(Array(file.data)) } catch {
            throw .malformed(file: path, at: "offset \(error.offset)", reason: error.reason)
        }
    }

    /// A `.safetensors` or `.npz` weights file (by content: npz is a zip, "PK").
    static func readWeights(_ path: String) throws(ParityError) -> [RawTensor] {
        let file = try MappedFile(path: path)
        if file.count >= 2, file.data[file.data.startIndex] == 0x50, file.data[file.data.startIndex + 1] == 0x4B {
            return try NPZ.read(path: path)
        }
        let st = try SafetensorsFile(file: file)
        var out: [RawTensor] = []
        for entry in st.entries {
            do { out.append(RawTensor(name: entry.name, dtype: entry.dtype, shape: entry.shape, bytes: try st.rawBytes(entry))) } catch {
                throw .io(path: path, reason: "cannot read tensor '\(entry.name)': \(error)")
            }
        }
        return out
    }

    /// Shards listed by `model.safetensors.index.json`: every shard must exist, hold exactly the tensors the
    /// `weight_map` assigns to it, and `metadata.total_size` (when present) must equal their byte total.
    static func readShards(directory: String, indexPath: String) throws(ParityError) -> [RawTensor] {
        let index = try readJSON(indexPath)
        guard let map = index["weight_map"]?.objectValue else { throw .malformed(file: indexPath, at: "key \"weight_map\"", reason: "missing or not an object") }
        var byShard: [String: Set<String>] = [:]
        for (tensor, shard) in map {
            guard let shard = shard.stringValue, !shard.contains("/"), !shard.hasPrefix(".") else {
                throw .malformed(file: indexPath, at: "key \"weight_map.\(tensor)\"", reason: "must name a file in the same directory")
            }
            byShard[shard, default: []].insert(tensor)
        }
        var tensors: [RawTensor] = []
        for (shard, expected) in byShard.sorted(by: { $0.key < $1.key }) {
            let shardTensors = try readWeights(directory + "/" + shard)
            let actual = Set(shardTensors.map(\.name))
            guard actual == expected else {
                let missing = expected.subtracting(actual).sorted(), extra = actual.subtracting(expected).sorted()
                throw .mismatch(file: directory + "/" + shard, reason: "index.json assigns \(missing.isEmpty ? "" : "missing \(missing) ")\(extra.isEmpty ? "" : "but the shard also holds \(extra)")")
            }
            tensors += shardTensors
        }
        if let total = index["metadata"]?["total_size"]?.intValue {
            let sum = tensors.reduce(0) { $0 + $1.bytes.count }
            guard sum == total else { throw .mismatch(file: indexPath, reason: "metadata.total_size is \(total) but the shards hold \(sum) bytes of tensors") }
        }
        return tensors
    }

    public static func parseQuantization(_ config: JSONValue, path: String) throws(ParityError) -> (MLXQuantParameters?, [String: MLXQuantParameters?]) {
        guard let q = config["quantization"] else { return (nil, [:]) }
        guard let members = q.objectValue else { throw .malformed(file: path, at: "key \"quantization\"", reason: "must be an object") }
        func params(_ v: JSONValue, defaultMode: String, at: String) throws(ParityError) -> MLXQuantParameters {
            guard let g = v["group_size"]?.intValue, let b = v["bits"]?.intValue else {
                throw .malformed(file: path, at: at, reason: "needs integer group_size and bits")
            }
            return MLXQuantParameters(mode: v["mode"]?.stringValue ?? defaultMode, groupSize: g, bits: b)
        }
        let global = try params(q, defaultMode: "affine", at: "key \"quantization\"")
        var overrides: [String: MLXQuantParameters?] = [:]
        for (key, value) in members where !["group_size", "bits", "mode"].contains(key) {
            switch value {
            case .object: overrides[key] = .some(try params(value, defaultMode: global.mode, at: "key \"quantization.\(key)\""))
            case .bool(false): overrides[key] = .some(nil)
            case .bool(true): overrides[key] = .some(global)
            default: throw .malformed(file: path, at: "key \"quantization.\(key)\"", reason: "a per-layer entry must be an object or a boolean")
            }
        }
        return (global, overrides)
    }
}

/// Writes MLX weights: a directory (config.json + model.safetensors, saved as mlx-lm saves them, with
/// metadata {"format": "mlx"}), or just a `.safetensors` / `.npz` file. Each file is written atomically.
public enum MLXWriter {
    public static func write(_ tensors: [RawTensor], config: JSONValue?, to path: String) throws(ParityError) {
        if path.hasSuffix(".npz") {
            try NPZ.write(tensors.sorted { $0.name < $1.name }, to: path)
        } else if path.hasSuffix(".safetensors") {
            try safetensors(tensors).write(to: path)
        } else {
            // The directory appears (or replaces the old one) only when complete: config.json and weights agree.
            do {
                try AtomicFileWriter.writeDirectory(path) { staging in
                    try safetensors(tensors).write(to: staging + "/model.safetensors")
                    if let config { try AtomicFileWriter.write(Array((config.serialized(pretty: true) + "\n").utf8), to: staging + "/config.json") }
                }
            } catch let error as ParityError {
                throw error
            } catch {
                throw .io(path: path, reason: "\(error)")
            }
        }
    }

    static func safetensors(_ tensors: [RawTensor]) throws(ParityError) -> SafetensorsWriter {
        var writer = SafetensorsWriter(metadata: [("format", "mlx")])
        writer.mlxLayout = true
        for t in tensors { try writer.add(name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.bytes) }
        return writer
    }
}
