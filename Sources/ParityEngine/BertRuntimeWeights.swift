import ParityCore
import ParityFormats

/// A BERT reader that can say how its file stores each parameter, for the tensor-by-tensor weight check: the name
/// the runtime looks up, the stored tensor, and why the runtime would refuse it. GGUF / MLX BERT readers conform
/// the same way (their own names and layouts).
public protocol BertStoredTensors: BertWeightSource {
    /// The stored tensor of a role: its name in the file, where to read it (nil: absent), the layout that brings it
    /// to the reference parameter, and a refusal (nil when the runtime reads it).
    func storedTensor(_ role: BertTensorRole, layer: Int) -> (fileName: String, source: StoredWeightSource?, layout: StoredLayout, refusal: String?)
    /// Every tensor name the runtime's loader sees, and whether it refuses one no parameter reads (with why).
    var loaderTensorNames: (names: [String], refusesUnread: Bool, why: String) { get }
}

extension PyTorchBertWeights: BertStoredTensors {
    public func storedTensor(_ role: BertTensorRole, layer: Int) -> (fileName: String, source: StoredWeightSource?, layout: StoredLayout, refusal: String?) {
        let name = role.referenceName(layer: layer), shape = shape(of: role)
        guard let entry = weights.entry(named: name) else { return (name, nil, .identity(shape, "state_dict: same name"), nil) }
        let refusal = entry.shape == shape ? nil : "shape \(entry.shape); BertModel's is \(shape) (load_state_dict: size mismatch)"
        return (name, .safetensors(weights, entry), .identity(shape, "state_dict: same name, same shape"), refusal)
    }

    public var loaderTensorNames: (names: [String], refusesUnread: Bool, why: String) {
        // transformers loads a sentence-transformers checkpoint with from_pretrained, which warns about unused keys
        // (the pooler when it is left out, the position_ids buffer) instead of refusing them.
        (weights.entries.map(\.name), false, "from_pretrained warns about and ignores unused keys")
    }
}
