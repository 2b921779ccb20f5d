import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityRun
import ParityVerify
import Testing

/// A BERT GGUF's vocabulary is what llama.cpp tokenizes users' text with; the goldens run on token ids and cannot see
/// it. A one-token change in llama.cpp's converter file ('▁hello' → '▁hallo', same length, so the file stays valid)
/// makes llama.cpp split "hello" into other pieces; Parity must fail the file and name the token.
///
/// `bert.attention.causal` is metadata llama.cpp reads but does not act on for bert: the model has no KV memory, so
/// llama_decode runs llama_context::encode, which forces non-causal attention (llama-embedding on all-MiniLM-L6-v2's
/// q8_0 file gave bit-identical embeddings with the key flipped to true). A file with it flipped embeds as the
/// reference does: it passes, with a warning.
@Suite("BERT GGUF metadata the runtime acts on (vocabulary) or ignores (bert.attention.causal)", .serialized)
struct BertVocabularyCheckTests {
    /// llama.cpp's converter f32 file (bytes checked against the recorded SHA-256) with one token's text changed in place.
    static func planted() throws -> (clean: [UInt8], planted: [UInt8]) {
        let clean = try BertVerifyCellsTests.llamaCppFile(.f32)
        // A GGUF string: u64 length (little endian), then the UTF-8 bytes.
        let needle: [UInt8] = [8, 0, 0, 0, 0, 0, 0, 0] + Array("\u{2581}hello".utf8)
        let at = try #require((0...(clean.count - needle.count)).first { clean[$0..<($0 + needle.count)].elementsEqual(needle) }, "no '▁hello' in the file")
        var planted = clean
        planted[at + 8 + 3 + 1] = UInt8(ascii: "a")
        return (clean, planted)
    }

    @Test("llama.cpp's converter file matches vocab.txt token by token; one changed token fails the file, named by id and text")
    func changedToken() throws {
        let directory = try GGUFBertTests.modelDirectory()
        let (clean, planted) = try Self.planted()
        let cleanFile = try GGUFFile(file: MappedFile(data: Data(clean), name: "minilm-l6-f32.gguf"))
        #expect(try BertVocabularyCheck.firstMismatch(gguf: cleanFile, referenceDirectory: directory) == nil)
        let plantedFile = try GGUFFile(file: MappedFile(data: Data(planted), name: "planted-vocab.gguf"))
        let mismatch = try #require(try BertVocabularyCheck.firstMismatch(gguf: plantedFile, referenceDirectory: directory))
        let helloID = try WordPieceTokenizer(directory: directory).vocabulary["hello"]
        #expect(helloID == 7592)
        #expect(mismatch.contains("token 7592") && mismatch.contains("\u{2581}hallo") && mismatch.contains("'hello'"), "\(mismatch)")

        let (model, golden) = try MiniLMTests.reference()
        let report = try GGUFBertCells.verify(try BertVerifyCellsTests.write(planted, name: "planted-vocab.gguf"), model: model, golden: golden)
        #expect(report.verdict == .fail)
        #expect(report.layers.allSatisfy { $0.status.isPass }, "the weights and nodes are untouched: only the vocabulary fails")
        #expect(report.notes.contains { $0.hasPrefix("FAIL: tokenizer: token 7592") }, "\(report.notes)")
        // The summary says what failed: the tokenizer, not "hyperparameters".
        #expect(MatrixRendering.summaryLine(report).contains("the tokenizer differs from the reference"), "\(MatrixRendering.summaryLine(report))")
    }

    @Test("bert.attention.causal flipped to true: llama.cpp runs the encoder bidirectionally, so every node passes, with a warning")
    func causalKeyIgnored() throws {
        let clean = try BertVerifyCellsTests.llamaCppFile(.f32)
        // The key (u64 length, text), its value type (u32 7 = bool), then the value byte (0 = false).
        let needle: [UInt8] = [21, 0, 0, 0, 0, 0, 0, 0] + Array("bert.attention.causal".utf8) + [7, 0, 0, 0]
        let at = try #require((0...(clean.count - needle.count)).first { clean[$0..<($0 + needle.count)].elementsEqual(needle) }, "no causal key")
        try #require(clean[at + needle.count] == 0, "convert_hf_to_gguf writes bert.attention.causal = false")
        var planted = clean
        planted[at + needle.count] = 1
        let source = try GGUFBertWeights.load(GGUFFile(file: MappedFile(data: Data(planted), name: "planted-causal.gguf"))).get()
        #expect(source.causalAttention, "the reader reads the key as llama.cpp's hparams do")
        #expect(!BertGGMLOps(source: source).causal, "the engine runs as llama_context::encode: never causal")
        let (model, golden) = try MiniLMTests.reference()
        let report = try GGUFBertCells.verify(try BertVerifyCellsTests.write(planted, name: "planted-causal.gguf"), model: model, golden: golden)
        #expect(report.verdict == .pass, "\(report.layers.filter { !$0.status.isPass }.map(\.name))")
        #expect(report.notes.contains { $0.hasPrefix("warning: bert.attention.causal is true") }, "\(report.notes)")
    }
}
