import ParityCore
import ParityFormats

/// A BERT encoder's hyperparameters as one runtime reads them from one file: llama.cpp from GGUF metadata
/// (`bert.embedding_length`, `bert.attention.layer_norm_epsilon` stored as f32, `bert.pooling_type`, …), an MLX
/// BERT from the directory's `config.json`, PyTorch from the Hugging Face `config.json` (+ sentence-transformers'
/// `1_Pooling/config.json` and `modules.json`). Each reader fills it from its own keys, so a converter that writes
/// a wrong value is caught, not round-tripped.
public struct BertHyperparameters: Equatable, Sendable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var intermediateSize: Int
    /// Rows of the absolute position embedding table (`max_position_embeddings`, llama.cpp's `context_length`).
    public var maxPositions: Int
    /// Rows of the token-type (segment) embedding table (`type_vocab_size`).
    public var tokenTypeCount: Int
    /// As the runtime holds it: llama.cpp reads a float32 key, PyTorch uses the config's double in float32 math.
    public var layerNormEpsilon: Double
    public var activation: BertActivation
    public var pooling: BertPooling
    /// Whether the sentence embedding is L2-normalised after pooling (sentence-transformers' `Normalize` module;
    /// llama.cpp's `--embd-normalize 2`, its default).
    public var normalizesEmbedding: Bool

    public init(vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int, intermediateSize: Int, maxPositions: Int,
                tokenTypeCount: Int, layerNormEpsilon: Double, activation: BertActivation, pooling: BertPooling, normalizesEmbedding: Bool) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.tokenTypeCount = tokenTypeCount
        self.layerNormEpsilon = layerNormEpsilon
        self.activation = activation
        self.pooling = pooling
        self.normalizesEmbedding = normalizesEmbedding
    }

    public var headDimension: Int { hiddenSize / headCount }
}

/// The feed-forward activation as the runtime computes it.
public enum BertActivation: String, Sendable {
    /// x·Φ(x) with the error function (PyTorch `nn.GELU()`, HF `"gelu"`).
    case geluErf = "gelu (erf)"
    /// The tanh approximation (HF `"gelu_new"`/`"gelu_pytorch_tanh"`; what ggml's `ggml_gelu` computes).
    case geluTanh = "gelu (tanh)"
}

/// How token states become one sentence embedding.
public enum BertPooling: String, Sendable {
    /// Average over the non-padding tokens (sentence-transformers `pooling_mode_mean_tokens`, llama.cpp MEAN = 1).
    case mean
    /// The first token's state (`pooling_mode_cls_token`, llama.cpp CLS = 2).
    case cls
    /// No pooling: per-token states only (llama.cpp NONE = 0).
    case none
}

/// The parameters of a BERT encoder by role. Reference names are Hugging Face `BertModel`'s `named_parameters()`
/// (no `bert.` prefix, as sentence-transformers checkpoints store them): `embeddings.*`,
/// `encoder.layer.N.attention.self.{query,key,value}`, `encoder.layer.N.attention.output.{dense,LayerNorm}`,
/// `encoder.layer.N.intermediate.dense`, `encoder.layer.N.output.{dense,LayerNorm}`.
public enum BertTensorRole: String, CaseIterable, Sendable {
    case tokenEmbedding, positionEmbedding, tokenTypeEmbedding, embeddingNormWeight, embeddingNormBias
    case query, queryBias, key, keyBias, value, valueBias
    case attentionOutput, attentionOutputBias, attentionNormWeight, attentionNormBias
    case intermediate, intermediateBias, output, outputBias, outputNormWeight, outputNormBias

    /// Whether the role exists once per layer.
    public var isPerLayer: Bool {
        switch self {
        case .tokenEmbedding, .positionEmbedding, .tokenTypeEmbedding, .embeddingNormWeight, .embeddingNormBias: return false
        default: return true
        }
    }

    /// Whether the parameter is a matrix (embedding tables and projection weights) rather than a vector.
    public var isMatrix: Bool {
        switch self {
        case .tokenEmbedding, .positionEmbedding, .tokenTypeEmbedding, .query, .key, .value, .attentionOutput, .intermediate, .output:
            return true
        default: return false
        }
    }

