import ParityCore
import ParityFormats

/// A Llama weight source with some matrices replaced by float32 values in the file's own row order (what
/// `layer-diff`'s diagnoses try: "would the node pass if the file held these rows?"), and optionally computed under
/// other conventions (hyperparameters, RoPE style: "would it pass if the runtime used the reference's θ?"). Norms
/// and every other matrix come from the file as the runtime reads it.
struct OverriddenLlamaWeights: LlamaWeightSource {
    let base: any LlamaWeightSource
    let overrides: [String: Tensor]
    let roles: [String: (role: LlamaTensorRole, layer: Int)]
    var hyperparameters: LlamaHyperparameters
    var ropeStyle: RopeStyle

    init(base: any LlamaWeightSource, overrides: [String: Tensor], roles: [String: (role: LlamaTensorRole, layer: Int)]) {
        self.base = base
        self.overrides = overrides
        self.roles = roles
        self.hyperparameters = base.hyperparameters
        self.ropeStyle = base.ropeStyle
    }

    var path: String { base.path }

    func matrix(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        let stored = try base.matrix(role, layer: layer)
        // Rows may differ (a hypothesis taking a K/V matrix's original heads out of an expanded one); the inputs may not.
        guard let replacement = overrides[role.referenceName(layer: layer)], replacement.rank == 2, replacement.shape[1] == stored.columns else { return stored }
        return StoredMatrix(rows: replacement.shape[0], columns: stored.columns, storage: .dense(values: replacement.data, dtype: .f32), fileName: stored.fileName)
    }

    func vector(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> [Float] {
        if let replacement = overrides[role.referenceName(layer: layer)] { return replacement.data }
        return try base.vector(role, layer: layer)
    }
}

/// The Llama engine can have parameters replaced, so `layer-diff` tries the transformer conversion mistakes on a
/// GGUF or MLX file too: a parameter is the matrix as the file stores it (rows in the file's order, dequantized
/// to float32; nil for MLX-quantized modules) and an override replaces it for the runtime's own ops.
extension LlamaGraphEngine: ParameterOverridingEngine {
    public func referenceParameter(_ name: String) -> Tensor? {
        guard let (role, layer) = roles[name] else { return nil }
        switch role {
        case .attentionNorm, .feedForwardNorm, .outputNorm:
            guard let values = try? source.vector(role, layer: layer) else { return nil }  // checked: absent → no candidate
            return Tensor(shape: [values.count], data: values)
        default:
            guard let stored = try? source.matrix(role, layer: layer) else { return nil }  // checked: absent → no candidate
            switch stored.storage {
            case let .dense(values, _): return Tensor(shape: [stored.rows, stored.columns], data: values)
            case let .ggml(file, tensor):
                guard let values = try? file.values(tensor) else { return nil }  // checked: a type Parity cannot dequantize has no candidate
                return Tensor(shape: [stored.rows, stored.columns], data: values)
            case .mlxQuantized: return nil
            }
        }
    }

    public func overridingParameters(_ overrides: [String: Tensor]) -> LlamaGraphEngine {
        LlamaGraphEngine(source: OverriddenLlamaWeights(base: source, overrides: overrides, roles: roles), ops: ops)
    }
}

/// The conventions a Llama runtime reads from its file (the source's hyperparameters and RoPE style); overriding them
/// re-derives the runtime's ops from the changed source (`LlamaOps.adapted(to:)`), so a changed RoPE style is
/// applied as that runtime applies it (ggml's NORMAL vs NEOX mode, mlx's `traditional`).
extension LlamaGraphEngine: ConventionOverridingEngine {
    public var conventions: RuntimeConventions {
        let hp = source.hyperparameters
        return RuntimeConventions(ropeStyle: source.ropeStyle, ropeTheta: hp.ropeTheta, rmsNormEpsilon: hp.rmsNormEpsilon, tiedOutput: hp.tiedEmbeddings)
    }

    public var conventionOrigins: RuntimeConventionOrigins { ops.conventionOrigins }

    public func overridingConventions(_ conventions: RuntimeConventions) -> LlamaGraphEngine {
        var changed = OverriddenLlamaWeights(base: source, overrides: [:], roles: roles)
        changed.ropeStyle = conventions.ropeStyle
        changed.hyperparameters.ropeTheta = conventions.ropeTheta
        changed.hyperparameters.rmsNormEpsilon = conventions.rmsNormEpsilon
        changed.hyperparameters.tiedEmbeddings = conventions.tiedOutput
        return LlamaGraphEngine(source: changed, ops: ops.adapted(to: changed))
    }
}
