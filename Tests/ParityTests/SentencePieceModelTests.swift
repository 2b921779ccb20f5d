import Foundation
import ParityCore
import ParityFormats
import Testing

/// The SentencePiece `tokenizer.model` reader. The whole vocabulary it yields is checked byte for byte against
/// llama.cpp's converter (GGUFLlamaConverterTests: tokens/scores/token_type SHA-256); these tests pin the trainer
/// settings tools/llama/train_tiny_llama.py passed to `SentencePieceTrainer.train` and the refusal of bad bytes.
@Suite("SentencePiece tokenizer.model")
struct SentencePieceModelTests {
    static let path = Repo.golden + "/tiny-llama/tokenizer.model"

    @Test("the trainer spec tools/llama/train_tiny_llama.py asked for")
    func trainerSpec() throws {
        let sp = try SentencePieceModel(path: Self.path)
        // train_tiny_llama.py: model_type="bpe" (2), vocab 512, byte_fallback=True, add_dummy_prefix=True,
        // unk_id=0, bos_id=1, eos_id=2, pad_id=-1.
        #expect(sp.modelType == 2 && sp.pieces.count == 512 && sp.byteFallback && sp.addDummyPrefix)
        #expect(sp.unknownID == 0 && sp.beginID == 1 && sp.endID == 2 && sp.paddingID == -1)
        #expect(sp.pieces[0].text == "<unk>" && sp.pieces[0].score == 0 && sp.pieces[0].type == .unknown)
        #expect(sp.pieces[1].type == .control && sp.pieces[2].type == .control)
        // byte_fallback: the 256 byte pieces <0x00>…<0xFF> follow the specials
        #expect(sp.pieces[3..<259].map(\.text) == (0..<256).map { String(format: "<0x%02X>", $0) })
        #expect(sp.pieces[3..<259].allSatisfy { $0.type == .byte })
    }

    @Test("truncated or non-protobuf bytes are a malformed file, named")
    func malformed() throws {
        let bytes = try readBytes(Self.path)
        #expect { try SentencePieceModel(bytes: Array(bytes.prefix(bytes.count - 3)), path: "cut.model") } throws: { error in
            guard let e = error as? ParityError, case let .malformed(file, _, _) = e else { return false }
            return file == "cut.model"
        }
        #expect(throws: ParityError.self) { try SentencePieceModel(bytes: Array("{\"not\": \"protobuf\"}".utf8), path: "json.model") }
        #expect(throws: ParityError.self) { try SentencePieceModel(bytes: [], path: "empty.model") }
    }
}
