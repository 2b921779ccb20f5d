import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

/// Planted mistakes in how a file makes its runtime compute (RoPE θ, RMSNorm ε, output matrix, RoPE convention),
/// written by the ecosystem's own tools (tools/llama/make_planted_files.sh: convert_hf_to_gguf.py with one gguf-py
/// call changed, mlx_lm convert + mlx_lm save_config). The 8 MB files are not committed: each test rebuilds its file
/// from Parity's converters (byte-identical to llama.cpp's / mlx-lm's, LlamaVerifyTests) plus the planted change,
/// checks it is the recorded file (SHA-256 in Fixtures/llama/planted.json), then runs `parity` as a user would.
@Suite("layer-diff diagnoses how a Llama file makes its runtime compute", .serialized)
struct LlamaDiagnosisTests {
    static let model = Repo.golden + "/tiny-llama"
    static let planted = Repo.fixtures + "/llama/planted.json"

    struct Case: Sendable, CustomTestStringConvertible {
        /// The planted file's name in planted.json.
        let file: String
        /// The earliest failing node whose inputs all pass, and the diagnoses expected there (and only there).
        let node: String
        let diagnosis: String
        /// Words the diagnosis must say (the file's and the reference's values, where the runtime read them).
        let says: [String]
        var testDescription: String { file }
    }

    static let cases = [
        Case(file: "tiny-llama-f32-rope-freq-base.gguf", node: "model.rotary_emb", diagnosis: "rope-theta",
             says: ["RoPE θ is 500000.0 (GGUF key llama.rope.freq_base)", "rope_theta is 10000.0"]),
        Case(file: "tiny-llama-f32-rms-eps.gguf", node: "model.layers.0.input_layernorm", diagnosis: "rms-epsilon",
             says: ["RMSNorm ε is 1e-06 (GGUF key llama.attention.layer_norm_rms_epsilon)", "rms_norm_eps is 1e-05"]),
        Case(file: "tiny-llama-f32-no-output.gguf", node: "lm_head", diagnosis: "output-tied",
             says: ["with the token embedding (the GGUF has no output.weight, and llama.cpp then uses token_embd.weight)", "own lm_head.weight"]),
        Case(file: "tiny-llama-f32-kv-heads-tiled.gguf", node: "model.layers.0.self_attn.k_proj", diagnosis: "kv-heads-tiled",
             says: ["k_proj.weight has 8 heads where the reference has 4", "query head h reads KV head h mod 4 instead of h / 2",
                    "brings an output of shape [2, 32, 256] (the reference's: [2, 32, 128]) → max abs"]),
        // The control: the same expansion in repeat_kv order computes the reference's attention (llama.cpp: KL 1.3e-13) but
        // is not the reference's grouped-query model; it must not be called tiled.
        Case(file: "tiny-llama-f32-kv-heads-repeat-kv.gguf", node: "model.layers.0.self_attn.k_proj", diagnosis: "kv-heads-expanded",
             says: ["k_proj.weight has 8 heads where the reference has 4", "in transformers' repeat_kv order", "computes the same attention"]),
        Case(file: "tiny-llama-float32-rope-traditional", node: "attention/model.layers.0.self_attn/q_rope", diagnosis: "rope-convention",
             says: ["rotates adjacent pairs (2i, 2i+1)", "config.json rope_traditional: true", "laid out for rotate-half pairs (i, i+D/2)"]),
        Case(file: "tiny-llama-float32-tied", node: "lm_head", diagnosis: "output-tied",
             says: ["config.json tie_word_embeddings is true or absent, and mlx-lm then drops lm_head.weight", "own lm_head.weight"]),
    ]

    static func recorded(_ file: String) throws -> JSONValue {
        try required(try required(try fixtureJSON(planted), "files", in: planted), file, in: planted)
    }

    /// convert_hf_to_gguf's f32 file with metadata values replaced in place and tensors left out — what the planted
    /// scripts make gguf-py write — rebuilt from Parity's f32 GGUF with Parity's GGUF writer.
    static func rewrittenGGUF(_ path: String, setting: [(String, GGUFValue)], dropping: Set<String>,
                              reshaping: (GGUFTensorInfo, [UInt8]) -> (ne: [Int], bytes: [UInt8]) = { ($0.ne, $1) }) throws {
        let base = path + ".base"
        _ = try GGUFLlamaConverter.convert(directory: model, output: .converter(.f32), to: base)
        let file = try GGUFFile(path: base)
        var writer = try GGUFWriter(architecture: "llama")
        for (key, value) in file.metadata { try writer.set(key, value) }
        for (key, value) in setting {
            #expect(file.metadata.contains { $0.key == key }, "\(key): the converter writes it")
            try writer.set(key, value)
        }
        for tensor in file.tensors where !dropping.contains(tensor.name) {
            let (ne, bytes) = reshaping(tensor, try file.rawBytes(tensor))
            try writer.add(name: tensor.name, type: tensor.type, ne: ne, bytes: bytes)
        }
        #expect(file.tensors.count - writer.tensors.count == dropping.count, "dropped \(dropping)")
        try writer.write(to: path)
        try FileManager.default.removeItem(atPath: base)
    }

