import Foundation
import ParityCore
import ParityFormats

/// Converts a Hugging Face Llama directory (config.json, model.safetensors or a sharded index, tokenizer.model)
/// to GGUF `llama` as llama.cpp's `convert_hf_to_gguf.py` writes it — names, metadata keys in its order, the Q/K
/// row permutation, the SentencePiece vocabulary — and, for llama-quantize's mixes, with the per-tensor types,
/// metadata order and tensor order `llama-quantize` gives when run on that converter's f32 output.
///
/// The tables here are the converter's own. The GGUF Llama reader in ParityEngine does not use them: it reads the
/// file as llama.cpp's loader does, so a wrong name, permutation or key here fails verification.
public enum GGUFLlamaConverter {
    /// What to write.
    public enum Output: Equatable, Sendable {
        /// `convert_hf_to_gguf.py --outtype f32|f16|bf16|q8_0`: every 2-D weight in the type, 1-D tensors F32.
        case converter(GGMLType)
        /// `llama-quantize F32.gguf OUT.gguf MIX` (no importance matrix).
        case mix(LlamaQuantizeMix)
        /// `llama-quantize --pure` with one type: every quantizable tensor in it (any type Parity quantizes).
        case pure(GGMLType)

        /// "f32", "f16", "bf16", "q8_0" (the converter's outtypes); llama-quantize's mix names ("Q4_K_M", "Q8_0");
        /// "pure-<ggml type>" ("pure-q4_1", "pure-mxfp4").
        public init?(name: String) {
            if ["f32", "f16", "bf16", "q8_0"].contains(name), let t = GGMLType.named(name) { self = .converter(t); return }
            if let mix = LlamaQuantizeMix(rawValue: name) { self = .mix(mix); return }
            if name.hasPrefix("pure-"), let t = GGMLType.named(String(name.dropFirst(5))), t.canQuantize, !t.isActivationOnly {
                self = .pure(t); return
            }
            return nil
        }

        public static var names: [String] {
            ["f32", "f16", "bf16", "q8_0"] + LlamaQuantizeMix.allCases.map(\.rawValue) + ["pure-<ggml type>"]
        }
    }

    /// The Hugging Face Llama directory `nameOrPath` names (a directory, or a bundled model under `golden/`), nil when
    /// it is not one (config.json without `model_type: "llama"`).
    public static func llamaDirectory(for nameOrPath: String) -> String? {
        var candidates = [nameOrPath]
        if !nameOrPath.contains("/"), let bundled = ModelRepository.bundledDirectory() { candidates.append(bundled + "/" + nameOrPath) }
        for dir in candidates where FileManager.default.fileExists(atPath: dir + "/config.json") {
            guard let config = try? readJSON(dir + "/config.json") else { return nil }  // not JSON: the general path reports it
            return config["model_type"]?.stringValue == "llama" ? dir : nil
        }
        return nil
    }

    /// The output for the CLI's `--type` (a ggml type: the converter's outtypes, any other type `--pure`) or `--mix`.
    public static func output(type: GGMLType?, mix: String?) throws(ParityError) -> Output {
        if let mix {
            guard type == nil else { throw .usage("give --type or --mix, not both") }
            guard let m = LlamaQuantizeMix(rawValue: mix) else {
                throw .usage("--mix must be one of \(LlamaQuantizeMix.allCases.map(\.rawValue).joined(separator: ", ")); got \"\(mix)\"")
            }
            return .mix(m)
        }
        let t = type ?? .f32
        return [.f32, .f16, .bf16, .q8_0].contains(t) ? .converter(t) : .pure(t)
    }

    /// The converter's tensor-name table: Hugging Face suffix after `model.layers.N.` → GGUF name after `blk.N.`.
    static let layerNames: [(hf: String, gguf: String)] = [
        ("input_layernorm.weight", "attn_norm.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
        ("post_attention_layernorm.weight", "ffn_norm.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
    ]
    static let globalNames: [String: String] = [
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    ]

    /// The GGUF name convert_hf_to_gguf gives a Hugging Face Llama parameter, nil for one it has no name for.
    static func ggufName(_ hf: String) -> String? {
        if let g = globalNames[hf] { return g }
        let parts = hf.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]), String(layer) == parts[2] else { return nil }
        return layerNames.first { $0.hf == String(parts[3]) }.map { "blk.\(layer).\($0.gguf)" }
    }

