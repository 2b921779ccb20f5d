import ParityCore
import ParityFormats
import ParityModels

/// A Llama checkpoint as PyTorch reads it: hyperparameters from the Hugging Face `config.json` (transformers'
/// `LlamaConfig`), tensors from a safetensors file by their Hugging Face names with the shapes
/// `load_state_dict(strict=True)` requires, widened to float32 as loading into a float32 `LlamaForCausalLM` does.
/// Q/K rows are in the checkpoint's order, which transformers rotates by halves.
public struct PyTorchLlamaWeights: LlamaWeightSource {
    public let weights: SafetensorsFile
    public let hyperparameters: LlamaHyperparameters
    public var path: String { weights.path }
    public var ropeStyle: RopeStyle { .halves }
    /// Tensors replaced for diagnosis, by reference name (float32, the module's shape).
    public var overrides: [String: Tensor] = [:]

    public init(weights: SafetensorsFile, config: LlamaArchitecture) {
        self.weights = weights
        hyperparameters = LlamaHyperparameters(
            vocabularySize: config.vocabularySize, hiddenSize: config.hiddenSize, layerCount: config.layerCount, headCount: config.headCount,
            keyValueHeadCount: config.keyValueHeadCount, headDimension: config.headDimension, intermediateSize: config.intermediateSize,
            rmsNormEpsilon: config.rmsNormEpsilon, ropeTheta: config.ropeTheta, ropeDimensions: config.headDimension,
            tiedEmbeddings: config.tiedEmbeddings)
    }

    /// The [rows, columns] `LlamaForCausalLM` creates for a matrix role.
    func shape(of role: LlamaTensorRole) -> [Int] {
        let h = hyperparameters
        switch role {
        case .tokenEmbedding, .output: return [h.vocabularySize, h.hiddenSize]
        case .query: return [h.headCount * h.headDimension, h.hiddenSize]
        case .key, .value: return [h.keyValueHeadCount * h.headDimension, h.hiddenSize]
        case .attentionOutput: return [h.hiddenSize, h.headCount * h.headDimension]
        case .gate, .up: return [h.intermediateSize, h.hiddenSize]
        case .down: return [h.hiddenSize, h.intermediateSize]
        case .attentionNorm, .feedForwardNorm, .outputNorm: return [h.hiddenSize]
        }
    }

    func read(_ name: String, shape: [Int]) throws(ParityError) -> (values: [Float], dtype: DType) {
        if let override = overrides[name] {
            guard override.shape == shape else { throw .mismatch(file: weights.path, reason: "replacement for \"\(name)\" has shape \(override.shape), not \(shape)") }
            return (override.data, .f32)
        }
        guard let entry = weights.entry(named: name) else { throw .mismatch(file: weights.path, reason: "has no tensor \"\(name)\" (load_state_dict: missing key)") }
        guard entry.shape == shape else {
            throw .mismatch(file: weights.path, reason: "tensor \"\(name)\" has shape \(entry.shape); LlamaForCausalLM's is \(shape) (load_state_dict: size mismatch)")
        }
        guard entry.dtype.isFloatingPoint else { throw .mismatch(file: weights.path, reason: "tensor \"\(name)\" has dtype \(entry.dtype.rawValue), not a float type") }
        do { return (try weights.tensor(entry).data, entry.dtype) } catch {
            throw .malformed(file: weights.path, at: "tensor \"\(name)\"", reason: "\(error)")
        }
    }

    public func matrix(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        // A tied output reads the embedding table (transformers ties lm_head.weight to it).
        let role = role == .output && hyperparameters.tiedEmbeddings ? .tokenEmbedding : role
        let name = role.referenceName(layer: layer), shape = shape(of: role)
        guard shape.count == 2 else { throw .mismatch(file: weights.path, reason: "\(name) is a vector, not a matrix") }
        let (values, dtype) = try read(name, shape: shape)
        return StoredMatrix(rows: shape[0], columns: shape[1], storage: .dense(values: values, dtype: dtype), fileName: name)
    }

    public func vector(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> [Float] {
        try read(role.referenceName(layer: layer), shape: shape(of: role)).values
    }
}
