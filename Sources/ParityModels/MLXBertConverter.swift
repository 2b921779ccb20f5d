import Foundation
import ParityCore
import ParityFormats

/// Converts a Hugging Face BERT directory (sentence-transformers' all-MiniLM-L6-v2 layout: config.json,
/// model.safetensors, tokenizer files) to the MLX directory mlx-embeddings 0.1.0's `convert` writes and its `load`
/// reads (models/bert.py):
/// - `model.safetensors` (metadata `{"format": "mlx"}`) and `model.safetensors.index.json` (`metadata.total_size`,
///   sorted `weight_map`; no `total_parameters`, unlike mlx-lm);
/// - the names of mlx-embeddings' `Model`: Hugging Face's `BertModel` names without prefix (`embeddings.*`,
///   `encoder.layer.N.*`, `pooler.dense.*` — the pooler is a parameter of its Model, so strict loading needs it),
///   minus the `embeddings.position_ids` buffer (`sanitize` drops every name containing `position_ids`);
/// - **every** parameter cast to `dtype` (default float16, mlx-embeddings' default: LayerNorm weights and biases
///   included), then with `quantization` every nn.Linear and nn.Embedding (the token-type table too) whose last
///   dimension is a multiple of the group size replaced by `mx.quantize`'s packed weight, scales and biases (the
///   Linear's own `bias` stays, in the dtype). mx.quantize's affine group sizes are 32, 64 and 128, and each divides
///   BERT-base's and MiniLM's 384, 768 and 1536: nothing is left unquantized for that reason (group 16, 256, 384, 512
///   are refused by mx.quantize itself);
/// - `config.json`: the Hugging Face config minus `_name_or_path`, plus `quantization` {group_size, bits, mode}
///   (mlx-embeddings writes no `quantization_config`), keys sorted, `json.dump(indent=4)`;
/// - the source directory's top-level `*.json` copied (mlx-embeddings copies `*.py` and `*.json`, then re-saves the
///   tokenizer through transformers, whose rewritten tokenizer files differ from the originals; Parity copies them
///   as they are, plus `vocab.txt`). Sub-directories (`1_Pooling/`) are not copied by either.
/// The safetensors data is laid out in name order (MLX 0.32 writes its hash map's order, which is not reproducible):
/// tensor names, dtypes, shapes and bytes equal mlx-embeddings' (Tests/ParityTests/Fixtures/minilm-mlx), the file's
/// SHA does not. Parity's reader (ParityEngine's MLXBertWeights) decides names, shapes and quantization from the
/// written directory as mlx-embeddings' loader does, without consulting this table.
public enum MLXBertConverter {
    public struct Entry: Equatable, Sendable {
        public enum Kind: String, Sendable { case embedding, linear, vector }
        public let name: String
        public let kind: Kind
        public let shape: [Int]
    }

    static let conversionDTypes: [String: DType] = ["float32": .f32, "float16": .f16, "bfloat16": .bf16]
    /// mlx-embeddings' `convert(dtype="float16")` default.
    public static let defaultDType = "float16"

    /// The parameters of mlx-embeddings' BERT `Model` for this config.json.
    public static func table(config: JSONValue, path: String) throws(ParityError) -> [Entry] {
        func int(_ key: String, default value: Int? = nil) throws(ParityError) -> Int {
            if config[key] == nil, let value { return value }
            guard let n = config[key]?.intValue, n > 0 else { throw .malformed(file: path, at: "key \"\(key)\"", reason: "missing or not a positive integer") }
            return n
        }
        let hidden = try int("hidden_size"), layers = try int("num_hidden_layers"), inter = try int("intermediate_size")
        let positions = try int("max_position_embeddings")
        let vocab = try int("vocab_size", default: 30522), types = try int("type_vocab_size", default: 2)  // ModelArgs defaults
        var entries = [
            Entry(name: "embeddings.word_embeddings.weight", kind: .embedding, shape: [vocab, hidden]),
            Entry(name: "embeddings.position_embeddings.weight", kind: .embedding, shape: [positions, hidden]),
            Entry(name: "embeddings.token_type_embeddings.weight", kind: .embedding, shape: [types, hidden]),
            Entry(name: "embeddings.LayerNorm.weight", kind: .vector, shape: [hidden]),
            Entry(name: "embeddings.LayerNorm.bias", kind: .vector, shape: [hidden]),
        ]
        func linear(_ module: String, out: Int, in width: Int) -> [Entry] {
            [Entry(name: module + ".weight", kind: .linear, shape: [out, width]), Entry(name: module + ".bias", kind: .vector, shape: [out])]
        }
        func norm(_ module: String) -> [Entry] {
            [Entry(name: module + ".weight", kind: .vector, shape: [hidden]), Entry(name: module + ".bias", kind: .vector, shape: [hidden])]
        }
        for i in 0..<layers {
            let p = "encoder.layer.\(i)."
            entries += linear(p + "attention.self.query", out: hidden, in: hidden) + linear(p + "attention.self.key", out: hidden, in: hidden)
                + linear(p + "attention.self.value", out: hidden, in: hidden) + linear(p + "attention.output.dense", out: hidden, in: hidden)
                + norm(p + "attention.output.LayerNorm") + linear(p + "intermediate.dense", out: inter, in: hidden)
                + linear(p + "output.dense", out: hidden, in: inter) + norm(p + "output.LayerNorm")
        }
        return entries + linear("pooler.dense", out: hidden, in: hidden)
    }