    /// HF's rotate-half row order → ggml's adjacent-pair order for one projection of `heads` heads:
    /// `w.reshape(heads, 2, rows/heads/2, cols).swapaxes(1, 2)` (convert_hf_to_gguf `LlamaModel.permute`).
    static func permuteRows(_ values: [Float], rows: Int, columns: Int, heads: Int) -> [Float] {
        let half = rows / heads / 2
        var out = [Float](repeating: 0, count: values.count)
        for h in 0..<heads {
            for j in 0..<half {
                for t in 0..<2 {
                    let destination = (h * 2 * half + j * 2 + t) * columns
                    let source = (h * 2 * half + t * half + j) * columns
                    for c in 0..<columns { out[destination + c] = values[source + c] }
                }
            }
        }
        return out
    }

    /// The hyperparameters convert_hf_to_gguf reads from config.json.
    struct Config {
        let hiddenSize: Int, layerCount: Int, headCount: Int, keyValueHeadCount: Int?, intermediateSize: Int, vocabularySize: Int
        let contextLength: Int, rmsNormEpsilon: Double, ropeTheta: Double?, headDim: Int?

        init(json: JSONValue, path: String) throws(ParityError) {
            func int(_ key: String) throws(ParityError) -> Int {
                guard let v = json[key]?.intValue else { throw .malformed(file: path, at: "key '\(key)'", reason: "missing or not an integer") }
                return v
            }
            if let arch = json["architectures"]?.arrayValue?.first?.stringValue, !["LlamaForCausalLM", "LLaMAForCausalLM"].contains(arch) {
                throw .unsupported(file: path, reason: "architecture \(arch): this converter writes GGUF 'llama' for LlamaForCausalLM")
            }
            for key in ["attention_bias", "mlp_bias"] where json[key]?.boolValue == true {
                throw .unsupported(file: path, reason: "'\(key)': true; Llama projections with biases are not converted")
            }
            // convert_hf_to_gguf's rope parameters: `rope_parameters` (transformers ≥ 5) or `rope_scaling`; θ from the
            // top-level `rope_theta` (or `rotary_emb_base`), else from those parameters.
            let ropeParameters = json["rope_parameters"].flatMap { $0 == .null ? nil : $0 } ?? json["rope_scaling"].flatMap { $0 == .null ? nil : $0 }
            if let type = ropeParameters?["rope_type"]?.stringValue ?? ropeParameters?["type"]?.stringValue, type != "default" {
                throw .unsupported(file: path, reason: "RoPE type '\(type)': RoPE scaling metadata is not converted")
            }
            hiddenSize = try int("hidden_size")
            layerCount = try int("num_hidden_layers")
            headCount = try int("num_attention_heads")
            keyValueHeadCount = json["num_key_value_heads"]?.intValue
            intermediateSize = try int("intermediate_size")
            vocabularySize = try int("vocab_size")
            contextLength = try int("max_position_embeddings")
            guard let eps = json["rms_norm_eps"]?.doubleValue else { throw .malformed(file: path, at: "key 'rms_norm_eps'", reason: "missing or not a number") }
            rmsNormEpsilon = eps
            ropeTheta = json["rope_theta"]?.doubleValue ?? json["rotary_emb_base"]?.doubleValue ?? ropeParameters?["rope_theta"]?.doubleValue
            headDim = json["head_dim"]?.intValue
            guard headCount > 0, hiddenSize % headCount == 0 || headDim != nil else {
                throw .malformed(file: path, at: "key 'num_attention_heads'", reason: "\(headCount) heads do not divide hidden_size \(hiddenSize)")
            }
            if let kv = keyValueHeadCount, kv <= 0 || headCount % kv != 0 {
                throw .malformed(file: path, at: "key 'num_key_value_heads'", reason: "\(kv) does not divide num_attention_heads \(headCount)")
            }
        }
    }

    /// One tensor as the converter writes it: GGUF name, ne, values in ggml memory order.
    struct Prepared { let name: String; let ne: [Int]; let values: [Float] }

    /// Converts `directory` to GGUF. Returns one note per tensor (name, ne, type) plus any fallback notes.
    @discardableResult
    public static func convert(directory: String, output: Output, to path: String) throws -> [String] {
        let (writer, notes) = try build(directory: directory, output: output)
        try writer.write(to: path)
        return notes
    }

