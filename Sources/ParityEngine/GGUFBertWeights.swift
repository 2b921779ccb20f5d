import Foundation
import ParityCore
import ParityFormats

/// A GGUF `bert` file read as llama.cpp's loader reads it (src/llama-model.cpp `load_hparams`, src/models/bert.cpp
/// `load_arch_hparams` / `load_arch_tensors`, src/llama-vocab.cpp `load`, src/llama-model-loader.cpp
/// `check_tensor_dims` / `done_getting_tensors`), in that order, so the first refusal is the one llama.cpp prints:
/// - hyperparameters: `bert.context_length`, `.embedding_length`, `.block_count` (1…512) required (u32);
///   `.feed_forward_length` and `.attention.head_count` default to 0 (a file without them fails the tensor checks);
///   `bert.attention.causal` defaults to **true** (read into `causalAttention`; llama.cpp's encode path ignores it
///   and runs the encoder bidirectionally, see BertGGMLOps.init(source:)) and `bert.pooling_type` to NONE; `bert.attention.layer_norm_epsilon` (f32) is required.
/// - vocabulary: `tokenizer.ggml.model` required; "bert" is WordPiece and needs `tokenizer.ggml.tokens`;
///   `tokenizer.ggml.token_type_count` (u32, default 0) sizes the token-type table, and 0 is refused at the tensors
///   ("model needs to define token type count").
/// - tensors with exactly the `ne` llama.cpp asserts: token_embd [n_embd, n_vocab], token_types [n_embd, n_types]
///   (optional), position_embd [n_embd, n_ctx_train], token_embd_norm weight+bias [n_embd], and per layer attn_q/k/v
///   [n_embd, n_embd] with optional biases, attn_output [n_embd, n_embd] (+ optional bias), attn_output_norm and
///   layer_output_norm weight+bias, ffn_up [n_embd, n_ff] and ffn_down [n_ff, n_embd] with optional biases; then the
///   tensor count must match ("wrong number of tensors").
/// A missing optional bias is what llama.cpp does without it — nothing added — so `vector` gives zeros for it.
/// What llama.cpp loads but Parity's BERT engine does not compute (a fused attn_qkv, a classifier head, LAST pooling)
/// is refused as unsupported (exit 2).
public struct GGUFBertWeights: BertWeightSource {
    public let path: String
    public let file: GGUFFile
    public let hyperparameters: BertHyperparameters
    /// `bert.attention.causal` as llama.cpp reads it (absent = true): whether its graph masks future tokens.
    public let causalAttention: Bool
    /// What llama.cpp's loader does with this file's tensors.
    public let loading: StrictLoadingOutcome
    /// `tokenizer.ggml.model`.
    public let tokenizerModel: String
    private let tensorsByName: [String: GGUFTensorInfo]
    /// F32/F16/BF16 projection matrices and the vectors, decoded to float32 once for this loaded file (shared by copies).
    /// Memory: 4 bytes per projection weight (all-MiniLM-L6-v2: 10.6 M weights, 42.5 MB, whatever the stored float type);
    /// the embedding tables are not decoded whole — get_rows reads the rows it needs from the map.
    private let decoded = DecodedWeightCache()

    static let maxLayers = 512

    /// Reads `path`: a malformed GGUF or one that is not `bert` throws `ParityError` (exit 2); a well-formed file
    /// llama.cpp would refuse returns the refusal with llama.cpp's message.
    public static func load(path: String) throws(ParityError) -> Result<GGUFBertWeights, LlamaRuntimeRefusal> {
        try load(GGUFFile(path: path))
    }

