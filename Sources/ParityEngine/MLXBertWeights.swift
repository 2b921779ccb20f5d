import ParityCore
import ParityFormats

/// A BERT directory read the way mlx-embeddings 0.1.0 reads it in `mlx_embeddings.load` → `load_model`
/// (utils.py) with `model_type: bert` (models/bert.py):
/// 1. `config.json` → `ModelArgs.from_dict`: required `num_hidden_layers`, `num_attention_heads`, `hidden_size`,
///    `intermediate_size`, `max_position_embeddings`; defaults `type_vocab_size` 2, `layer_norm_eps` 1e-12,
///    `vocab_size` 30522. Every other key is ignored — `hidden_act` too: the model always builds `nn.GELU()` (the
///    erf form), and always returns mean-pooled, L2-normalised `text_embeds`.
/// 2. Weights: every `model*.safetensors` merged into one dict (the index is never read). mlx-embeddings also globs
///    sub-folders (prefixing their names, which its strict load then refuses); Parity reads the top level.
/// 3. `Model.sanitize`: drops every name containing `position_ids`.
/// 4. Quantization, when config.json has `quantization` (a legacy `quantization_config` Parity refuses as
///    unsupported): a module named in the dict takes that entry; any other nn.Linear / nn.Embedding whose weight
///    has a multiple of 64 elements is quantized iff `<module>.scales` is in the weights, with the global
///    `group_size`, `bits`, `mode` (not inferred from shapes, unlike mlx-lm).
/// 5. `load_weights(strict=True)`: extra, missing, or differently shaped parameters are refused — the pooler's
///    `pooler.dense.*` are parameters of the Model, so a directory without them is refused although the sentence
///    embedding never reads them. Dtypes are not checked.
/// A well-formed directory the runtime refuses is read with its refusal in ``loading``; `matrix`/`vector` then throw it.
public struct MLXBertWeights: BertWeightSource {
    public let path: String
    public let hyperparameters: BertHyperparameters
    public let loading: StrictLoadingOutcome
    /// Each quantized module (`encoder.layer.0.attention.self.query`, `embeddings.word_embeddings`) with its parameters.
    public let quantizedModules: [String: MLXQuantParameters]
    public let notes: [String]
    let weights: [String: RawTensor]