    /// The file `convert` writes, in memory.
    public static func build(directory: String, output: Output) throws -> (GGUFWriter, [String]) {
        let configPath = directory + "/config.json"
        let config = try Config(json: try readJSON(configPath), path: configPath)
        let weights = try loadWeights(directory: directory)
        var prepared: [Prepared] = []
        var notes: [String] = []
        for (hfName, load) in weights {  // convert_hf_to_gguf's order: shard files by name, each shard's tensors by name
            if hfName.hasSuffix(".rotary_emb.inv_freq") { continue }  // a buffer some checkpoints save; convert skips it
            guard let name = ggufName(hfName) else {
                throw ParityError.mismatch(file: directory, reason: "tensor '\(hfName)' has no GGUF llama name (convert_hf_to_gguf would refuse it too)")
            }
            var tensor = try load()
            if hfName.hasSuffix("q_proj.weight") || hfName.hasSuffix("k_proj.weight") {
                let heads = hfName.hasSuffix("k_proj.weight") ? (config.keyValueHeadCount ?? config.headCount) : config.headCount
                guard tensor.rank == 2, tensor.shape[0] % (2 * heads) == 0 else {
                    throw ParityError.mismatch(file: directory, reason: "'\(hfName)' \(tensor.shape) has rows not divisible into \(heads) heads of pairs")
                }
                tensor.data = permuteRows(tensor.data, rows: tensor.shape[0], columns: tensor.shape[1], heads: heads)
            }
            prepared.append(Prepared(name: name, ne: tensor.shape.reversed(), values: tensor.data))
        }

        var types: [GGMLType]
        switch output {
        case let .converter(type):
            types = prepared.map { t in
                // 1-D tensors and norms F32; a row no block divides falls back to F16 (gguf-py's QuantError path).
                if t.ne.count <= 1 || t.name.hasSuffix("_norm.weight") { return .f32 }
                return t.ne[0] % type.blockSize == 0 ? type : .f16
            }
        case let .mix(mix):
            prepared.sort { quantizerOrder($0.name, $1.name) }
            let shapes = prepared.map { LlamaQuantizeMix.TensorShape(name: $0.name, ne: $0.ne, type: .f32) }
            types = mix.tensorTypes(shapes, layerCount: config.layerCount, headCount: config.headCount,
                                    keyValueHeadCount: config.keyValueHeadCount ?? config.headCount)
        case let .pure(type):
            prepared.sort { quantizerOrder($0.name, $1.name) }
            types = LlamaQuantizeMix.pureTensorTypes(prepared.map { LlamaQuantizeMix.TensorShape(name: $0.name, ne: $0.ne, type: .f32) }, type: type)
        }

        var writer = try GGUFWriter(architecture: "llama")
        try writeMetadata(&writer, config: config, directory: directory, output: output,
                          parameterCount: prepared.reduce(0) { $0 + $1.values.count })
        for (t, type) in zip(prepared, types) {
            try writer.add(name: t.name, type: type, ne: t.ne, bytes: try GGMLQuants.quantize(t.values, to: type))
            notes.append("\(t.name) ne \(t.ne) \(type.name)")
        }
        return (writer, notes)
    }

    /// llama.cpp's loader order (`weight_name_comparer`): model-level tensors first, then by layer, each by name.
    /// llama-quantize writes (and counts ffn_down layers) in this order.
    public static func quantizerOrder(_ a: String, _ b: String) -> Bool {
        func layer(_ s: String) -> Int {
            guard s.hasPrefix("blk.") else { return -1 }
            return Int(s.dropFirst(4).prefix { $0.isNumber }) ?? -1
        }
        let (la, lb) = (layer(a), layer(b))
        return la != lb ? la < lb : a < b
    }

    static func readJSON(_ path: String) throws -> JSONValue {
        let file = try MappedFile(path: path)
        do { return try JSONParser.parse([UInt8](file.data)) } catch {
            throw ParityError.malformed(file: path, at: "\(error.offset)", reason: error.reason)
        }
    }

