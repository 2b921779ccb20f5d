import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import Testing

/// The GGUF Llama reader against llama.cpp's own loader: small files written with gguf-py, each loaded by libllama
/// (tools/llama/make_gguf_llama_reader_fixtures.py records whether it loaded and its error line). Parity must accept
/// exactly the files llama.cpp loads and refuse the others with llama.cpp's message.
@Suite("GGUF Llama reader vs llama.cpp's loader")
struct GGUFLlamaReaderTests {
    static let dir = Repo.fixtures + "/llama/reader"
    static let manifestPath = dir + "/manifest.json"

    static func cases() throws -> [String] {
        let cases = try #require(try required(try fixtureJSON(manifestPath), "cases", in: manifestPath).objectValue)
        return cases.map(\.key)
    }

    static func verdict(_ file: String) throws -> JSONValue {
        try required(try required(try required(try fixtureJSON(manifestPath), "cases", in: manifestPath), file, in: manifestPath), "llama_cpp", in: manifestPath)
    }

    @Test("accepts what llama.cpp loads, refuses the rest with llama.cpp's message", arguments: try nonEmpty(cases(), "reader cases"))
    func sameVerdict(file: String) throws {
        let theirs = try Self.verdict(file)
        let loaded = try #require(theirs["loaded"]?.boolValue, "\(file): no 'loaded' in the manifest")
        switch try GGUFLlamaWeights.load(path: Self.dir + "/" + file) {
        case let .success(weights):
            #expect(loaded, "\(file): Parity loads it, llama.cpp refused it: \(theirs["error"]!)")
            #expect(!weights.loading.refused, "\(file): \(weights.loading.refusals)")
        case let .failure(refusal):
            #expect(!loaded, "\(file): Parity refuses it (\(refusal.reason)), llama.cpp loads it")
            #expect(refusal.reason == theirs["error"]?.stringValue, "\(file): Parity says '\(refusal.reason)', llama.cpp '\(theirs["error"]!)'")
            #expect(refusal.file.hasSuffix(file))
            if file == "extra-tensor.gguf" {
                #expect(refusal.detail?.contains("blk.0.attn_extra.weight") == true, "the count refusal names the extra tensor: \(refusal)")
            }
        }
    }

    static func loaded(_ path: String) throws -> GGUFLlamaWeights {
        switch try GGUFLlamaWeights.load(path: path) {
        case let .success(w): return w
        case let .failure(refusal): throw refusal
        }
    }

    @Test("hyperparameters as llama.cpp reads them: epsilon as the stored f32, defaults, untied output")
    func hyperparameters() throws {
        let model = try required(try fixtureJSON(Self.manifestPath), "model", in: Self.manifestPath)
        let w = try Self.loaded(Self.dir + "/correct.gguf")
        let h = w.hyperparameters
        #expect(h.hiddenSize == model["hidden"]?.intValue && h.headCount == model["heads"]?.intValue)
        #expect(h.keyValueHeadCount == model["kv_heads"]?.intValue && h.headDimension == model["head_dim"]?.intValue)
        #expect(h.intermediateSize == model["feed_forward"]?.intValue && h.layerCount == model["layers"]?.intValue)
        #expect(h.vocabularySize == model["vocab"]?.intValue)
        #expect(h.rmsNormEpsilon == model["rms_epsilon_f32"]?.doubleValue, "epsilon must be the f32 the file stores (9.99999974738e-06), not 1e-5")
        #expect(h.rmsNormEpsilon != 1e-5)
        #expect(h.ropeTheta == 10000 && h.ropeDimensions == h.headDimension && !h.tiedEmbeddings)
        #expect(w.ropeStyle == .adjacentPairs)
        let q = try w.matrix(.query, layer: 1)
        #expect(q.rows == h.headCount * h.headDimension && q.columns == h.hiddenSize && q.fileName == "blk.1.attn_q.weight")
        let k = try w.matrix(.key, layer: 0)
        #expect(k.rows == h.keyValueHeadCount * h.headDimension && k.fileName == "blk.0.attn_k.weight")
        #expect(try w.matrix(.output, layer: 0).fileName == "output.weight")
        #expect(try w.vector(.outputNorm, layer: 0) == [Float](repeating: 1, count: h.hiddenSize))
    }

    @Test("a file without output.weight is tied: the output reads token_embd, as llama.cpp duplicates it")
    func tied() throws {
        let w = try Self.loaded(Self.dir + "/tied-output.gguf")
        #expect(w.hyperparameters.tiedEmbeddings)
        let output = try w.matrix(.output, layer: 0)
        #expect(output.fileName == "token_embd.weight" && output.rows == w.hyperparameters.vocabularySize)
    }

