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
/// (`mx.savez`), or an mlx-lm directory with `config.json` and every `model*.safetensors` (one file or shards;
/// `model.safetensors.index.json` is only compared, never obeyed: mlx-lm does not read it).
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
    /// Each Linear module's quantization once decided against the model's in_features (``resolvingQuantization(linear:)``).
    public private(set) var resolved: [String: MLXQuantParameters?] = [:]
    /// What the reading decided that a report should say: how quantization was inferred, index.json disagreements.
    public private(set) var notes: [String] = []

    public init(path: String, isDirectory: Bool, tensors: [RawTensor], config: JSONValue?, quantization: MLXQuantParameters?,
                overrides: [String: MLXQuantParameters?], notes: [String] = []) {
        self.path = path; self.isDirectory = isDirectory; self.tensors = tensors; self.config = config
        self.quantization = quantization; self.overrides = overrides; self.notes = notes
    }

    public func tensor(_ name: String) -> RawTensor? { tensors.first { $0.name == name } }

    /// The quantization the runtime gives `module` (nil: a plain module). mlx-lm 0.32 (mlx_lm/utils.py
    /// `load_model`) quantizes only when config.json has a "quantization" entry; then a module's own entry decides
    /// (parameters, `true` = the global ones, `false` = plain), and a module without one is quantized iff
    /// `<module>.scales` exists, with parameters read from the shapes (`infer_quant_config`). Weights that
    /// contradict the decision (stray scales, missing scales, other shapes) are left to `load_weights(strict=True)`,
    /// i.e. to the engine's strict-loading rule. A weights-only file (no config.json) is loaded by users into a model
    /// they quantized themselves with `nn.quantize(model, group_size, bits, mode)`: its modules with scales get the
    /// parameters their shapes show. `inFeatures` is the model's; without it (no model at hand) every reading MLX
    /// accepts is tried, and the config's global entry breaks a tie.
    public func quantization(forModule module: String, inFeatures: Int? = nil) throws(ParityError) -> MLXQuantParameters? {
        if let decided = resolved[module] { return decided }
        let hasScales = tensor(module + ".scales") != nil
        if isDirectory {
            guard quantization != nil else { return nil }
            if let entry = overrides[module] { return entry }
        }
        guard hasScales else { return nil }
        return try inferQuantization(module: module, inFeatures: inFeatures).parameters
    }

    /// mlx-lm's `infer_quant_config`: group = in_features / scales columns, bits = packed uint32 columns · 32 /
    /// in_features; float scales ⇒ affine; uint8 scales ⇒ (4, 16) nvfp4, (4, 32) mxfp4, (8, 32) mxfp8. A reading
    /// must divide exactly and be a combination `mx.quantize` accepts; none, or several (no in_features), is refused
    /// naming the tensors (bad input, exit 2).
    func inferQuantization(module: String, inFeatures: Int?) throws(ParityError) -> (parameters: MLXQuantParameters, how: String) {
        guard let weight = tensor(module + ".weight"), let scales = tensor(module + ".scales"),
              let packedCols = weight.shape.last, let groups = scales.shape.last, packedCols > 0, groups > 0 else {
            throw .mismatch(file: path, reason: "'\(module).scales' exists but '\(module).weight' is missing or empty: no MLX quantized module reads it")
        }
        let floatScales = scales.dtype != .u8
        let shapes = "'\(module).weight' \(weight.shape) \(weight.dtype.rawValue), '\(module).scales' \(scales.shape) \(scales.dtype.rawValue)"
        var readings: [MLXQuantParameters] = []
        for mode in MLXQuantMode.allCases where mode.hasBiases == floatScales {
            for bits in mode.allowedBits where (packedCols * 32) % bits == 0 {
                let width = packedCols * 32 / bits
                if let inFeatures, width != inFeatures { continue }
                for group in mode.allowedGroupSizes where width % group == 0 && width / group == groups {
                    readings.append(MLXQuantParameters(mode: mode.rawValue, groupSize: group, bits: bits))
                }
            }
        }
        let against = inFeatures.map { "the model's in_features \($0)" } ?? "any in_features"
        if readings.count > 1, let global = quantization, readings.contains(global) { readings = [global] }
        guard readings.count == 1 else {
            let list = readings.map { "\($0.mode) \($0.bits)-bit group \($0.groupSize)" }.joined(separator: "; ")
            throw .mismatch(file: path, reason: readings.isEmpty
                ? "\(shapes) fit no MLX quantization against \(against) (\(floatScales ? "float scales: affine" : "uint8 scales: mxfp4, mxfp8 or nvfp4"))"
                : "\(shapes) fit several MLX quantizations (\(list)) and nothing says which")
        }
        let q = readings[0]
        let how = "\(module): \(q.mode) \(q.bits)-bit, group \(q.groupSize), inferred from the shapes against \(against) as mlx-lm's "
            + "infer_quant_config does (\(shapes); \(floatScales ? "float scales ⇒ affine" : "uint8 scales ⇒ a floating-point mode"))"
        return (q, how)
    }

    /// Decides every Linear module's quantization against the model's in_features (see
    /// ``quantization(forModule:inFeatures:)``), once, and notes each decision read from shapes.
    public func resolvingQuantization(linear modules: [(name: String, inFeatures: Int)]) throws(ParityError) -> MLXModelFiles {
        var copy = self
        for (module, inFeatures) in modules {
            let q = try quantization(forModule: module, inFeatures: inFeatures)
            copy.resolved[module] = .some(q)
            let viaShapes = tensor(module + ".scales") != nil && (isDirectory ? quantization != nil && overrides[module] == nil : true)
            if q != nil, viaShapes {
                let how = try inferQuantization(module: module, inFeatures: inFeatures).how
                copy.notes.append(isDirectory ? how : how + "; a weights-only file: MLX users load it into a model they quantized with "
                    + "nn.quantize(model, group_size, bits, mode), and these are the parameters its shapes fit")
            }
        }
        return copy
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
        let (tensors, notes) = try readWeightFiles(directory: path)
        let (quantization, overrides) = try parseQuantization(config, path: configPath)
        return MLXModelFiles(path: path, isDirectory: true, tensors: tensors.sorted { $0.name < $1.name }, config: config,
                             quantization: quantization, overrides: overrides, notes: notes)
    }

    /// The weights of a directory as mlx-lm reads them: every `model*.safetensors` (glob), merged into one dict —
    /// `model.safetensors.index.json` is never read, so a stray file's tensors are loaded too (and meet the strict
    /// rule) and a wrong `weight_map` or `metadata.total_size` changes nothing (noted). A name in two files is
    /// kept from whichever the glob lists last, in the file system's unspecified order: identical bytes are
    /// harmless (noted); different bytes make the loaded model depend on that order and are refused (exit 2).
    public static func readWeightFiles(directory: String) throws(ParityError) -> ([RawTensor], [String]) {
        let listing: [String]
        do { listing = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .io(path: directory, reason: "cannot list the directory: \(error)")
        }
        let files = listing.filter { $0.hasPrefix("model") && $0.hasSuffix(".safetensors") }.sorted()
        guard !files.isEmpty else { throw .notFound(path: directory + "/model*.safetensors", what: "MLX weights (mlx-lm globs model*.safetensors)") }
        var byName: [String: (tensor: RawTensor, file: String)] = [:]
        var notes: [String] = []
        for file in files {
            for t in try readWeights(directory + "/" + file) {
                if let earlier = byName[t.name] {
                    guard earlier.tensor.dtype == t.dtype, earlier.tensor.shape == t.shape, earlier.tensor.bytes == t.bytes else {
                        throw .mismatch(file: directory, reason: "tensor '\(t.name)' is in both \(earlier.file) and \(file) with different contents: "
                            + "mlx-lm loads every model*.safetensors into one dict, so which one the model gets depends on the "
                            + "file system's listing order (remove the stale file)")
                    }
                    notes.append("\(t.name) is in both \(earlier.file) and \(file) (identical): mlx-lm loads every model*.safetensors")
                }
                byName[t.name] = (t, file)
            }
        }
        let indexPath = directory + "/model.safetensors.index.json"
        if FileManager.default.fileExists(atPath: indexPath) {
            notes += indexDisagreements(indexPath: indexPath, loaded: byName.mapValues(\.file), bytes: byName.values.reduce(0) { $0 + $1.tensor.bytes.count })
        }
        return (byName.values.map(\.tensor), notes)
    }

    /// Where model.safetensors.index.json disagrees with the files mlx-lm loads. mlx-lm, MLX and transformers'
    /// safetensors loading never check `weight_map` or `metadata.total_size` against the shards, so these are notes.
    static func indexDisagreements(indexPath: String, loaded: [String: String], bytes: Int) -> [String] {
        let index: JSONValue
        do { index = try readJSON(indexPath) } catch {
            return ["\(indexPath) is unreadable (\(error)); mlx-lm never reads it"]
        }
        var notes: [String] = []
        let ignored = "mlx-lm never reads the index (it globs model*.safetensors)"
        if let map = index["weight_map"]?.objectValue {
            for (name, file) in map where loaded[name] != file.stringValue {
                let actual = loaded[name].map { "is in \($0)" } ?? "is in no model*.safetensors"
                notes.append("\(indexPath): weight_map puts \(name) in \(file.stringValue ?? "?"), but it \(actual); \(ignored)")
            }
            let listed = Set(map.map(\.0))
            for name in loaded.keys.sorted() where !listed.contains(name) {
                notes.append("\(indexPath): weight_map does not list \(name) (in \(loaded[name] ?? "?")); \(ignored), so it is loaded")
            }
        }
        if let total = index["metadata"]?["total_size"]?.intValue, total != bytes {
            notes.append("\(indexPath): metadata.total_size is \(total) but the loaded tensors hold \(bytes) bytes; \(ignored)")
        }
        return notes
    }

    public static func readJSON(_ path: String) throws(ParityError) -> JSONValue {
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
