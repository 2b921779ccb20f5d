import Foundation
import ParityCore
import ParityFormats

/// A Llama directory read the way mlx-lm 0.32.2 reads it in `mlx_lm.load` → `load_model` (mlx_lm/utils.py) with
/// `model_type: llama` (mlx_lm/models/llama.py):
/// 1. `config.json` → `ModelArgs.from_dict`: required `hidden_size`, `num_hidden_layers`, `intermediate_size`,
///    `num_attention_heads`, `rms_norm_eps`, `vocab_size`; defaults `head_dim` = hidden / heads (also when null or
///    0: `args.head_dim or …`), `num_key_value_heads` = heads, `rope_theta` 10000, `rope_traditional` false and —
///    unlike transformers' LlamaConfig — `tie_word_embeddings` **true**.
/// 2. Weights: every `model*.safetensors` merged into one dict (the index is never read).
/// 3. `Model.sanitize`: drops every `*self_attn.rotary_emb.inv_freq`, and `lm_head.weight` when embeddings are tied.
/// 4. Quantization, only when config.json has a non-null `quantization` (else the legacy `quantization_config`
///    with a `quant_method`): a module named in the dict takes that entry (`false` plain, `true` the global
///    parameters, a dict → `to_quantized(**entry)`, whose missing keys default by mode and whose mode defaults to
///    affine); any other Linear / Embedding is quantized iff `<module>.scales` is in the weights, with the
///    parameters `infer_quant_config` reads from the shapes — the global entry is then not consulted at all.
/// 5. `load_weights(strict=True)`: extra, missing, or differently shaped parameters are refused (dtypes are not
///    checked). Parity records that as ``loading`` (a FAIL of the file, not bad input). `attention_bias` /
///    `mlp_bias` true make q/k/v/o_proj / gate/down/up_proj carry a `bias` the strict load requires: a config
///    claiming biases its tensors lack is such a refusal; one whose biases are present loads in mlx-lm but is
///    unsupported here (Parity's Llama engines compute no projection bias).
/// 6. `load_tokenizer` (`mlx_lm.load` only, not `load_model`): the directory needs tokenizer.json or tokenizer.model
///    (see `missingTokenizer`); without them mlx_lm.load raises, recorded in ``loading`` as a refusal like the
///    strict load's when read with `includingTokenizer`.
/// Malformed input (unreadable JSON, a missing required key, a quantization entry mlx-lm cannot use) throws
/// ``ParityError`` naming the file and the key. A well-formed directory that mlx-lm refuses to load is read: its
/// ``loading`` outcome holds the refusal (an engine exposes it as `StrictLoadingEngine.loading`, which the verdict
/// reports as FAIL), and `matrix` / `vector` then throw that refusal, since the runtime computes nothing from it.
public struct MLXLlamaWeights: LlamaWeightSource {
    public let path: String
    public let hyperparameters: LlamaHyperparameters
    public let ropeStyle: RopeStyle
    /// What `load_weights(strict=True)` (and `to_quantized`, for parameters MLX cannot quantize with) says.
    public let loading: StrictLoadingOutcome
    /// Each quantized module (mlx.nn path, e.g. `model.layers.0.self_attn.q_proj`) with its parameters.
    public let quantizedModules: [String: MLXQuantParameters]
    /// How the reading decided, and where config.json disagrees with the tensors while mlx-lm loads them anyway.
    public let notes: [String]
    /// The weights after `sanitize`, by name.
    let weights: [String: RawTensor]

    /// The model types mlx-lm 0.32.2 builds with models/llama.py (`MODEL_REMAPPING` sends the others there).
    public static let llamaModelTypes = ["llama", "mistral", "iquestcoder", "xverse"]

    // MARK: Reading

