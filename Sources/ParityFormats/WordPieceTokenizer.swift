import Foundation
import ParityCore

/// BERT's tokenizer as Hugging Face `tokenizers` computes it for a `BertTokenizer` checkpoint (tokenizer.json:
/// `BertNormalizer` + `BertPreTokenizer` + `WordPiece` + the `[CLS] … [SEP]` template):
/// 1. clean text: drop U+0000, U+FFFD and control characters (Unicode "Other" categories, except tab/newline/CR),
///    map every White_Space character to a space;
/// 2. put spaces around CJK ideographs (the CJK Unified Ideographs blocks BERT lists);
/// 3. strip accents (NFD, then drop non-spacing marks) when `strip_accents` is true, or unset and lower-casing;
/// 4. lower-case character by character (no context: a final sigma becomes σ, as in `tokenizers`);
/// 5. split on whitespace and around every punctuation character (ASCII punctuation or a Unicode P* category);
/// 6. WordPiece each word: greedy longest match from `vocab.txt`, continuations prefixed `##`; a word longer than
///    `maxInputCharsPerWord` characters, or one that cannot be covered, becomes `[UNK]`;
/// 7. `[CLS]` + ids + `[SEP]`, the ids cut to `maxLength − 2` first (truncation of a single sequence).
/// Before all that, the special tokens written in the text itself (`[CLS]`, `[SEP]`, `[MASK]`, `[UNK]`, `[PAD]`) are
/// matched verbatim and kept whole, as `tokenizers` matches its added tokens (`normalized: false`).
public struct WordPieceTokenizer: Sendable {
    public let vocabulary: [String: Int32]
    public let tokens: [String]
    public var lowercase = true
    /// nil: follow `lowercase` (BertNormalizer's default).
    public var stripAccents: Bool?
    public var tokenizeChineseCharacters = true
    public var maxInputCharsPerWord = 100
    public let unknown: Int32, classification: Int32, separator: Int32
    /// Added tokens matched in the raw text before normalisation, longest first.
    public var specialTokens: [String]

    /// Reads `vocab.txt` (one token per line, id = line number).
    public init(vocabularyPath path: String) throws(ParityError) {
        let file = try MappedFile(path: path)
        guard let text = String(bytes: file.data, encoding: .utf8) else { throw .malformed(file: path, at: "offset 0", reason: "not UTF-8") }
        var lines = text.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        tokens = lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        var vocabulary: [String: Int32] = [:]
        for (i, token) in tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = Int32(i) }
        self.vocabulary = vocabulary
        func special(_ name: String) throws(ParityError) -> Int32 {
            guard let id = vocabulary[name] else { throw .malformed(file: path, at: "token \(name)", reason: "the vocabulary has no \(name)") }
            return id
        }
        unknown = try special("[UNK]")
        classification = try special("[CLS]")
        separator = try special("[SEP]")
        specialTokens = ["[MASK]", "[CLS]", "[SEP]", "[UNK]", "[PAD]"].filter { vocabulary[$0] != nil }
    }

    /// Reads a model directory's `vocab.txt` and its `tokenizer_config.json` options (`do_lower_case`,
    /// `strip_accents`, `tokenize_chinese_chars`) when present.
    public init(directory: String) throws(ParityError) {
        try self.init(vocabularyPath: directory + "/vocab.txt")
        let configPath = directory + "/tokenizer_config.json"
        guard FileManager.default.fileExists(atPath: configPath) else { return }
        let file = try MappedFile(path: configPath)
        let json: JSONValue
        do { json = try JSONParser.parse(Array(file.data)) } catch { throw .malformed(file: configPath, at: "offset \(error.offset)", reason: error.reason) }
        if let v = json["do_lower_case"]?.boolValue { lowercase = v }
        if let v = json["strip_accents"]?.boolValue { stripAccents = v }
        if let v = json["tokenize_chinese_chars"]?.boolValue { tokenizeChineseCharacters = v }
    }

    /// `[CLS]` + WordPiece ids + `[SEP]`, at most `maxLength` ids.
    public func encode(_ text: String, maxLength: Int = 512) -> [Int32] {
        var ids: [Int32] = []
        for (piece, isSpecial) in splitSpecialTokens(text) {
            if isSpecial, let id = vocabulary[piece] { ids.append(id) } else { ids += words(piece).flatMap(wordPiece) }
        }
        if ids.count > maxLength - 2 { ids.removeLast(ids.count - max(maxLength - 2, 0)) }
        return [classification] + ids + [separator]
    }

    /// The text cut around verbatim special tokens (leftmost match, longest first at a position).
    func splitSpecialTokens(_ text: String) -> [(String, Bool)] {
        guard text.contains("[") else { return [(text, false)] }
        var pieces: [(String, Bool)] = []
        var rest = Substring(text)
        var plain = ""
        while !rest.isEmpty {
            if rest.first == "[", let token = specialTokens.first(where: { rest.hasPrefix($0) }) {
                if !plain.isEmpty { pieces.append((plain, false)); plain = "" }
                pieces.append((token, true))
                rest = rest.dropFirst(token.count)
            } else {
                plain.append(rest.removeFirst())
            }
        }
        if !plain.isEmpty { pieces.append((plain, false)) }
        return pieces
    }

    /// Steps 1–5: the normalised words.
    public func words(_ text: String) -> [String] {
        var scalars: [Unicode.Scalar] = []
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || WordPieceTokenizer.isControl(s) { continue }
            if WordPieceTokenizer.isWhitespace(s) { scalars.append(" "); continue }
            if tokenizeChineseCharacters && WordPieceTokenizer.isCJK(s) { scalars += [" ", s, " "]; continue }
            scalars.append(s)
        }
        if stripAccents ?? lowercase {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            scalars = String(view).decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if lowercase { scalars = scalars.flatMap { Array($0.properties.lowercaseMapping.unicodeScalars) } }
        var words: [String] = []
        var current = String.UnicodeScalarView()
        func flush() { if !current.isEmpty { words.append(String(current)); current = String.UnicodeScalarView() } }
        for s in scalars {
            if WordPieceTokenizer.isWhitespace(s) { flush(); continue }
            if WordPieceTokenizer.isPunctuation(s) { flush(); words.append(String(s)); continue }
            current.append(s)
        }
        flush()
        return words
    }

    /// Step 6: greedy longest-match WordPiece of one word (characters are Unicode scalars, as Rust's `char`).
    public func wordPiece(_ word: String) -> [Int32] {
        let chars = Array(word.unicodeScalars)
        if chars.count > maxInputCharsPerWord { return [unknown] }
        var ids: [Int32] = []
        var start = 0
        while start < chars.count {
            var end = chars.count
            var found: Int32?
            while start < end {
                var view = String.UnicodeScalarView()
                view.append(contentsOf: chars[start..<end])
                let piece = (start > 0 ? "##" : "") + String(view)
                if let id = vocabulary[piece] { found = id; break }
                end -= 1
            }
            guard let id = found else { return [unknown] }
            ids.append(id)
            start = end
        }
        return ids
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    /// Rust's `char::is_other` (Cc, Cf, Cs, Co, Cn), tab/newline/CR excepted.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII, s.properties.generalCategory != .decimalNumber, (0x21...0x2F).contains(s.value) || (0x3A...0x40).contains(s.value)
            || (0x5B...0x60).contains(s.value) || (0x7B...0x7E).contains(s.value) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    static func isCJK(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        return (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B820...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
}
