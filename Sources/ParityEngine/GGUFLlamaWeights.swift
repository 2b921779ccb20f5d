import Foundation
import ParityCore
import ParityFormats

/// What a runtime's loader says when it refuses a well-formed file: the file is readable, but the runtime would not
/// run it (a required key missing, a tensor of the wrong `ne`, a tensor too many). A conversion that produces such a
/// file failed, so the verdict reports this as a failure (exit 1), not as bad input.
public struct LlamaRuntimeRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    public let file: String
    /// The runtime and the step that refuses ("llama.cpp model loader (load_hparams)").
    public let runtime: String
    /// The runtime's own message, as it prints it ("key not found in model: llama.block_count").
    public let reason: String
    /// Parity's explanation beyond llama.cpp's message (which tensors the count rule found extra or missing).
    public let detail: String?

    public init(file: String, runtime: String, reason: String, detail: String? = nil) {
        self.file = file
        self.runtime = runtime
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(runtime) refuses \(file): \(reason)" + (detail.map { " (\($0))" } ?? "") }
}

/// A metadata key llama.cpp computes with, whose value in the file is not the one the reference implies
/// ("llama.attention.causal is false in the file; a causal Llama reference implies true").
public struct GGUFReferenceDeparture: Equatable, Sendable, CustomStringConvertible {
    public let key: String
    public let fileValue: String
    public let impliedValue: String
    /// What llama.cpp does with the file's value.
    public let effect: String

    public var description: String {
        "\(key) is \(fileValue) in the file, \(impliedValue) for the reference (a Hugging Face causal Llama): \(effect)"
    }
}

/// A GGUF `llama` file read as llama.cpp's loader reads it (src/llama-model.cpp `load_hparams`,
/// src/models/llama.cpp `load_arch_hparams` / `load_arch_tensors`, src/llama-vocab.cpp `load`,
/// src/llama-model-loader.cpp `check_tensor_dims` / `done_getting_tensors`), in the same order, so the first
/// refusal is the one llama.cpp prints:
/// - hyperparameters: `llama.context_length`, `.embedding_length`, `.block_count` (1…512) and
///   `.attention.layer_norm_rms_epsilon` are required; `.feed_forward_length` and `.attention.head_count` default
///   to 0 (so a file without them fails the tensor checks), `.attention.head_count_kv` to head_count,
///   `.attention.key_length`/`.value_length` to embedding/heads, `.rope.dimension_count` to key_length (and must
///   equal it), `.rope.freq_base` to 10000. Each key must have exactly the type llama.cpp reads (u32, f32, string);
///   the epsilon and θ are kept as the f32 the file stores.
/// - vocabulary: `tokenizer.ggml.model` is required; "none"/"no_vocab" take the size from `llama.vocab_size`;
///   any other model needs `tokenizer.ggml.tokens` (string array) and checks the scores/token_type arrays.
/// - tensors, each with exactly the `ne` llama.cpp asserts: token_embd [n_embd, n_vocab], output_norm [n_embd],
///   output [n_embd, n_vocab] (optional: without it the output is token_embd, as llama.cpp ties it), and per layer
///   attn_norm, attn_q [n_embd, head_dim·heads], attn_k/attn_v [n_embd, head_dim·kv_heads], attn_output,
///   ffn_norm, ffn_gate/ffn_up [n_embd, n_ff], ffn_down [n_ff, n_embd]; then the file's tensor count must equal the
///   number of tensors created ("wrong number of tensors"), `StrictLoadingRule.llamaCpp`.
/// Every other key llama.cpp reads for a `llama` file is classified in docs/llama-verify.md ("GGUF keys llama.cpp
/// computes with"): computed by Parity (above), implied by the reference (`referenceDepartures`: a different value
/// fails the hyperparameter check), or not computable (refused as unsupported, exit 2). Files llama.cpp loads but
/// whose extra parts Parity's Llama engine does not compute (fused attn_qkv, biases, rope_freqs, experts) are refused
/// as unsupported (exit 2), never silently dropped.
public struct GGUFLlamaWeights: LlamaWeightSource {
    public let path: String
    public let file: GGUFFile
    public let hyperparameters: LlamaHyperparameters
    /// llama.cpp's `llama` graph applies ggml's NORMAL RoPE (adjacent pairs) to Q and K as stored.
    public var ropeStyle: RopeStyle { .adjacentPairs }
    /// What llama.cpp's loader does with this file's tensors (accepted, or the refusals).
    public let loading: StrictLoadingOutcome
    /// The tokenizer the file declares (`tokenizer.ggml.model`).
    public let tokenizerModel: String
    private let tensorsByName: [String: GGUFTensorInfo]
    /// Keys llama.cpp computes with whose value differs from the one a causal Llama reference implies
    /// (`LlamaHyperparameterCheck` fails the file for each). Parity's engine computes the implied value.
    public let referenceDepartures: [GGUFReferenceDeparture]

