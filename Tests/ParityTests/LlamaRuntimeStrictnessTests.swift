import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// What the runtimes do with a file that lacks what its own metadata promises, and how the weight check names a
/// tensor that holds another parameter's reference.
@Suite("Llama runtime strictness and exchanged tensors", .serialized)
struct LlamaRuntimeStrictnessTests {
    static let model = Repo.golden + "/tiny-llama"
    static let biasFixtures = Repo.fixtures + "/llama-mlx-bias"

    static func mlxOutcome(_ name: String) throws -> JSONValue {
        let path = biasFixtures + "/outcomes.json"
        return try required(try required(try fixtureJSON(path), "directories", in: path), name, in: path)
    }

    /// A bias fixture directory; config-only ones get q4-g32's weights (no biases) beside them, as the script loaded them.
    static func biasDirectory(_ name: String, in scratch: TemporaryDirectory) throws -> String {
        let source = biasFixtures + "/" + name
        if FileManager.default.fileExists(atPath: source + "/model.safetensors") { return source }
        let target = scratch.file(name)
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: target + "/config.json")
        try FileManager.default.copyItem(atPath: Repo.fixtures + "/llama/mlx-reader/q4-g32/model.safetensors", toPath: target + "/model.safetensors")
        return target
    }

    @Test("an MLX config claiming biases its tensors lack is refused as mlx-lm's strict load refuses it (a FAIL), naming the missing bias",
          arguments: try nonEmpty([("attention-bias-missing", "model.layers.0.self_attn.k_proj.bias", 4),
                                   ("mlp-bias-missing", "model.layers.0.mlp.down_proj.bias", 3)].map { $0 }, "bias cases"))
    func missingBiases(name: String, firstMissing: String, count: Int) throws {
        let scratch = try TemporaryDirectory()
        let outcome = try Self.mlxOutcome(name)
        let error = try #require(outcome["error"]?.stringValue, "mlx-lm loaded \(name): \(outcome)")
        #expect(outcome["loaded"] == .bool(false) && error.hasPrefix("Missing \(count) parameters"), "mlx-lm: \(error)")
        let w = try MLXLlamaWeights.load(directory: try Self.biasDirectory(name, in: scratch))
        #expect(w.loading.refused)
        let refusals = w.loading.refusals.joined(separator: "\n")
        #expect(refusals.contains("\(count) parameter(s) missing"), "\(refusals)")
        #expect(error.contains(firstMissing) && refusals.contains(firstMissing), "\(refusals)")
        #expect(refusals.contains("bias parameter(s) the weights lack"), "\(refusals)")
    }

    @Test("an MLX directory whose biases are present (mlx-lm loads it) is unsupported, exit 2: Parity's Llama engines compute no biases")
    func presentBiasesUnsupported() throws {
        let outcome = try Self.mlxOutcome("attention-bias-present")
        #expect(outcome["loaded"] == .bool(true) && outcome["biases"]?.arrayValue?.count == 4, "mlx-lm: \(outcome)")
        #expect { try MLXLlamaWeights.load(directory: Self.biasFixtures + "/attention-bias-present") } throws: { error in
            guard case let .unsupported(file, reason) = error as? ParityError else { return false }
            return file.hasSuffix("attention-bias-present") && reason.contains("compute no projection biases")
        }
    }

    @Test("verify --file: Parity's MLX conversion with attention_bias set true in its config FAILS (exit 1) naming the missing bias")
    func missingBiasVerdict() throws {
        let scratch = try TemporaryDirectory()
        let out = try LlamaMetadataRewrite.mlxConversion(["--dtype", "f16"], named: "f16", in: scratch)
        try LlamaMetadataRewrite.rewriteConfig(of: out, "\"attention_bias\": false", with: "\"attention_bias\": true")
        let result = try runParity(["verify", "tiny-llama", "--file", out], timeout: 300)
        #expect(result.status == 1, "exit \(result.status)\n\(result.stdout.suffix(1500))\(result.stderr)")
        #expect(result.stdout.contains("model.layers.0.self_attn.q_proj.bias"), "\(result.stdout.suffix(2000))")
        #expect(result.stdout.contains("attention_bias true"), "\(result.stdout.suffix(2000))")
    }

    @Test("a GGUF without output.weight: llama.cpp's output is token_embd; the weight check FAILS it against lm_head saying so (exit 1)")
    func ggufWithoutOutput() throws {
        let scratch = try TemporaryDirectory()
        let source = try LlamaWeightTests.gguf(.converter(.q8_0), in: scratch, dropping: ["output.weight"])
        // llama.cpp: output is TENSOR_NOT_REQUIRED, then token_embd is created again as TENSOR_DUPLICATED (not counted).
        #expect(source.hyperparameters.tiedEmbeddings && !source.loading.refused)
        #expect(try source.matrix(.output, layer: 0).fileName == "token_embd.weight")
        let report = try WeightVerifier.verify(llama: source, reference: try LlamaWeightTests.reference.get())
        let failing = report.failing
        #expect(failing.map(\.referenceName) == ["lm_head.weight"], "\(failing.map(\.fileName))")
        let diagnosis = try #require(failing.first?.diagnosis)
        #expect(diagnosis.hasPrefix("[output-missing] the file has no output.weight, so llama.cpp's loader uses token_embd.weight as the output matrix"), "\(diagnosis)")
        let result = try runParity(["verify", "tiny-llama", "--file", source.path], timeout: 300)
        #expect(result.status == 1, "exit \(result.status)\n\(result.stdout.suffix(1500))\(result.stderr)")
        #expect(result.stdout.contains("[output-missing] the file has no output.weight"), "\(result.stdout.suffix(2000))")
    }

    @Test("an MLX directory whose config drops tie_word_embeddings (mlx-lm's default: tied): the output fails against lm_head, saying mlx-lm ties it")
    func mlxTiedByDefault() throws {
        let scratch = try TemporaryDirectory()
        let out = scratch.file("f16")
        _ = try MLXLlamaConverter.convert(directory: Self.model, dtype: "float16", quantization: nil, to: out)
        try LlamaMetadataRewrite.rewriteConfig(of: out, "\"tie_word_embeddings\": false,\n", with: "")
        let source = try MLXLlamaWeights.load(directory: out)
        // mlx-lm's sanitize drops lm_head.weight when tied, so nothing is left over: the strict load accepts it.
        #expect(source.hyperparameters.tiedEmbeddings && !source.loading.refused, "\(source.loading.refusals)")
        let report = try WeightVerifier.verify(llama: source, reference: try LlamaWeightTests.reference.get())
        #expect(report.failing.map(\.referenceName) == ["lm_head.weight"], "\(report.failing.map(\.fileName))")
        let diagnosis = try #require(report.failing.first?.diagnosis)
        #expect(diagnosis.hasPrefix("[output-tied] config.json ties the output to the embedding"), "\(diagnosis)")
    }

    /// llama.cpp's convert_hf_to_gguf.py (q8_0) on tiny-llama with layer 1's gate_proj and up_proj exchanged
    /// (tools/llama/record_swapped_gate_up.py), rebuilt from Parity's q8_0 conversion — byte-identical to llama.cpp's —
    /// by exchanging the two tensors' data, and proven to be that file by its recorded SHA-256.
    static func swappedGateUp(in scratch: TemporaryDirectory) throws -> String {
        let record = Repo.fixtures + "/llama-weight-swap/record.json"
        let file = try required(try fixtureJSON(record), "file", in: record)
        let path = scratch.file(try #require(file["name"]?.stringValue))
        _ = try GGUFLlamaConverter.convert(directory: model, output: .converter(.q8_0), to: path)
        let gguf = try GGUFFile(path: path)
        let gate = try #require(gguf.tensor(named: "blk.1.ffn_gate.weight")), up = try #require(gguf.tensor(named: "blk.1.ffn_up.weight"))
        try #require(gate.byteCount == up.byteCount && gate.type == up.type)
        var bytes = try readBytes(path)
        let a = gguf.dataStart + gate.offset, b = gguf.dataStart + up.offset
        let gateBytes = Array(bytes[a..<(a + gate.byteCount)])
        bytes.replaceSubrange(a..<(a + gate.byteCount), with: bytes[b..<(b + up.byteCount)])
        bytes.replaceSubrange(b..<(b + up.byteCount), with: gateBytes)
        try writeBytes(bytes, to: path)
        #expect(SHA256.hex(bytes) == file["sha256"]?.stringValue, "not the recorded llama.cpp file's bytes")
        return path
    }

    @Test("gate and up of one layer exchanged: exit 1, the weight report names both tensors and says they are exchanged")
    func exchangedGateUp() throws {
        let scratch = try TemporaryDirectory()
        let path = try Self.swappedGateUp(in: scratch)
        let result = try runParity(["verify", "tiny-llama", "--file", path], timeout: 300)
        #expect(result.status == 1, "exit \(result.status)\n\(result.stderr)")
        let gateLine = "[holds-other-parameter] blk.1.ffn_gate.weight holds the reference of model.layers.1.mlp.up_proj.weight (the runtime reads "
            + "that parameter from blk.1.ffn_up.weight), not of model.layers.1.mlp.gate_proj.weight"
        #expect(result.stdout.contains(gateLine), "\(result.stdout.suffix(3000))")
        #expect(result.stdout.contains("blk.1.ffn_up.weight holds model.layers.1.mlp.gate_proj.weight's: the two are exchanged"))
        #expect(result.stdout.contains("[holds-other-parameter] blk.1.ffn_up.weight holds the reference of model.layers.1.mlp.gate_proj.weight"))
    }

    @Test("the same mechanism names other exchanges (f32): the two norms of a layer, one layer's Q in another layer's slot",
          arguments: try nonEmpty([("blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "model.layers.0.post_attention_layernorm.weight"),
                                   ("blk.0.attn_q.weight", "blk.2.attn_q.weight", "model.layers.2.self_attn.q_proj.weight")].map { $0 }, "exchanges"))
    func otherExchanges(first: String, second: String, firstHolds: String) throws {
        let scratch = try TemporaryDirectory()
        let (writer, _) = try GGUFLlamaConverter.build(directory: Self.model, output: .converter(.f32))
        let byName = Dictionary(uniqueKeysWithValues: writer.tensors.map { ($0.name, $0.bytes) })
        let source = try LlamaWeightTests.gguf(.converter(.f32), in: scratch) { t in
            t.name == first ? byName[second] : t.name == second ? byName[first] : nil
        }
        let report = try WeightVerifier.verify(llama: source, reference: try LlamaWeightTests.reference.get())
        #expect(report.failing.map(\.fileName).sorted() == [first, second].sorted())
        let diagnosis = try #require(report.failing.first { $0.fileName == first }?.diagnosis)
        #expect(diagnosis.hasPrefix("[holds-other-parameter] \(first) holds the reference of \(firstHolds)"), "\(diagnosis)")
        #expect(diagnosis.hasSuffix("the two are exchanged"), "\(diagnosis)")
    }
}