    /// Writes the MLX directory; returns one note per tensor (what it became) plus decisions worth reporting.
    @discardableResult
    public static func convert(directory: String, dtype dtypeName: String?, quantization: MLXQuantParameters?, to output: String) throws -> [String] {
        let configPath = directory + "/config.json"
        let hfConfig = try MLXModelFiles.readJSON(configPath)
        guard case let .object(members) = hfConfig else { throw ParityError.malformed(file: configPath, at: "offset 0", reason: "not a JSON object") }
        guard hfConfig["model_type"]?.stringValue == "bert" else {
            throw ParityError.unsupported(file: configPath, reason: "model_type is not 'bert'")
        }
        let name = dtypeName ?? defaultDType
        guard let target = conversionDTypes[name] else {
            throw ParityError.usage("MLX dtype must be one of \(conversionDTypes.keys.sorted().joined(separator: ", ")), got \"\(name)\"")
        }
        if let q = quantization { try MLXQuantization.validate(mode: q.mode, groupSize: q.groupSize, bits: q.bits) }
        let table = try table(config: hfConfig, path: configPath)
        let source = try MLXLlamaConverter.readHFWeights(directory: directory)
        var notes: [String] = []
        let wanted = Set(table.map(\.name))
        for name in source.keys.sorted() where !wanted.contains(name) {
            if name.contains("position_ids") { notes.append("\(name): dropped (mlx-embeddings' BERT sanitize)"); continue }
            throw ParityError.mismatch(file: directory, reason: "tensor '\(name)' is no parameter of mlx-embeddings' BERT with this config.json (its strict load would refuse it)")
        }
        var tensors: [RawTensor] = []
        for entry in table {
            guard let t = source[entry.name] else { throw ParityError.mismatch(file: directory, reason: "no tensor '\(entry.name)' (needed by the BERT config)") }
            guard t.shape == entry.shape else {
                throw ParityError.mismatch(file: directory, reason: "'\(entry.name)' has shape \(t.shape); config.json gives \(entry.shape)")
            }
            guard t.dtype.isFloatingPoint, let values = t.floats() else {
                throw ParityError.unsupported(file: directory, reason: "'\(entry.name)' has dtype \(t.dtype.rawValue)")
            }
            let columns = entry.shape.last!
            if let q = quantization, entry.kind != .vector, columns % q.groupSize == 0 {
                // mx.quantize of the weight already cast to the dtype (convert casts, then quantize_model).
                let cast = target == .f32 ? values : (MLXFloatType(target).map { type in values.map(type.round) } ?? values)
                let module = String(entry.name.dropLast(".weight".count))
                tensors += try MLXQuantization.quantizeModule(module, values: cast, rows: entry.shape[0], cols: columns, dtype: target,
                                                              mode: q.mode, groupSize: q.groupSize, bits: q.bits)
                notes.append("\(entry.name) \(t.dtype.rawValue) \(t.shape) -> \(module).{weight,scales\(q.mode == "affine" ? ",biases" : "")} "
                    + "\(q.mode) \(q.bits)-bit group \(q.groupSize)")
                continue
            }
            if let q = quantization, entry.kind != .vector {
                notes.append("\(entry.name): last dimension \(columns) is not a multiple of group size \(q.groupSize); left \(target.rawValue) (as mlx-embeddings does)")
            }
            guard let bytes = target == t.dtype ? t.bytes : ElementCodec.encode(values, as: target) else {
                throw ParityError.unsupported(file: entry.name, reason: "cannot encode \(target.rawValue)")
            }
            tensors.append(RawTensor(name: entry.name, dtype: target, shape: entry.shape, bytes: bytes))
            notes.append("\(entry.name) \(t.dtype.rawValue) \(t.shape) -> \(target.rawValue)")
        }

        var config = members.filter { !["_name_or_path", "quantization"].contains($0.key) }
        if let q = quantization { config.append(("quantization", q.json)) }
        config.sort { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }

        let listing = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []  // checked: config.json was read from it
        let copied = listing.filter { ($0.hasSuffix(".json") && $0 != "config.json" && !$0.hasPrefix("model.safetensors")) || $0 == "vocab.txt" }.sorted()
        try AtomicFileWriter.writeDirectory(output) { staging in
            var writer = SafetensorsWriter(metadata: [("format", "mlx")])
            writer.mlxLayout = true
            for t in tensors { try writer.add(name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.bytes) }
            try writer.write(to: staging + "/model.safetensors")
            let weightMap = tensors.map(\.name).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
                .map { (key: $0, value: JSONValue.string("model.safetensors")) }
            let index = JSONValue.object([
                ("metadata", .object([("total_size", .number(tensors.reduce(0) { $0 + $1.bytes.count }))])),
                ("weight_map", .object(weightMap)),
            ])
            try AtomicFileWriter.write(Array(PythonJSON.dump(index).utf8), to: staging + "/model.safetensors.index.json")
            try AtomicFileWriter.write(Array(PythonJSON.dump(.object(config)).utf8), to: staging + "/config.json")
            for file in copied {
                let data = try MappedFile(path: directory + "/" + file)
                try AtomicFileWriter.write(Array(data.data), to: staging + "/" + file)
            }
        }
        return notes
    }
}