    @Test("a truncated file and a file of another architecture are bad input (ParityError), not a refusal")
    func badInput() throws {
        let scratch = try TemporaryDirectory()
        let bytes = try readBytes(Self.dir + "/correct.gguf")
        let truncated = scratch.file("truncated.gguf")
        try Data(bytes.prefix(bytes.count / 2)).write(to: URL(fileURLWithPath: truncated))
        #expect(throws: ParityError.self) { try GGUFLlamaWeights.load(path: truncated) }
        var writer = try GGUFWriter(architecture: "gpt2")
        try writer.add(name: "token_embd.weight", type: .f32, ne: [4, 2], bytes: [UInt8](repeating: 0, count: 32))
        let other = scratch.file("gpt2.gguf")
        try writer.write(to: other)
        #expect { try GGUFLlamaWeights.load(path: other) } throws: { error in
            guard let e = error as? ParityError, case let .mismatch(file, reason) = e else { return false }
            return file == other && reason.contains("'gpt2'")
        }
    }

    @Test("a tensor type llama.cpp loads but Parity cannot decode (IQ4_NL) is refused as unsupported, naming the tensor")
    func undecodableType() throws {
        let scratch = try TemporaryDirectory()
        let source = try GGUFFile(path: Self.dir + "/correct.gguf")
        var writer = try GGUFWriter(architecture: "llama")
        for (key, value) in source.metadata where key != "general.architecture" { try writer.set(key, value) }
        for t in source.tensors {
            if t.name == "blk.1.ffn_down.weight" {  // ne [32, 16], stored as IQ4_NL (blocks of 32 values in 18 bytes)
                try writer.add(name: t.name, type: .iq4_nl, ne: t.ne, bytes: [UInt8](repeating: 0, count: t.elementCount / 32 * 18))
            } else {
                try writer.add(name: t.name, type: t.type, ne: t.ne, bytes: try source.rawBytes(t))
            }
        }
        let path = scratch.file("iq4_nl.gguf")
        try writer.write(to: path)
        #expect { try GGUFLlamaWeights.load(path: path) } throws: { error in
            guard let e = error as? ParityError, case let .unsupported(file, reason) = e else { return false }
            return file == path && reason.contains("blk.1.ffn_down.weight") && reason.contains("iq4_nl")
        }
    }

    /// Parity's converter writes golden/tiny-llama byte-identical to llama.cpp's convert_hf_to_gguf / llama-quantize
    /// (GGUFLlamaConverterTests), so reading its output is reading llama.cpp's files.
    @Test("reads the tiny-llama files (llama.cpp's bytes) with the checkpoint's hyperparameters", arguments: try nonEmpty(["f32", "Q4_K_M"], "outputs"))
    func tinyLlama(output: String) throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.file("tiny-llama-\(output).gguf")
        try GGUFLlamaConverter.convert(directory: Repo.golden + "/tiny-llama", output: try #require(GGUFLlamaConverter.Output(name: output)), to: path)
        let w = try Self.loaded(path)
        // golden/tiny-llama/config.json: hidden 256, 3 layers, 8 heads × 32, 4 KV heads, intermediate 512, vocab 512, untied
        #expect(w.hyperparameters == LlamaHyperparameters(vocabularySize: 512, hiddenSize: 256, layerCount: 3, headCount: 8, keyValueHeadCount: 4,
                                                          headDimension: 32, intermediateSize: 512, rmsNormEpsilon: Double(Float(1e-5)),
                                                          ropeTheta: 10000, ropeDimensions: 32, tiedEmbeddings: false))
        #expect(w.tokenizerModel == "llama")
        for layer in 0..<3 {
            for role in LlamaTensorRole.allCases where role.isPerLayer {
                switch role {
                case .attentionNorm, .feedForwardNorm: #expect(try w.vector(role, layer: layer).count == 256)
                default: #expect(try w.matrix(role, layer: layer).columns > 0)
                }
            }
        }
        guard case let .ggml(_, tensor) = try w.matrix(.value, layer: 2).storage else { Issue.record("attn_v is not a ggml tensor"); return }
        #expect(tensor.type == (output == "f32" ? .f32 : .q6_K), "blk.2.attn_v: llama-quantize's Q4_K_M gives it Q6_K")
    }

    /// Q and K as llama.cpp holds them: rows in ggml's adjacent-pair order. Undoing that order (this test's own
    /// inverse: row h·D + 2j + t came from row h·D + t·D/2 + j) must give the checkpoint's q_proj/k_proj exactly;
    /// V, which no runtime permutes, must equal v_proj as stored.
    @Test("Q/K rows read as llama.cpp holds them are the checkpoint's rows in adjacent-pair order, bit for bit")
    func queryKeyPermutation() throws {
        let scratch = try TemporaryDirectory()
        let path = scratch.file("f32.gguf")
        try GGUFLlamaConverter.convert(directory: Repo.golden + "/tiny-llama", output: .converter(.f32), to: path)
        let w = try Self.loaded(path)
        let checkpoint = try SafetensorsFile(path: Repo.golden + "/tiny-llama/model.safetensors")
        let h = w.hyperparameters
        for layer in 0..<h.layerCount {
            for (role, heads) in [(LlamaTensorRole.query, h.headCount), (.key, h.keyValueHeadCount), (.value, 0)] {
                let m = try w.matrix(role, layer: layer)
                guard case let .ggml(file, info) = m.storage else { Issue.record("\(m.fileName) is not a ggml tensor"); continue }
                let stored = try file.values(info)
                let reference = try checkpoint.tensor(named: role.referenceName(layer: layer))
                #expect(reference.shape == [m.rows, m.columns], "\(m.fileName): rows × columns")
                var unpermuted = stored
                if heads > 0 {
                    let d = m.rows / heads
                    for head in 0..<heads {
                        for j in 0..<(d / 2) {
                            for t in 0..<2 {
                                let from = (head * d + 2 * j + t) * m.columns, to = (head * d + t * d / 2 + j) * m.columns
                                for c in 0..<m.columns { unpermuted[to + c] = stored[from + c] }
                            }
                        }
                    }
                    #expect(stored != reference.data, "\(m.fileName): stored unpermuted, llama.cpp's RoPE would pair the wrong dimensions")
                }
                #expect(unpermuted.map(\.bitPattern) == reference.data.map(\.bitPattern), "\(m.fileName) vs \(role.referenceName(layer: layer))")
            }
        }
    }
}
