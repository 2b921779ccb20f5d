import Foundation
import ParityCore
import Testing

/// `parity convert DIR --to gguf` for a Hugging Face Llama directory writes the bytes llama.cpp's tools write
/// (the SHA-256 recorded in parity-gguf-llama-cpp.json, whose twins are llama.cpp's own files).
@Suite("parity convert: GGUF Llama")
struct GGUFLlamaCLITests {
    static let fixture = Repo.fixtures + "/llama/parity-gguf-llama-cpp.json"

    @Test("parity convert writes llama.cpp's bytes", arguments: try nonEmpty([("Q4_K_M", ["--mix", "Q4_K_M"]), ("f16", ["--type", "f16"])].map { $0 }, "CLI cases"))
    func convert(output: String, flags: [String]) throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.file("out.gguf")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repo.parityExecutable)
        process.arguments = ["convert", Repo.golden + "/tiny-llama", "--to", "gguf"] + flags + ["-o", path]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "parity convert \(flags) exited \(process.terminationStatus)")
        let record = try required(try required(try fixtureJSON(Self.fixture), "files", in: Self.fixture), "tiny-llama-\(output).gguf", in: Self.fixture)
        #expect(SHA256.hex(try readBytes(path)) == record["sha256"]?.stringValue, "\(output): parity convert's bytes")
        #expect(record["identical_to_llama_cpp_file"]?.stringValue?.hasPrefix("gguf/") == true, "\(output): the same bytes as llama.cpp's file")
    }

    @Test("--mix outside a Llama GGUF conversion, or a mix llama-quantize lacks, is bad input: exit 2",
          arguments: try nonEmpty([["fmnist-mlp", "--to", "gguf", "--mix", "Q4_K_M"], [Repo.golden + "/tiny-llama", "--to", "gguf", "--mix", "Q9"]], "cases"))
    func badMix(arguments: [String]) throws {
        let scratch = try TemporaryDirectory()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Repo.parityExecutable)
        process.arguments = ["convert"] + arguments + ["-o", scratch.file("out.gguf")]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 2, "parity convert \(arguments)")
        #expect(!FileManager.default.fileExists(atPath: scratch.file("out.gguf")), "no file is written")
    }
}
