import ParityCore
import ParityFormats

/// Converts a reference model to a safetensors file in PyTorch's own names and layouts, in a chosen float
/// dtype (round-to-nearest-even, as `tensor.half()` / `.bfloat16()` round).
public enum SafetensorsConverter {
    public static let dtypes: [String: DType] = ["f32": .f32, "f16": .f16, "bf16": .bf16]

    public static func convert(_ model: ReferenceModel, dtype: String, to output: String) throws -> [String] {
        guard let target = dtypes[dtype] else {
            throw ParityError.usage("safetensors dtype must be one of \(dtypes.keys.sorted().joined(separator: ", ")), got \"\(dtype)\"")
        }
        let source = try model.weights()
        var writer = SafetensorsWriter(metadata: [("format", "pt"), ("parity.model", model.name), ("parity.dtype", dtype)])
        var notes: [String] = []
        for entry in source.entries {
            // An integer buffer (BERT's `embeddings.position_ids`, an arange transformers rebuilds) is no parameter.
            guard entry.dtype.isFloatingPoint else {
                notes.append("\(entry.name) \(entry.shape) \(entry.dtype.rawValue): an integer buffer, not written")
                continue
            }
            if entry.dtype == target {
                // Already in the target dtype: PyTorch's `tensor.to(dtype)` returns such a tensor unchanged, so its
                // bytes are written as they are (one copy, instead of decoding to f32 and encoding back).
                try writer.add(name: entry.name, dtype: target, shape: entry.shape, bytes: try source.rawBytes(entry))
            } else {
                try writer.add(name: entry.name, tensor: try source.tensor(entry), as: target)
            }
            notes.append("\(entry.name) \(entry.shape) \(entry.dtype.rawValue) -> \(target.rawValue)")
        }
        try writer.write(to: output)
        return notes
    }
}
