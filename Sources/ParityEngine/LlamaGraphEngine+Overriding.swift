import ParityCore
import ParityFormats

/// A Llama weight source with some matrices replaced by float32 values in the file's own row order (what
/// `layer-diff`'s diagnoses try: "would the node pass if the file held these rows?"). Norms and every other
/// matrix come from the file as the runtime reads it.
struct OverriddenLlamaWeights: LlamaWeightSource {
    let base: any LlamaWeightSource
    let overrides: [String: Tensor]
    let roles: [String: (role: LlamaTensorRole, layer: Int)]

    var path: String { base.path }
    var hyperparameters: LlamaHyperparameters { base.hyperparameters }
    var ropeStyle: RopeStyle { base.ropeStyle }

    func matrix(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        let stored = try base.matrix(role, layer: layer)
        guard let replacement = overrides[role.referenceName(layer: layer)], replacement.shape == [stored.rows, stored.columns] else { return stored }
        return StoredMatrix(rows: stored.rows, columns: stored.columns, storage: .dense(values: replacement.data, dtype: .f32), fileName: stored.fileName)
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