    /// Every tensor of the checkpoint, loaded on demand, in the order convert_hf_to_gguf visits them (gguf-py's
    /// `SafetensorsLocal`: the shard files in name order, each file's tensors in name order): model.safetensors or
    /// the shards an index names.
    static func loadWeights(directory: String) throws -> [(String, () throws -> ParityCore.Tensor)] {
        let single = directory + "/model.safetensors"
        var files: [String] = []
        if FileManager.default.fileExists(atPath: single) {
            files = [single]
        } else {
            let indexPath = directory + "/model.safetensors.index.json"
            guard FileManager.default.fileExists(atPath: indexPath) else {
                throw ParityError.notFound(path: directory, what: "model.safetensors or model.safetensors.index.json")
            }
            guard let map = try readJSON(indexPath)["weight_map"]?.objectValue else {
                throw ParityError.malformed(file: indexPath, at: "key 'weight_map'", reason: "missing or not an object")
            }
            files = Array(Set(map.compactMap { $0.value.stringValue })).sorted().map { directory + "/" + $0 }
        }
        var out: [(String, () throws -> ParityCore.Tensor)] = []
        var seen = Set<String>()
        for path in files {
            let file = try SafetensorsFile(path: path)
            for entry in file.entries.sorted(by: { $0.name < $1.name }) {
                guard seen.insert(entry.name).inserted else { throw ParityError.malformed(file: path, at: "tensor '\(entry.name)'", reason: "also in another shard") }
                out.append((entry.name, { try file.tensor(entry) }))
            }
        }
        return out
    }

    // MARK: Metadata

    /// convert_hf_to_gguf's keys in its order; for llama-quantize outputs, `general.quantization_version` and
    /// `general.file_type` move to the end (llama-quantize copies the metadata, then sets those two again).
    static func writeMetadata(_ w: inout GGUFWriter, config: Config, directory: String, output: Output, parameterCount: Int) throws {
        let fileType: UInt32
        switch output {
        case let .converter(type): fileType = GGUFConverter.fileTypes[type]!
        case let .mix(mix): fileType = mix.fileType
        case let .pure(type):
            guard let ft = GGUFConverter.fileTypes[type] else {
                throw ParityError.usage("no llama_ftype labels a file of \(type.name) tensors; pure types: \(GGUFConverter.fileTypes.keys.map(\.name).sorted().joined(separator: ", "))")
            }
            fileType = ft
        }
        let directoryName = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        try w.set("general.type", .string("model"))
        try w.set("general.name", .string(titleFromID(directoryName)))
        try w.set("general.size_label", .string(sizeLabel(parameterCount)))
        try w.set("llama.block_count", .uint32(UInt32(config.layerCount)))
        try w.set("llama.context_length", .uint32(UInt32(config.contextLength)))
        try w.set("llama.embedding_length", .uint32(UInt32(config.hiddenSize)))
        try w.set("llama.feed_forward_length", .uint32(UInt32(config.intermediateSize)))
        try w.set("llama.attention.head_count", .uint32(UInt32(config.headCount)))
        if let kv = config.keyValueHeadCount { try w.set("llama.attention.head_count_kv", .uint32(UInt32(kv))) }
        if let theta = config.ropeTheta { try w.set("llama.rope.freq_base", .float32(Float(theta))) }
        try w.set("llama.attention.layer_norm_rms_epsilon", .float32(Float(config.rmsNormEpsilon)))
        if let headDim = config.headDim {
            try w.set("llama.attention.key_length", .uint32(UInt32(headDim)))
            try w.set("llama.attention.value_length", .uint32(UInt32(headDim)))
        }
        try w.set("general.file_type", .uint32(fileType))
        try w.set("llama.vocab_size", .uint32(UInt32(config.vocabularySize)))
        try w.set("llama.rope.dimension_count", .uint32(UInt32(config.headDim ?? config.hiddenSize / config.headCount)))
        try w.set("general.quantization_version", .uint32(GGUFWriter.quantizationVersion))
        try writeVocabulary(&w, directory: directory, vocabularySize: config.vocabularySize)
        if case .converter = output {} else {
            // llama-quantize: gguf_set_kv copies the input's keys, then re-setting a key removes it and appends it.
            var rest = w.metadata.filter { $0.key != "general.quantization_version" && $0.key != "general.file_type" }
            rest.append(("general.quantization_version", .uint32(GGUFWriter.quantizationVersion)))
            rest.append(("general.file_type", .uint32(fileType)))
            var reordered = try GGUFWriter(architecture: "llama")
            for (key, value) in rest { try reordered.set(key, value) }
            w = reordered
        }
    }

    /// gguf-py's `Metadata.id_to_title`: words split on '-' and spaces, lower-case words title-cased unless they
    /// are a version or start with a digit.
    static func titleFromID(_ id: String) -> String {
        id.replacingOccurrences(of: "-", with: " ").split(separator: " ").map { word -> String in
            let w = String(word)
            let isLower = w.contains { $0.isLetter } && w == w.lowercased()
            let isVersion = w.first?.isNumber == true || (w.first == "v" && w.dropFirst().allSatisfy { $0.isNumber || $0 == "." } && w.count > 1)
            guard isLower, !isVersion else { return w }
            // Python's str.title(): a letter after a non-letter is upper-cased, the rest lower-cased.
            var out = "", previousLetter = false
            for c in w {
                out += previousLetter ? String(c).lowercased() : String(c).uppercased()
                previousLetter = c.isLetter
            }
            return out
        }.joined(separator: " ")
    }

