import ParityCore
import ParityFormats
import ParityModels

/// A BERT checkpoint as PyTorch reads it: hyperparameters from the Hugging Face `config.json` (transformers'
/// `BertConfig`) and the sentence-transformers modules beside it, tensors from a safetensors file by their Hugging
/// Face names (no `bert.` prefix, as sentence-transformers stores them) with the shapes `load_state_dict` requires,
/// widened to float32 as loading into a float32 `BertModel` does.
public struct PyTorchBertWeights: BertWeightSource {
    public let weights: SafetensorsFile
    public let hyperparameters: BertHyperparameters
    public var path: String { weights.path }
    /// Tensors replaced for diagnosis or planted mistakes, by reference name (float32, the module's shape).
    public var overrides: [String: Tensor] = [:]
    /// Every tensor read, widened to float32 once for this loaded file (shared by copies; overrides are looked up
    /// first and never stored). Memory: 4 bytes per parameter read (all-MiniLM-L6-v2: 22.7 M, 91 MB, of which the
    /// word-embedding table is 47 MB), where decoding on every call allocated as much per forward pass.
    private let decoded = DecodedWeightCache()

    public init(weights: SafetensorsFile, config: BertArchitecture) {
        self.weights = weights
        hyperparameters = BertHyperparameters(
            vocabularySize: config.vocabularySize, hiddenSize: config.hiddenSize, layerCount: config.layerCount, headCount: config.headCount,
            intermediateSize: config.intermediateSize, maxPositions: config.maxPositions, tokenTypeCount: config.tokenTypeCount,
            layerNormEpsilon: config.layerNormEpsilon, activation: config.tanhGELU ? .geluTanh : .geluErf,
            pooling: config.pooling == "cls" ? .cls : config.pooling == "mean" ? .mean : .none, normalizesEmbedding: config.normalizes)
    }

    /// The shape `BertModel` creates for a role.
    public func shape(of role: BertTensorRole) -> [Int] {
        let h = hyperparameters
        switch role {
        case .tokenEmbedding: return [h.vocabularySize, h.hiddenSize]
        case .positionEmbedding: return [h.maxPositions, h.hiddenSize]
        case .tokenTypeEmbedding: return [h.tokenTypeCount, h.hiddenSize]
        case .query, .key, .value, .attentionOutput: return [h.hiddenSize, h.hiddenSize]
        case .intermediate: return [h.intermediateSize, h.hiddenSize]
        case .output: return [h.hiddenSize, h.intermediateSize]
        case .intermediateBias: return [h.intermediateSize]
        case .embeddingNormWeight, .embeddingNormBias, .queryBias, .keyBias, .valueBias, .attentionOutputBias, .attentionNormWeight,
             .attentionNormBias, .outputBias, .outputNormWeight, .outputNormBias:
            return [h.hiddenSize]
        }
    }

    func read(_ name: String, shape: [Int]) throws(ParityError) -> (values: [Float], dtype: DType) {
        if let override = overrides[name] {
            guard override.shape == shape else { throw .mismatch(file: weights.path, reason: "replacement for \"\(name)\" has shape \(override.shape), not \(shape)") }
            return (override.data, .f32)
        }
        guard let entry = weights.entry(named: name) else { throw .mismatch(file: weights.path, reason: "has no tensor \"\(name)\" (load_state_dict: missing key)") }
        guard entry.shape == shape else {
            throw .mismatch(file: weights.path, reason: "tensor \"\(name)\" has shape \(entry.shape); BertModel's is \(shape) (load_state_dict: size mismatch)")
        }
        guard entry.dtype.isFloatingPoint else { throw .mismatch(file: weights.path, reason: "tensor \"\(name)\" has dtype \(entry.dtype.rawValue), not a float type") }
        let values = try decoded.value(name) { () throws(ParityError) -> [Float] in
            do { return try weights.tensor(entry).data } catch {
                throw .malformed(file: weights.path, at: "tensor \"\(name)\"", reason: "\(error)")
            }
        }
        return (values, entry.dtype)
    }

    public func matrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
        let name = role.referenceName(layer: layer), shape = shape(of: role)
        guard role.isMatrix else { throw .mismatch(file: weights.path, reason: "\(name) is a vector, not a matrix") }
        let (values, dtype) = try read(name, shape: shape)
        return StoredMatrix(rows: shape[0], columns: shape[1], storage: .dense(values: values, dtype: dtype), fileName: name)
    }

    public func vector(_ role: BertTensorRole, layer: Int) throws(ParityError) -> [Float] {
        guard !role.isMatrix else { throw .mismatch(file: weights.path, reason: "\(role.referenceName(layer: layer)) is a matrix, not a vector") }
        return try read(role.referenceName(layer: layer), shape: shape(of: role)).values
    }
}
