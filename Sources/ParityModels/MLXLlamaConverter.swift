import Foundation
import ParityCore
import ParityFormats

/// Converts a Hugging Face Llama directory (config.json, model.safetensors or shards with
/// model.safetensors.index.json, tokenizer files) to the MLX directory `mlx_lm convert` (mlx-lm 0.32.2) writes:
/// - `model.safetensors` (metadata `{"format": "mlx"}`; shards of at most 5 GiB named `model-0000i-of-0000n` as
///   `make_shards` cuts them) and `model.safetensors.index.json` (`metadata.total_size`, `total_parameters`,
///   sorted `weight_map`; json.dump indent 4);
/// - the same tensor names as Hugging Face (mlx-lm's Llama module paths equal PyTorch's), minus
///   `*.rotary_emb.inv_freq` and, with tied embeddings, `lm_head.weight` (models/llama.py `sanitize`);
/// - every float tensor cast to `dtype` (default: config.json's `torch_dtype` when it is float32/float16/bfloat16,
///   else the stored dtype), then with `quantization` every nn.Linear and nn.Embedding whose input width is a
///   multiple of the group size replaced by `mx.quantize`'s packed weight, scales (and affine biases) — mlx-lm's
///   `quantize_model` predicate; RMSNorm weights stay float;
/// - `config.json`: the Hugging Face config as mlx-lm's `load_config` reads it (generation_config.json's
///   `eos_token_id` copied in), `_name_or_path` / `vision_config` removed, `quantization` and an identical
///   `quantization_config` added, keys sorted, written like Python's `json.dump(indent=4)`;
/// - tokenizer files and generation_config.json copied (mlx-lm re-saves the tokenizer through transformers, which
///   drops tokenizer.model; Parity copies the files as they are, which `mlx_lm.load` reads the same way).
/// The module table here is the converter's own; Parity's MLX reader (ParityEngine's MLXLlamaWeights) decides
/// names, shapes and quantization from the written directory as mlx-lm does, without consulting it.
public enum MLXLlamaConverter {
    /// One parameter of mlx-lm's Llama, as this converter writes it.
    public struct Entry: Equatable, Sendable {
        public enum Kind: String, Sendable { case embedding, linear, norm }
        public let name: String
        public let kind: Kind
        public let shape: [Int]
    }

    /// `mlx_lm.utils.MAX_FILE_SIZE_GB`.
    static let maxShardBytes = 5 << 30
    static let conversionDTypes: [String: DType] = ["float32": .f32, "float16": .f16, "bfloat16": .bf16]
    static let copiedFiles = ["tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
                              "chat_template.jinja", "generation_config.json"]

    /// The Hugging Face Llama directory `model` names: a directory path, or a bundled model's name (golden/NAME);
    /// nil when it is neither or its config.json does not say `model_type: llama`.
    public static func llamaDirectory(for model: String) -> String? {
        if isLlamaDirectory(model) { return model }
        guard !model.contains("/"), let bundled = ModelRepository.bundledDirectory(), isLlamaDirectory(bundled + "/" + model) else { return nil }
        return bundled + "/" + model
    }