    /// gguf-py's `size_label` (`model_weight_count_rounded_notation`, min 2 digits) for a dense model.
    static func sizeLabel(_ count: Int) -> String {
        let n = Double(count)
        let (scaled, suffix): (Double, String) = n > 1e12 ? (n * 1e-12, "T") : n > 1e9 ? (n * 1e-9, "B") : n > 1e6 ? (n * 1e-6, "M") : (n * 1e-3, "K")
        let rounded = String(Int(scaled.rounded(.toNearestOrEven)))
        let digits = rounded.drop { $0 == "0" }.count
        return String(format: "%.\(max(2 - digits, 0))f", scaled) + suffix
    }

    // MARK: Vocabulary (tokenizer.model)

    /// The SentencePiece vocabulary as convert_hf_to_gguf's `_create_vocab_sentencepiece` + gguf-py's
    /// `SpecialVocab` write it: pieces, scores and types from tokenizer.model, padded to the config's vocab_size
    /// with `[PADi]` (UNUSED, -10000); tokenizer_config.json's `added_tokens_decoder` (CONTROL when special,
    /// score -1000); special ids from the model's trainer spec; add_bos/add_eos/add_sep as gguf-py derives them.
    static func writeVocabulary(_ w: inout GGUFWriter, directory: String, vocabularySize: Int) throws {
        let modelPath = directory + "/tokenizer.model"
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw ParityError.notFound(path: directory, what: "tokenizer.model (this converter writes SentencePiece 'llama' vocabularies only)")
        }
        let sp = try SentencePieceModel(path: modelPath)
        let tokenizerConfigPath = directory + "/tokenizer_config.json"
        let tokenizerConfig = FileManager.default.fileExists(atPath: tokenizerConfigPath) ? try readJSON(tokenizerConfigPath) : nil
        let tokenizerJSONPath = directory + "/tokenizer.json"
        let tokenizerJSON = FileManager.default.fileExists(atPath: tokenizerJSONPath) ? try readJSON(tokenizerJSONPath) : nil

        var tokens = (0..<vocabularySize).map { "[PAD\($0)]" }
        var scores = [Float](repeating: -10000, count: vocabularySize)
        var types = [Int32](repeating: SentencePieceModel.PieceType.unused.rawValue, count: vocabularySize)
        for (id, piece) in sp.pieces.enumerated() where id < vocabularySize {
            tokens[id] = piece.text
            scores[id] = piece.score
            // sentencepiece's IsUnknown/IsControl/IsUnused/IsByte; every other piece (user-defined too) is NORMAL.
            switch piece.type {
            case .unknown, .control, .unused, .byte: types[id] = piece.type.rawValue
            case .normal, .userDefined: types[id] = SentencePieceModel.PieceType.normal.rawValue
            }
        }
        let addedTokensPath = directory + "/added_tokens.json"
        if FileManager.default.fileExists(atPath: addedTokensPath), let added = try readJSON(addedTokensPath).objectValue {
            for (text, idValue) in added {
                guard let id = idValue.intValue, id >= 0, id < vocabularySize else { continue }
                tokens[id] = text
                scores[id] = -1000
                types[id] = SentencePieceModel.PieceType.userDefined.rawValue
            }
        }
        for (key, data) in tokenizerConfig?["added_tokens_decoder"]?.objectValue ?? [] {
            guard let id = Int(key), id >= 0, id < vocabularySize, var content = data["content"]?.stringValue else { continue }
            if data["special"]?.boolValue == true || looksSpecial(content) {
                types[id] = SentencePieceModel.PieceType.control.rawValue
            } else {
                content = content.replacingOccurrences(of: "\u{2581}", with: " ")
                types[id] = SentencePieceModel.PieceType.userDefined.rawValue
            }
            scores[id] = -1000
            tokens[id] = content
        }

