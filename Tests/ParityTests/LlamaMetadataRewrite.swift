import Foundation
import ParityFormats
import ParityModels
import Testing

/// Files whose metadata says something other than what tiny-llama's reference implies: Parity's own conversion of
/// tiny-llama with one setting rewritten, as a converter writing that setting would produce it. The weights are
/// untouched, so only the rewritten setting can change the verdict.
enum LlamaMetadataRewrite {
    static let model = Repo.golden + "/tiny-llama"

    /// tiny-llama's reference config, read as a Llama.
    static func architecture() throws -> LlamaArchitecture {
        try #require(try ModelConfig.load(path: model + "/config.json").llama, "tiny-llama's config is not read as a Llama")
    }

    /// `parity convert tiny-llama --to mlx OPTIONS -o SCRATCH/NAME`, required to succeed; the directory.
    static func mlxConversion(_ options: [String], named name: String, in scratch: TemporaryDirectory) throws -> String {
        let out = scratch.file(name)
        let convert = try runParity(["convert", "tiny-llama", "--to", "mlx"] + options + ["-o", out])
        try #require(convert.status == 0, "\(convert.stderr)")
        return out
    }

    /// Replaces `original` in DIRECTORY/config.json with `replacement`. `original` must be there as the converter
    /// writes it: a changed spelling fails the test instead of leaving the setting silently unchanged.
    static func rewriteConfig(of directory: String, _ original: String, with replacement: String) throws {
        let configPath = directory + "/config.json"
        let config = try String(contentsOfFile: configPath, encoding: .utf8)
        try #require(config.contains(original), "config.json no longer writes \(original) as expected: \(config)")
        try config.replacingOccurrences(of: original, with: replacement).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Parity's f32 GGUF of tiny-llama with `changes` set on top of the converter's metadata.
    static func gguf(_ changes: [(String, GGUFValue)], in scratch: TemporaryDirectory) throws -> String {
        var (writer, _) = try GGUFLlamaConverter.build(directory: model, output: try #require(GGUFLlamaConverter.Output(name: "f32")))
        for (key, value) in changes { try writer.set(key, value) }
        let path = scratch.file("tiny-llama-f32.gguf")
        try writer.write(to: path)
        return path
    }
}