    public static func load(directory: String) throws(ParityError) -> MLXBertWeights {
        let configPath = directory + "/config.json"
        let config = try MLXModelFiles.readJSON(configPath)
        guard config.objectValue != nil else { throw .malformed(file: configPath, at: "offset 0", reason: "config.json must be a JSON object") }
        guard let modelType = config["model_type"]?.stringValue else {
            throw .malformed(file: configPath, at: "key \"model_type\"", reason: "missing or not a string (mlx-embeddings picks the model class by it)")
        }
        guard modelType.replacingOccurrences(of: "-", with: "_") == "bert" else {
            throw .unsupported(file: configPath, reason: "model_type '\(modelType)' is not 'bert' (mlx-embeddings' models/bert.py)")
        }
        func required(_ key: String) throws(ParityError) -> Int {
            guard let value = config[key] else { throw .malformed(file: configPath, at: "key \"\(key)\"", reason: "missing (mlx-embeddings' BERT ModelArgs requires it)") }
            guard let n = value.intValue, n > 0 else { throw .malformed(file: configPath, at: "key \"\(key)\"", reason: "must be a positive integer") }
            return n
        }
        func optional(_ key: String, _ fallback: Int) throws(ParityError) -> Int {
            guard config[key] != nil else { return fallback }
            return try required(key)
        }
        let hidden = try required("hidden_size"), layers = try required("num_hidden_layers"), heads = try required("num_attention_heads")
        let inter = try required("intermediate_size"), positions = try required("max_position_embeddings")
        let types = try optional("type_vocab_size", 2), vocab = try optional("vocab_size", 30522)
        guard hidden % heads == 0 else { throw .malformed(file: configPath, at: "key \"num_attention_heads\"", reason: "\(heads) does not divide hidden_size \(hidden)") }
        var eps = 1e-12
        if let value = config["layer_norm_eps"] {
            guard let d = value.doubleValue, d.isFinite, d >= 0 else { throw .malformed(file: configPath, at: "key \"layer_norm_eps\"", reason: "must be a finite number") }
            eps = d
        }
        var notes: [String] = []
        if let act = config["hidden_act"]?.stringValue, act != "gelu" {
            notes.append("config.json hidden_act is '\(act)': mlx-embeddings' BERT ignores it and computes nn.GELU() (erf)")
        }
        // nn.LayerNorm passes eps to mx.fast.layer_norm as a C++ float.
        let hyper = BertHyperparameters(vocabularySize: vocab, hiddenSize: hidden, layerCount: layers, headCount: heads, intermediateSize: inter,
                                        maxPositions: positions, tokenTypeCount: types, layerNormEpsilon: Double(Float(eps)),
                                        activation: .geluErf, pooling: .mean, normalizesEmbedding: true)

        let (stored, fileNotes) = try MLXModelFiles.readWeightFiles(directory: directory)
        notes += fileNotes
        var weights: [String: RawTensor] = [:]
        for t in stored where !t.name.contains("position_ids") { weights[t.name] = t }
        if stored.count != weights.count { notes.append("sanitize dropped \(stored.count - weights.count) position_ids tensor(s)") }

        let global: MLXQuantParameters?
        var perModule: [String: JSONValue] = [:]
        if let q = config["quantization"], q != .null {
            guard let members = q.objectValue else { throw .malformed(file: configPath, at: "key \"quantization\"", reason: "must be an object") }
            guard let g = q["group_size"]?.intValue, let b = q["bits"]?.intValue else {
                throw .malformed(file: configPath, at: "key \"quantization\"", reason: "needs integer group_size and bits (nn.quantize reads them)")
            }
            let mode = q["mode"]?.stringValue ?? "affine"
            global = MLXQuantParameters(mode: mode, groupSize: g, bits: b)
            for (key, value) in members where !["group_size", "bits", "mode"].contains(key) { perModule[key] = value }
        } else if let legacy = config["quantization_config"], legacy != .null {
            throw .unsupported(file: configPath, reason: "quantization_config without quantization (method \(legacy["quant_method"]?.stringValue ?? "?")): Parity reads mlx-embeddings' own `quantization` key only")
        } else {
            global = nil
        }

        var expected: [StrictLoadingRule.Parameter] = []
        var decided: [String: MLXQuantParameters] = [:]
        var refusals: [String] = []
        for module in modules(hyper) {
            var q: MLXQuantParameters?
            if let global {
                if let entry = perModule[module.name] {
                    if entry == .bool(false) { q = nil } else if entry == .bool(true) { q = global } else if entry.objectValue != nil {
                        q = MLXQuantParameters(mode: entry["mode"]?.stringValue ?? "affine", groupSize: entry["group_size"]?.intValue ?? global.groupSize,
                                               bits: entry["bits"]?.intValue ?? global.bits)
                    } else {
                        throw .malformed(file: configPath, at: "key \"quantization.\(module.name)\"", reason: "must be true, false or an object")
                    }
                } else if (module.outFeatures * module.inFeatures) % 64 == 0, weights[module.name + ".scales"] != nil {
                    q = global
                }
            }
            let biasShape = module.hasBias ? [module.outFeatures] : nil
            if let q {
                var problem: String?
                do { try MLXQuantization.validate(mode: q.mode, groupSize: q.groupSize, bits: q.bits) } catch { problem = error.description }
                if problem == nil, module.inFeatures % q.groupSize != 0 {
                    problem = "the last dimension \(module.inFeatures) is not a multiple of the group size \(q.groupSize)"
                }
                if let problem {
                    refusals.append("mlx.nn \(module.kind).to_quantized refuses \(directory): \(module.name) as \(q.mode) \(q.bits)-bit group \(q.groupSize): \(problem)")
                    for suffix in ["weight", "scales"] + (q.mode == "affine" ? ["biases"] : []) { expected.append(.init(name: module.name + "." + suffix, shape: nil)) }
                } else {
                    let groups = [module.outFeatures, module.inFeatures / q.groupSize]
                    expected.append(.init(name: module.name + ".weight", shape: [module.outFeatures, module.inFeatures * q.bits / 32]))
                    expected.append(.init(name: module.name + ".scales", shape: groups))
                    if q.mode == "affine" { expected.append(.init(name: module.name + ".biases", shape: groups)) }
                    decided[module.name] = q
                }
            } else {
                expected.append(.init(name: module.name + ".weight", shape: [module.outFeatures, module.inFeatures]))
            }
            if let biasShape { expected.append(.init(name: module.name + ".bias", shape: biasShape)) }
        }
        for norm in ["embeddings.LayerNorm"] + (0..<layers).flatMap({ ["encoder.layer.\($0).attention.output.LayerNorm", "encoder.layer.\($0).output.LayerNorm"] }) {
            expected.append(.init(name: norm + ".weight", shape: [hidden]))
            expected.append(.init(name: norm + ".bias", shape: [hidden]))
        }
        var loading = StrictLoadingRule.mlxStrict.check(file: directory, expected: expected,
                                                        stored: weights.values.map { .init(name: $0.name, shape: $0.shape) })
        if !refusals.isEmpty { loading = StrictLoadingOutcome(rule: loading.rule, refusals: refusals + loading.refusals, warnings: loading.warnings) }
        return MLXBertWeights(path: directory, hyperparameters: hyper, loading: loading, quantizedModules: decided, notes: notes, weights: weights)
    }