    public static func load(_ file: GGUFFile) throws(ParityError) -> Result<GGUFBertWeights, LlamaRuntimeRefusal> {
        do {
            return .success(try GGUFBertWeights(file: file))
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
        guard let architecture = file["general.architecture"] else {
            throw ParityError.malformed(file: path, at: "key 'general.architecture'", reason: "missing: not a model file (llama.cpp: \"unknown model architecture: ''\")")
        }
        guard case let .string(arch) = architecture else {
            throw ParityError.malformed(file: path, at: "key 'general.architecture'", reason: "has type \(typeName(architecture.type)), llama.cpp expects str")
        }
        guard arch == "bert" else {
            throw ParityError.mismatch(file: path, reason: "general.architecture is '\(arch)'; this reader reads GGUF 'bert' files")
        }
        func value(_ key: String, required: Bool, _ step: String = "load_hparams") throws -> GGUFValue? {
            guard let v = file[key] else {
                if required { throw refuse(step, "key not found in model: \(key)") }
                return nil
            }
            return v
        }
        func u32(_ key: String, required: Bool, orArray: Bool = false, layers: Int = 0, _ step: String = "load_hparams") throws -> Int? {
            guard let v = try value(key, required: required, step) else { return nil }
            if case let .uint32(x) = v { return Int(x) }
            if orArray, case let .array(elementType, items) = v {
                guard items.count == layers else { throw refuse(step, "key \(key) has wrong array length; expected \(layers), got \(items.count)") }
                let values = Set(items.compactMap(\.intValue))
                guard elementType == .uint32 || elementType == .int32, values.count == 1, let only = values.first else {
                    throw ParityError.unsupported(file: path, reason: "\(key) varies per layer (\(items)); Parity's BERT engine takes one value for all layers")
                }
                return only
            }
            throw refuse(step, "key \(key) has wrong type \(typeName(v.type)) but expected type u32")
        }
        func bool(_ key: String) throws -> Bool? {
            guard let v = file[key] else { return nil }
            guard case let .bool(b) = v else { throw refuse("load_hparams", "key \(key) has wrong type \(typeName(v.type)) but expected type bool") }
            return b
        }
        // load_hparams
        let contextLength = try u32("bert.context_length", required: true)!
        let embedding = try u32("bert.embedding_length", required: true)!
        let causal = try bool("bert.attention.causal") ?? true
        let poolingCode = try u32("bert.pooling_type", required: false) ?? 0
        let layers = try u32("bert.block_count", required: true)!
        guard layers > 0 && layers <= GGUFBertWeights.maxLayers else {
            throw refuse("load_hparams", "GGML_ASSERT(hparams.n_layer_all > 0 && hparams.n_layer_all <= LLAMA_MAX_LAYERS) failed: bert.block_count = \(layers)")
        }
        let feedForward = try u32("bert.feed_forward_length", required: false, orArray: true, layers: layers) ?? 0
        let heads = try u32("bert.attention.head_count", required: false, orArray: true, layers: layers) ?? 0
        let kvHeads = try u32("bert.attention.head_count_kv", required: false, orArray: true, layers: layers) ?? heads
        var headDimension = 0
        if heads > 0 {
            headDimension = try u32("bert.attention.key_length", required: false) ?? embedding / heads
            let valueDimension = try u32("bert.attention.value_length", required: false) ?? embedding / heads
            guard valueDimension == headDimension else {
                throw refuse("build_graph", "GGML_ASSERT(n_embd_head == hparams.n_embd_head_k()) failed: value_length \(valueDimension) != key_length \(headDimension)")
            }
        }
        // load_arch_hparams (src/models/bert.cpp)
        let epsilonValue = try value("bert.attention.layer_norm_epsilon", required: true, "load_arch_hparams")!
        guard case let .float32(epsilon) = epsilonValue else {
            throw refuse("load_arch_hparams", "key bert.attention.layer_norm_epsilon has wrong type \(typeName(epsilonValue.type)) but expected type f32")
        }
        let pooling: BertPooling
        switch poolingCode {
        case 0: pooling = .none
        case 1: pooling = .mean
        case 2: pooling = .cls
        default: throw ParityError.unsupported(file: path, reason: "bert.pooling_type = \(poolingCode) (LAST/RANK): Parity's BERT engine pools by mean, CLS or not at all")
        }

        // llama_vocab::load
        guard let modelValue = file["tokenizer.ggml.model"] else { throw refuse("load_vocab", "key not found in model: tokenizer.ggml.model") }
        guard case let .string(tokenizer) = modelValue else {
            throw refuse("load_vocab", "key tokenizer.ggml.model has wrong type \(typeName(modelValue.type)) but expected type str")
        }
        let known = ["llama", "bert", "gpt2", "hybriddna", "whitespace", "t5", "rwkv", "test", "plamo2", "gemma4", "none", "no_vocab"]
        guard known.contains(tokenizer) else { throw refuse("load_vocab", "unknown tokenizer: '\(tokenizer)'") }
        let tokenTypes = try u32("tokenizer.ggml.token_type_count", required: false, "load_vocab") ?? 0
        var vocabulary = 0
        if tokenizer == "none" || tokenizer == "no_vocab" {
            vocabulary = try u32("bert.vocab_size", required: false, "load_vocab") ?? 0
        } else {
            guard let tokens = file["tokenizer.ggml.tokens"] else { throw refuse("load_vocab", "cannot find tokenizer vocab in model file") }
            guard case let .array(.string, items) = tokens else { throw refuse("load_vocab", "invalid gguf type for tokenizer.ggml.tokens") }
            vocabulary = items.count
            if let types = file["tokenizer.ggml.token_type"] {
                guard case let .array(.int32, values) = types else { throw refuse("load_vocab", "invalid gguf type for tokenizer.ggml.token_type") }
                guard values.count >= vocabulary else { throw refuse("load_vocab", "Index out of array bounds for toktypes (\(values.count) < \(vocabulary))") }
            }
        }
        tokenizerModel = tokenizer

        // load_arch_tensors (src/models/bert.cpp), in its creation order.
        guard tokenTypes > 0 else { throw refuse("load_tensors_arch", "bert model needs to define token type count") }
        let byName = Dictionary(file.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        tensorsByName = byName
        var created = 0
        var expected: [StrictLoadingRule.Parameter] = []
        func create(_ name: String, _ ne: [Int], required: Bool = true) throws {
            guard let t = byName[name] else {
                if required { throw refuse("load_tensors", "tensor '\(name)' not found") }
                return
            }
            let padded = t.ne + [Int](repeating: 1, count: max(0, 4 - t.ne.count))
            guard (0..<4).allSatisfy({ i in i < ne.count ? padded[i] == ne[i] : padded[i] == 1 }) else {
                func shape(_ d: [Int]) -> String { d.map { String(format: "%6d", $0) }.joined(separator: ", ") }
                throw refuse("load_tensors", "tensor '\(name)' has wrong shape; expected \(shape(ne)), got \(shape(Array(padded.prefix(4))))")
            }
            created += 1
            expected.append(.init(name: name, shape: t.ne))
        }
        func unsupportedIfPresent(_ name: String, _ why: String) throws {
            if byName[name] != nil { throw ParityError.unsupported(file: path, reason: "tensor '\(name)': \(why); llama.cpp would use it, Parity's BERT engine does not compute it") }
        }
        try create("token_embd.weight", [embedding, vocabulary])
        try create("token_types.weight", [embedding, tokenTypes], required: false)
        try create("position_embd.weight", [embedding, contextLength])
        for name in ["cls.weight", "cls.bias", "cls.output.weight", "cls.output.bias"] { try unsupportedIfPresent(name, "a classifier head") }
        try create("token_embd_norm.weight", [embedding])
        try create("token_embd_norm.bias", [embedding])
        let kvWidth = headDimension * kvHeads
        for i in 0..<layers {
            let b = "blk.\(i)."
            try unsupportedIfPresent(b + "attn_qkv.weight", "a fused Q/K/V projection")
            try create(b + "attn_q.weight", [embedding, embedding])
            try create(b + "attn_k.weight", [embedding, kvWidth])
            try create(b + "attn_v.weight", [embedding, kvWidth])
            try create(b + "attn_q.bias", [embedding], required: false)
            try create(b + "attn_k.bias", [kvWidth], required: false)
            try create(b + "attn_v.bias", [kvWidth], required: false)
            try create(b + "attn_output.weight", [embedding, embedding])
            try create(b + "attn_output.bias", [embedding], required: false)
            try create(b + "attn_output_norm.weight", [embedding])
            try create(b + "attn_output_norm.bias", [embedding])
            try create(b + "ffn_up.weight", [embedding, feedForward])
            try create(b + "ffn_up.bias", [feedForward], required: false)
            try create(b + "ffn_down.weight", [feedForward, embedding])
            try create(b + "ffn_down.bias", [embedding], required: false)
            try create(b + "layer_output_norm.weight", [embedding])
            try create(b + "layer_output_norm.bias", [embedding])
        }
        let stored = file.tensors.map { StrictLoadingRule.Parameter(name: $0.name, shape: $0.ne) }
        let outcome = StrictLoadingRule.llamaCpp.check(file: path, expected: expected, stored: stored, shapeWord: "ne")
        if created != file.tensors.count {
            throw refuse("done_getting_tensors", "wrong number of tensors; expected \(file.tensors.count), got \(created)",
                         detail: outcome.refused ? outcome.refusals.joined(separator: "; ") : nil)
        }
        loading = outcome
        guard heads > 0, kvHeads == heads else {
            throw ParityError.unsupported(file: path, reason: "bert.attention.head_count \(heads), head_count_kv \(kvHeads): Parity's BERT engine computes multi-head attention with as many K/V heads as queries")
        }
        for t in file.tensors where !t.type.isSupported {
            throw ParityError.unsupported(file: path, reason: "tensor '\(t.name)': \(t.type.unsupportedReason ?? t.type.name)")
        }
        causalAttention = causal
        // ggml_gelu is the tanh form (through an F16 table on the CPU); llama.cpp's bert graph applies it whatever the
        // checkpoint's hidden_act was, and normalisation is the caller's (llama-embedding's --embd-normalize 2 default).
        hyperparameters = BertHyperparameters(
            vocabularySize: vocabulary, hiddenSize: embedding, layerCount: layers, headCount: heads, intermediateSize: feedForward,
            maxPositions: contextLength, tokenTypeCount: tokenTypes, layerNormEpsilon: Double(epsilon), activation: .geluTanh,
            pooling: pooling, normalizesEmbedding: true)
    }

    /// llama.cpp's tensor name for a role (the reader's own table, independent of Parity's converter).
    public static func tensorName(_ role: BertTensorRole, layer: Int) -> String {
        let b = "blk.\(layer)."
        switch role {
        case .tokenEmbedding: return "token_embd.weight"
        case .positionEmbedding: return "position_embd.weight"
        case .tokenTypeEmbedding: return "token_types.weight"
        case .embeddingNormWeight: return "token_embd_norm.weight"
        case .embeddingNormBias: return "token_embd_norm.bias"
        case .query: return b + "attn_q.weight"
        case .queryBias: return b + "attn_q.bias"
        case .key: return b + "attn_k.weight"
        case .keyBias: return b + "attn_k.bias"
        case .value: return b + "attn_v.weight"
        case .valueBias: return b + "attn_v.bias"
        case .attentionOutput: return b + "attn_output.weight"
        case .attentionOutputBias: return b + "attn_output.bias"
        case .attentionNormWeight: return b + "attn_output_norm.weight"
        case .attentionNormBias: return b + "attn_output_norm.bias"
        case .intermediate: return b + "ffn_up.weight"
        case .intermediateBias: return b + "ffn_up.bias"
        case .output: return b + "ffn_down.weight"
        case .outputBias: return b + "ffn_down.bias"
        case .outputNormWeight: return b + "layer_output_norm.weight"
        case .outputNormBias: return b + "layer_output_norm.bias"
        }
    }

    /// Biases llama.cpp creates with TENSOR_NOT_REQUIRED (absent: nothing is added).
    static let optionalRoles: Set<BertTensorRole> = [.queryBias, .keyBias, .valueBias, .attentionOutputBias, .intermediateBias, .outputBias]

    private func checkLayer(_ role: BertTensorRole, _ layer: Int) throws(ParityError) {
        guard !role.isPerLayer || (0..<hyperparameters.layerCount).contains(layer) else {
            throw .usage("layer \(layer) is outside the \(hyperparameters.layerCount) layers of \(path)")
        }
    }

    public func matrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        guard role.isMatrix else { throw .usage("\(role.rawValue) is a vector; read it with vector(_:layer:)") }
        try checkLayer(role, layer)
        let name = GGUFBertWeights.tensorName(role, layer: layer)
        guard let t = tensorsByName[name] else { throw .notFound(path: path, what: "tensor '\(name)'") }
        return StoredMatrix(rows: t.ne.count > 1 ? t.ne[1] : 1, columns: t.ne[0], storage: .ggml(file: file, tensor: t), fileName: t.name)
    }

    public func vector(_ role: BertTensorRole, layer: Int) throws(ParityError) -> [Float] {
        guard !role.isMatrix else { throw .usage("\(role.rawValue) is a matrix; read it with matrix(_:layer:)") }
        try checkLayer(role, layer)
        let name = GGUFBertWeights.tensorName(role, layer: layer)
        guard let t = tensorsByName[name] else {
            if GGUFBertWeights.optionalRoles.contains(role) {
                let width = [.intermediateBias].contains(role) ? hyperparameters.intermediateSize : hyperparameters.hiddenSize
                return [Float](repeating: 0, count: width)
            }
            throw .notFound(path: path, what: "tensor '\(name)'")
        }
        return try decoded.value("vector:" + name) { () throws(ParityError) in
            do { return try file.values(t) } catch let e as ParityError { throw e } catch { throw .io(path: path, reason: "\(error)") }
        }
    }

    /// `matrix`, with an F32/F16/BF16 projection's values decoded once (`.dense` with the stored type, which
    /// BertGGMLOps multiplies exactly as it multiplies the file's tensor: activations rounded to the type, one sgemm).
    /// Embedding tables and block-quantized matrices stay in the file: get_rows and the block kernels read them in place.
    public func computeMatrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        let stored = try matrix(role, layer: layer)
        guard case let .ggml(file, t) = stored.storage, ![.tokenEmbedding, .positionEmbedding, .tokenTypeEmbedding].contains(role) else { return stored }
        let dtype: DType
        switch t.type {
        case .f32: dtype = .f32
        case .f16: dtype = .f16
        case .bf16: dtype = .bf16
        default: return stored
        }
        let values = try decoded.value("matrix:" + t.name) { () throws(ParityError) in
            do { return try file.values(t) } catch let e as ParityError { throw e } catch { throw .io(path: path, reason: "\(error)") }
        }
        return StoredMatrix(rows: stored.rows, columns: stored.columns, storage: .dense(values: values, dtype: dtype), fileName: stored.fileName)
    }
}