    /// `includingTokenizer`: refuse, as `mlx_lm.load` does, a directory whose tokenizer cannot be built (step 6);
    /// false reads it as `load_model` does (weights only: what the recorded weight fixtures were loaded with).
    public static func load(directory: String, includingTokenizer: Bool = false) throws(ParityError) -> MLXLlamaWeights {
        let configPath = directory + "/config.json"
        let config = try MLXModelFiles.readJSON(configPath)
        guard config.objectValue != nil else { throw .malformed(file: configPath, at: "offset 0", reason: "config.json must be a JSON object") }
        let args = try LlamaModelArgs(config: config, path: configPath)
        let (stored, fileNotes) = try MLXModelFiles.readWeightFiles(directory: directory)
        var notes = fileNotes
        // Model.sanitize
        var weights: [String: RawTensor] = [:]
        for t in stored where !t.name.contains("self_attn.rotary_emb.inv_freq") { weights[t.name] = t }
        if stored.count != weights.count {
            notes.append("sanitize dropped \(stored.count - weights.count) self_attn.rotary_emb.inv_freq tensor(s) (mlx-lm recomputes RoPE frequencies)")
        }
        if args.tiedEmbeddings, weights.removeValue(forKey: "lm_head.weight") != nil {
            notes.append("tie_word_embeddings is \(args.tiedExplicit ? "true" : "absent (mlx-lm's default: true)"): sanitize dropped lm_head.weight "
                + "and the output is embed_tokens.as_linear")
        }
        let modules = args.quantizableModules
        let plan = try QuantizationPlan(config: config, path: configPath, modules: modules, weights: weights)
        notes += plan.notes
        var expected: [StrictLoadingRule.Parameter] = []
        var quantizationRefusals: [String] = []
        for module in modules {
            if let q = plan.decided[module.name] {
                let check = mlxQuantizeAccepts(q, inFeatures: module.inFeatures)
                if let problem = check {
                    quantizationRefusals.append("mlx.nn \(module.kind).to_quantized refuses \(directory): \(module.name) as \(q.mode) \(q.bits)-bit "
                        + "group \(q.groupSize) (\(plan.origin[module.name] ?? "")): \(problem)")
                    expected.append(.init(name: module.name + ".weight", shape: nil))
                    expected.append(.init(name: module.name + ".scales", shape: nil))
                    if q.mode == "affine" { expected.append(.init(name: module.name + ".biases", shape: nil)) }
                    continue
                }
                let groups = [module.outFeatures, module.inFeatures / q.groupSize]
                expected.append(.init(name: module.name + ".weight", shape: [module.outFeatures, module.inFeatures * q.bits / 32]))
                expected.append(.init(name: module.name + ".scales", shape: groups))
                if q.mode == "affine" { expected.append(.init(name: module.name + ".biases", shape: groups)) }
            } else {
                expected.append(.init(name: module.name + ".weight", shape: [module.outFeatures, module.inFeatures]))
            }
        }
        for name in args.normNames { expected.append(.init(name: name, shape: [args.hyper.hiddenSize])) }
        let biases = args.biasParameters
        expected += biases
        var loading = StrictLoadingRule.mlxStrict.check(file: directory, expected: expected,
                                                        stored: weights.values.map { .init(name: $0.name, shape: $0.shape) })
        let absentBiases = biases.filter { weights[$0.name] == nil }.map(\.name)
        if !absentBiases.isEmpty {
            // A conversion mistake, not an unsupported model: the config promises biases the tensors lack, so mlx-lm's
            // strict load refuses the directory (its "Missing N parameters" is among the refusals below).
            let flags = [args.attentionBias ? "attention_bias" : nil, args.mlpBias ? "mlp_bias" : nil].compactMap { $0 }.joined(separator: " and ")
            loading = StrictLoadingOutcome(rule: loading.rule, refusals: ["config.json sets \(flags) true, so mlx-lm's Llama creates "
                + "\(absentBiases.count) bias parameter(s) the weights lack (first: \(absentBiases[0]))"] + loading.refusals, warnings: loading.warnings)
        }
        if !quantizationRefusals.isEmpty {
            loading = StrictLoadingOutcome(rule: loading.rule, refusals: quantizationRefusals + loading.refusals, warnings: loading.warnings)
        }
        if includingTokenizer, let missing = missingTokenizer(directory: directory) {
            loading = StrictLoadingOutcome(rule: loading.rule, refusals: loading.refusals + [missing], warnings: loading.warnings)
        }
        loading = loading.warning(plan.warnings)
        if !biases.isEmpty, !loading.refused {
            // mlx-lm loads and uses the biases; Parity's Llama engines compute no projection bias, so they cannot say
            // what this file computes.
            throw .unsupported(file: directory, reason: "config.json sets \(args.attentionBias ? "attention_bias" : "mlp_bias") true and the "
                + "weights have the \(biases.count) bias parameters mlx-lm loads; Parity's Llama engines compute no projection biases")
        }
        return MLXLlamaWeights(path: directory, hyperparameters: args.hyper, ropeStyle: args.ropeTraditional ? .adjacentPairs : .halves,
                               loading: loading, quantizedModules: plan.decided, notes: notes, weights: weights)
    }

    /// `mlx_lm.load` loads the tokenizer after the weights (`load_tokenizer` → transformers' `AutoTokenizer.from_pretrained`
    /// on the directory): a Llama tokenizer is built from `tokenizer.json`, or converted from sentencepiece's
    /// `tokenizer.model`; with neither, transformers raises "Couldn't instantiate the backend tokenizer" and the
    /// directory does not load. nil when one of them is there (tokenizer_config.json alone is optional: without it
    /// transformers picks the class from config.json's model_type).
    public static func missingTokenizer(directory: String) -> String? {
        let files = ["tokenizer.json", "tokenizer.model"]
        if files.contains(where: { FileManager.default.fileExists(atPath: directory + "/" + $0) }) { return nil }
        return "mlx_lm.load's load_tokenizer refuses \(directory): it has neither tokenizer.json nor tokenizer.model, so transformers' "
            + "AutoTokenizer cannot build the tokenizer (\"Couldn't instantiate the backend tokenizer\") and mlx-lm loads no model"
    }

    /// Whether `mx.quantize` (called by `to_quantized` on the module's initial weight) accepts the parameters for
    /// an input width: nil if so, else why not.
    static func mlxQuantizeAccepts(_ q: MLXQuantParameters, inFeatures: Int) -> String? {
        do { try MLXQuantization.validate(mode: q.mode, groupSize: q.groupSize, bits: q.bits) } catch { return error.description }
        guard q.groupSize > 0, inFeatures % q.groupSize == 0 else {
            return "the input width \(inFeatures) is not a multiple of the group size \(q.groupSize)"
        }
        return nil
    }

    // MARK: LlamaWeightSource

    public func matrix(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        let h = hyperparameters
        if role == .output, h.tiedEmbeddings { return try matrix(.tokenEmbedding, layer: layer) }
        guard let module = MLXLlamaWeights.moduleName(role, layer: layer) else {
            throw .usage("\(role.rawValue) is a norm weight: read it with vector(_:layer:)")
        }
        try requireLoadable()
        let (rows, columns) = MLXLlamaWeights.matrixShape(role, h)
        if let q = quantizedModules[module] {
            guard let weight = weights[module + ".weight"], let scales = weights[module + ".scales"] else {
                throw .mismatch(file: path, reason: "quantized module '\(module)' has no weight or scales")
            }
            guard weight.dtype == .u32 else {
                throw .unsupported(file: path, reason: "'\(module).weight' is \(weight.dtype.rawValue); mx.quantized_matmul needs uint32 packed words")
            }
            let biases = q.mode == "affine" ? weights[module + ".biases"] : nil
            return StoredMatrix(rows: rows, columns: columns,
                                storage: .mlxQuantized(weight: weight, scales: scales, biases: biases, mode: q.mode, groupSize: q.groupSize, bits: q.bits),
                                fileName: module)
        }
        let name = module + ".weight"
        return StoredMatrix(rows: rows, columns: columns, storage: .dense(values: try floats(name), dtype: try dtype(name)), fileName: name)
    }

    public func vector(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> [Float] {
        guard [.attentionNorm, .feedForwardNorm, .outputNorm].contains(role) else {
            throw .usage("\(role.rawValue) is a matrix: read it with matrix(_:layer:)")
        }
        try requireLoadable()
        return try floats(role.referenceName(layer: layer))
    }

    /// Throws the strict-loading refusal (the engine reports it as a FAIL before asking for parameters).
    func requireLoadable() throws(ParityError) {
        guard !loading.refused else { throw .mismatch(file: path, reason: loading.refusals.joined(separator: "; ")) }
    }

    func floats(_ name: String) throws(ParityError) -> [Float] {
        guard let t = weights[name] else { throw .mismatch(file: path, reason: "no parameter '\(name)'") }
        guard t.dtype.isFloatingPoint, let values = t.floats() else {
            throw .unsupported(file: path, reason: "parameter '\(name)' has dtype \(t.dtype.rawValue), not a float type")
        }
        return values
    }

    /// A parameter as stored (after `sanitize`), for the weight check: its own dtype and bytes.
    public func storedTensor(named name: String) -> RawTensor? { weights[name] }

    /// Every parameter name after `sanitize` (what `load_weights(strict=True)` sees).
    public var storedTensorNames: [String] { weights.keys.sorted() }

    func dtype(_ name: String) throws(ParityError) -> DType {
        guard let t = weights[name] else { throw .mismatch(file: path, reason: "no parameter '\(name)'") }
        return t.dtype
    }

    /// mlx.nn's module path for a matrix role (the same names as PyTorch's for Llama), nil for norms.
    static func moduleName(_ role: LlamaTensorRole, layer: Int) -> String? {
        switch role {
        case .attentionNorm, .feedForwardNorm, .outputNorm: return nil
        default: return String(role.referenceName(layer: layer).dropLast(".weight".count))
        }
    }

    /// [out, in] of nn.Linear (and [vocab, hidden] of nn.Embedding).
    static func matrixShape(_ role: LlamaTensorRole, _ h: LlamaHyperparameters) -> (Int, Int) {
        let q = h.headCount * h.headDimension, kv = h.keyValueHeadCount * h.headDimension
        switch role {
        case .tokenEmbedding, .output: return (h.vocabularySize, h.hiddenSize)
        case .query: return (q, h.hiddenSize)
        case .key, .value: return (kv, h.hiddenSize)
        case .attentionOutput: return (h.hiddenSize, q)
        case .gate, .up: return (h.intermediateSize, h.hiddenSize)
        case .down: return (h.hiddenSize, h.intermediateSize)
        case .attentionNorm, .feedForwardNorm, .outputNorm: return (h.hiddenSize, 1)
        }
    }
}

/// One module of mlx-lm's Llama that `nn.quantize` may replace (nn.Linear or nn.Embedding).
struct QuantizableModule {
    let name: String
    let kind: String
    let outFeatures: Int
    let inFeatures: Int
}

/// mlx-lm's `ModelArgs` for models/llama.py, from config.json.
struct LlamaModelArgs {
    let hyper: LlamaHyperparameters
    let ropeTraditional: Bool
    let tiedEmbeddings: Bool
    let tiedExplicit: Bool
    /// `attention_bias` / `mlp_bias` (mlx-lm's ModelArgs, default false).
    let attentionBias: Bool
    let mlpBias: Bool

    init(config: JSONValue, path: String) throws(ParityError) {
        func required(_ key: String) throws(ParityError) -> Int {
            guard let value = config[key] else { throw .malformed(file: path, at: "key \"\(key)\"", reason: "missing (mlx-lm's Llama ModelArgs requires it)") }
            guard let n = value.intValue, n > 0 else { throw .malformed(file: path, at: "key \"\(key)\"", reason: "must be a positive integer") }
            return n
        }
        func optionalInt(_ key: String) throws(ParityError) -> Int? {
            guard let value = config[key], value != .null else { return nil }
            guard let n = value.intValue, n >= 0 else { throw .malformed(file: path, at: "key \"\(key)\"", reason: "must be a non-negative integer or null") }
            return n
        }
        func flag(_ key: String, default fallback: Bool) throws(ParityError) -> Bool {
            guard let value = config[key] else { return fallback }
            guard let b = value.boolValue else { throw .malformed(file: path, at: "key \"\(key)\"", reason: "must be true or false") }
            return b
        }
        func number(_ key: String, default fallback: Double?) throws(ParityError) -> Double {
            guard let value = config[key] else {
                guard let fallback else { throw .malformed(file: path, at: "key \"\(key)\"", reason: "missing (mlx-lm's Llama ModelArgs requires it)") }
                return fallback
            }
            guard let d = value.doubleValue, d.isFinite else { throw .malformed(file: path, at: "key \"\(key)\"", reason: "must be a finite number") }
            return d
        }
        guard let modelType = config["model_type"]?.stringValue else {
            throw .malformed(file: path, at: "key \"model_type\"", reason: "missing or not a string (mlx-lm picks the model class by it)")
        }
        guard MLXLlamaWeights.llamaModelTypes.contains(modelType) else {
            throw .unsupported(file: path, reason: "model_type '\(modelType)' is not one mlx-lm builds with models/llama.py (\(MLXLlamaWeights.llamaModelTypes.joined(separator: ", ")))")
        }
        let hidden = try required("hidden_size"), layers = try required("num_hidden_layers")
        let intermediate = try required("intermediate_size"), heads = try required("num_attention_heads"), vocab = try required("vocab_size")
        let eps = try number("rms_norm_eps", default: nil)
        let headDim = try optionalInt("head_dim").flatMap { $0 == 0 ? nil : $0 } ?? hidden / heads
        let kvHeads = try optionalInt("num_key_value_heads") ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw .malformed(file: path, at: "key \"num_key_value_heads\"", reason: "\(kvHeads) does not divide num_attention_heads \(heads)")
        }
        let theta = try number("rope_theta", default: 10000)
        ropeTraditional = try flag("rope_traditional", default: false)
        tiedExplicit = config["tie_word_embeddings"] != nil
        tiedEmbeddings = try flag("tie_word_embeddings", default: true)
        // mlx-lm's Llama gives q/k/v/o_proj a bias when attention_bias is true and gate/down/up_proj one when
        // mlp_bias is; load_weights(strict=True) then requires them (checked in `load`).
        attentionBias = try flag("attention_bias", default: false)
        mlpBias = try flag("mlp_bias", default: false)
        if let scaling = config["rope_scaling"], scaling != .null {
            let kind = scaling["type"]?.stringValue ?? scaling["rope_type"]?.stringValue ?? "default"
            guard kind == "default" else {
                throw .unsupported(file: path, reason: "key \"rope_scaling\" is '\(kind)': Parity computes plain RoPE only (mlx-lm's initialize_rope type \"default\")")
            }
        }
        if let types = config["layer_types"], types != .null {
            guard let list = types.arrayValue, list.count == layers, list.allSatisfy({ $0.stringValue == "full_attention" }) else {
                throw .unsupported(file: path, reason: "key \"layer_types\" must list \(layers) × \"full_attention\" (sliding-window attention is not computed)")
            }
        }
        // mlx's fast.rms_norm and fast.rope take float32 eps and base.
        hyper = LlamaHyperparameters(vocabularySize: vocab, hiddenSize: hidden, layerCount: layers, headCount: heads, keyValueHeadCount: kvHeads,
                                     headDimension: headDim, intermediateSize: intermediate, rmsNormEpsilon: Double(Float(eps)),
                                     ropeTheta: Double(Float(theta)), ropeDimensions: headDim, tiedEmbeddings: tiedEmbeddings)
    }

    /// Every nn.Linear / nn.Embedding of the model, as mlx-lm's Model creates them.
    var quantizableModules: [QuantizableModule] {
        let h = hyper
        var modules = [QuantizableModule(name: "model.embed_tokens", kind: "Embedding", outFeatures: h.vocabularySize, inFeatures: h.hiddenSize)]
        for layer in 0..<h.layerCount {
            for role in [LlamaTensorRole.query, .key, .value, .attentionOutput, .gate, .up, .down] {
                let (rows, cols) = MLXLlamaWeights.matrixShape(role, h)
                modules.append(QuantizableModule(name: MLXLlamaWeights.moduleName(role, layer: layer)!, kind: "Linear", outFeatures: rows, inFeatures: cols))
            }
        }
        if !tiedEmbeddings {
            modules.append(QuantizableModule(name: "lm_head", kind: "Linear", outFeatures: h.vocabularySize, inFeatures: h.hiddenSize))
        }
        return modules
    }

    /// The biases mlx-lm's Llama creates: q/k/v/o_proj's with attention_bias, gate/down/up_proj's with mlp_bias.
    var biasParameters: [StrictLoadingRule.Parameter] {
        var out: [StrictLoadingRule.Parameter] = []
        for layer in 0..<hyper.layerCount {
            var roles: [LlamaTensorRole] = []
            if attentionBias { roles += [.query, .key, .value, .attentionOutput] }
            if mlpBias { roles += [.gate, .down, .up] }
            for role in roles {
                out.append(.init(name: MLXLlamaWeights.moduleName(role, layer: layer)! + ".bias", shape: [MLXLlamaWeights.matrixShape(role, hyper).0]))
            }
        }
        return out
    }

    var normNames: [String] {
        (0..<hyper.layerCount).flatMap { ["model.layers.\($0).input_layernorm.weight", "model.layers.\($0).post_attention_layernorm.weight"] }
            + ["model.norm.weight"]
    }
}

/// `load_model`'s quantization decision for every quantizable module.
struct QuantizationPlan {
    var decided: [String: MLXQuantParameters] = [:]
    /// Where each decision came from (a config entry, or the shapes).
    var origin: [String: String] = [:]
    var notes: [String] = []
    /// config.json contradicting the stored tensors where mlx-lm loads them anyway: reported as warnings.
    var warnings: [String] = []

