import ParityCore

/// Requantizes a GGUF file as llama-quantize does: every tensor with two or more dimensions whose row length
/// is a multiple of the target type's block size is converted to that type; every other tensor keeps its
/// type. Metadata is preserved in order, `general.file_type` is set from the types the matrices end up with
/// (`fileType` maps them; nil keeps the input's) and `general.quantization_version` added when anything is quantized.
public enum GGUFRequantizer {
    public struct Decision: Sendable {
        public let name: String
        public let from: GGMLType
        public let to: GGMLType
        public let reason: String
    }

    public static func requantize(input: String, output: String, to type: GGMLType, fileType: ([GGMLType]) -> UInt32?) throws -> [Decision] {
        let source = try GGUFFile(path: input)
        guard type.isSupported, !type.isActivationOnly else { throw ParityError.usage("cannot quantize to \(type.name)") }
        var writer = try GGUFWriter(architecture: source.architecture ?? "unknown", alignment: source.alignment)
        for (key, value) in source.metadata where key != "general.architecture" && key != "general.alignment" {
            try writer.set(key, value)
        }
        var decisions: [Decision] = []
        for t in source.tensors {
            let ne0 = t.ne.first ?? 1
            let reason: String?
            if t.ne.count < 2 || t.ne.dropFirst().allSatisfy({ $0 == 1 }) {
                reason = "1-D tensor (kept, as llama-quantize keeps norms and biases)"
            } else if ne0 % type.blockSize != 0 {
                reason = "row length \(ne0) is not a multiple of \(type.name)'s block size \(type.blockSize)"
            } else if !t.type.isSupported {
                reason = "source type \(t.type.name) cannot be decoded"
            } else {
                reason = nil
            }
            if let reason {
                try writer.add(name: t.name, type: t.type, ne: t.ne, bytes: try source.rawBytes(t))
                decisions.append(Decision(name: t.name, from: t.type, to: t.type, reason: reason))
            } else {
                let bytes = t.type == type ? try source.rawBytes(t) : try GGMLQuants.quantize(try source.values(t), to: type)
                try writer.add(name: t.name, type: type, ne: t.ne, bytes: bytes)
                let note = t.type.isQuantized && t.type != type ? "requantized from \(t.type.name) (dequantized first: error compounds)" : "converted"
                decisions.append(Decision(name: t.name, from: t.type, to: type, reason: note))
            }
        }
        let matrixTypes = decisions.filter { d in source.tensors.first { $0.name == d.name }.map { $0.ne.count >= 2 && $0.ne.dropFirst().contains { $0 > 1 } && !d.name.hasSuffix(".bias") } ?? false }.map(\.to)
        if let value = fileType(matrixTypes) { try writer.set("general.file_type", .uint32(value)) }
        try writer.write(to: output)
        return decisions
    }
}