    /// The planted file, rebuilt in `scratch` and checked against the recorded bytes.
    static func plantedFile(_ name: String, in scratch: TemporaryDirectory) throws -> String {
        let path = scratch.file(name)
        let entry = try recorded(name)
        switch name {
        case "tiny-llama-f32-rope-freq-base.gguf":
            try rewrittenGGUF(path, setting: [("llama.rope.freq_base", .float32(500000))], dropping: [])
        case "tiny-llama-f32-rms-eps.gguf":
            try rewrittenGGUF(path, setting: [("llama.attention.layer_norm_rms_epsilon", .float32(1e-6))], dropping: [])
        case "tiny-llama-f32-no-output.gguf":
            // gguf-py's general.size_label counts the parameters written: 2.0M less the 512 × 256 output matrix.
            try rewrittenGGUF(path, setting: [("general.size_label", .string("1.9M"))], dropping: ["output.weight"])
        case "tiny-llama-f32-kv-heads-tiled.gguf", "tiny-llama-f32-kv-heads-repeat-kv.gguf":
            // attn_k / attn_v (F32, ne [256, 4 heads × 32]) expanded to 8 heads: whole blocks repeated (tiled), or each
            // 32-row head repeated in place (repeat_kv). convert_hf_to_gguf's Q/K permutation stays within a head, so the
            // stored head blocks are the checkpoint's heads in both orders.
            let tiled = name.contains("tiled"), rowBytes = 256 * 4, headBytes = 32 * rowBytes
            try rewrittenGGUF(path, setting: [("general.size_label", .string("2.2M")), ("llama.attention.head_count_kv", .uint32(8))],
                              dropping: []) { tensor, bytes in
                guard tensor.name.hasSuffix(".attn_k.weight") || tensor.name.hasSuffix(".attn_v.weight") else { return (tensor.ne, bytes) }
                #expect(tensor.type == .f32 && tensor.ne == [256, 128], "\(tensor.name): F32 [256, 128]")
                let heads = stride(from: 0, to: bytes.count, by: headBytes).map { Array(bytes[$0..<$0 + headBytes]) }
                let expanded = tiled ? heads + heads : heads.flatMap { [$0, $0] }
                return ([256, 256], expanded.flatMap { $0 })
            }
        case "tiny-llama-float32-rope-traditional", "tiny-llama-float32-tied":
            try MLXLlamaConverter.convert(directory: model, dtype: "float32", quantization: nil, to: path)
            // mlx_lm's save_config: keys sorted, 4-space indent; rope_traditional sorts right after rope_theta.
            let config = path + "/config.json"
            let text = String(decoding: try readBytes(config), as: UTF8.self)
            let (line, planted) = name.hasSuffix("-tied")
                ? ("    \"tie_word_embeddings\": false,\n", "    \"tie_word_embeddings\": true,\n")
                : ("    \"rope_theta\": 10000.0,\n", "    \"rope_theta\": 10000.0,\n    \"rope_traditional\": true,\n")
            #expect(text.contains(line) && !text.contains("rope_traditional"), "mlx_lm convert's config.json")
            try Data(text.replacingOccurrences(of: line, with: planted).utf8).write(to: URL(fileURLWithPath: config))
            let files = try required(entry, "files", in: planted)
            for file in try nonEmpty(["config.json", "model.safetensors.index.json"], "MLX files") {
                let sha = try #require(try required(files, file, in: planted)["sha256"]?.stringValue)
                #expect(SHA256.hex(try readBytes(path + "/" + file)) == sha, "\(file): not the planted directory's bytes")
            }
            // The tensors: the planted directory's model.safetensors is mlx_lm convert's float32 file, byte for byte,
            // whose tensors Parity's converter reproduces (LlamaVerifyTests.mlxLMDirectories).
            let manifest = Repo.fixtures + "/llama/manifest.json"
            let float32 = try required(try required(try fixtureJSON(manifest), "files", in: manifest), "mlx/tiny-llama-float32/model.safetensors", in: manifest)
            #expect(try required(files, "model.safetensors", in: planted)["sha256"] == float32["sha256"], "the planted tensors are mlx_lm convert's float32 file")
            return path
        default:
            throw ParityError.usage("no planted file \(name)")
        }
        #expect(SHA256.hex(try readBytes(path)) == (try #require(entry["sha256"]?.stringValue)), "\(name): not the planted file's bytes")
        return path
    }

