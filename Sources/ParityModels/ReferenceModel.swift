import Foundation
import ParityCore
import ParityFormats

/// A reference model directory: config.json, the PyTorch weights (safetensors) and the golden activations.
/// Opening one checks that config.json has its declared architecture's structure and agrees with the weights
/// (ReferenceConsistency); `golden()` checks the goldens against both (layers, ops, shapes, `input` attributes,
/// finite values, plausible noise floors). A reference that disagrees with itself is bad input, never a failed conversion.
public struct ReferenceModel: Sendable {
    public let directory: String
    public let config: ModelConfig
    public var name: String { config.name }
    /// The single weights file, or for a sharded checkpoint its model.safetensors.index.json.
    public var weightsPath: String { isSharded ? directory + "/" + SafetensorsCheckpoint.indexFileName : directory + "/" + config.weightsFile }
    /// A transformer checkpoint stored as shards listed by model.safetensors.index.json.
    public var isSharded: Bool { config.isTransformer && SafetensorsCheckpoint.isSharded(directory: directory) }
    /// `directory/golden.h5`, or the bundled golden of a model whose weights live elsewhere (`ExternalModels`).
    public let goldenPath: String

    public init(directory: String, name: String? = nil, goldenPath: String? = nil) throws(ParityError) {
        self.goldenPath = goldenPath ?? directory + "/golden.h5"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .notFound(path: directory, what: "model directory")
        }
        self.directory = directory
        let configPath = directory + "/config.json"
        // A Hugging Face checkpoint's config.json has no name: the model is named after its directory.
        let directoryName = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        config = try ModelConfig.load(path: configPath, name: name ?? directoryName)
        // A transformer checkpoint's weights are found as transformers finds them: model.safetensors, else the
        // shards of model.safetensors.index.json (SafetensorsCheckpoint states what is refused).
        let weights = config.isTransformer ? try SafetensorsCheckpoint.open(directory: directory)
                                           : try SafetensorsFile(path: directory + "/" + config.weightsFile)
        if config.isTransformer {
            try ReferenceConsistency.checkGraphWeights(config, configPath: configPath, weights: weights)
        } else {
            try ReferenceConsistency.checkArchitecture(config, configPath: configPath)
            try ReferenceConsistency.checkWeights(config, configPath: configPath, weights: weights)
        }
    }

    public var configPath: String { directory + "/config.json" }

    /// The reference weights: one file, or every shard in one view (each tensor read from its own shard).
    public func weights() throws(ParityError) -> SafetensorsFile {
        config.isTransformer ? try SafetensorsCheckpoint.open(directory: directory) : try SafetensorsFile(path: weightsPath)
    }

    /// The goldens, after checking that they were recorded from exactly these weights (`weights_sha256`):
    /// a golden made from other weights must not pass or fail anything silently.
    public func golden() throws(ParityError) -> GoldenFile {
        let declared = config.isTransformer ? nil : GoldenFile.DeclaredLayers(names: config.layers.map(\.name), source: configPath)
        let golden = try GoldenFile(path: goldenPath, declaredLayers: declared)
        let regenerate = "Regenerate it with " + (config.isTransformer ? "tools/llama/record_goldens.py \(directory) --prompts FILE --replace"
                                                                        : "tools/regen_goldens.py \(directory) (it shows a diff first)") + "."
        if isSharded {
            // A sharded checkpoint's golden lists every shard it read (`weights_files`); the shards must be exactly those.
            var actual: [String: String] = [:]
            for path in try weights().files {
                actual[String(path.dropFirst(directory.count + 1))] = try FileDigest.sha256(path: path)
            }
            guard let recorded = golden.weightsFiles, recorded == actual else {
                let recordedText = golden.weightsFiles.map { $0.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
                    ?? "model.safetensors \(golden.weightsSHA256 ?? "?")"
                throw .mismatch(file: goldenPath, reason: "stale golden: it was recorded from weights \(recordedText), but the shards of "
                    + "\(weightsPath) are \(actual.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")). \(regenerate)")
            }
        } else {
            let actual = try FileDigest.sha256(path: weightsPath)
            guard actual == golden.weightsSHA256 else {
                throw .mismatch(file: goldenPath, reason: "stale golden: it was recorded from weights with sha256 \(golden.weightsSHA256 ?? "(none: a sharded checkpoint's)"), "
                    + "but \(weightsPath) has sha256 \(actual). \(regenerate)")
            }
        }
        guard golden.model == config.name else {
            throw .mismatch(file: goldenPath, reason: "golden is for model \"\(golden.model)\" but config.json names \"\(config.name)\"")
        }
        if config.isTransformer {
            try ReferenceConsistency.checkGraphGolden(golden, config: config, configPath: configPath)
        } else {
            try ReferenceConsistency.checkGolden(golden, config: config, configPath: configPath)
        }
        return golden
    }
}

/// Finds reference models: a directory path, or the name of a bundled model under `golden/`.
public enum ModelRepository {
    /// The bundled `golden/` directory: `$PARITY_GOLDEN_DIR`, else `./golden`, else the `golden/` of the package
    /// the running executable was built in (`.build/<config>/parity` → `../../golden`).
    public static func bundledDirectory() -> String? {
        if let env = ProcessInfo.processInfo.environment["PARITY_GOLDEN_DIR"] { return env }
        let fm = FileManager.default
        var candidates = [fm.currentDirectoryPath + "/golden"]
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(url.path + "/golden")
            url = url.deletingLastPathComponent()
        }
        return candidates.first { fm.fileExists(atPath: $0 + "/README.md") || fm.fileExists(atPath: $0) }
    }

    /// Names of the bundled models (directories under golden/ holding a config.json), sorted.
    public static func bundledNames() -> [String] {
        guard let dir = bundledDirectory(), let items = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return items.filter { FileManager.default.fileExists(atPath: "\(dir)/\($0)/config.json") }.sorted()
    }

    public static func locate(_ nameOrPath: String) throws(ParityError) -> ReferenceModel {
        let fm = FileManager.default
        if fm.fileExists(atPath: nameOrPath + "/config.json") || nameOrPath.contains("/") {
            return try ReferenceModel(directory: nameOrPath)
        }
        if let external = ExternalModels.known[nameOrPath] { return try external.locate() }
        guard let dir = bundledDirectory(), fm.fileExists(atPath: "\(dir)/\(nameOrPath)/config.json") else {
            let known = bundledNames()
            throw .notFound(path: nameOrPath, what: "model (neither a directory with config.json nor a bundled model; bundled: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        return try ReferenceModel(directory: "\(dir)/\(nameOrPath)")
    }
}
