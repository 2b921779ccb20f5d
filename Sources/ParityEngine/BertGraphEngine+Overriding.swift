import ParityCore
import ParityFormats

/// A BERT weight source with some parameters replaced by float32 values (what `layer-diff`'s diagnoses try: "would
/// the node pass if the file held these values?") and optionally other hyperparameters the runtime reads from the
/// file ("would it pass with the reference's LayerNorm ε?"). Everything else comes from the file as the runtime reads it.
struct OverriddenBertWeights: BertWeightSource {
    let base: any BertWeightSource
    let overrides: [String: Tensor]
    var hyperparameters: BertHyperparameters

    init(base: any BertWeightSource, overrides: [String: Tensor]) {
        self.base = base
        self.overrides = overrides
        self.hyperparameters = base.hyperparameters
    }

    var path: String { base.path }

    func matrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        let stored = try base.matrix(role, layer: layer)
        guard let replacement = overrides[role.referenceName(layer: layer)], replacement.rank == 2 else { return stored }
        return StoredMatrix(rows: replacement.shape[0], columns: replacement.shape[1], storage: .dense(values: replacement.data, dtype: .f32),
                            fileName: stored.fileName)
    }

    func computeMatrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        guard overrides[role.referenceName(layer: layer)]?.rank == 2 else { return try base.computeMatrix(role, layer: layer) }
        return try matrix(role, layer: layer)
    }

    func vector(_ role: BertTensorRole, layer: Int) throws(ParityError) -> [Float] {
        if let replacement = overrides[role.referenceName(layer: layer)] { return replacement.data }
        return try base.vector(role, layer: layer)
    }
}

/// A runtime's BERT ops with the feed-forward GELU computed in another form (the other ops unchanged): what
/// `layer-diff` runs to ask "would this node pass if the runtime computed GELU as the reference does?".
struct GELUFormBertOps: BertOps {
    let base: any BertOps
    let form: BertActivation

    var semantics: String { base.semantics + ", GELU computed in its \(form.rawValue) form" }
    func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor {
        try base.embedding(ids: ids, shape: shape, table: table)
    }
    func layerNorm(_ x: Tensor, weight: [Float], bias: [Float], epsilon: Double) -> Tensor { base.layerNorm(x, weight: weight, bias: bias, epsilon: epsilon) }
    func linear(_ x: Tensor, _ w: StoredMatrix, bias: [Float], role: BertTensorRole) throws(LayerExecutionError) -> Tensor {
        try base.linear(x, w, bias: bias, role: role)
    }
    func attentionProbs(q: Tensor, k: Tensor, padding: [Float], heads: Int) -> Tensor { base.attentionProbs(q: q, k: k, padding: padding, heads: heads) }
    func attentionOutput(probs: Tensor, v: Tensor, heads: Int) -> Tensor { base.attentionOutput(probs: probs, v: v, heads: heads) }
    // PyTorch's float32 GELU in the requested form (nn.GELU / approximate="tanh").
    func gelu(_ x: Tensor, activation: BertActivation) -> Tensor { BertPyTorchOps().gelu(x, activation: form) }
    func add(_ a: Tensor, _ b: Tensor) -> Tensor { base.add(a, b) }
    func pool(_ x: Tensor, padding: [Float], pooling: BertPooling) -> Tensor { base.pool(x, padding: padding, pooling: pooling) }
    func l2Normalize(_ x: Tensor) -> Tensor { base.l2Normalize(x) }
}

/// The BERT engine can have parameters replaced, so `layer-diff` tries the conversion mistakes of BERT checkpoints
/// on a GGUF, MLX or safetensors file: a parameter is the value as the file stores it (dequantized to float32; nil
/// for MLX-quantized modules) and an override replaces it for the runtime's own ops.
extension BertGraphEngine: ParameterOverridingEngine {
    public func referenceParameter(_ name: String) -> Tensor? {
        guard let (role, layer) = roles[name] else { return nil }
        guard role.isMatrix else {
            guard let values = try? source.vector(role, layer: layer) else { return nil }  // checked: absent → no candidate
            return Tensor(shape: [values.count], data: values)
        }
        guard let stored = try? source.matrix(role, layer: layer) else { return nil }  // checked: absent → no candidate
        switch stored.storage {
        case let .dense(values, _): return Tensor(shape: [stored.rows, stored.columns], data: values)
        case let .ggml(file, tensor):
            guard let values = try? file.values(tensor) else { return nil }  // checked: a type Parity cannot dequantize has no candidate
            return Tensor(shape: [stored.rows, stored.columns], data: values)
        case .mlxQuantized: return nil
        }
    }

    public func overridingParameters(_ overrides: [String: Tensor]) -> BertGraphEngine {
        BertGraphEngine(source: OverriddenBertWeights(base: source, overrides: overrides), ops: ops)
    }
}

/// How a BERT runtime computes a file besides its tensors: the LayerNorm ε it reads from the file
/// (`bert.attention.layer_norm_epsilon`, config.json `layer_norm_eps`) and the GELU form its graph computes.
extension BertGraphEngine {
    /// The GELU form this runtime computes: llama.cpp's bert graph calls `ggml_gelu` (the tanh approximation) and
    /// mlx-embeddings' BERT `nn.GELU()` (erf) whatever the file says; PyTorch follows config.json's `hidden_act`.
    public var computedGELU: BertActivation {
        switch ops {
        case is BertGGMLOps: return .geluTanh
        case is BertMLXOps: return .geluErf
        case let changed as GELUFormBertOps: return changed.form
        default: return source.hyperparameters.activation
        }
    }

    /// Where `computedGELU` comes from, in the runtime's words.
    public var geluOrigin: String {
        switch ops {
        case is BertGGMLOps: return "llama.cpp's bert graph calls ggml_gelu, the tanh approximation, whatever the checkpoint's hidden_act"
        case is BertMLXOps: return "mlx-embeddings' BERT applies nn.GELU(), the erf form"
        default: return "config.json's hidden_act"
        }
    }

    /// Where the runtime reads its LayerNorm ε, in the file format's words.
    public var layerNormEpsilonOrigin: String {
        switch ops {
        case is BertGGMLOps: return "GGUF bert.attention.layer_norm_epsilon"
        case is BertMLXOps: return "the MLX directory's config.json layer_norm_eps"
        default: return "config.json layer_norm_eps"
        }
    }

    /// The same file computed with another LayerNorm ε (as the runtime would hold it).
    public func overridingLayerNormEpsilon(_ epsilon: Double) -> BertGraphEngine {
        var changed = OverriddenBertWeights(base: source, overrides: [:])
        changed.hyperparameters.layerNormEpsilon = epsilon
        return BertGraphEngine(source: changed, ops: ops)
    }

    /// The same file computed with GELU in another form (everything else as the runtime computes it).
    public func computingGELU(_ form: BertActivation) -> BertGraphEngine {
        BertGraphEngine(source: source, ops: GELUFormBertOps(base: ops, form: form))
    }
}
