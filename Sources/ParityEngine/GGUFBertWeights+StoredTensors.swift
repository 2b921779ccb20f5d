import ParityCore
import ParityFormats

/// The GGUF BERT tensors as llama.cpp's loader finds them, for the tensor-by-tensor weight check: each role under
/// the name src/models/bert.cpp creates, with ggml's `ne` reversed (ne[0] innermost) as the PyTorch shape, so the
/// stored row-major values are the reference parameter in its own order (no transposition in llama.cpp's bert).
extension GGUFBertWeights: BertStoredTensors {
    public func storedTensor(_ role: BertTensorRole, layer: Int) -> (fileName: String, source: StoredWeightSource?, layout: StoredLayout, refusal: String?) {
        let name = GGUFBertWeights.tensorName(role, layer: layer)
        guard let t = file.tensor(named: name) else {
            // An absent optional bias is what llama.cpp runs without (nothing added): the check reports it missing.
            let absent = GGUFBertWeights.optionalRoles.contains(role) ? "absent; llama.cpp adds no bias" : "absent; llama.cpp's loader requires it"
            return (name, nil, .identity([], absent), nil)
        }
        return (name, .gguf(file, t), .identity(t.shape, "ggml ne \(t.ne) = PyTorch shape \(t.shape) row-major, as llama.cpp's bert graph reads it"), nil)
    }

    public var loaderTensorNames: (names: [String], refusesUnread: Bool, why: String) {
        (file.tensors.map(\.name), true, "llama.cpp's loader refuses a file with tensors it did not create (done_getting_tensors: wrong number of tensors)")
    }
}
