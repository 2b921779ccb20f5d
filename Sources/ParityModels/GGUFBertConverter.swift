import Foundation
import ParityCore
import ParityFormats

/// Converts a Hugging Face BERT directory (config.json, model.safetensors, tokenizer.json / vocab.txt, and
/// sentence-transformers' modules.json + pooling config) to GGUF `bert` as llama.cpp's `convert_hf_to_gguf.py
/// --outtype f32|f16|bf16|q8_0` writes it: the model card's general.* keys, hyperparameters, `bert.pooling_type`,
/// `bert.attention.causal = false`, the WordPiece vocabulary in llama.cpp's "phantom space" form with its token types
/// and special ids, and the tensors under llama.cpp's names (position and token-type embeddings kept F32).
///
/// The tables here are the converter's own. The GGUF BERT reader in ParityEngine does not use them: it reads the
/// file as llama.cpp's loader does, so a wrong name, key or type here fails verification instead of round-tripping.
public enum GGUFBertConverter {
    /// The converter's outtypes.
    public static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0]

    /// The Hugging Face BERT directory `nameOrPath` names (config.json with `model_type: "bert"`), nil otherwise.
    public static func bertDirectory(for nameOrPath: String) -> String? {
        let config = nameOrPath + "/config.json"
        guard FileManager.default.fileExists(atPath: config), let json = try? GGUFLlamaConverter.readJSON(config) else { return nil }
        return json["model_type"]?.stringValue == "bert" ? nameOrPath : nil
    }

    /// convert_hf_to_gguf's tensor names: Hugging Face `BertModel` name (after `bert.`) → GGUF name.
    static let globalNames: [String: String] = [
        "embeddings.word_embeddings.weight": "token_embd.weight",
        "embeddings.position_embeddings.weight": "position_embd.weight",
        "embeddings.token_type_embeddings.weight": "token_types.weight",
        "embeddings.LayerNorm.weight": "token_embd_norm.weight",
        "embeddings.LayerNorm.bias": "token_embd_norm.bias",
    ]
    /// Suffix after `encoder.layer.N.` → GGUF name after `blk.N.`.
    static let layerNames: [String: String] = [
        "attention.self.query.weight": "attn_q.weight", "attention.self.query.bias": "attn_q.bias",
        "attention.self.key.weight": "attn_k.weight", "attention.self.key.bias": "attn_k.bias",
        "attention.self.value.weight": "attn_v.weight", "attention.self.value.bias": "attn_v.bias",
        "attention.output.dense.weight": "attn_output.weight", "attention.output.dense.bias": "attn_output.bias",
        "attention.output.LayerNorm.weight": "attn_output_norm.weight", "attention.output.LayerNorm.bias": "attn_output_norm.bias",
        "intermediate.dense.weight": "ffn_up.weight", "intermediate.dense.bias": "ffn_up.bias",
        "output.dense.weight": "ffn_down.weight", "output.dense.bias": "ffn_down.bias",
        "output.LayerNorm.weight": "layer_output_norm.weight", "output.LayerNorm.bias": "layer_output_norm.bias",
    ]

    /// BertModel.filter_tensors: the name convert_hf_to_gguf maps, or nil for a tensor it drops.
    static func filteredName(_ hf: String) -> String? {
        var name = hf.hasPrefix("bert.") ? String(hf.dropFirst(5)) : hf
        if name.hasSuffix(".gamma") { name = String(name.dropLast(6)) + ".weight" }
        if name.hasSuffix(".beta") { name = String(name.dropLast(5)) + ".bias" }
        if ["embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"].contains(name) { return nil }
        if name.hasPrefix("cls.predictions") || name.hasPrefix("cls.seq_relationship") { return nil }
        return name
    }

    static func ggufName(_ name: String) -> String? {
        if let g = globalNames[name] { return g }
        let parts = name.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "encoder", parts[1] == "layer", let layer = Int(parts[2]), String(layer) == parts[2] else { return nil }
        return layerNames[String(parts[3])].map { "blk.\(layer).\($0)" }
    }

    /// Converts `directory` to GGUF. Returns one note per tensor (name, ne, type).
    @discardableResult
    public static func convert(directory: String, type: GGMLType, to path: String) throws -> [String] {
        let (writer, notes) = try build(directory: directory, type: type)
        try writer.write(to: path)
        return notes
    }

    /// The file `convert` writes, in memory.
    public static func build(directory: String, type: GGMLType) throws -> (GGUFWriter, [String]) {
        guard types.contains(type) else {
            throw ParityError.usage("a BERT GGUF is written as convert_hf_to_gguf writes it: --type \(types.map(\.name).joined(separator: ", ")); got \(type.name)")
        }
        let configPath = directory + "/config.json"
        let config = try GGUFLlamaConverter.readJSON(configPath)
        func int(_ keys: [String]) throws(ParityError) -> Int {
            for key in keys { if let v = config[key]?.intValue { return v } }
            throw .malformed(file: configPath, at: "key '\(keys[0])'", reason: "missing or not an integer")
        }
        if let kind = config["position_embedding_type"]?.stringValue, kind != "absolute" {
            throw ParityError.unsupported(file: configPath, reason: "position_embedding_type '\(kind)': llama.cpp's bert graph adds absolute position embeddings only")
        }
        if config["id2label"]?.objectValue.map({ $0.count != 2 || $0.first?.value.stringValue != "LABEL_0" }) == true {
            throw ParityError.unsupported(file: configPath, reason: "id2label: a classification head (convert_hf_to_gguf writes classifier labels); Parity converts encoders only")
        }
        if config["is_causal"] != nil || config["classifier_pooling"] != nil || config["rms_norm_eps"] != nil {
            throw ParityError.unsupported(file: configPath, reason: "keys is_causal / classifier_pooling / rms_norm_eps: convert_hf_to_gguf writes more keys for them than Parity's converter does")
        }
        if FileManager.default.fileExists(atPath: directory + "/generation_config.json") {
            throw ParityError.unsupported(file: directory + "/generation_config.json", reason: "sampling settings (gguf-py writes general.sampling.*); Parity's converter does not")
        }
        let blockCount = try int(["num_hidden_layers", "n_layer", "num_layers"])
        guard let epsilon = (["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"].lazy.compactMap { config[$0]?.doubleValue }.first) else {
            throw ParityError.malformed(file: configPath, at: "key 'layer_norm_eps'", reason: "missing or not a number")
        }

        // Tensors in convert_hf_to_gguf's order (safetensors files by name, tensors by name), mapped and typed.
        var prepared: [(name: String, ne: [Int], values: [Float], type: GGMLType)] = []
        for (hfName, load) in try GGUFLlamaConverter.loadWeights(directory: directory) {
            guard let name = filteredName(hfName) else { continue }
            if name.hasSuffix(".attention.masked_bias") || name.hasSuffix(".attention.bias") || name.hasSuffix(".rotary_emb.inv_freq") { continue }
            guard let gguf = ggufName(name) else {
                throw ParityError.mismatch(file: directory, reason: "tensor '\(hfName)' has no GGUF bert name (convert_hf_to_gguf would refuse it too: \"Can not map tensor\")")
            }
            let tensor = try load()
            let ne = Array(tensor.shape.reversed())
            let chosen: GGMLType
            if ne.count <= 1 || gguf.hasSuffix("_norm.weight") || gguf == "position_embd.weight" || gguf == "token_types.weight" || !gguf.hasSuffix(".weight") {
                chosen = .f32  // 1-D tensors, norms, biases, position and token-type tables: always F32
            } else {
                chosen = ne[0] % type.blockSize == 0 ? type : .f16  // gguf-py's QuantError fallback
            }
            prepared.append((gguf, ne, tensor.data, chosen))
        }

        var w = try GGUFWriter(architecture: "bert")
        try w.set("general.type", .string("model"))
        let metadata = try GGUFModelCardMetadata.load(directory: directory, config: config,
                                                      parameterCount: prepared.reduce(0) { $0 + $1.values.count })
        try metadata.write(&w)
        try w.set("bert.block_count", .uint32(UInt32(blockCount)))
        let optional: [(String, [String])] = [
            ("bert.context_length", ["max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"]),
            ("bert.embedding_length", ["hidden_size", "n_embd", "dim"]),
            ("bert.feed_forward_length", ["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"]),
            ("bert.attention.head_count", ["num_attention_heads", "n_head", "n_heads"]),
            ("bert.attention.head_count_kv", ["num_key_value_heads", "n_kv_heads"]),
        ]
        for (key, names) in optional {
            if let v = names.lazy.compactMap({ config[$0]?.intValue }).first { try w.set(key, .uint32(UInt32(v))) }
        }
        try w.set("bert.attention.layer_norm_epsilon", .float32(Float(epsilon)))
        try w.set("general.file_type", .uint32(GGUFConverter.fileTypes[type]!))
        try w.set("bert.attention.causal", .bool(false))
        if let pooling = try poolingType(directory: directory) { try w.set("bert.pooling_type", .uint32(pooling)) }
        try w.set("general.quantization_version", .uint32(GGUFWriter.quantizationVersion))
        try writeVocabulary(&w, directory: directory, config: config, configPath: configPath)

        var notes: [String] = []
        for t in prepared {
            try w.add(name: t.name, type: t.type, ne: t.ne, bytes: try GGMLQuants.quantize(t.values, to: t.type))
            notes.append("\(t.name) ne \(t.ne) \(t.type.name)")
        }
        return (w, notes)
    }

    /// `_try_set_pooling_type`: the Pooling module of modules.json and its config → llama.cpp's MEAN 1, CLS 2, LAST 3.
    static func poolingType(directory: String) throws -> UInt32? {
        let modulesPath = directory + "/modules.json"
        guard FileManager.default.fileExists(atPath: modulesPath) else { return nil }
        guard let modules = try GGUFLlamaConverter.readJSON(modulesPath).arrayValue else {
            throw ParityError.malformed(file: modulesPath, at: "offset 0", reason: "not a list of modules")
        }
        guard let path = modules.first(where: { $0["type"]?.stringValue?.hasSuffix("Pooling") == true })?["path"]?.stringValue else { return nil }
        let configPath = directory + "/" + path + "/config.json"
        let pooling = try GGUFLlamaConverter.readJSON(configPath)
        if pooling["pooling_mode_mean_tokens"]?.boolValue == true { return 1 }
        if pooling["pooling_mode_cls_token"]?.boolValue == true { return 2 }
        if pooling["pooling_mode_lasttoken"]?.boolValue == true { return 3 }
        switch pooling["pooling_mode"]?.stringValue {
        case "mean": return 1
        case "cls": return 2
        case "lasttoken": return 3
        default: throw ParityError.unsupported(file: configPath, reason: "pooling mode: llama.cpp takes MEAN, CLS and LAST only")
        }
    }

    // MARK: Vocabulary

    /// gguf-py's token types.
    enum TokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5 }

    /// The pre-tokenizer names convert_hf_to_gguf's `get_vocab_base_pre` gives WordPiece vocabularies, by the SHA-256
    /// of `str(tokenizer.encode(chktxt))`. Where its table lists one hash twice the later name wins, as in its chain of
    /// `if`s (bge-small-en-v1.5 and jina-embeddings-v2-base-en share 0876d13b…: "jina-v2-en").
    static let preTokenizers: [String: String] = [
        "0876d13b50744004aa9aeae05e7b0647eac9d801b5ba4668afc01e709c15e19f": "jina-v2-en",
        "8e62295832751ca1e8f92f2226f403dea30dc5165e448b5bfa05af5340c64ec7": "bert-bge-large",
        "c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448": "jina-v1-en",
        "171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643": "jina-v2-es",
        "27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6": "jina-v2-de",
        "7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a": "jina-v2-code",
    ]

    /// convert_hf_to_gguf's check text (`get_vocab_base_pre`'s `chktxt`).
    static let checkText = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u{200d}🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"

    /// `tokenizer.ggml.pre` for a vocabulary: the hash of the check text's token ids ([CLS] … [SEP] included, as
    /// `tokenizer.encode` adds them), looked up in llama.cpp's table.
    public static func preTokenizerName(checkTokenIDs ids: [Int], directory: String) throws(ParityError) -> String {
        let text = "[" + ids.map(String.init).joined(separator: ", ") + "]"
        let hash = SHA256.hex(Array(text.utf8))
        guard let name = preTokenizers[hash] else {
            throw .unsupported(file: directory + "/tokenizer.json", reason: "pre-tokenizer hash \(hash) is not in llama.cpp's table of WordPiece vocabularies (convert_hf_to_gguf refuses it: \"BPE pre-tokenizer was not recognized\")")
        }
        return name
    }

    /// `BertModel.set_vocab`: the vocabulary as transformers' tokenizer lists it (tokenizer.json's WordPiece vocab and
    /// added tokens; vocab.txt without a tokenizer.json), padded to vocab_size with [PADi] (UNUSED); special added
    /// tokens CONTROL; then "phantom space" — every non-CONTROL token gets "▁" unless it is a "##" continuation,
    /// which loses its "##" — and gguf-py's `SpecialVocab` (special ids, add_bos/eos/sep, the normalizer's lowercase).
    static func writeVocabulary(_ w: inout GGUFWriter, directory: String, config: JSONValue, configPath: String) throws {
        let tokenizerPath = directory + "/tokenizer.json"
        let tokenizerJSON = FileManager.default.fileExists(atPath: tokenizerPath) ? try GGUFLlamaConverter.readJSON(tokenizerPath) : nil
        let tokenizerConfigPath = directory + "/tokenizer_config.json"
        var tokenizerConfig = FileManager.default.fileExists(atPath: tokenizerConfigPath) ? try GGUFLlamaConverter.readJSON(tokenizerConfigPath).objectValue : nil

        var vocabulary: [String: Int] = [:]
        var added: [(id: Int, content: String, special: Bool, normalized: Bool)] = []
        if let tokenizerJSON {
            guard tokenizerJSON["model"]?["type"]?.stringValue == "WordPiece", let vocab = tokenizerJSON["model"]?["vocab"]?.objectValue else {
                throw ParityError.unsupported(file: tokenizerPath, reason: "not a WordPiece model; llama.cpp's bert vocabulary is WordPiece")
            }
            for (token, id) in vocab { if let id = id.intValue { vocabulary[token] = id } }
            for entry in tokenizerJSON["added_tokens"]?.arrayValue ?? [] {
                guard let id = entry["id"]?.intValue, let content = entry["content"]?.stringValue else { continue }
                added.append((id, content, entry["special"]?.boolValue == true, entry["normalized"]?.boolValue == true))
                vocabulary[content] = id
            }
        } else {
            let vocabPath = directory + "/vocab.txt"
            guard FileManager.default.fileExists(atPath: vocabPath) else {
                throw ParityError.notFound(path: directory, what: "tokenizer.json or vocab.txt (a WordPiece vocabulary)")
            }
            throw ParityError.unsupported(file: vocabPath, reason: "a vocab.txt without tokenizer.json: transformers' slow tokenizer lists added tokens Parity's converter cannot reproduce")
        }
        let size = config["vocab_size"]?.intValue ?? vocabulary.count
        var reverse = [String?](repeating: nil, count: size)
        for (token, id) in vocabulary {
            guard id >= 0, id < size else {
                throw ParityError.mismatch(file: tokenizerPath, reason: "token '\(token)' has id \(id), not under vocab_size \(size) (convert_hf_to_gguf asserts this)")
            }
            reverse[id] = token
        }
        var tokens: [String] = [], types: [TokenType] = []
        for id in 0..<size {
            guard let token = reverse[id] else { tokens.append("[PAD\(id)]"); types.append(.unused); continue }
            if let a = added.first(where: { $0.content == token }) {
                if !a.normalized && !a.special {
                    throw ParityError.unsupported(file: tokenizerPath, reason: "added token '\(token)' is neither special nor normalized: convert_hf_to_gguf re-encodes it with transformers, which Parity's converter cannot")
                }
                types.append(a.special || GGUFLlamaConverter.looksSpecial(token) ? .control : .userDefined)
                tokens.append(a.special || GGUFLlamaConverter.looksSpecial(token) ? token : token.replacingOccurrences(of: "\u{2581}", with: " "))
            } else {
                types.append(.normal)
                tokens.append(token)
            }
        }
        // On UTF-8 bytes, as Python slices code points: a "##" followed by a combining mark is one Swift Character,
        // which hasPrefix/dropFirst would not see as "##".
        let phantom = zip(tokens, types).map { token, type -> String in
            if type == .control { return token }
            let bytes = Array(token.utf8)
            return bytes.starts(with: [0x23, 0x23]) ? String(decoding: bytes.dropFirst(2), as: UTF8.self) : "\u{2581}" + token
        }
        // convert_hf_to_gguf runs transformers' tokenizer on its check text; Parity's WordPiece tokenizer (the same
        // BERT normalisation and WordPiece, checked against `tokenizers`) gives the ids it hashes.
        let checkIDs = try WordPieceTokenizer(directory: directory).encode(checkText, maxLength: Int.max).map(Int.init)
        let pre = try preTokenizerName(checkTokenIDs: checkIDs, directory: directory)

        try w.set("tokenizer.ggml.token_type_count", .uint32(UInt32(config["type_vocab_size"]?.intValue ?? 1)))
        try w.set("tokenizer.ggml.model", .string("bert"))
        try w.set("tokenizer.ggml.pre", .string(pre))
        try w.set("tokenizer.ggml.tokens", .array(.string, phantom.map { .string($0) }))
        try w.set("tokenizer.ggml.token_type", .array(.int32, types.map { .int32($0.rawValue) }))

        // SpecialVocab(_try_load_from_tokenizer_json, then _try_load_from_config_json).
        func configText(_ key: String) -> String? {
            guard let v = tokenizerConfig?.first(where: { $0.key == key })?.value else { return nil }
            return v.stringValue ?? v["content"]?.stringValue
        }
        func setConfig(_ key: String, _ value: String) {
            tokenizerConfig?.removeAll { $0.key == key }
            tokenizerConfig?.append((key, .string(value)))
        }
        var addSpecial: [(String, Bool)] = []
        func setAdd(_ kind: String, _ value: Bool) {
            if let i = addSpecial.firstIndex(where: { $0.0 == kind }) { addSpecial[i].1 = value } else { addSpecial.append((kind, value)) }
        }
        var specialBos = configText("bos_token"), specialCls = configText("cls_token")
        var specialEos = configText("eos_token"), specialSep = configText("sep_token")
        if specialBos == nil, let cls = specialCls, tokenizerConfig != nil { specialBos = cls; setConfig("bos_token", cls) }
        if specialEos == nil, let sep = specialSep, tokenizerConfig != nil { specialEos = sep; setConfig("eos_token", sep) }
        for processor in tokenizerJSON?["post_processor"].map({ $0["processors"]?.arrayValue ?? [$0] }) ?? [] {
            switch processor["type"]?.stringValue {
            case "TemplateProcessing":
                let single = processor["single"]?.arrayValue ?? [], pair = processor["pair"]?.arrayValue ?? []
                func special(_ item: JSONValue?) -> String? { item?["SpecialToken"]?["id"]?.stringValue }
                var first: String?, last: String?
                if single.count > 1 {
                    first = special(single.first)
                    if let f = first {
                        if tokenizerConfig == nil { specialBos = f } else if f != specialBos && f != specialCls {
                            throw ParityError.unsupported(file: tokenizerPath, reason: "TemplateProcessing starts with '\(f)', neither the bos nor the cls token")
                        }
                        setAdd("bos", f == specialBos || f == specialCls)
                    }
                    last = special(single.last)
                    if let l = last {
                        if tokenizerConfig == nil { specialEos = l } else if l != specialEos {
                            throw ParityError.unsupported(file: tokenizerPath, reason: "TemplateProcessing ends with '\(l)', not the eos token (gguf-py adds eot/eom keys)")
                        }
                        setAdd("eos", true)
                    }
                }
                if !pair.isEmpty {
                    let start = first != nil && special(pair.first) == first ? 1 : 0
                    let stop = last != nil && special(pair.last) == last ? pair.count - 1 : pair.count
                    if start < stop {
                        let inner = Array(pair[start..<stop])
                        if inner.first?["Sequence"]?["id"]?.stringValue == "A", inner.last?["Sequence"]?["id"]?.stringValue == "B", inner.count > 2 {
                            let middle = Array(inner.dropFirst().dropLast())
                            var addSeparator = false
                            let separators = [specialSep, specialEos].compactMap { $0 }
                            if let entry = special(middle.first), separators.contains(entry), last == nil { addSeparator = true }
                            if middle.count == 2, let entry = special(middle[1]), separators.contains(entry) { addSeparator = true }
                            setAdd("sep", addSeparator)
                            if addSeparator && specialSep == nil, let eos = specialEos { setConfig("sep_token", eos) }
                        }
                    }
                }
            case "ByteLevel", "RobertaProcessing":
                throw ParityError.unsupported(file: tokenizerPath, reason: "post-processor \(processor["type"]!.stringValue!): not a BERT WordPiece template")
            default: break
            }
        }
        var specialIDs: [(String, Int)] = []
        let addedTokens = tokenizerJSON?["added_tokens"]?.arrayValue ?? []
        func setSpecial(_ kind: String, _ id: Int?) {
            guard let id, id >= 0, id < size, !specialIDs.contains(where: { $0.0 == kind }) else { return }
            specialIDs.append((kind, id))
        }
        let kinds = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
        if tokenizerConfig != nil {
            for kind in kinds {
                if let add = tokenizerConfig?.first(where: { $0.key == "add_\(kind)_token" })?.value.boolValue, !addSpecial.contains(where: { $0.0 == kind }) {
                    addSpecial.append((kind, add))
                }
                guard let content = configText("\(kind)_token") else { continue }
                setSpecial(kind, addedTokens.first { $0["content"]?.stringValue == content }?["id"]?.intValue)
            }
        }
        for kind in kinds { setSpecial(kind, config["\(kind)_token_id"]?.intValue) }
        // gguf-py's writer has no key for cls (it logs "No handler"); the others keep SpecialVocab's order.
        let keys = ["bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
                    "pad": "padding_token_id", "mask": "mask_token_id"]
        for (kind, id) in specialIDs { if let key = keys[kind] { try w.set("tokenizer.ggml.\(key)", .uint32(UInt32(id))) } }
        for (kind, value) in addSpecial where ["bos", "eos", "sep"].contains(kind) { try w.set("tokenizer.ggml.add_\(kind)_token", .bool(value)) }
        if let template = tokenizerConfig?.first(where: { $0.key == "chat_template" })?.value.stringValue {
            try w.set("tokenizer.chat_template", .string(template))
        }
        if let normalizer = tokenizerJSON?["normalizer"] {
            var lowercase: Bool?, stripAccents: Bool?
            func parse(_ n: JSONValue) {
                switch n["type"]?.stringValue {
                case "Lowercase": lowercase = true
                case "StripAccents": stripAccents = true
                case "BertNormalizer":
                    if let v = n["lowercase"]?.boolValue { lowercase = v }
                    if let v = n["strip_accents"]?.boolValue { stripAccents = v }
                case "Sequence": for m in n["normalizers"]?.arrayValue ?? [] { parse(m) }
                default: break
                }
            }
            parse(normalizer)
            if let lowercase { try w.set("tokenizer.ggml.normalizer.lowercase", .bool(lowercase)) }
            if let stripAccents { try w.set("tokenizer.ggml.normalizer.strip_accents", .bool(stripAccents)) }
        }
    }
}
