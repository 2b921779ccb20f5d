import ParityCore
import ParityFormats

/// Converts a reference model to GGUF in ggml's own layouts, the ones ggml's `examples/mnist` loader
/// (mnist-common.cpp) asserts. This table is the converter's; the GGUF engine does not read it — it reads
/// files the way ggml does, so a wrong entry here fails verification instead of round-tripping.
public enum GGUFConverter {
    /// How a PyTorch tensor becomes a GGUF tensor.
    public enum Layout: Equatable, Sendable {
        /// Same bytes; ne = reversed(PyTorch shape). Linear [out, in] → ne [in, out]; Conv2d OIHW → ne [KW, KH, IC, OC].
        case same
        /// A per-channel conv bias [C] as ne [1, 1, C, 1], so ggml_add broadcasts it over (W, H, C, N).
        case channelBias
        /// A Linear weight [out, C·H·W] whose columns follow PyTorch's (c, h, w) flatten, reordered to ggml's
        /// (h, w, c): ggml permutes (W, H, C, N) to (C, W, H, N) before flattening.
        case flattenedCHWtoHWC(channels: Int, height: Int, width: Int)
    }

    public struct Rule: Sendable {
        public let reference: String
        public let gguf: String
        public let layout: Layout
    }

    /// Per architecture: the GGUF `general.architecture` and the tensor table.
    public static let tables: [String: (architecture: String, rules: [Rule])] = [
        "mnist-cnn": ("mnist-cnn", [
            Rule(reference: "conv1.weight", gguf: "conv1.kernel", layout: .same),
            Rule(reference: "conv1.bias", gguf: "conv1.bias", layout: .channelBias),
            Rule(reference: "conv2.weight", gguf: "conv2.kernel", layout: .same),
            Rule(reference: "conv2.bias", gguf: "conv2.bias", layout: .channelBias),
            Rule(reference: "dense.weight", gguf: "dense.weight", layout: .flattenedCHWtoHWC(channels: 16, height: 7, width: 7)),
            Rule(reference: "dense.bias", gguf: "dense.bias", layout: .same),
        ]),
        "mnist-fc": ("mnist-fc", [
            Rule(reference: "fc1.weight", gguf: "fc1.weight", layout: .same),
            Rule(reference: "fc1.bias", gguf: "fc1.bias", layout: .same),
            Rule(reference: "fc2.weight", gguf: "fc2.weight", layout: .same),
            Rule(reference: "fc2.bias", gguf: "fc2.bias", layout: .same),
        ]),
    ]

    /// llama.cpp's `general.file_type` (LlamaFileType) for the types Parity writes.
    public static let fileTypes: [GGMLType: UInt32] = [
        .f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q8_0: 7, .q5_0: 8, .q5_1: 9, .q2_K: 10, .q3_K: 12, .q4_K: 15, .q5_K: 17, .q6_K: 18, .bf16: 32, .mxfp4: 38,
    ]

    /// Converts `model` to GGUF with weights of `typeName` (f32, f16, bf16, q8_0, q4_K, ...). Biases stay F32 and
    /// matrices whose row length no block of the type divides fall back to F16 (what convert_hf_to_gguf does);
    /// each such decision is returned as a note.
    public static func convert(_ model: ReferenceModel, typeName: String, to output: String) throws -> [String] {
        guard let type = GGMLType.named(typeName), fileTypes[type] != nil else {
            throw ParityError.usage("GGUF type must be one of \(fileTypes.keys.map(\.name).sorted().joined(separator: ", ")); got \"\(typeName)\"")
        }
        guard let table = tables[model.config.architecture] else {
            throw ParityError.unsupported(file: model.directory + "/config.json", reason: "no GGUF layout for architecture \(model.config.architecture)")
        }
        let source = try model.weights()
        var writer = try GGUFWriter(architecture: table.architecture)
        try writer.set("general.name", .string(model.name))
        try writer.set("general.file_type", .uint32(fileTypes[type]!))
        var notes: [String] = []
        var allF32 = true
        let covered = Set(table.rules.map(\.reference))
        if let extra = source.entries.first(where: { !covered.contains($0.name) }) {
            throw ParityError.mismatch(file: source.path, reason: "tensor \"\(extra.name)\" has no GGUF mapping for \(table.architecture)")
        }
        for rule in table.rules {
            let tensor = try source.tensor(named: rule.reference)
            let (ne, values) = try arrange(tensor, layout: rule.layout, name: rule.reference)
            var chosen = type
            if rule.reference.hasSuffix(".bias") || ne.count < 2 {
                chosen = .f32
                if type != .f32 { notes.append("\(rule.gguf): bias kept F32 (as llama.cpp keeps 1-D and bias tensors)") }
            } else if ne[0] % type.blockSize != 0 {
                chosen = .f16
                notes.append("\(rule.gguf): rows of \(ne[0]) are not a multiple of \(type.name)'s block size \(type.blockSize); falling back to F16 (as convert_hf_to_gguf does)")
            }
            allF32 = allF32 && chosen == .f32
            try writer.add(name: rule.gguf, type: chosen, ne: ne, bytes: try GGMLQuants.quantize(values, to: chosen))
            notes.append("\(rule.reference) \(tensor.shape) -> \(rule.gguf) ne \(ne) \(chosen.name)")
        }
        if table.architecture == "mnist-cnn" && !allF32 {
            notes.append("note: ggml's mnist-eval asserts every mnist-cnn tensor is F32; only the f32 file loads there")
        }
        try writer.write(to: output)
        return notes
    }

    /// Values in ggml memory order (ne[0] fastest) and the ne for one rule.
    static func arrange(_ t: ParityCore.Tensor, layout: Layout, name: String) throws -> (ne: [Int], values: [Float]) {
        switch layout {
        case .same:
            return (t.shape.reversed(), t.data)
        case .channelBias:
            guard t.rank == 1 else { throw ParityError.mismatch(file: name, reason: "channel bias must be 1-D, is \(t.shape)") }
            return ([1, 1, t.shape[0], 1], t.data)
        case let .flattenedCHWtoHWC(c, h, w):
            guard t.rank == 2, t.shape[1] == c * h * w else {
                throw ParityError.mismatch(file: name, reason: "expected [out, \(c * h * w)] for a (\(c), \(h), \(w)) flatten, got \(t.shape)")
            }
            let out = t.shape[0]
            let permuted = t.reshaped([out, c, h, w]).permuted([0, 2, 3, 1])
            return ([c * h * w, out], permuted.data)
        }
    }
}