    /// The largest layer count llama.cpp accepts (LLAMA_MAX_LAYERS).
    static let maxLayers = 512

    /// Reads `path`: a malformed GGUF or one that is not `llama` throws `ParityError` (exit 2); a well-formed file
    /// llama.cpp would refuse returns the refusal with llama.cpp's message.
    public static func load(path: String) throws(ParityError) -> Result<GGUFLlamaWeights, LlamaRuntimeRefusal> {
        try load(GGUFFile(path: path))
    }

    public static func load(_ file: GGUFFile) throws(ParityError) -> Result<GGUFLlamaWeights, LlamaRuntimeRefusal> {
        do {
            return .success(try GGUFLlamaWeights(file: file))
        } catch let failure as ParityError {
            throw failure
        } catch let refusal as LlamaRuntimeRefusal {
            return .failure(refusal)
        } catch {
            throw ParityError.io(path: file.path, reason: "\(error)")
        }
    }

    private init(file: GGUFFile) throws {
        self.file = file
        path = file.path
        let path = file.path
        // llama.cpp's message as llama_model_load prints it after "error loading model: ": load_hparams and
        // load_vocab errors carry a prefix (src/llama.cpp), tensor errors name their function.
        func refuse(_ step: String, _ reason: String, detail: String? = nil) -> LlamaRuntimeRefusal {
            let prefix = ["load_hparams": "error loading model hyperparameters: ", "load_arch_hparams": "error loading model hyperparameters: ",
                          "load_vocab": "error loading model vocabulary: ", "load_tensors": "check_tensor_dims: ",
                          "done_getting_tensors": "done_getting_tensors: "][step] ?? ""
            return LlamaRuntimeRefusal(file: path, runtime: "llama.cpp model loader (\(step))", reason: prefix + reason, detail: detail)
        }
        func typeName(_ t: GGUFValueType) -> String {  // gguf.cpp GGUF_TYPE_NAME
            switch t {
            case .uint8: return "u8"
            case .int8: return "i8"
            case .uint16: return "u16"
            case .int16: return "i16"
            case .uint32: return "u32"
            case .int32: return "i32"
            case .float32: return "f32"
            case .bool: return "bool"
            case .string: return "str"
            case .array: return "arr"
            case .uint64: return "u64"
            case .int64: return "i64"
            case .float64: return "f64"
            }
        }
        // llama_model_create refuses a file without general.architecture ("unknown model architecture: ''"), but such a
        // GGUF is not a model file at all (llama-imatrix's output, for one): bad input, not a conversion mistake — as for
        // the image models' GGUFs and for a file of another architecture.
        guard let architecture = file["general.architecture"] else {
            throw ParityError.malformed(file: path, at: "key 'general.architecture'",
                                        reason: "missing: not a model file (llama.cpp: \"unknown model architecture: ''\")")
        }
        guard case let .string(arch) = architecture else {
            throw ParityError.malformed(file: path, at: "key 'general.architecture'",
                                        reason: "has type \(typeName(architecture.type)), llama.cpp expects str")
        }
        guard arch == "llama" else {
            throw ParityError.mismatch(file: path, reason: "general.architecture is '\(arch)'; this reader reads GGUF 'llama' files")
        }

        // load_hparams: exact-type keys (GGUFMeta::GKV), required or defaulted.
        func value(_ key: String, required: Bool, _ step: String = "load_hparams") throws -> GGUFValue? {
            guard let v = file[key] else {
                if required { throw refuse(step, "key not found in model: \(key)") }
                return nil
            }
            return v
        }
        func u32(_ key: String, required: Bool, orArray: Bool = false, layers: Int = 0) throws -> Int? {
            guard let v = try value(key, required: required) else { return nil }
            if case let .uint32(x) = v { return Int(x) }
            if orArray, case let .array(elementType, items) = v {
                // get_key_or_arr: a per-layer array of exactly n_layer entries
                guard items.count == layers else { throw refuse("load_hparams", "key \(key) has wrong array length; expected \(layers), got \(items.count)") }
                let values = Set(items.compactMap(\.intValue))
                guard elementType == .uint32 || elementType == .int32, values.count == 1, let only = values.first else {
                    throw ParityError.unsupported(file: path, reason: "\(key) varies per layer (\(items)); Parity's Llama engine takes one value for all layers")
                }
                return only
            }
            throw refuse("load_hparams", "key \(key) has wrong type \(typeName(v.type)) but expected type u32")
        }
        func f32(_ key: String, required: Bool, _ step: String = "load_hparams") throws -> Float? {
            guard let v = try value(key, required: required, step) else { return nil }
            guard case let .float32(x) = v else { throw refuse(step, "key \(key) has wrong type \(typeName(v.type)) but expected type f32") }
            return x
        }
        _ = try u32("llama.context_length", required: true)
        let embedding = try u32("llama.embedding_length", required: true)!
        let layers = try u32("llama.block_count", required: true)!
        guard layers > 0 && layers <= GGUFLlamaWeights.maxLayers else {
            throw refuse("load_hparams", "GGML_ASSERT(hparams.n_layer_all > 0 && hparams.n_layer_all <= LLAMA_MAX_LAYERS) failed: llama.block_count = \(layers)")
        }
        if let experts = try u32("llama.expert_count", required: false), experts > 0 {
            throw ParityError.unsupported(file: path, reason: "llama.expert_count = \(experts): a mixture of experts; Parity's Llama engine is dense")
        }
        let feedForward = try u32("llama.feed_forward_length", required: false, orArray: true, layers: layers) ?? 0
        let heads = try u32("llama.attention.head_count", required: false, orArray: true, layers: layers) ?? 0
        let kvHeads = try u32("llama.attention.head_count_kv", required: false, orArray: true, layers: layers) ?? heads
        // Keys llama.cpp reads that have one value a Hugging Face Llama reference implies (class (b) of the table in
        // docs/llama-verify.md): any other value computes another model, so it is recorded here and the hyperparameter
        // check fails the file naming it. Parity's engine computes the implied value.
        var departures: [GGUFReferenceDeparture] = []
        func depart(_ key: String, _ fileValue: String, _ implied: String, _ effect: String) {
            departures.append(GGUFReferenceDeparture(key: key, fileValue: fileValue, impliedValue: implied, effect: effect))
        }
        func bool(_ key: String) throws -> Bool? {
            guard let v = try value(key, required: false) else { return nil }
            guard case let .bool(x) = v else { throw refuse("load_hparams", "key \(key) has wrong type \(typeName(v.type)) but expected type bool") }
            return x
        }
        func string(_ key: String) throws -> String? {
            guard let v = try value(key, required: false) else { return nil }
            guard case let .string(x) = v else { throw refuse("load_hparams", "key \(key) has wrong type \(typeName(v.type)) but expected type str") }
            return x
        }
        // hparams.causal_attn → cparams.causal_attn (llama-context.cpp): false drops the causal mask.
        if let causal = try bool("llama.attention.causal"), !causal {
            depart("llama.attention.causal", "false", "true", "llama.cpp attends every position to every other (no causal mask); a causal LM masks the future")
        }
        // n_layer() = block_count − nextn_predict_layers: the last layers would not run in the main graph.
        if let nextn = try u32("llama.nextn_predict_layers", required: false), nextn != 0 {
            guard nextn <= layers else { throw refuse("load_hparams", "GGML_ASSERT(hparams.n_layer_nextn <= hparams.n_layer_all) failed: llama.nextn_predict_layers = \(nextn)") }
            depart("llama.nextn_predict_layers", "\(nextn)", "0", "llama.cpp runs only the first \(layers - nextn) of \(layers) blocks")
        }
        // With n_expert = 0 llama.cpp asserts no experts are used or grouped (it aborts otherwise).
        let expertsUsed: Int?
        if case let .array(_, items)? = file["llama.expert_used_count"] {
            expertsUsed = items.compactMap(\.intValue).max()
        } else {
            expertsUsed = try u32("llama.expert_used_count", required: false)
        }
        if let used = expertsUsed, used != 0 { throw refuse("load_hparams", "GGML_ASSERT(n_expert_used_max == 0) failed: llama.expert_used_count = \(used) without experts") }
        if let groups = try u32("llama.expert_group_count", required: false), groups != 0 {
            throw refuse("load_hparams", "GGML_ASSERT(hparams.n_expert_groups == 0) failed: llama.expert_group_count = \(groups) without experts")
        }
        // RoPE scaling (load_hparams, llama-context.cpp): the type defaults to "linear"; "none" forces the frequency
        // scale to 1; "linear" scales positions by 1/factor (factor 0 or absent: 1). The reference's config has no
        // rope_scaling (Parity refuses one that does), so it implies unscaled RoPE: "none", or "linear" with factor 1.
        let scalingType = try string("llama.rope.scaling.type") ?? "linear"
        guard ["none", "linear", "yarn", "longrope"].contains(scalingType) else {
            throw refuse("load_hparams", "GGML_ASSERT(hparams.rope_scaling_type_train != LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED) failed: llama.rope.scaling.type = '\(scalingType)'")
        }
        var scalingFactor: (key: String, value: Float)?
        if let factor = try f32("llama.rope.scaling.factor", required: false) {
            scalingFactor = ("llama.rope.scaling.factor", factor)
        } else if let factor = try f32("llama.rope.scale_linear", required: false) {
            scalingFactor = ("llama.rope.scale_linear", factor)  // the old key, read only when the new one is absent
        }
        if scalingType == "yarn" || scalingType == "longrope" {
            // Parity computes neither YaRN's ramp and attention factor nor LongRoPE's factor tensors, and
            // convert_hf_to_gguf writes them only for a config with rope_scaling.
            depart("llama.rope.scaling.type", "\"\(scalingType)\"", "\"none\" (or \"linear\" with factor 1)", "llama.cpp applies \(scalingType) RoPE scaling")
        } else if scalingType == "linear", let factor = scalingFactor, factor.value != 0, factor.value != 1 {
            depart(factor.key, "\(factor.value)", "1 (or absent)", "llama.rope.scaling.type is linear, so llama.cpp divides every RoPE position by \(factor.value)")
        }
        // cparams.yarn_attn_factor *= hparams.rope_attn_factor (llama-context.cpp), for every scaling type: ggml_rope_ext
        // multiplies the rotated Q and K by it, so the attention scores scale by its square.
        if let attnFactor = try f32("llama.rope.scaling.attn_factor", required: false), attnFactor != 1 {
            depart("llama.rope.scaling.attn_factor", "\(attnFactor)", "1 (or absent)", "llama.cpp multiplies RoPE's output (Q and K) by \(attnFactor)")
        }
        let theta = try f32("llama.rope.freq_base", required: false) ?? 10000
        var headDimension = 0, valueDimension = 0, ropeDimensions = 0
        if heads > 0 {
            headDimension = try u32("llama.attention.key_length", required: false) ?? embedding / heads
            valueDimension = try u32("llama.attention.value_length", required: false) ?? embedding / heads
            ropeDimensions = try u32("llama.rope.dimension_count", required: false) ?? headDimension
            guard ropeDimensions == headDimension else { throw refuse("load_hparams", "invalid n_rot: \(ropeDimensions), expected \(headDimension)") }
        }
        // load_arch_hparams (src/models/llama.cpp)
        let epsilon = try f32("llama.attention.layer_norm_rms_epsilon", required: true, "load_arch_hparams")!

        // llama_vocab::load
        guard let modelValue = file["tokenizer.ggml.model"] else {
            throw refuse("load_vocab", "key not found in model: tokenizer.ggml.model")
        }
        guard case let .string(tokenizer) = modelValue else {
            throw refuse("load_vocab", "key tokenizer.ggml.model has wrong type \(typeName(modelValue.type)) but expected type str")
        }
        var vocabulary: Int
        if tokenizer == "none" || tokenizer == "no_vocab" {
            vocabulary = 0
            if let v = file["llama.vocab_size"] {
                guard case let .uint32(n) = v else { throw refuse("load_vocab", "key llama.vocab_size has wrong type \(typeName(v.type)) but expected type u32") }
                vocabulary = Int(n)
            }
        } else {
            let known = ["llama", "bert", "gpt2", "hybriddna", "whitespace", "t5", "rwkv", "test", "plamo2", "gemma4"]
            guard known.contains(tokenizer) else { throw refuse("load_vocab", "unknown tokenizer: '\(tokenizer)'") }
            guard let tokens = file["tokenizer.ggml.tokens"] else { throw refuse("load_vocab", "cannot find tokenizer vocab in model file") }
            guard case let .array(.string, items) = tokens else { throw refuse("load_vocab", "invalid gguf type for tokenizer.ggml.tokens") }
            vocabulary = items.count
            if let scores = file["tokenizer.ggml.scores"] {
                guard case let .array(type, values) = scores, type == .float32 || type == .int32 else {
                    throw refuse("load_vocab", "invalid gguf type for tokenizer.ggml.scores")
                }
                guard values.count >= vocabulary else { throw refuse("load_vocab", "Index out of array bounds for scores (\(values.count) < \(vocabulary))") }
            }
            if let types = file["tokenizer.ggml.token_type"] {
                guard case let .array(.int32, values) = types else { throw refuse("load_vocab", "invalid gguf type for tokenizer.ggml.token_type") }
                guard values.count >= vocabulary else { throw refuse("load_vocab", "Index out of array bounds for toktypes (\(values.count) < \(vocabulary))") }
            }
        }
        tokenizerModel = tokenizer

        // load_arch_tensors, in llama.cpp's creation order; check_tensor_dims on each.
        let byName = Dictionary(file.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        tensorsByName = byName
        var created = 0
        var expected: [StrictLoadingRule.Parameter] = []
        func create(_ name: String, _ ne: [Int], required: Bool = true) throws -> Bool {
            guard let t = byName[name] else {
                if required { throw refuse("load_tensors", "tensor '\(name)' not found") }
                return false
            }
            let padded = t.ne + [Int](repeating: 1, count: max(0, 4 - t.ne.count))
            let matches = (0..<4).allSatisfy { i in i < ne.count ? padded[i] == ne[i] : padded[i] == 1 }
            guard matches else {
                func shape(_ d: [Int]) -> String { d.map { String(format: "%6d", $0) }.joined(separator: ", ") }  // llama_format_tensor_shape
                throw refuse("load_tensors", "tensor '\(name)' has wrong shape; expected \(shape(ne)), got \(shape(Array(padded.prefix(4))))")
            }
            created += 1
            expected.append(.init(name: name, shape: t.ne))  // matched by llama.cpp's rule (trailing 1s allowed)
            return true
        }
        func unsupportedIfPresent(_ name: String, _ why: String) throws {
            if byName[name] != nil { throw ParityError.unsupported(file: path, reason: "tensor '\(name)': \(why); llama.cpp would use it, Parity's Llama engine does not compute it") }
        }
        _ = try create("token_embd.weight", [embedding, vocabulary])
        _ = try create("output_norm.weight", [embedding])
        let untied = try create("output.weight", [embedding, vocabulary], required: false)
        for i in 0..<layers {
            let b = "blk.\(i)."
            _ = try create(b + "attn_norm.weight", [embedding])
            try unsupportedIfPresent(b + "attn_qkv.weight", "a fused Q/K/V projection")
            _ = try create(b + "attn_q.weight", [embedding, headDimension * heads])
            _ = try create(b + "attn_k.weight", [embedding, headDimension * kvHeads])
            _ = try create(b + "attn_v.weight", [embedding, valueDimension * kvHeads])
            for bias in ["attn_q.bias", "attn_k.bias", "attn_v.bias"] { try unsupportedIfPresent(b + bias, "a projection bias") }
            _ = try create(b + "attn_output.weight", [headDimension * heads, embedding])
            try unsupportedIfPresent(b + "attn_output.bias", "a projection bias")
            _ = try create(b + "ffn_norm.weight", [embedding])
            try unsupportedIfPresent(b + "rope_freqs.weight", "RoPE frequency factors (Llama 3 rope scaling)")
            _ = try create(b + "ffn_gate.weight", [embedding, feedForward])
            _ = try create(b + "ffn_down.weight", [feedForward, embedding])
            _ = try create(b + "ffn_up.weight", [embedding, feedForward])
            for bias in ["ffn_gate.bias", "ffn_down.bias", "ffn_up.bias"] { try unsupportedIfPresent(b + bias, "an MLP bias") }
        }
        // done_getting_tensors
        let stored = file.tensors.map { StrictLoadingRule.Parameter(name: $0.name, shape: $0.ne) }
        let outcome = StrictLoadingRule.llamaCpp.check(file: path, expected: expected, stored: stored, shapeWord: "ne")
        if created != file.tensors.count {
            throw refuse("done_getting_tensors", "wrong number of tensors; expected \(file.tensors.count), got \(created)",
                         detail: outcome.refused ? outcome.refusals.joined(separator: "; ") : nil)
        }
        loading = outcome
        // The llama graph asserts one head width for Q, K, V and RoPE (GGML_ASSERT in build_arch_graph).
        guard valueDimension == headDimension else {
            throw refuse("build_graph", "GGML_ASSERT(n_embd_head == hparams.n_embd_head_k()) failed: value_length \(valueDimension) != key_length \(headDimension)")
        }
        guard heads > 0, kvHeads > 0, heads % kvHeads == 0 else {
            throw refuse("build_graph", "llama.attention.head_count \(heads) is not a multiple of head_count_kv \(kvHeads)")
        }
        for t in file.tensors where !t.type.isSupported {
            throw ParityError.unsupported(file: path, reason: "tensor '\(t.name)': \(t.type.unsupportedReason ?? t.type.name)")
        }
        hyperparameters = LlamaHyperparameters(
            vocabularySize: vocabulary, hiddenSize: embedding, layerCount: layers, headCount: heads, keyValueHeadCount: kvHeads,
            headDimension: headDimension, intermediateSize: feedForward, rmsNormEpsilon: Double(epsilon), ropeTheta: Double(theta),
            ropeDimensions: ropeDimensions, tiedEmbeddings: !untied)
        referenceDepartures = departures
    }

    /// llama.cpp's tensor name for a role (the reader's own table, independent of Parity's converter).
    public static func tensorName(_ role: LlamaTensorRole, layer: Int) -> String {
        let b = "blk.\(layer)."
        switch role {
        case .tokenEmbedding: return "token_embd.weight"
        case .outputNorm: return "output_norm.weight"
        case .output: return "output.weight"
        case .attentionNorm: return b + "attn_norm.weight"
        case .query: return b + "attn_q.weight"
        case .key: return b + "attn_k.weight"
        case .value: return b + "attn_v.weight"
        case .attentionOutput: return b + "attn_output.weight"
        case .feedForwardNorm: return b + "ffn_norm.weight"
        case .gate: return b + "ffn_gate.weight"
        case .up: return b + "ffn_up.weight"
        case .down: return b + "ffn_down.weight"
        }
    }

    private func info(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> GGUFTensorInfo {
        guard !role.isPerLayer || (0..<hyperparameters.layerCount).contains(layer) else {
            throw .usage("layer \(layer) is outside the \(hyperparameters.layerCount) layers of \(path)")
        }
        // A file without output.weight: llama.cpp's output is token_embd (TENSOR_DUPLICATED).
        let name = role == .output && hyperparameters.tiedEmbeddings ? "token_embd.weight" : GGUFLlamaWeights.tensorName(role, layer: layer)
        guard let t = tensorsByName[name] else { throw .notFound(path: path, what: "tensor '\(name)'") }
        return t
    }

    public func matrix(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        switch role {
        case .attentionNorm, .feedForwardNorm, .outputNorm:
            throw .usage("\(role.rawValue) is a vector; read it with vector(_:layer:)")
        default: break
        }
        let t = try info(role, layer: layer)
        return StoredMatrix(rows: t.ne.count > 1 ? t.ne[1] : 1, columns: t.ne[0], storage: .ggml(file: file, tensor: t), fileName: t.name)
    }

    public func vector(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> [Float] {
        switch role {
        case .attentionNorm, .feedForwardNorm, .outputNorm: break
        default: throw .usage("\(role.rawValue) is a matrix; read it with matrix(_:layer:)")
        }
        let t = try info(role, layer: layer)
        do { return try file.values(t) } catch let e as ParityError { throw e } catch { throw .io(path: path, reason: "\(error)") }
    }
}