    /// The PyTorch parameter name, `layer` ignored for model-level roles.
    public func referenceName(layer: Int) -> String {
        let block = "encoder.layer.\(layer)."
        switch self {
        case .tokenEmbedding: return "embeddings.word_embeddings.weight"
        case .positionEmbedding: return "embeddings.position_embeddings.weight"
        case .tokenTypeEmbedding: return "embeddings.token_type_embeddings.weight"
        case .embeddingNormWeight: return "embeddings.LayerNorm.weight"
        case .embeddingNormBias: return "embeddings.LayerNorm.bias"
        case .query: return block + "attention.self.query.weight"
        case .queryBias: return block + "attention.self.query.bias"
        case .key: return block + "attention.self.key.weight"
        case .keyBias: return block + "attention.self.key.bias"
        case .value: return block + "attention.self.value.weight"
        case .valueBias: return block + "attention.self.value.bias"
        case .attentionOutput: return block + "attention.output.dense.weight"
        case .attentionOutputBias: return block + "attention.output.dense.bias"
        case .attentionNormWeight: return block + "attention.output.LayerNorm.weight"
        case .attentionNormBias: return block + "attention.output.LayerNorm.bias"
        case .intermediate: return block + "intermediate.dense.weight"
        case .intermediateBias: return block + "intermediate.dense.bias"
        case .output: return block + "output.dense.weight"
        case .outputBias: return block + "output.dense.bias"
        case .outputNormWeight: return block + "output.LayerNorm.weight"
        case .outputNormBias: return block + "output.LayerNorm.bias"
        }
    }
}

/// Where a BERT engine gets its parameters: one conforming reader per format, each reading the file as its
/// runtime's loader does (names, shapes it asserts, metadata keys, strictness).
public protocol BertWeightSource {
    var path: String { get }
    var hyperparameters: BertHyperparameters { get }
    /// A 2-D parameter (`role.isMatrix`). Throws when the runtime would refuse it.
    func matrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix
    /// A norm weight or a bias, widened to float32.
    func vector(_ role: BertTensorRole, layer: Int) throws(ParityError) -> [Float]
    /// The matrix as the engine multiplies it: the same values and stored type as `matrix`, but a reader may hand
    /// back float weights it decoded once per loaded file (`.dense`) instead of the file's bytes, so a forward pass
    /// does not decode them again. Checks that ask how the file stores a tensor use `matrix`.
    func computeMatrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix
}

extension BertWeightSource {
    public func computeMatrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        try matrix(role, layer: layer)
    }
}

/// The operations of a BERT encoder, each computed the way one runtime computes it. Activations are
/// `[batch, tokens, features]` in the reference layout; `padding` marks real tokens (1) and padding (0) per
/// `[batch, tokens]`, as Hugging Face's `attention_mask`.
public protocol BertOps: Sendable {
    /// What is emulated, for reports (default: the type's name).
    var semantics: String { get }
    /// Rows of an embedding table (word, position or token type), `shape` = `[batch, tokens]`.
    func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor
    func layerNorm(_ x: Tensor, weight: [Float], bias: [Float], epsilon: Double) -> Tensor
    func linear(_ x: Tensor, _ w: StoredMatrix, bias: [Float], role: BertTensorRole) throws(LayerExecutionError) -> Tensor
    /// Softmax(QKᵀ/√d + padding mask) per head: `[batch, heads, tokens, tokens]`.
    func attentionProbs(q: Tensor, k: Tensor, padding: [Float], heads: Int) -> Tensor
    /// probs·V merged back to `[batch, tokens, hidden]`.
    func attentionOutput(probs: Tensor, v: Tensor, heads: Int) -> Tensor
    func gelu(_ x: Tensor, activation: BertActivation) -> Tensor
    func add(_ a: Tensor, _ b: Tensor) -> Tensor
    /// The sentence embedding `[batch, hidden]` from token states and the padding mask.
    func pool(_ x: Tensor, padding: [Float], pooling: BertPooling) -> Tensor
    func l2Normalize(_ x: Tensor) -> Tensor
}

extension BertOps {
    /// What is emulated, for reports (an ops type may say more).
    public var semantics: String { "\(Self.self)" }
}
