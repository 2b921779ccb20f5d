import Foundation
import ParityCore
import ParityFormats

/// A GGUF's vocabulary against the reference's SentencePiece `tokenizer.model`: llama.cpp tokenizes with the file's
/// `tokenizer.ggml.tokens` / `scores` / `token_type` and its bos/eos ids, so a file whose vocabulary is not the
/// reference tokenizer's computes on other token ids than the goldens were recorded with, however right its weights.
///
/// What the reference tokenizer is, per id (transformers' LlamaTokenizer): the piece of tokenizer.model, except ids
/// tokenizer_config.json's `added_tokens_decoder` (and added_tokens.json) redefine. Compared:
/// - every id of tokenizer.model is in the file (more ids are allowed: a vocab_size above the model's pads);
/// - a piece: the same text, the same score (the f32 llama.cpp's SPM tokenizer ranks merges by), and the type —
///   NORMAL, UNKNOWN, CONTROL, UNUSED or BYTE as SentencePiece says (a USER_DEFINED piece may be NORMAL or
///   USER_DEFINED: llama.cpp matches both as text);
/// - an added token: its text (`▁` as a space for a non-special one) and type (CONTROL if special, else
///   USER_DEFINED, or CONTROL when it looks special, as convert_hf_to_gguf decides); its score is the converter's
///   placeholder, not compared;
/// - bos/eos: `tokenizer.ggml.{bos,eos}_token_id`, or llama.cpp's SPM defaults 1 and 2 when absent, against the
///   ids tokenizer.model's trainer declares.
/// The first difference, by token id, is reported.
public enum LlamaTokenizerCheck {
    /// The first difference, or nil. nil too when the reference has no tokenizer.model (nothing to compare with).
    public static func firstMismatch(gguf file: GGUFFile, referenceDirectory: String) throws(ParityError) -> String? {
        let modelPath = referenceDirectory + "/tokenizer.model"
        guard FileManager.default.fileExists(atPath: modelPath) else { return nil }
        let sp = try SentencePieceModel(path: modelPath)
        guard case let .string(kind)? = file["tokenizer.ggml.model"], kind == "llama" else {
            return "tokenizer.ggml.model is \(file["tokenizer.ggml.model"].map { "\($0)" } ?? "absent"), but the reference tokenizer is "
                + "SentencePiece (tokenizer.model), which llama.cpp reads as \"llama\""
        }
        guard case let .array(_, tokens)? = file["tokenizer.ggml.tokens"] else { return "the file has no tokenizer.ggml.tokens" }
        let scores: [GGUFValue]? = { if case let .array(_, v)? = file["tokenizer.ggml.scores"] { return v }; return nil }()
        let types: [GGUFValue]? = { if case let .array(_, v)? = file["tokenizer.ggml.token_type"] { return v }; return nil }()
        let added = try addedTokens(referenceDirectory)
        let typeNames = [1: "NORMAL", 2: "UNKNOWN", 3: "CONTROL", 4: "USER_DEFINED", 5: "UNUSED", 6: "BYTE"]
        func typeName(_ t: Int) -> String { typeNames[t] ?? "\(t)" }
        for (id, piece) in sp.pieces.enumerated() {
            guard id < tokens.count else {
                return "tokenizer.ggml.tokens has \(tokens.count) tokens; tokenizer.model has \(sp.pieces.count) (first missing id \(id), '\(piece.text)')"
            }
            let storedText = tokens[id].stringValue ?? "\(tokens[id])"
            let storedType = types.flatMap { id < $0.count ? $0[id].intValue : nil }
            if let token = added[id] {
                let text = token.special ? token.content : token.content.replacingOccurrences(of: "\u{2581}", with: " ")
                if storedText != text { return "token \(id) is '\(storedText)' in the file, '\(text)' in the reference (tokenizer_config.json's added token)" }
                // A non-special added token that looks special (<...>) is CONTROL in convert_hf_to_gguf too.
                let allowed = token.special ? [3] : [4, 3]
                if let storedType, !allowed.contains(storedType) {
                    return "token \(id) ('\(text)') has type \(typeName(storedType)) in the file, \(typeName(allowed[0])) in the reference "
                        + "(an added\(token.special ? " special" : "") token of tokenizer_config.json)"
                }
                continue
            }
            if storedText != piece.text { return "token \(id) is '\(storedText)' in the file, '\(piece.text)' in the reference tokenizer.model" }
            if let scores, id < scores.count, case let .float32(score) = scores[id], score.bitPattern != piece.score.bitPattern {
                return "token \(id) ('\(piece.text)') has score \(score) in the file, \(piece.score) in the reference tokenizer.model"
            }
            if let storedType {
                let allowed = piece.type == .userDefined ? [1, 4] : [Int(piece.type.rawValue)]
                if !allowed.contains(storedType) {
                    return "token \(id) ('\(piece.text)') has type \(typeName(storedType)) in the file, \(typeName(Int(piece.type.rawValue))) in the reference tokenizer.model"
                }
            }
        }
        for (key, expected, fallback) in [("bos", sp.beginID, 1), ("eos", sp.endID, 2)] where expected >= 0 {
            let stored = file["tokenizer.ggml.\(key)_token_id"]?.intValue ?? fallback
            if stored != expected {
                return "tokenizer.ggml.\(key)_token_id is \(stored)\(file["tokenizer.ggml.\(key)_token_id"] == nil ? " (absent: llama.cpp's default)" : "") in the file, "
                    + "\(expected) in the reference tokenizer.model"
            }
        }
        return nil
    }

    struct AddedToken { let content: String; let special: Bool }

    /// tokenizer_config.json's `added_tokens_decoder` over added_tokens.json (both as transformers reads them).
    static func addedTokens(_ directory: String) throws(ParityError) -> [Int: AddedToken] {
        var out: [Int: AddedToken] = [:]
        let addedPath = directory + "/added_tokens.json"
        if FileManager.default.fileExists(atPath: addedPath) {
            for (content, id) in try readJSON(addedPath).objectValue ?? [] {
                guard let n = id.intValue else { throw .malformed(file: addedPath, at: "key \"\(content)\"", reason: "must be a token id") }
                out[n] = AddedToken(content: content, special: false)
            }
        }
        let configPath = directory + "/tokenizer_config.json"
        if FileManager.default.fileExists(atPath: configPath) {
            for (key, token) in try readJSON(configPath)["added_tokens_decoder"]?.objectValue ?? [] {
                guard let n = Int(key), let content = token["content"]?.stringValue else {
                    throw .malformed(file: configPath, at: "key \"added_tokens_decoder.\(key)\"", reason: "needs an integer id and a string content")
                }
                out[n] = AddedToken(content: content, special: token["special"]?.boolValue ?? false)
            }
        }
        return out
    }

    static func readJSON(_ path: String) throws(ParityError) -> JSONValue {
        let file = try MappedFile(path: path)
        do { return try JSONParser.parse([UInt8](file.data)) } catch {
            throw .malformed(file: path, at: "offset \(error.offset)", reason: error.reason)
        }
    }
}
