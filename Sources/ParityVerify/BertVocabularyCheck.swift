import Foundation
import ParityCore
import ParityFormats

/// A BERT GGUF's vocabulary against the reference's `vocab.txt`, as llama.cpp's WordPiece tokenizer (WPM) reads it.
/// The goldens and the sentence check run on token ids, so a file whose vocabulary differs from the reference would
/// pass every node and still embed users' text wrongly: llama.cpp tokenizes with `tokenizer.ggml.tokens`.
///
/// What the runtime needs, per id of vocab.txt (llama.cpp's WPM tokenizer prefixes every word with U+2581 and
/// matches greedily against the file's token texts, continuing a word without the prefix):
/// - a word-initial piece `w` is stored as "▁w";
/// - a continuation piece `##w` is stored as "w" (on UTF-8 bytes: "##" before a combining mark is still stripped);
/// - a reference special token ([CLS], [SEP], [UNK], [PAD], [MASK]) is matched as raw text: stored verbatim, or
///   "▁" + its text when the file marks it a normal token.
/// The file must hold every id of vocab.txt, `tokenizer.ggml.model` must be "bert", and the [CLS]/[SEP]/[UNK] ids,
/// when the file names them, must be the reference's. The first difference, by token id, is reported.
public enum BertVocabularyCheck {
    /// The first difference, or nil. nil too when the reference directory has no vocab.txt (nothing to compare with).
    public static func firstMismatch(gguf file: GGUFFile, referenceDirectory: String) throws(ParityError) -> String? {
        guard FileManager.default.fileExists(atPath: referenceDirectory + "/vocab.txt") else { return nil }
        let reference = try WordPieceTokenizer(directory: referenceDirectory)
        guard case let .string(kind)? = file["tokenizer.ggml.model"], kind == "bert" else {
            return "tokenizer.ggml.model is \(file["tokenizer.ggml.model"].map { "\($0)" } ?? "absent"), but the reference tokenizer is "
                + "WordPiece (vocab.txt), which llama.cpp reads as \"bert\""
        }
        guard case let .array(_, tokens)? = file["tokenizer.ggml.tokens"] else { return "the file has no tokenizer.ggml.tokens" }
        guard tokens.count >= reference.tokens.count else {
            return "tokenizer.ggml.tokens has \(tokens.count) tokens; vocab.txt has \(reference.tokens.count)"
        }
        let special = Set(reference.specialTokens)
        for (id, piece) in reference.tokens.enumerated() {
            let stored = tokens[id].stringValue ?? "\(tokens[id])"
            let bytes = Array(piece.utf8)
            let runtime = bytes.starts(with: [0x23, 0x23]) ? String(decoding: bytes.dropFirst(2), as: UTF8.self) : "\u{2581}" + piece
            let allowed = special.contains(piece) ? [piece, runtime] : [runtime]
            if !allowed.contains(stored) {
                return "token \(id) is '\(stored)' in the file, '\(allowed[0])' for vocab.txt's '\(piece)' (llama.cpp's WordPiece matches word starts as "
                    + "'▁' + piece and continuations without '##')"
            }
        }
        for (key, expected, name) in [("cls", reference.classification, "[CLS]"), ("seperator", reference.separator, "[SEP]"),
                                      ("unknown", reference.unknown, "[UNK]")] {
            if let stored = file["tokenizer.ggml.\(key)_token_id"]?.intValue, stored != Int(expected) {
                return "tokenizer.ggml.\(key)_token_id is \(stored) in the file, \(expected) (\(name)) in the reference vocab.txt"
            }
        }
        return nil
    }
}
