import ParityCore
import ParityFormats

/// Converts a reference model to MLX: the natural mlx.nn port's parameters (tools/mlx/models.py), in its own
/// layouts. This table is the converter's; the MLX engine reads parameters the way mlx.nn does and never
/// consults it, so a wrong entry fails verification.
public enum MLXConverter {
    public enum Layout: Equatable, Sendable {
        /// Same values and shape (Linear [out, in], biases).
        case same
        /// PyTorch Conv2d OIHW → mlx.nn.Conv2d [out, kh, kw, in] (`transpose(0, 2, 3, 1)`).
        case convChannelsLast
        /// A Linear weight [out, C·H·W] with PyTorch's (c, h, w) columns → MLX's NHWC flatten (h, w, c).
        case flattenedCHWtoHWC(channels: Int, height: Int, width: Int)
    }

    public static let tables: [String: [(reference: String, layout: Layout)]] = [
        "mnist-cnn": [
            ("conv1.weight", .convChannelsLast), ("conv1.bias", .same),
            ("conv2.weight", .convChannelsLast), ("conv2.bias", .same),
            ("dense.weight", .flattenedCHWtoHWC(channels: 16, height: 7, width: 7)), ("dense.bias", .same),
        ],
        "mnist-fc": [("fc1.weight", .same), ("fc1.bias", .same), ("fc2.weight", .same), ("fc2.bias", .same)],
    ]

    public static let dtypes: [String: DType] = ["f32": .f32, "f16": .f16, "bf16": .bf16]

    /// Writes `model` as MLX to `output` (a directory, or a `.safetensors` / `.npz` file for the weights alone).
    /// With `quantization`, every Linear weight whose last dimension is a multiple of the group size becomes
    /// an `nn.QuantizedLinear` (weight, scales[, biases]); the others stay in `dtype`, and the notes say so.
    public static func convert(_ model: ReferenceModel, dtype dtypeName: String, quantization: MLXQuantParameters?, to output: String) throws -> [String] {
        guard let dtype = dtypes[dtypeName] else {
            throw ParityError.usage("MLX dtype must be one of \(dtypes.keys.sorted().joined(separator: ", ")), got \"\(dtypeName)\"")
        }
        guard let table = tables[model.config.architecture] else {
            throw ParityError.unsupported(file: model.directory + "/config.json", reason: "no MLX layout for architecture \(model.config.architecture)")
        }
        if let q = quantization { try MLXQuantization.validate(mode: q.mode, groupSize: q.groupSize, bits: q.bits) }
        let source = try model.weights()
        let linearWeights = Set(model.config.layers.compactMap { layer -> String? in
            if case .linear = layer { return layer.name + ".weight" } else { return nil }
        })
        var tensors: [RawTensor] = []
        var notes: [String] = []
        var quantizedModules: [String] = []
        for (name, layout) in table {
            let t = try source.tensor(named: name)
            let arranged = try arrange(t, layout: layout, name: name)
            if let q = quantization, linearWeights.contains(name) {
                let module = String(name.dropLast(".weight".count))
                let cols = arranged.shape[1]
                if cols % q.groupSize == 0 {
                    tensors += try MLXQuantization.quantizeModule(module, values: arranged.data, rows: arranged.shape[0], cols: cols,
                                                                  dtype: dtype, mode: q.mode, groupSize: q.groupSize, bits: q.bits)
                    quantizedModules.append(module)
                    notes.append("\(name) \(t.shape) -> \(module).{weight,scales\(q.mode == "affine" ? ",biases" : "")} \(q.mode) \(q.bits)-bit, group \(q.groupSize)")
                    continue
                }
                notes.append("\(name): last dimension \(cols) is not a multiple of group size \(q.groupSize); left unquantized (as mlx-lm does)")
            }
            guard let bytes = ElementCodec.encode(arranged.data, as: dtype) else { throw ParityError.unsupported(file: name, reason: "cannot encode \(dtype.rawValue)") }
            tensors.append(RawTensor(name: name, dtype: dtype, shape: arranged.shape, bytes: bytes))
            notes.append("\(name) \(t.shape) -> \(name) \(arranged.shape) \(dtype.rawValue)")
        }
        if quantization != nil && quantizedModules.isEmpty {
            notes.append("note: no Linear layer of \(model.name) has a last dimension divisible by the group size; nothing was quantized")
        }
        try MLXWriter.write(tensors, config: mlxConfig(model, dtype: dtypeName, quantization: quantizedModules.isEmpty ? nil : quantization), to: output)
        return notes
    }

    /// config.json for an mlx-lm style directory: the reference config plus `quantization` (and the
    /// `quantization_config` copy mlx-lm writes for Hugging Face tooling).
    static func mlxConfig(_ model: ReferenceModel, dtype: String, quantization: MLXQuantParameters?) throws -> JSONValue {
        let original = try MappedFile(path: model.directory + "/config.json")
        guard case var .object(members) = try JSONParser.parse(Array(original.data)) else {
            throw ParityError.malformed(file: original.path, at: "offset 0", reason: "not a JSON object")
        }
        members.removeAll { ["quantization", "quantization_config", "model_type", "torch_dtype"].contains($0.key) }
        members.insert(("model_type", .string(model.config.architecture)), at: 0)
        members.append(("torch_dtype", .string(["f32": "float32", "f16": "float16", "bf16": "bfloat16"][dtype] ?? dtype)))
        if let q = quantization {
            members.append(("quantization", q.json))
            members.append(("quantization_config", q.json))
        }
        return .object(members)
    }

    static func arrange(_ t: Tensor, layout: Layout, name: String) throws -> Tensor {
        switch layout {
        case .same: return t
        case .convChannelsLast:
            guard t.rank == 4 else { throw ParityError.mismatch(file: name, reason: "expected an OIHW conv weight, got \(t.shape)") }
            return t.permuted([0, 2, 3, 1])
        case let .flattenedCHWtoHWC(c, h, w):
            guard t.rank == 2, t.shape[1] == c * h * w else { throw ParityError.mismatch(file: name, reason: "expected [out, \(c * h * w)], got \(t.shape)") }
            return t.reshaped([t.shape[0], c, h, w]).permuted([0, 2, 3, 1]).reshaped(t.shape)
        }
    }
}
