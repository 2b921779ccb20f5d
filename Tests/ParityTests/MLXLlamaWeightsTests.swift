import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import Testing

/// Parity's MLX Llama reader against real mlx-lm: small directories written by mlx-lm 0.32.2 (Fixtures/llama/mlx-reader,
/// tools/llama/mlx_llama_reader_fixtures.py), with what `mlx_lm.load` did with each — loaded (and then the
/// ModelArgs it resolved, each module's class and quantization, and every weight's float32 SHA-256), refused by
/// `load_weights(strict=True)` (ValueError), or unable to build the model (TypeError on a malformed config).
@Suite("MLX Llama reader reads directories as mlx_lm.load does (mlx-lm-written fixtures)")
struct MLXLlamaWeightsTests {
    static let dir = Repo.fixtures + "/llama/mlx-reader"

    static func manifest() throws -> JSONValue { try fixtureJSON(dir + "/manifest.json") }

    static func outcome(_ name: String) throws -> JSONValue { try required(try required(try manifest(), "directories", in: "manifest.json"), name, in: "manifest.json") }

    /// The directory as the script loaded it: config-only fixtures get q4-g32's weights beside them.
    static func assemble(_ name: String, in scratch: TemporaryDirectory) throws -> String {
        let source = dir + "/" + name
        if FileManager.default.fileExists(atPath: source + "/model.safetensors") { return source }
        let target = scratch.file(name)
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: target + "/config.json")
        try FileManager.default.copyItem(atPath: dir + "/q4-g32/model.safetensors", toPath: target + "/model.safetensors")
        return target
    }

    static func sha(_ values: [Float]) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 4)
        for v in values { ElementCodec.appendLE(&bytes, v.bitPattern) }
        return SHA256.hex(bytes)
    }

    /// A matrix as float32, dequantized as `mx.dequantize(..., dtype=float32)` does.
    static func values(_ m: StoredMatrix) throws -> [Float] {
        switch m.storage {
        case let .dense(values, _): return values
        case let .mlxQuantized(weight, scales, biases, mode, groupSize, bits):
            let q = try MLXQuantized(weight: weight, scales: scales, biases: biases, mode: MLXQuantMode.parse(mode), groupSize: groupSize, bits: bits)
            return MLXQuantization.dequantize(q, outputType: .f32)
        case .ggml: throw ParityError.usage("an MLX reader returned GGML storage")
        }
    }

    static let loadedByMLX = ["float16", "q4-g32", "mxfp4", "tied-q4-g32", "planted-global-bits", "planted-rope-traditional"]

    @Test("directories mlx_lm.load accepts: same ModelArgs, same quantized modules, every weight bit-identical to what mlx-lm loaded",
          arguments: try nonEmpty(loadedByMLX, "directories mlx-lm loads"))
    func loadsAsMLXLM(name: String) throws {
        let scratch = try TemporaryDirectory()
        let outcome = try Self.outcome(name)
        #expect(try required(outcome, "loaded", in: "manifest.json") == .bool(true), "mlx-lm did not load \(name)")
        let w = try MLXLlamaWeights.load(directory: try Self.assemble(name, in: scratch))
        #expect(!w.loading.refused, "\(w.loading.refusals)")
        let args = try required(outcome, "model_args", in: "manifest.json")
        let h = w.hyperparameters
        #expect(h.hiddenSize == args["hidden_size"]?.intValue && h.layerCount == args["num_hidden_layers"]?.intValue)
        #expect(h.headCount == args["num_attention_heads"]?.intValue && h.keyValueHeadCount == args["num_key_value_heads"]?.intValue)
        #expect(h.headDimension == args["head_dim"]?.intValue && h.intermediateSize == args["intermediate_size"]?.intValue)
        #expect(h.vocabularySize == args["vocab_size"]?.intValue)
        #expect(h.tiedEmbeddings == args["tie_word_embeddings"]?.boolValue)
        let eps = try #require(args["rms_norm_eps"]?.doubleValue), theta = try #require(args["rope_theta"]?.doubleValue)
        #expect(h.rmsNormEpsilon == Double(Float(eps)) && h.ropeTheta == Double(Float(theta)))
        #expect(w.ropeStyle == (args["rope_traditional"]?.boolValue == true ? .adjacentPairs : .halves))

        let modules = try #require(try required(outcome, "modules", in: "manifest.json").objectValue)
        var checked = 0
        for (path, module) in try nonEmpty(modules, "modules mlx-lm built") {
            let cls = try #require(module["class"]?.stringValue)
            let role = try #require(Self.role(of: path), "no Llama role for \(path)")
            if cls.hasPrefix("Quantized") {
                let q = try #require(w.quantizedModules[path], "\(path): mlx-lm built \(cls), Parity reads it unquantized")
                #expect(q.mode == module["mode"]?.stringValue && q.bits == module["bits"]?.intValue && q.groupSize == module["group_size"]?.intValue,
                        "\(path): Parity \(q), mlx-lm \(module)")
            } else {
                #expect(w.quantizedModules[path] == nil, "\(path): mlx-lm built \(cls), Parity reads it quantized")
            }
            let values: [Float]
            if cls == "RMSNorm" {
                values = try w.vector(role.role, layer: role.layer)
            } else {
                values = try Self.values(try w.matrix(role.role, layer: role.layer))
            }
            #expect(Self.sha(values) == module["weight_f32_sha256"]?.stringValue, "\(path): float32 weights differ from mlx-lm's")
            checked += 1
        }
        #expect(checked == modules.count)
        if h.tiedEmbeddings {
            // embed_tokens.as_linear: the output is the embedding's own storage.
            #expect(try w.matrix(.output, layer: 0).fileName == "model.embed_tokens")
        }
    }

    /// mlx.nn module path → Llama role and layer.
    static func role(of path: String) -> (role: LlamaTensorRole, layer: Int)? {
        for layer in 0..<4 {
            for role in LlamaTensorRole.allCases where role.referenceName(layer: layer) == path + ".weight" { return (role, layer) }
        }
        return nil
    }

    @Test("a directory load_weights(strict=True) refuses is read, and refused for the same parameters (a FAIL, not bad input)",
          arguments: try nonEmpty([("extra-parameter", ["model.layers.0.self_attn.q_proj.bias", "not in the model"]),
                                   ("missing-parameter", ["model.norm.weight", "missing"]),
                                   ("planted-module-entry", ["model.layers.0.self_attn.q_proj.weight", "[64, 8]", "[64, 16]"]),
                                   ("planted-no-quantization", ["18 parameter(s) not in the model", "model.embed_tokens.scales"])],
                                  "strict refusals"))
    func strictRefusal(name: String, named: [String]) throws {
        let scratch = try TemporaryDirectory()
        let outcome = try Self.outcome(name)
        #expect(outcome["loaded"] == .bool(false) && outcome["error_type"]?.stringValue == "ValueError", "mlx-lm: \(outcome)")
        let w = try MLXLlamaWeights.load(directory: try Self.assemble(name, in: scratch))
        #expect(w.loading.refused)
        let text = w.loading.refusals.joined(separator: "; ")
        for fragment in named { #expect(text.contains(fragment), "refusal does not name \(fragment): \(text)") }
        #expect(text.contains(StrictLoadingRule.mlxStrict.runtime))
        // Every parameter mlx-lm's own message names is named by Parity too.
        let mlxNames = Self.parameterNames(inMLXError: try #require(outcome["error"]?.stringValue))
        for name in try nonEmpty(mlxNames, "parameters named by mlx-lm's error") { #expect(text.contains(name), "mlx-lm names \(name); Parity: \(text)") }
        #expect(throws: ParityError.self) { try w.matrix(.query, layer: 0) }
    }

    /// The parameter names in load_weights' ValueError: "Received N parameters not in model: \nA,\nB." /
    /// "Missing N parameters: \nA." / "Expected shape … for parameter A".
    static func parameterNames(inMLXError error: String) -> [String] {
        if let range = error.range(of: "for parameter ") { return [String(error[range.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)] }
        guard let colon = error.firstIndex(of: ":") else { return [] }
        return error[error.index(after: colon)...].split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines).trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
    }

    @Test("the planted quantization config that disagrees with the tensors is named, though mlx-lm 0.32.2 loads it by the shapes")
    func plantedGlobalBits() throws {
        let scratch = try TemporaryDirectory()
        let w = try MLXLlamaWeights.load(directory: try Self.assemble("planted-global-bits", in: scratch))
        #expect(!w.loading.refused)
        let warning = w.loading.warnings.joined(separator: "; ")
        #expect(warning.contains("key \"quantization\" says affine 8-bit group 32"), "\(warning)")
        #expect(warning.contains("model.layers.0.self_attn.q_proj (affine 4-bit group 32"), "\(warning)")
        #expect(warning.contains("config.json"))
        // The correct directory draws no such warning.
        let clean = try MLXLlamaWeights.load(directory: Self.dir + "/q4-g32")
        #expect(clean.loading.warnings.isEmpty, "\(clean.loading.warnings)")
        #expect(clean.quantizedModules.count == 9 && clean.quantizedModules.values.allSatisfy { $0 == MLXQuantParameters(mode: "affine", groupSize: 32, bits: 4) })
    }

    @Test("a config mlx-lm cannot build a model from is bad input naming config.json and the key",
          arguments: try nonEmpty([("malformed-no-rms-norm-eps", "TypeError", "rms_norm_eps"),
                                   ("malformed-quantization-config-without-method", "KeyError", "quantization_config"),
                                   ("malformed-module-entry-number", "ValueError", "quantization.model.layers.0.mlp.up_proj")],
                                  "malformed configs"))
    func malformedConfig(name: String, mlxError: String, key: String) throws {
        let scratch = try TemporaryDirectory()
        let outcome = try Self.outcome(name)
        #expect(outcome["loaded"] == .bool(false) && outcome["error_type"]?.stringValue == mlxError, "mlx-lm: \(outcome)")
        let path = try Self.assemble(name, in: scratch)
        #expect { try MLXLlamaWeights.load(directory: path) } throws: { error in
            guard case let .malformed(file, at, _) = error as? ParityError else { return false }
            return file.hasSuffix("config.json") && at == "key \"\(key)\""
        }
    }

    @Test("other configs that cannot be a Llama for mlx-lm are refused as bad input naming the key",
          arguments: try nonEmpty([("model_type", JSONValue.string("gpt2"), "model_type 'gpt2'"),
                                   ("hidden_size", .string("64"), "key \"hidden_size\""),
                                   ("num_key_value_heads", .number(3), "key \"num_key_value_heads\""),
                                   ("quantization", .number(4), "key \"quantization\""),
                                   ("rope_scaling", .object([("type", .string("llama3")), ("factor", .number(8))]), "key \"rope_scaling\"")],
                                  "bad config values"))
    func badConfigValues(key: String, value: JSONValue, named: String) throws {
        let scratch = try TemporaryDirectory()
        let target = scratch.file("bad")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        guard case var .object(members) = try fixtureJSON(Self.dir + "/q4-g32/config.json") else {
            Issue.record("q4-g32/config.json is not an object")
            return
        }
        members.removeAll { $0.key == key }
        members.append((key, value))
        try writeBytes(Array(JSONValue.object(members).serialized().utf8), to: target + "/config.json")
        try FileManager.default.copyItem(atPath: Self.dir + "/q4-g32/model.safetensors", toPath: target + "/model.safetensors")
        #expect { try MLXLlamaWeights.load(directory: target) } throws: { error in
            guard let e = error as? ParityError else { return false }
            return "\(e)".contains("config.json") && "\(e)".contains(named)
        }
    }

    @Test("tied embeddings: no lm_head in the file; without tie_word_embeddings mlx-lm ties, sanitize drops lm_head.weight and strict loading refuses its scales")
    func tiedEmbeddings() throws {
        let scratch = try TemporaryDirectory()
        let tied = try MLXLlamaWeights.load(directory: Self.dir + "/tied-q4-g32")
        #expect(tied.hyperparameters.tiedEmbeddings && tied.quantizedModules["lm_head"] == nil && !tied.loading.refused)
        // The untied q4-g32 config without its key: mlx-lm's ModelArgs ties (transformers' LlamaConfig would not), so
        // sanitize drops lm_head.weight while its scales and biases remain, and strict loading refuses them — as mlx-lm did.
        let outcome = try Self.outcome("no-tie-word-embeddings-key")
        #expect(outcome["loaded"] == .bool(false) && outcome["error"]?.stringValue?.contains("lm_head.biases,\nlm_head.scales") == true, "\(outcome)")
        let target = try Self.assemble("no-tie-word-embeddings-key", in: scratch)
        let absent = try MLXLlamaWeights.load(directory: target)
        #expect(absent.hyperparameters.tiedEmbeddings)
        #expect(absent.loading.refusals.joined().contains("lm_head.biases, lm_head.scales"), "\(absent.loading.refusals)")
        #expect(absent.notes.joined().contains("absent (mlx-lm's default: true)"))
    }

    @Test("rope_traditional true: read as adjacent-pair RoPE; mlx-lm computed other logits from the same weights")
    func ropeTraditional() throws {
        let scratch = try TemporaryDirectory()
        let w = try MLXLlamaWeights.load(directory: try Self.assemble("planted-rope-traditional", in: scratch))
        #expect(w.ropeStyle == .adjacentPairs && !w.loading.refused)
        #expect(try MLXLlamaWeights.load(directory: Self.dir + "/q4-g32").ropeStyle == .halves)
        let planted = try #require(try Self.outcome("planted-rope-traditional")["logits"]?.arrayValue)
        let plain = try #require(try Self.outcome("q4-g32")["logits"]?.arrayValue)
        #expect(planted.count == 4 && planted != plain, "mlx-lm's logits do not depend on rope_traditional")
    }

    @Test("mxfp4: uint8 scales, no biases, group 32 — read as mlx-lm infers it")
    func mxfp4() throws {
        let w = try MLXLlamaWeights.load(directory: Self.dir + "/mxfp4")
        #expect(w.quantizedModules.count == 9)  // embed_tokens, 7 projections, lm_head
        #expect(w.quantizedModules.values.allSatisfy { $0 == MLXQuantParameters(mode: "mxfp4", groupSize: 32, bits: 4) })
        let q = try w.matrix(.query, layer: 0)
        guard case let .mlxQuantized(_, scales, biases, _, _, _) = q.storage else {
            Issue.record("q_proj is not quantized: \(q.storage)")
            return
        }
        #expect(scales.dtype == .u8 && biases == nil && q.rows == 64 && q.columns == 64)
    }
}
