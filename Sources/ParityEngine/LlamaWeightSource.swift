import ParityCore
import ParityFormats

/// A Llama checkpoint's hyperparameters as one runtime reads them from one file: llama.cpp from GGUF metadata
/// (`llama.embedding_length`, `llama.attention.layer_norm_rms_epsilon` stored as f32, …), mlx-lm from the
/// directory's `config.json`, PyTorch from the Hugging Face `config.json`. Each reader fills it from its own
/// keys, so a converter that writes a wrong value (an epsilon, a θ, a head count) is caught, not round-tripped.
public struct LlamaHyperparameters: Equatable, Sendable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var keyValueHeadCount: Int
    /// Per-head width of Q and K (and V); llama.cpp's `rope.dimension_count` defaults to hidden/heads.
    public var headDimension: Int
    public var intermediateSize: Int
    /// As the runtime holds it: llama.cpp reads a float32 key, PyTorch uses the config's double in float32 math.
    public var rmsNormEpsilon: Double
    public var ropeTheta: Double
    /// How many leading dimensions of each head RoPE rotates (all of them for Llama).
    public var ropeDimensions: Int
    /// The output projection is the token embedding (no separate `lm_head` / `output.weight`).
    public var tiedEmbeddings: Bool

    public init(vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int, keyValueHeadCount: Int, headDimension: Int,
                intermediateSize: Int, rmsNormEpsilon: Double, ropeTheta: Double, ropeDimensions: Int, tiedEmbeddings: Bool) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount
        self.headDimension = headDimension
        self.intermediateSize = intermediateSize
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.ropeDimensions = ropeDimensions
        self.tiedEmbeddings = tiedEmbeddings
    }
}

/// The parameters of a Llama block structure, by role. Reference names: `model.embed_tokens`,
/// `model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}`,
/// `model.norm`, `lm_head` (the `.weight` suffix is added by `referenceName`).
public enum LlamaTensorRole: String, CaseIterable, Sendable {
    case tokenEmbedding, attentionNorm, query, key, value, attentionOutput, feedForwardNorm, gate, up, down, outputNorm, output

    /// Whether the role exists once per layer.
    public var isPerLayer: Bool {
        switch self {
        case .tokenEmbedding, .outputNorm, .output: return false
        default: return true
        }
    }

    /// The PyTorch parameter name (`named_parameters()`), `layer` ignored for model-level roles.
    public func referenceName(layer: Int) -> String {
        let block = "model.layers.\(layer)."
        switch self {
        case .tokenEmbedding: return "model.embed_tokens.weight"
        case .attentionNorm: return block + "input_layernorm.weight"
        case .query: return block + "self_attn.q_proj.weight"
        case .key: return block + "self_attn.k_proj.weight"
        case .value: return block + "self_attn.v_proj.weight"
        case .attentionOutput: return block + "self_attn.o_proj.weight"
        case .feedForwardNorm: return block + "post_attention_layernorm.weight"
        case .gate: return block + "mlp.gate_proj.weight"
        case .up: return block + "mlp.up_proj.weight"
        case .down: return block + "mlp.down_proj.weight"
        case .outputNorm: return "model.norm.weight"
        case .output: return "lm_head.weight"
        }
    }
}

/// A matrix as the runtime stores it for its matmul / row lookup: `rows` outputs (ggml `ne[1]`, mlx.nn Linear's
/// `[out, in]`) of `columns` inputs each. The engine computes from the storage the way its runtime does
/// (ggml: activations quantized to the type's `vec_dot_type`; MLX: `quantized_matmul` on the packed groups).
public struct StoredMatrix: @unchecked Sendable {
    public enum Storage: @unchecked Sendable {
        /// Unquantized values widened to float32, with the stored dtype (what the runtime multiplies in).
        case dense(values: [Float], dtype: DType)
        /// A GGUF tensor of any ggml type, read through the file's memory map.
        case ggml(file: GGUFFile, tensor: GGUFTensorInfo)
        /// An MLX quantized module's packed `weight`, `scales`, `biases` (nil for mxfp4/mxfp8/nvfp4).
        case mlxQuantized(weight: RawTensor, scales: RawTensor, biases: RawTensor?, mode: String, groupSize: Int, bits: Int)
    }

    public let rows: Int
    public let columns: Int
    public let storage: Storage
    /// The file's own name for it (`blk.0.attn_q.weight`, `model.layers.0.self_attn.q_proj`).
    public let fileName: String

    public init(rows: Int, columns: Int, storage: Storage, fileName: String) {
        self.rows = rows
        self.columns = columns
        self.storage = storage
        self.fileName = fileName
    }
}

/// Where a Llama engine gets its parameters: one conforming reader per format, each reading the file as its
/// runtime's loader does (names, shapes it asserts, metadata keys, strictness). Rows of Q and K are returned in
/// the order the file stores them; `queryKeyRowOrder` says what that order is, as the runtime assumes it.
public protocol LlamaWeightSource {
    var path: String { get }
    var hyperparameters: LlamaHyperparameters { get }
    /// How the runtime applies RoPE to the stored Q/K rows: llama.cpp's `llama` graph uses ggml's normal mode
    /// (adjacent pairs), which is right only if the converter permuted the rows; HF/PyTorch and mlx-lm rotate
    /// halves (`rotate_half`, `traditional=False`) of rows in the checkpoint's order.
    var ropeStyle: RopeStyle { get }
    /// A 2-D parameter (embedding, projections, output). Throws when the runtime would refuse it.
    func matrix(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> StoredMatrix
    /// A norm weight, widened to float32.
    func vector(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> [Float]
}

/// The two RoPE conventions: which pairs of a head's dimensions rotate together.
public enum RopeStyle: String, Sendable {
    /// (2i, 2i+1): ggml `GGML_ROPE_TYPE_NORMAL` (llama.cpp's `llama`), mlx `traditional=True`.
    case adjacentPairs = "adjacent pairs"
    /// (i, i + d/2): HF `rotate_half`, ggml `GGML_ROPE_TYPE_NEOX`, mlx `traditional=False`.
    case halves = "rotate half"
}