        if let prefix = tokenizerConfig?["add_prefix_space"]?.boolValue { try w.set("tokenizer.ggml.add_space_prefix", .bool(prefix)) }
        try w.set("tokenizer.ggml.model", .string("llama"))
        try w.set("tokenizer.ggml.pre", .string("default"))
        try w.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        try w.set("tokenizer.ggml.scores", .array(.float32, scores.map { .float32($0) }))
        try w.set("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0) }))
        for (key, id) in [("bos", sp.beginID), ("eos", sp.endID), ("unknown", sp.unknownID), ("padding", sp.paddingID)] where id >= 0 && id < vocabularySize {
            try w.set("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id)))
        }
        for (kind, value) in addSpecialTokens(tokenizerJSON: tokenizerJSON, tokenizerConfig: tokenizerConfig) {
            try w.set("tokenizer.ggml.add_\(kind)_token", .bool(value))
        }
        // SpecialVocab's chat template: tokenizer_config.json's own, else chat_template.jinja (a single template).
        let jinjaPath = directory + "/chat_template.jinja"
        if let template = tokenizerConfig?["chat_template"]?.stringValue {
            try w.set("tokenizer.chat_template", .string(template))
        } else if tokenizerConfig != nil, FileManager.default.fileExists(atPath: jinjaPath) {
            let file = try MappedFile(path: jinjaPath)
            guard let template = String(data: file.data, encoding: .utf8) else {
                throw ParityError.malformed(file: jinjaPath, at: "offset 0", reason: "not UTF-8 text")
            }
            try w.set("tokenizer.chat_template", .string(template))
        }
    }

    /// convert_hf_to_gguf's `does_token_look_special`.
    static func looksSpecial(_ t: String) -> Bool {
        ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(t) || (t.hasPrefix("<|") && t.hasSuffix("|>"))
            || (t.hasPrefix("<\u{FF5C}") && t.hasSuffix("\u{FF5C}>")) || (t.hasPrefix("<unused") && t.hasSuffix(">"))
    }

    /// gguf-py `SpecialVocab`'s add_{bos,eos,sep}_token, in the order it sets them: from tokenizer.json's
    /// `TemplateProcessing` (a leading special token → add_bos, a trailing one → add_eos, a special token between
    /// A and B of the pair template → add_sep), then tokenizer_config.json's add_bos_token/add_eos_token where the
    /// template said nothing.
    static func addSpecialTokens(tokenizerJSON: JSONValue?, tokenizerConfig: JSONValue?) -> [(String, Bool)] {
        var result: [(String, Bool)] = []
        func set(_ kind: String, _ value: Bool) {
            if let i = result.firstIndex(where: { $0.0 == kind }) { result[i].1 = value } else { result.append((kind, value)) }
        }
        let bosText = tokenizerConfig?["bos_token"]?.stringValue ?? tokenizerConfig?["bos_token"]?["content"]?.stringValue
        let eosText = tokenizerConfig?["eos_token"]?.stringValue ?? tokenizerConfig?["eos_token"]?["content"]?.stringValue
        let sepText = tokenizerConfig?["sep_token"]?.stringValue
        if let post = tokenizerJSON?["post_processor"] {
            let processors = post["processors"]?.arrayValue ?? [post]
            for p in processors where p["type"]?.stringValue == "TemplateProcessing" {
                let single = p["single"]?.arrayValue ?? []
                let pair = p["pair"]?.arrayValue ?? []
                func special(_ item: JSONValue?) -> String? { item?["SpecialToken"]?["id"]?.stringValue }
                var first: String?, last: String?
                if single.count > 1 {
                    first = special(single.first)
                    if let f = first { set("bos", f == bosText) }
                    last = special(single.last)
                    if let l = last { set("eos", l == eosText) }
                }
                guard !pair.isEmpty else { continue }
                let start = first != nil && special(pair.first) == first ? 1 : 0
                let stop = last != nil && special(pair.last) == last ? pair.count - 1 : pair.count
                guard start < stop else { continue }
                let inner = Array(pair[start..<stop])
                guard inner.first?["Sequence"]?["id"]?.stringValue == "A", inner.last?["Sequence"]?["id"]?.stringValue == "B" else { continue }
                let middle = Array(inner.dropFirst().dropLast())
                guard !middle.isEmpty else { continue }
                var addSeparator = false
                let separators = [sepText, eosText].compactMap { $0 }
                if let entry = special(middle.first), separators.contains(entry), last == nil { addSeparator = true }
                if middle.count == 2, let entry = special(middle[1]), separators.contains(entry) { addSeparator = true }
                set("sep", addSeparator)
            }
        }
        for kind in ["bos", "eos"] where !result.contains(where: { $0.0 == kind }) {
            if let value = tokenizerConfig?["add_\(kind)_token"]?.boolValue { set(kind, value) }
        }
        return result
    }
}