    init(config: JSONValue, path: String, modules: [QuantizableModule], weights: [String: RawTensor]) throws(ParityError) {
        let global: MLXQuantParameters
        var entries: [String: JSONValue] = [:]
        var key = "quantization"
        if let q = config["quantization"], q != .null {
            guard let members = q.objectValue else { throw .malformed(file: path, at: "key \"quantization\"", reason: "must be an object") }
            guard let g = q["group_size"]?.intValue, let b = q["bits"]?.intValue else {
                throw .malformed(file: path, at: "key \"quantization\"", reason: "needs integer group_size and bits (mlx-lm reads both)")
            }
            let mode = q["mode"]?.stringValue ?? "affine"
            global = MLXQuantParameters(mode: mode, groupSize: g, bits: b)
            for (name, value) in members where !["group_size", "bits", "mode"].contains(name) { entries[name] = value }
            if let legacy = config["quantization_config"], legacy != q {
                notes.append("\(path): \"quantization_config\" differs from \"quantization\"; mlx-lm reads only \"quantization\"")
            }
        } else if let legacy = config["quantization_config"], legacy != .null, legacy != .bool(false), legacy != .object([]) {
            key = "quantization_config"
            guard let method = legacy["quant_method"]?.stringValue else {
                throw .malformed(file: path, at: "key \"quantization_config\"", reason: "has no \"quant_method\" and there is no \"quantization\" entry "
                    + "(mlx-lm reads quantization_config[\"quant_method\"] and fails)")
            }
            switch method {
            case "mxfp4": global = MLXQuantParameters(mode: "mxfp4", groupSize: 32, bits: 4)
            case "mxfp8": global = MLXQuantParameters(mode: "mxfp8", groupSize: 32, bits: 8)
            default:
                throw .unsupported(file: path, reason: "key \"quantization_config.quant_method\" is '\(method)': Parity reads MLX's own quantization only")
            }
            notes.append("\(path): no \"quantization\"; quantization_config's quant_method '\(method)' makes mlx-lm quantize as \(global.mode) "
                + "\(global.bits)-bit group \(global.groupSize)")
        } else {
            let stray = modules.filter { weights[$0.name + ".scales"] != nil }.map(\.name)
            if !stray.isEmpty {
                notes.append("\(path) has no \"quantization\" entry, so mlx-lm quantizes nothing, yet \(stray.count) module(s) have scales "
                    + "(\(stray.prefix(3).joined(separator: ", "))\(stray.count > 3 ? ", …" : "")): load_weights(strict=True) refuses them")
            }
            return
        }
        var disagreements: [String] = []
        for module in modules {
            if let entry = entries[module.name] {
                let at = "key \"\(key).\(module.name)\""
                switch entry {
                case .bool(false): continue
                case .bool(true):
                    decided[module.name] = global
                case .object:
                    let mode = entry["mode"]?.stringValue ?? "affine"
                    guard let defaults = MLXQuantization.defaults(mode: mode) else {
                        throw .malformed(file: path, at: at, reason: "mode '\(mode)' is not one of affine, mxfp4, mxfp8, nvfp4")
                    }
                    func int(_ k: String, _ fallback: Int) throws(ParityError) -> Int {
                        guard let v = entry[k], v != .null else { return fallback }
                        guard let n = v.intValue else { throw .malformed(file: path, at: at, reason: "\(k) must be an integer") }
                        return n
                    }
                    decided[module.name] = MLXQuantParameters(mode: mode, groupSize: try int("group_size", defaults.groupSize), bits: try int("bits", defaults.bits))
                default:
                    throw .malformed(file: path, at: at, reason: "a per-module entry must be an object or a boolean (nn.quantize raises otherwise)")
                }
                origin[module.name] = "config.json \(at)"
                continue
            }
            guard let scales = weights[module.name + ".scales"], let weight = weights[module.name + ".weight"] else { continue }
            // infer_quant_config: integer division, as mlx-lm does (an inexact reading meets the strict shape check).
            guard let packed = weight.shape.last, let groups = scales.shape.last, groups > 0 else {
                throw .malformed(file: path, at: "tensor \"\(module.name).scales\"", reason: "scales \(scales.shape) and weight \(weight.shape) give no group count")
            }
            let groupSize = module.inFeatures / groups, bits = packed * 32 / module.inFeatures
            let inferred: MLXQuantParameters
            if scales.dtype != .u8 {
                inferred = MLXQuantParameters(mode: "affine", groupSize: groupSize, bits: bits)
            } else {
                switch (bits, groupSize) {
                case (4, 16): inferred = MLXQuantParameters(mode: "nvfp4", groupSize: 16, bits: 4)
                case (4, 32): inferred = MLXQuantParameters(mode: "mxfp4", groupSize: 32, bits: 4)
                case (8, 32): inferred = MLXQuantParameters(mode: "mxfp8", groupSize: 32, bits: 8)
                default:
                    throw .malformed(file: path, at: "tensor \"\(module.name).scales\"", reason: "uint8 scales \(scales.shape) with weight \(weight.shape): "
                        + "\(bits) bits with group size \(groupSize) is no MLX floating-point mode (mlx-lm's infer_quant_config raises)")
                }
            }
            decided[module.name] = inferred
            origin[module.name] = "inferred from the shapes by infer_quant_config"
            if inferred != global {
                disagreements.append("\(module.name) (\(inferred.mode) \(inferred.bits)-bit group \(inferred.groupSize): '\(module.name).weight' "
                    + "\(weight.shape) \(weight.dtype.rawValue), scales \(scales.shape) \(scales.dtype.rawValue))")
            }
        }
        for name in entries.keys.sorted() where !modules.contains(where: { $0.name == name }) {
            notes.append("\(path): key \"\(key).\(name)\" names no Linear or Embedding of the model; mlx-lm never uses it")
        }
        if !disagreements.isEmpty {
            warnings.append("\(path): key \"\(key)\" says \(global.mode) \(global.bits)-bit group \(global.groupSize), but \(disagreements.count) module(s) "
                + "are stored otherwise: \(disagreements.prefix(4).joined(separator: "; "))\(disagreements.count > 4 ? "; …" : ""). mlx-lm 0.32.2 reads "
                + "each module's parameters from its shapes (infer_quant_config) and never consults the global entry for them, so it loads them "
                + "as stored (mlx-lm versions without infer_quant_config applied the global entry and refused the file); any other reader of config.json is misled")
        }
        let quantized = decided.count
        if quantized == 0 {
            notes.append("\(path): key \"\(key)\" is present but no module is quantized (no module has scales or an entry)")
        }
    }
}