    /// Whether `path` is a Hugging Face directory whose config.json says `model_type: llama`.
    public static func isLlamaDirectory(_ path: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path + "/config.json"),
              let config = try? JSONParser.parse(Array(data)) else { return false }
        return config["model_type"]?.stringValue == "llama"
    }

    /// The parameters mlx-lm's Llama has for this config, in the order `tree_flatten(model.parameters())` lists them.
    public static func table(config: JSONValue, path: String) throws(ParityError) -> [Entry] {
        func int(_ key: String) throws(ParityError) -> Int {
            guard let n = config[key]?.intValue, n > 0 else { throw .malformed(file: path, at: "key \"\(key)\"", reason: "missing or not a positive integer") }
            return n
        }
        let hidden = try int("hidden_size"), layers = try int("num_hidden_layers"), inter = try int("intermediate_size")
        let heads = try int("num_attention_heads"), vocab = try int("vocab_size")
        let kv = config["num_key_value_heads"]?.intValue ?? heads
        let headDim = config["head_dim"]?.intValue.flatMap { $0 > 0 ? $0 : nil } ?? hidden / heads
        var entries = [Entry(name: "model.embed_tokens.weight", kind: .embedding, shape: [vocab, hidden])]
        for i in 0..<layers {
            let p = "model.layers.\(i)."
            entries += [
                Entry(name: p + "self_attn.q_proj.weight", kind: .linear, shape: [heads * headDim, hidden]),
                Entry(name: p + "self_attn.k_proj.weight", kind: .linear, shape: [kv * headDim, hidden]),
                Entry(name: p + "self_attn.v_proj.weight", kind: .linear, shape: [kv * headDim, hidden]),
                Entry(name: p + "self_attn.o_proj.weight", kind: .linear, shape: [hidden, heads * headDim]),
                Entry(name: p + "mlp.gate_proj.weight", kind: .linear, shape: [inter, hidden]),
                Entry(name: p + "mlp.down_proj.weight", kind: .linear, shape: [hidden, inter]),
                Entry(name: p + "mlp.up_proj.weight", kind: .linear, shape: [inter, hidden]),
                Entry(name: p + "input_layernorm.weight", kind: .norm, shape: [hidden]),
                Entry(name: p + "post_attention_layernorm.weight", kind: .norm, shape: [hidden]),
            ]
        }
        entries.append(Entry(name: "model.norm.weight", kind: .norm, shape: [hidden]))
        if !(config["tie_word_embeddings"]?.boolValue ?? false) {
            entries.append(Entry(name: "lm_head.weight", kind: .linear, shape: [vocab, hidden]))
        }
        return entries
    }

    /// Writes the MLX directory; returns one note per tensor (what it became) plus any decision worth reporting.
    @discardableResult
    public static func convert(directory: String, dtype dtypeName: String?, quantization: MLXQuantParameters?, to output: String) throws -> [String] {
        let configPath = directory + "/config.json"
        let hfConfig = try MLXModelFiles.readJSON(configPath)
        guard case let .object(members) = hfConfig else { throw ParityError.malformed(file: configPath, at: "offset 0", reason: "not a JSON object") }
        guard hfConfig["model_type"]?.stringValue == "llama" else {
            throw ParityError.unsupported(file: configPath, reason: "model_type is not 'llama'")
        }
        for key in ["attention_bias", "mlp_bias"] where hfConfig[key]?.boolValue == true {
            throw ParityError.unsupported(file: configPath, reason: "key \"\(key)\" is true: this converter writes Llama without projection biases")
        }
        var notes: [String] = []
        var outputMembers = members
        // transformers' LlamaConfig defaults tie_word_embeddings to false, mlx-lm's ModelArgs to true: say it.
        if hfConfig["tie_word_embeddings"] == nil {
            outputMembers.append(("tie_word_embeddings", .bool(false)))
            notes.append("config.json has no tie_word_embeddings: transformers reads false, mlx-lm would read true and drop lm_head; "
                + "written as false (mlx_lm convert would have dropped lm_head.weight)")
        }
        let table = try table(config: hfConfig, path: configPath)
        let source = try readHFWeights(directory: directory)

        let targetName = dtypeName ?? hfConfig["torch_dtype"]?.stringValue
        let target: DType?
        if let targetName, let t = conversionDTypes[targetName] { target = t } else if dtypeName != nil {
            throw ParityError.usage("MLX dtype must be one of \(conversionDTypes.keys.sorted().joined(separator: ", ")), got \"\(dtypeName!)\"")
        } else {
            target = nil
        }
        if let q = quantization { try MLXQuantization.validate(mode: q.mode, groupSize: q.groupSize, bits: q.bits) }

        let wanted = Set(table.map(\.name))
        for name in source.keys.sorted() where !wanted.contains(name) {
            if name.contains("self_attn.rotary_emb.inv_freq") || name == "lm_head.weight" {
                notes.append("\(name): dropped (mlx-lm's Llama sanitize)")
                continue
            }
            throw ParityError.mismatch(file: directory, reason: "tensor '\(name)' is no parameter of a Llama with this config.json (mlx-lm's strict load would refuse it)")
        }
        var tensors: [RawTensor] = []
        var quantizedCount = 0
        for entry in table {
            guard let t = source[entry.name] else { throw ParityError.mismatch(file: directory, reason: "no tensor '\(entry.name)' (needed by the Llama config)") }
            guard t.shape == entry.shape else {
                throw ParityError.mismatch(file: directory, reason: "'\(entry.name)' has shape \(t.shape); config.json gives \(entry.shape)")
            }
            guard t.dtype.isFloatingPoint, let values = t.floats() else {
                throw ParityError.unsupported(file: directory, reason: "'\(entry.name)' has dtype \(t.dtype.rawValue)")
            }
            let dtype = target ?? t.dtype
            let columns = entry.shape.last!
            if let q = quantization, entry.kind != .norm, columns % q.groupSize == 0 {
                let module = String(entry.name.dropLast(".weight".count))
                tensors += try MLXQuantization.quantizeModule(module, values: values, rows: entry.shape[0], cols: columns, dtype: dtype,
                                                              mode: q.mode, groupSize: q.groupSize, bits: q.bits)
                quantizedCount += 1
                notes.append("\(entry.name) \(t.dtype.rawValue) \(t.shape) -> \(module).{weight,scales\(q.mode == "affine" ? ",biases" : "")} "
                    + "\(q.mode) \(q.bits)-bit group \(q.groupSize)")
                continue
            }
            if let q = quantization, entry.kind != .norm {
                notes.append("\(entry.name): input width \(columns) is not a multiple of group size \(q.groupSize); left \(dtype.rawValue) (as mlx-lm does)")
            }
            guard let bytes = dtype == t.dtype ? t.bytes : ElementCodec.encode(values, as: dtype) else {
                throw ParityError.unsupported(file: entry.name, reason: "cannot encode \(dtype.rawValue)")
            }
            tensors.append(RawTensor(name: entry.name, dtype: dtype, shape: entry.shape, bytes: bytes))
            notes.append("\(entry.name) \(t.dtype.rawValue) \(t.shape) -> \(dtype.rawValue)")
        }

        var config = outputMembers
        if let generation = readOptionalJSON(directory + "/generation_config.json"), let eos = generation["eos_token_id"],
           eos != .null, eos != .bool(false), eos != .number(0), eos != .array([]) {
            config.removeAll { $0.key == "eos_token_id" }
            config.append(("eos_token_id", eos))
        }
        config.removeAll { ["_name_or_path", "vision_config", "quantization", "quantization_config"].contains($0.key) }
        if let q = quantization {
            config.append(("quantization", q.json))
            config.append(("quantization_config", q.json))
        }
        config.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        if quantization != nil, quantizedCount == 0 { notes.append("no Linear or Embedding has an input width divisible by the group size; nothing was quantized") }

        let shards = shard(tensors)
        let parameterCount = table.reduce(0) { $0 + $1.shape.reduce(1, *) }
        try AtomicFileWriter.writeDirectory(output) { staging in
            var weightMap: [(key: String, value: JSONValue)] = []
            for (i, group) in shards.enumerated() {
                let file = shards.count == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", i + 1, shards.count)
                var writer = SafetensorsWriter(metadata: [("format", "mlx")])
                writer.mlxLayout = true
                for t in group {
                    try writer.add(name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.bytes)
                    weightMap.append((t.name, .string(file)))
                }
                try writer.write(to: staging + "/" + file)
            }
            weightMap.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
            let index = JSONValue.object([
                ("metadata", .object([("total_size", .number(tensors.reduce(0) { $0 + $1.bytes.count })), ("total_parameters", .number(parameterCount))])),
                ("weight_map", .object(weightMap)),
            ])
            try AtomicFileWriter.write(Array(PythonJSON.dump(index).utf8), to: staging + "/model.safetensors.index.json")
            try AtomicFileWriter.write(Array(PythonJSON.dump(.object(config)).utf8), to: staging + "/config.json")
            for file in copiedFiles where FileManager.default.fileExists(atPath: directory + "/" + file) {
                let data = try MappedFile(path: directory + "/" + file)
                try AtomicFileWriter.write(Array(data.data), to: staging + "/" + file)
            }
        }
        return notes
    }

    /// `make_shards`: tensors in order, a new shard when the next one would pass 5 GiB.
    static func shard(_ tensors: [RawTensor]) -> [[RawTensor]] {
        var shards: [[RawTensor]] = []
        var size = 0
        for t in tensors {
            if shards.isEmpty || size + t.bytes.count > maxShardBytes {
                shards.append([])
                size = 0
            }
            shards[shards.count - 1].append(t)
            size += t.bytes.count
        }
        return shards
    }

    /// The Hugging Face weights as transformers finds them: the shards model.safetensors.index.json lists, else
    /// model.safetensors.
    static func readHFWeights(directory: String) throws -> [String: RawTensor] {
        var files = ["model.safetensors"]
        let indexPath = directory + "/model.safetensors.index.json"
        if FileManager.default.fileExists(atPath: indexPath) {
            let index = try MLXModelFiles.readJSON(indexPath)
            guard let map = index["weight_map"]?.objectValue else {
                throw ParityError.malformed(file: indexPath, at: "key \"weight_map\"", reason: "missing or not an object")
            }
            var seen: [String] = []
            for (_, file) in map {
                guard let name = file.stringValue else { throw ParityError.malformed(file: indexPath, at: "key \"weight_map\"", reason: "values must be file names") }
                if !seen.contains(name) { seen.append(name) }
            }
            files = seen
        }
        var out: [String: RawTensor] = [:]
        for file in files {
            let st = try SafetensorsFile(path: directory + "/" + file)
            for entry in st.entries {
                guard out[entry.name] == nil else { throw ParityError.mismatch(file: directory, reason: "tensor '\(entry.name)' is in more than one shard") }
                out[entry.name] = RawTensor(name: entry.name, dtype: entry.dtype, shape: entry.shape, bytes: try st.rawBytes(entry))
            }
        }
        return out
    }

    static func readOptionalJSON(_ path: String) -> JSONValue? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONParser.parse(Array(data))
    }
}

