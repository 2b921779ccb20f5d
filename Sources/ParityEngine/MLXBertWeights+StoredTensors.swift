import ParityCore
import ParityFormats

/// The MLX BERT parameters as mlx-embeddings' Model holds them after `sanitize`, for the tensor-by-tensor weight
/// check: mlx.nn keeps PyTorch's names and `[out, in]` layout, so every tensor is the reference parameter under its
/// own name; a quantized module (`nn.QuantizedLinear` / `nn.QuantizedEmbedding`) is its packed `weight` with
/// `scales` (and `biases` for affine), dequantized with the module's own group size and bits.
extension MLXBertWeights: BertStoredTensors {
    public func storedTensor(_ role: BertTensorRole, layer: Int) -> (fileName: String, source: StoredWeightSource?, layout: StoredLayout, refusal: String?) {
        let name = role.referenceName(layer: layer)
        let refusal = loading.refused ? "mlx_embeddings refuses the directory: " + loading.refusals.joined(separator: "; ") : nil
        if role.isMatrix {
            let module = String(name.dropLast(".weight".count))
            let shape = MLXBertWeights.modules(hyperparameters).first { $0.name == module }.map { [$0.outFeatures, $0.inFeatures] }
            if let q = quantizedModules[module], let shape {
                guard let weight = weights[name], let scales = weights[module + ".scales"] else {
                    return (name, nil, .identity(shape, "quantized module without weight or scales"), refusal ?? "quantized module '\(module)' has no weight or scales")
                }
                let biases = q.mode == "affine" ? weights[module + ".biases"] : nil
                return (name, .mlxQuantized(weight: weight, scales: scales, biases: biases, parameters: q),
                        .identity(shape, "mlx.nn quantized \(q.mode) \(q.bits)-bit, group \(q.groupSize): rows [out, in] quantized along in"), refusal)
            }
        }
        guard let t = weights[name] else { return (name, nil, .identity([], "absent: mlx-embeddings' Model has this parameter"), refusal) }
        return (name, .mlxArray(t), .identity(t.shape, "mlx.nn: same name, same layout as PyTorch"), refusal)
    }

    public var loaderTensorNames: (names: [String], refusesUnread: Bool, why: String) {
        // mlx-embeddings' Model holds a pooler (pooler.dense) that mean pooling never reads: loaded, not refused. A
        // parameter outside the Model is what load_weights(strict=True) refuses, and MLXBertWeights.load reports
        // that as a loading refusal already (which fails the file).
        (weights.keys.sorted(), false, "a parameter of mlx-embeddings' Model (the pooler) that mean pooling does not read")
    }
}
