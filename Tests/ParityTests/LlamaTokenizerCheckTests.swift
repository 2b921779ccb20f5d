import Foundation
import ParityCore
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// The GGUF vocabulary against the reference's tokenizer.model: llama.cpp's own file (Parity's conversion, byte-identical
/// to convert_hf_to_gguf's) agrees; a file whose tokens, scores, types or bos/eos differ fails at the first differing id.
@Suite("GGUF tokenizer metadata vs the reference tokenizer.model")
struct LlamaTokenizerCheckTests {
    static let model = Repo.golden + "/tiny-llama"

    /// Parity's f16 GGUF of tiny-llama with metadata rewritten by `edit`.
    static func gguf(in scratch: TemporaryDirectory, edit: (String, GGUFValue) -> GGUFValue = { $1 }) throws -> String {
        let (writer, _) = try GGUFLlamaConverter.build(directory: model, output: .converter(.f16))
        var out = try GGUFWriter(architecture: "llama", alignment: writer.alignment)
        for (key, value) in writer.metadata { try out.set(key, edit(key, value)) }
        for t in writer.tensors { try out.add(name: t.name, type: t.type, ne: t.ne, bytes: t.bytes) }
        let path = scratch.file("tiny-llama-f16.gguf")
        try out.write(to: path)
        return path
    }

    static func edited(_ value: GGUFValue, at id: Int, _ change: (GGUFValue) -> GGUFValue) -> GGUFValue {
        guard case let .array(type, items) = value else { return value }
        var copy = items
        copy[id] = change(items[id])
        return .array(type, copy)
    }

    @Test("llama.cpp's vocabulary (Parity's conversion, llama.cpp's bytes) agrees with tokenizer.model")
    func agrees() throws {
        let scratch = try TemporaryDirectory()
        let path = try Self.gguf(in: scratch)
        let recorded = try required(try required(try fixtureJSON(Repo.fixtures + "/llama/parity-gguf-llama-cpp.json"), "files", in: "parity-gguf-llama-cpp.json"),
                                    "tiny-llama-f16.gguf", in: "parity-gguf-llama-cpp.json")
        #expect(SHA256.hex(try readBytes(path)) == recorded["sha256"]?.stringValue, "not llama.cpp's bytes")
        #expect(try LlamaTokenizerCheck.firstMismatch(gguf: GGUFFile(path: path), referenceDirectory: Self.model) == nil)
    }

    static let mutations: [(String, String)] = [
        ("tokenizer.ggml.tokens", "token 37 is 'X' in the file, "),
        ("tokenizer.ggml.scores", "token 37 ("),
        ("tokenizer.ggml.token_type", "token 37 ("),
        ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.bos_token_id is 2 in the file, 1 in the reference tokenizer.model"),
    ]

    @Test("a vocabulary that differs fails at the first differing id", arguments: try nonEmpty(mutations, "mutations"))
    func differs(key: String, message: String) throws {
        let scratch = try TemporaryDirectory()
        let path = try Self.gguf(in: scratch) { k, value in
            guard k == key else { return value }
            switch key {
            case "tokenizer.ggml.tokens": return Self.edited(value, at: 37) { _ in .string("X") }
            case "tokenizer.ggml.scores": return Self.edited(value, at: 37) { v in if case let .float32(f) = v { return .float32(f - 1) }; return v }
            case "tokenizer.ggml.token_type": return Self.edited(value, at: 37) { _ in .int32(4) }
            default: return .uint32(2)
            }
        }
        let mismatch = try #require(try LlamaTokenizerCheck.firstMismatch(gguf: GGUFFile(path: path), referenceDirectory: Self.model), "\(key): no mismatch found")
        #expect(mismatch.hasPrefix(message), "\(key): \(mismatch)")
    }

    @Test("verify --file: a GGUF whose token 37 differs fails (exit 1) naming the token id")
    func verdict() throws {
        let scratch = try TemporaryDirectory()
        let path = try Self.gguf(in: scratch) { k, value in k == "tokenizer.ggml.tokens" ? Self.edited(value, at: 37) { _ in .string("X") } : value }
        let result = try runParity(["verify", "tiny-llama", "--file", path], timeout: 300)
        #expect(result.status == 1, "exit \(result.status)\n\(result.stdout.suffix(1500))\(result.stderr)")
        #expect(result.stdout.contains("FAIL: tokenizer: token 37 is 'X' in the file, "), "\(result.stdout.suffix(1500))")
    }
}
