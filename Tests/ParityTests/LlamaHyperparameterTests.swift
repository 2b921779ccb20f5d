import Foundation
import ParityEngine
import ParityModels
import ParityVerify
import Testing

/// A converted Llama whose hyperparameters differ from the reference config computes another model. In a quantized
/// file the numerical effect of, say, an RMSNorm ε ten times too large hides inside the activations' tolerance (an
/// independent review found exactly that passing), so the values are compared exactly, as the runtime holds them.
@Suite("Llama hyperparameters: the file's against the reference config")
struct LlamaHyperparameterTests {
    /// The reference's own values, as a runtime would hold them.
    static func matching(_ a: LlamaArchitecture) -> LlamaHyperparameters {
        LlamaHyperparameters(vocabularySize: a.vocabularySize, hiddenSize: a.hiddenSize, layerCount: a.layerCount, headCount: a.headCount,
                             keyValueHeadCount: a.keyValueHeadCount, headDimension: a.headDimension, intermediateSize: a.intermediateSize,
                             rmsNormEpsilon: Double(Float(a.rmsNormEpsilon)), ropeTheta: Double(Float(a.ropeTheta)),
                             ropeDimensions: a.headDimension, tiedEmbeddings: a.tiedEmbeddings)
    }

    @Test("the reference's values (as float32, the way GGUF stores ε) match; each changed value is named")
    func eachValueNamed() throws {
        let a = try LlamaMetadataRewrite.architecture()
        #expect(LlamaHyperparameterCheck.mismatches(file: Self.matching(a), reference: a).isEmpty)
        var eps = Self.matching(a)
        eps.rmsNormEpsilon = 1e-6
        #expect(LlamaHyperparameterCheck.mismatches(file: eps, reference: a) == ["RMSNorm epsilon is 1e-06 in the file, 1e-05 in the reference config (compared as the float32 the runtime uses)"])
        var theta = Self.matching(a)
        theta.ropeTheta = 500_000
        #expect(LlamaHyperparameterCheck.mismatches(file: theta, reference: a).first?.hasPrefix("RoPE θ") == true)
        var heads = Self.matching(a)
        heads.keyValueHeadCount = 8
        #expect(LlamaHyperparameterCheck.mismatches(file: heads, reference: a) == ["key/value head count is 8 in the file, 4 in the reference config"])
        var tied = Self.matching(a)
        tied.tiedEmbeddings = true
        #expect(LlamaHyperparameterCheck.mismatches(file: tied, reference: a).first?.contains("reuses the token embedding") == true)
    }

    @Test("an MLX 4-bit directory with ε 10x too large fails (exit 1) naming ε, though its activations stay within tolerance")
    func quantizedWrongEpsilonFails() throws {
        let dir = try TemporaryDirectory()
        let out = try LlamaMetadataRewrite.mlxConversion(["--mode", "affine", "--bits", "4", "--group-size", "64"], named: "q4", in: dir)
        let correct = try runParity(["verify", "tiny-llama", "--file", out], timeout: 300)
        #expect(correct.status == 0, "the correct directory: \(correct.stdout.suffix(1500))")
        try LlamaMetadataRewrite.rewriteConfig(of: out, "\"rms_norm_eps\": 1e-05", with: "\"rms_norm_eps\": 0.0001")
        let wrong = try runParity(["verify", "tiny-llama", "--file", out], timeout: 300)
        #expect(wrong.status == 1, "ε 1e-4: exit \(wrong.status)\n\(wrong.stdout.suffix(1500))")
        #expect(wrong.stdout.contains("FAIL: hyperparameter: RMSNorm epsilon is 0.0001 in the file, 1e-05 in the reference config"), "\(wrong.stdout.suffix(1500))")
    }

    @Test("an MLX config whose KV head count contradicts its tensors fails (exit 1) naming the value, not exit 2 blaming the reference")
    func contradictoryHeadCountFails() throws {
        let dir = try TemporaryDirectory()
        let out = try LlamaMetadataRewrite.mlxConversion(["--dtype", "f16"], named: "f16", in: dir)
        try LlamaMetadataRewrite.rewriteConfig(of: out, "\"num_key_value_heads\": 4", with: "\"num_key_value_heads\": 8")
        let result = try runParity(["verify", "tiny-llama", "--file", out], timeout: 300)
        #expect(result.status == 1, "exit \(result.status)\n\(result.stdout.suffix(1500))\(result.stderr)")
        #expect(result.stdout.contains("FAIL: hyperparameter: key/value head count is 8 in the file, 4 in the reference config"), "\(result.stdout.suffix(1500))")
        #expect(!result.stderr.contains("golden/tiny-llama/model.safetensors"), "the reference is blamed: \(result.stderr)")
    }

    @Test("a GGUF that is not a model (no general.architecture, as llama-imatrix writes) is bad input, exit 2")
    func noArchitectureIsBadInput() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("not-a-model.gguf")
        // A valid GGUF v3 header with no tensors and no key-value pairs: magic, version 3, 0 tensors, 0 keys.
        var bytes: [UInt8] = Array("GGUF".utf8)
        bytes += [3, 0, 0, 0] + [UInt8](repeating: 0, count: 16)
        try writeBytes(bytes, to: path)
        let result = try runParity(["verify", "tiny-llama", "--file", path])
        #expect(result.status == 2, "exit \(result.status): \(result.stderr)")
        #expect(result.stderr.contains(path) && result.stderr.contains("general.architecture"), "\(result.stderr)")
    }
}