/// Python's `json.dump(obj, f, indent=4)` text (ensure_ascii, `repr` floats, no trailing newline), so the
/// config.json and index Parity writes are byte-identical to mlx-lm's.
public enum PythonJSON {
    public static func dump(_ value: JSONValue, level: Int = 0) -> String {
        let pad = String(repeating: " ", count: 4 * (level + 1)), close = String(repeating: " ", count: 4 * level)
        switch value {
        case .null: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .number(text): return number(text)
        case let .string(s): return quote(s)
        case let .array(items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { pad + dump($0, level: level + 1) }.joined(separator: ",\n") + "\n" + close + "]"
        case let .object(members):
            if members.isEmpty { return "{}" }
            return "{\n" + members.map { pad + quote($0.key) + ": " + dump($0.value, level: level + 1) }.joined(separator: ",\n") + "\n" + close + "}"
        }
    }

    /// Integers as written; other numbers as Python's float `repr`: the shortest round-trip digits, in exponent
    /// form (`1e-05`, `1e+16`) when the decimal exponent is below −4 or at least 16, else positional with `.0`.
    public static func number(_ text: String) -> String {
        guard text.contains(where: { ".eE".contains($0) }), let d = Double(text), d.isFinite else { return text }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description gives the same shortest digits; only the layout differs.
        var s = "\(abs(d))"
        var exponent = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(s[s.index(after: e)...])!
            s = String(s[..<e])
        }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        var intPart = String(parts[0]), frac = parts.count > 1 ? String(parts[1]) : ""
        if frac == "0" { frac = "" }
        var digits = intPart + frac
        var pointPos = intPart.count + exponent   // decimal point after this many digits
        let leadingZeros = digits.prefix { $0 == "0" }.count
        digits.removeFirst(leadingZeros)
        pointPos -= leadingZeros
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        let decimalExponent = pointPos - 1
        let sign = d < 0 ? "-" : ""
        if decimalExponent < -4 || decimalExponent >= 16 {
            let mantissa = digits.count > 1 ? "\(digits.first!).\(digits.dropFirst())" : String(digits)
            let e = decimalExponent < 0 ? "-" + pad2(-decimalExponent) : "+" + pad2(decimalExponent)
            return sign + mantissa + "e" + e
        }
        if pointPos <= 0 { return sign + "0." + String(repeating: "0", count: -pointPos) + digits }
        if pointPos >= digits.count { return sign + digits + String(repeating: "0", count: pointPos - digits.count) + ".0" }
        intPart = String(digits.prefix(pointPos))
        return sign + intPart + "." + String(digits.dropFirst(pointPos))
    }

    static func pad2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    /// json.dumps string escaping with ensure_ascii=True.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20 || scalar.value > 0x7F:
                if scalar.value > 0xFFFF {
                    let v = scalar.value - 0x10000
                    out += hex4(0xD800 + (v >> 10)) + hex4(0xDC00 + (v & 0x3FF))
                } else {
                    out += hex4(scalar.value)
                }
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func hex4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - h.count) + h
    }
}