    @Test("the runtime itself is fooled: llama.cpp / mlx-lm load each planted file and compute other logits (planted.json)",
          arguments: try nonEmpty(cases, "planted cases"))
    func runtimeLoadsIt(c: Case) throws {
        let logits = try required(try Self.recorded(c.file), "logits", in: Self.planted)
        let kl = try #require(logits["kl_mean"]?.doubleValue)
        // llama.cpp on the correct f32 file: KL mean 1.34e-13 (Fixtures/llama/README.md); the smallest planted effect
        // (ε 1e-6 for 1e-5) is 1.4e-5, eight orders above it: the mistake is in the runtime's numbers, not Parity's.
        if c.diagnosis == "kv-heads-expanded" {
            #expect(kl < 1e-11, "\(c.file): repeat_kv order is the reference's attention; llama.cpp's KL mean \(kl)")
        } else {
            #expect(kl > 1e-6, "\(c.file): the runtime's KL mean \(kl)")
        }
    }

    @Test("verify --file fails (exit 1) at the planted node", arguments: try nonEmpty(cases, "planted cases"))
    func verifyFails(c: Case) throws {
        let scratch = try TemporaryDirectory()
        let path = try Self.plantedFile(c.file, in: scratch)
        let result = try runParity(["verify", "tiny-llama", "--file", path], timeout: 300)
        #expect(result.status == 1, "\(c.file): exit \(result.status)")
        let summary = LlamaVerifyTests.summary(result.stdout)
        #expect(summary.first?.contains("  FAIL  tiny-llama  ") == true && summary.first?.contains("first divergence: \(c.node)") == true,
                "\(c.file): \(summary.joined(separator: "\n"))")
    }

    @Test("layer-diff names the first divergence and the diagnosis, and the node then passes its tolerance",
          arguments: try nonEmpty(cases, "planted cases"))
    func layerDiffDiagnoses(c: Case) throws {
        let scratch = try TemporaryDirectory()
        let path = try Self.plantedFile(c.file, in: scratch)
        let json = scratch.file("r.json")
        let result = try runParity(["layer-diff", "tiny-llama", path, "--json", json], timeout: 300)
        #expect(result.status == 1, "\(c.file): exit \(result.status)")
        #expect(result.stdout.contains("first divergence: \(c.node) ("), "\(c.file): \(result.stdout.split(separator: "\n").filter { $0.contains("first divergence") })")
        let diagnoses = result.stdout.split(separator: "\n").filter { $0.hasPrefix("diagnosis at") }.map(String.init)
        let line = try #require(diagnoses.first { $0.hasPrefix("diagnosis at \(c.node) [\(c.diagnosis)]: ") }, "\(c.file): \(diagnoses)")
        for words in c.says { #expect(line.contains(words), "\(c.file): \(line)") }
        // Every other diagnosis is the same mistake seen at another node (the sin table, K, later layers).
        #expect(diagnoses.allSatisfy { $0.contains("[\(c.diagnosis)]: ") }, "\(c.file): \(diagnoses)")
        let report = try #require(try required(try fixtureJSON(json), "reports", in: json).arrayValue?.first)
        let layer = try #require(report["layers"]?.arrayValue?.first { $0["name"]?.stringValue == c.node }, "\(c.node) in the JSON")
        let diagnosis = try required(layer, "diagnosis", in: json)
        #expect(diagnosis["id"]?.stringValue == c.diagnosis)
        let after = try #require(diagnosis["rel_l2_after"]?.doubleValue)
        let limit = try #require(try required(layer, "tolerance", in: json)["max_rel_l2"]?.doubleValue)
        #expect(after <= limit, "\(c.file) \(c.node): rel L2 after \(after), limit \(limit)")
        if c.diagnosis.hasPrefix("kv-heads") {
            // An expanded K/V matrix gives an output of another shape: there is no error before, only the shape.
            #expect(try required(layer, "isolated", in: json)["status"]?.stringValue == "shape", "\(c.file) \(c.node): a shape mismatch on its golden input")
        } else {
            let before = try #require(diagnosis["rel_l2_before"]?.doubleValue)
            #expect(before > limit, "\(c.file) \(c.node): rel L2 before \(before), limit \(limit)")
        }
    }
}