    /// The nn.Linear / nn.Embedding modules of mlx-embeddings' BERT Model (the pooler included).
    struct Module { let name: String; let kind: String; let outFeatures: Int; let inFeatures: Int; let hasBias: Bool }

    static func modules(_ h: BertHyperparameters) -> [Module] {
        var out = [Module(name: "embeddings.word_embeddings", kind: "Embedding", outFeatures: h.vocabularySize, inFeatures: h.hiddenSize, hasBias: false),
                   Module(name: "embeddings.position_embeddings", kind: "Embedding", outFeatures: h.maxPositions, inFeatures: h.hiddenSize, hasBias: false),
                   Module(name: "embeddings.token_type_embeddings", kind: "Embedding", outFeatures: h.tokenTypeCount, inFeatures: h.hiddenSize, hasBias: false)]
        for i in 0..<h.layerCount {
            let p = "encoder.layer.\(i)."
            for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                out.append(Module(name: p + name, kind: "Linear", outFeatures: h.hiddenSize, inFeatures: h.hiddenSize, hasBias: true))
            }
            out.append(Module(name: p + "intermediate.dense", kind: "Linear", outFeatures: h.intermediateSize, inFeatures: h.hiddenSize, hasBias: true))
            out.append(Module(name: p + "output.dense", kind: "Linear", outFeatures: h.hiddenSize, inFeatures: h.intermediateSize, hasBias: true))
        }
        out.append(Module(name: "pooler.dense", kind: "Linear", outFeatures: h.hiddenSize, inFeatures: h.hiddenSize, hasBias: true))
        return out
    }

    // MARK: BertWeightSource

    public func matrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        guard role.isMatrix else { throw .usage("\(role.rawValue) is a vector: read it with vector(_:layer:)") }
        try requireLoadable()
        let module = String(role.referenceName(layer: layer).dropLast(".weight".count))
        guard let shape = MLXBertWeights.modules(hyperparameters).first(where: { $0.name == module }) else {
            throw .mismatch(file: path, reason: "no module '\(module)' in a BERT of \(hyperparameters.layerCount) layers")
        }
        if let q = quantizedModules[module] {
            guard let weight = weights[module + ".weight"], let scales = weights[module + ".scales"] else {
                throw .mismatch(file: path, reason: "quantized module '\(module)' has no weight or scales")
            }
            guard weight.dtype == .u32 else {
                throw .unsupported(file: path, reason: "'\(module).weight' is \(weight.dtype.rawValue); mx.quantized_matmul needs uint32 packed words")
            }
            return StoredMatrix(rows: shape.outFeatures, columns: shape.inFeatures,
                                storage: .mlxQuantized(weight: weight, scales: scales, biases: q.mode == "affine" ? weights[module + ".biases"] : nil,
                                                       mode: q.mode, groupSize: q.groupSize, bits: q.bits),
                                fileName: module)
        }
        let name = module + ".weight"
        let t = try tensor(name)
        return StoredMatrix(rows: shape.outFeatures, columns: shape.inFeatures, storage: .dense(values: try floats(t), dtype: t.dtype), fileName: name)
    }

    public func vector(_ role: BertTensorRole, layer: Int) throws(ParityError) -> [Float] {
        guard !role.isMatrix else { throw .usage("\(role.rawValue) is a matrix: read it with matrix(_:layer:)") }
        try requireLoadable()
        return try floats(try tensor(role.referenceName(layer: layer)))
    }

    /// The float dtype the runtime's activations start in: the word-embedding table's (its scales' when quantized).
    public var activationType: MLXFloatType {
        guard let t = weights["embeddings.word_embeddings.scales"] ?? weights["embeddings.word_embeddings.weight"] else { return .f32 }
        return MLXFloatType(t.dtype) ?? .f32
    }

    /// A parameter as stored (after `sanitize`).
    public func storedTensor(named name: String) -> RawTensor? { weights[name] }
    public var storedTensorNames: [String] { weights.keys.sorted() }

    func requireLoadable() throws(ParityError) {
        guard !loading.refused else { throw .mismatch(file: path, reason: loading.refusals.joined(separator: "; ")) }
    }

    func tensor(_ name: String) throws(ParityError) -> RawTensor {
        guard let t = weights[name] else { throw .mismatch(file: path, reason: "no parameter '\(name)'") }
        return t
    }

    func floats(_ t: RawTensor) throws(ParityError) -> [Float] {
        guard t.dtype.isFloatingPoint, let values = t.floats() else {
            throw .unsupported(file: path, reason: "parameter '\(t.name)' has dtype \(t.dtype.rawValue), not a float type")
        }
        return values
    }
}
