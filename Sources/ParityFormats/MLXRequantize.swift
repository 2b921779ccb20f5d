import ParityCore

/// Requantizes MLX weights (a file or an mlx-lm directory) as mlx-lm's quantize does: every 2-D `*.weight`
/// whose last dimension is a multiple of the group size is quantized (already quantized modules are
/// dequantized first and the notes say the error compounds); the rest is copied unchanged. A directory's
/// config.json gets the new `quantization` / `quantization_config` entries, per-module overrides dropped.
public enum MLXRequantizer {
    public static func requantize(input: String, output: String, parameters q: MLXQuantParameters) throws -> [String] {
        try requantizeReporting(input: input, output: output, parameters: q).notes
    }

    /// What was written: the notes, the path (".safetensors" added to a bare file name), and every module with a
    /// 2-D weight with its in_features, so the output can be read back as a model with those layers.
    public static func requantizeReporting(input: String, output: String, parameters q: MLXQuantParameters) throws
        -> (notes: [String], path: String, modules: [(name: String, inFeatures: Int)]) {
        try MLXQuantization.validate(mode: q.mode, groupSize: q.groupSize, bits: q.bits)
        let source = try MLXModelFiles.load(path: input)
        var out: [RawTensor] = []
        var notes: [String] = []
        let quantizedModules = Set(source.tensors.filter { $0.name.hasSuffix(".scales") }.map { String($0.name.dropLast(".scales".count)) })
        var consumed = Set<String>()
        var modules: [(name: String, inFeatures: Int)] = []
        for t in source.tensors where t.name.hasSuffix(".weight") {
            let module = String(t.name.dropLast(".weight".count))
            var values: [Float]
            var dtype = t.dtype
            var cols = t.shape.last ?? 0
            var rows = t.shape.count == 2 ? t.shape[0] : 0
            if quantizedModules.contains(module) {
                guard let old = try source.quantization(forModule: module), let scales = source.tensor(module + ".scales") else { continue }
                let stored = try MLXQuantized(weight: t, scales: scales, biases: source.tensor(module + ".biases"),
                                              mode: MLXQuantMode.parse(old.mode), groupSize: old.groupSize, bits: old.bits)
                values = MLXQuantization.dequantize(stored)
                dtype = stored.mode == .affine ? stored.scaleType.dtype : .bf16
                (rows, cols) = (stored.rows, stored.cols)
                consumed.formUnion([t.name, module + ".scales", module + ".biases"])
                notes.append("\(module): requantized from \(old.mode) \(old.bits)-bit group \(old.groupSize) (dequantized first: error compounds)")
            } else {
                guard t.shape.count == 2, t.dtype.isFloatingPoint, let v = t.floats() else { continue }
                guard cols % q.groupSize == 0 else {
                    notes.append("\(t.name): last dimension \(cols) is not a multiple of group size \(q.groupSize); left unquantized (as mlx-lm does)")
                    continue
                }
                values = v
                consumed.insert(t.name)
            }
            modules.append((module, cols))
            out += try MLXQuantization.quantizeModule(module, values: values, rows: rows, cols: cols, dtype: dtype,
                                                      mode: q.mode, groupSize: q.groupSize, bits: q.bits)
            notes.append("\(module): \(q.mode) \(q.bits)-bit, group \(q.groupSize)")
        }
        out += source.tensors.filter { !consumed.contains($0.name) }
        var config: JSONValue? = nil
        if source.isDirectory, case var .object(members)? = source.config {
            members.removeAll { $0.key == "quantization" || $0.key == "quantization_config" }
            if out.contains(where: { $0.name.hasSuffix(".scales") }) {
                members.append(("quantization", q.json))
                members.append(("quantization_config", q.json))
            }
            config = .object(members)
        }
        let destination = source.isDirectory || output.hasSuffix(".npz") || output.hasSuffix(".safetensors") ? output : output + ".safetensors"
        try MLXWriter.write(out.sorted { $0.name < $1.name }, config: config, to: destination)
        return (notes, destination, modules)
    }
}
