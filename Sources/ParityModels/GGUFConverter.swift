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

    /// llama.cpp's `general.file_type` (`llama_ftype`, gguf-py's `LlamaFileType`) for a file whose weight matrices
    /// are mostly of one type: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, Q4_1 3, Q8_0 7, Q5_0 8, Q5_1 9, Q2_K 10,
    /// Q3_K_S 11, Q4_K_S 14, Q5_K_S 16, Q6_K 18, BF16 32, MXFP4_MOE 38. A file whose matrices are all one k-quant
    /// type is the "_S" (small) mix; the "_M"/"_L" mixes promote some tensors to larger types.
    public static let fileTypes: [GGMLType: UInt32] = [
        .f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q8_0: 7, .q5_0: 8, .q5_1: 9, .q2_K: 10, .q3_K: 11, .q4_K: 14, .q5_K: 16, .q6_K: 18, .bf16: 32, .mxfp4: 38,
    ]

    /// The ggml types of a file's weight matrices (tensors with 2+ dimensions that are not biases), in name order.
    public static func matrixTypes(of file: GGUFFile) -> [GGMLType] {
        Array(Set(file.tensors.filter { isMatrix(name: $0.name, ne: $0.ne) }.map(\.type))).sorted { $0.name < $1.name }
    }

    static func isMatrix(name: String, ne: [Int]) -> Bool { ne.count >= 2 && ne.dropFirst().contains { $0 > 1 } && !name.hasSuffix(".bias") }

    /// `general.file_type` by what the matrices actually are: the block type when one is present (llama.cpp labels
    /// a file by its quantized type even where some rows fell back), else the float type (all F16 → MOSTLY_F16;
    /// F16 wins over F32 in a mix, as "mostly F16, except 1-D tensors"). nil when no single label fits.
    public static func fileType(matrixTypes types: [GGMLType]) -> UInt32? {
        let quantized = Set(types.filter(\.isQuantized))
        if quantized.count == 1 { return fileTypes[quantized.first!] }
        guard quantized.isEmpty else { return nil }
        let floats = Set(types)
        if floats == [.f32] || floats.isEmpty { return fileTypes[.f32] }
        if floats.contains(.f16) { return fileTypes[.f16] }
        return floats.contains(.bf16) ? fileTypes[.bf16] : nil
    }

    /// Converts `model` to GGUF with weights of `type`. Biases stay F32 and matrices whose row length no block of
    /// the type divides fall back to F16 (what convert_hf_to_gguf does); each tensor's stored type is returned as
    /// a note, and `general.file_type` says what the matrices actually are.
    public static func convert(_ model: ReferenceModel, type: GGMLType, to output: String) throws -> [String] {
        guard fileTypes[type] != nil else {
            throw ParityError.usage("GGUF type must be one of \(fileTypes.keys.map(\.name).sorted().joined(separator: ", ")); got \"\(type.name)\"")
        }
        guard let table = tables[model.config.architecture] else {
            throw ParityError.unsupported(file: model.directory + "/config.json", reason: "no GGUF layout for architecture \(model.config.architecture)")
        }
        let source = try model.weights()
        var writer = try GGUFWriter(architecture: table.architecture)
        try writer.set("general.name", .string(model.name))
        var notes: [String] = []
        var allF32 = true
        var written: [GGMLType] = []
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
            if isMatrix(name: rule.gguf, ne: ne) { written.append(chosen) }
            try writer.add(name: rule.gguf, type: chosen, ne: ne, bytes: try GGMLQuants.quantize(values, to: chosen))
            notes.append("\(rule.reference) \(tensor.shape) -> \(rule.gguf) ne \(ne) \(chosen.name)")
        }
        if table.architecture == "mnist-cnn" && !allF32 {
            notes.append("note: ggml's mnist-eval asserts every mnist-cnn tensor is F32; only the f32 file loads there")
        }
        if let fileType = fileType(matrixTypes: written) { try writer.set("general.file_type", .uint32(fileType)) }
        if type.isQuantized && !written.contains(type) {
            notes.append("note: no weight matrix of \(model.name) has rows that fit \(type.name)'s block of \(type.blockSize): nothing is \(type.name)")
        }
        try writer.write(to: output)
        return notes
    }

    /// `convert(_:type:to:)` for a caller holding a ggml type name ("q8_0", "Q4_K").
    public static func convert(_ model: ReferenceModel, typeName: String, to output: String) throws -> [String] {
        guard let type = GGMLType.named(typeName) else {
            throw ParityError.usage("GGUF type must be one of \(fileTypes.keys.map(\.name).sorted().joined(separator: ", ")); got \"\(typeName)\"")
        }
        return try convert(model, type: type, to: output)
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
