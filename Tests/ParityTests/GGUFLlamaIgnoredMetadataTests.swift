import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// Keys llama.cpp reads for every `llama` GGUF (src/llama-model.cpp load_hparams, src/llama-context.cpp cparams) that
/// change what it computes. A Hugging Face causal Llama reference implies one value for each; a file with another
/// value is a conversion that computes another model, so the hyperparameter check fails it naming the key
/// (docs/llama-verify.md, "GGUF keys llama.cpp computes with", has the full table). Found by an independent review,
/// measured with llama.cpp on tiny-llama f32 (the unmodified file: max |Δlogit| 3.8e-6, KL 1e-13, top-1 100 %):
/// - `llama.rope.scaling.attn_factor = 1.25`: llama-context.cpp multiplies yarn_attn_factor by it, and ggml_rope_ext
///   scales the rotated Q and K by it: max |Δlogit| 0.74, KL mean 3.6e-3, top-1 96.9 %;
/// - `llama.attention.causal = false`: no causal mask: max |Δlogit| 7.5, KL 0.42, top-1 54.7 %.
/// Both passed `parity verify` (exit 0) before. The files are Parity's own f32 conversion rewritten with the key, as
/// a converter writing that key would produce them (the weights are untouched, so only the key can fail them).
@Suite("GGUF Llama metadata llama.cpp computes with")
struct GGUFLlamaIgnoredMetadataTests {
    /// What `verify` reports for the file as llama.cpp's loader reads it: the hyperparameter mismatches, or the loader's refusal.
    static func judged(_ changes: [(String, GGUFValue)]) throws -> (mismatches: [String], refusal: LlamaRuntimeRefusal?) {
        let scratch = try TemporaryDirectory()
        switch try GGUFLlamaWeights.load(path: try LlamaMetadataRewrite.gguf(changes, in: scratch)) {
        case let .success(source): return (LlamaHyperparameterCheck.mismatches(source: source, reference: try LlamaMetadataRewrite.architecture()), nil)
        case let .failure(refusal): return ([], refusal)
        }
    }

    static let reviewed: [(String, GGUFValue, String)] = [
        ("llama.rope.scaling.attn_factor", .float32(1.25), "llama.rope.scaling.attn_factor is 1.25 in the file, 1 (or absent) for the reference"),
        ("llama.attention.causal", .bool(false), "llama.attention.causal is false in the file, true for the reference"),
    ]

    @Test("the reviewer's keys fail verify (exit 1), naming the key, the file's value and the reference's",
          arguments: try nonEmpty(0..<reviewed.count, "reviewed keys"))
    func reviewedKeysFail(index: Int) throws {
        let (key, value, named) = Self.reviewed[index]
        let scratch = try TemporaryDirectory()
        let result = try runParity(["verify", "tiny-llama", "--file", try LlamaMetadataRewrite.gguf([(key, value)], in: scratch)], timeout: 300)
        #expect(result.status == 1, "\(key) = \(value): exit \(result.status); stdout tail: \(result.stdout.suffix(400)) stderr: \(result.stderr.suffix(300))")
        #expect(result.stdout.contains("FAIL: hyperparameter: " + named), "the report should name \(key); stdout tail: \(result.stdout.suffix(600))")
    }

    @Test("rope.scaling.type linear with factor 1 is the plain file llama.cpp computes: verify passes")
    func linearFactorOnePasses() throws {
        let scratch = try TemporaryDirectory()
        let path = try LlamaMetadataRewrite.gguf([("llama.rope.scaling.type", .string("linear")), ("llama.rope.scaling.factor", .float32(1))], in: scratch)
        let result = try runParity(["verify", "tiny-llama", "--file", path], timeout: 300)
        #expect(result.status == 0, "exit \(result.status); stdout tail: \(result.stdout.suffix(600)) stderr: \(result.stderr.suffix(300))")
    }

    /// Values llama.cpp computes exactly as the unscaled file: llama.cpp's default type is linear, factor 0 means 1,
    /// and type none forces the frequency scale to 1 whatever the factor (llama-context.cpp).
    static let plain: [[(String, GGUFValue)]] = [
        [("llama.rope.scaling.type", .string("linear"))],
        [("llama.rope.scaling.type", .string("linear")), ("llama.rope.scaling.factor", .float32(0))],
        [("llama.rope.scaling.type", .string("none")), ("llama.rope.scaling.factor", .float32(4))],
        [("llama.rope.scale_linear", .float32(1))],
        [("llama.rope.scaling.attn_factor", .float32(1)), ("llama.attention.causal", .bool(true)), ("llama.nextn_predict_layers", .uint32(0))],
    ]

    @Test("the values the reference implies, however the file spells them, are no mismatch", arguments: try nonEmpty(0..<plain.count, "plain spellings"))
    func impliedValuesPass(index: Int) throws {
        let judged = try Self.judged(Self.plain[index])
        #expect(judged.refusal == nil, "\(Self.plain[index]): \(String(describing: judged.refusal))")
        #expect(judged.mismatches.isEmpty, "\(Self.plain[index]): \(judged.mismatches)")
    }

    /// More keys of the table (class b): each value is not the reference's, each is named with both values.
    static let departing: [([(String, GGUFValue)], String)] = [
        ([("llama.rope.scaling.type", .string("linear")), ("llama.rope.scaling.factor", .float32(2))],
         "llama.rope.scaling.factor is 2.0 in the file, 1 (or absent) for the reference"),
        // No type: llama.cpp's default is linear, and the old key is read when the new one is absent.
        ([("llama.rope.scale_linear", .float32(4))], "llama.rope.scale_linear is 4.0 in the file, 1 (or absent) for the reference"),
        ([("llama.rope.scaling.type", .string("yarn")), ("llama.rope.scaling.factor", .float32(4))],
         "llama.rope.scaling.type is \"yarn\" in the file, \"none\" (or \"linear\" with factor 1) for the reference"),
        ([("llama.nextn_predict_layers", .uint32(1))], "llama.nextn_predict_layers is 1 in the file, 0 for the reference"),
        ([("llama.attention.causal", .bool(false))], "llama.attention.causal is false in the file, true for the reference"),
    ]

    @Test("a key whose value is not the reference's is a hyperparameter mismatch naming it", arguments: try nonEmpty(0..<departing.count, "departing keys"))
    func departingValuesNamed(index: Int) throws {
        let (changes, named) = Self.departing[index]
        let judged = try Self.judged(changes)
        #expect(judged.refusal == nil, "\(changes): \(String(describing: judged.refusal))")
        #expect(judged.mismatches.count == 1 && judged.mismatches.first?.hasPrefix(named) == true, "\(changes): \(judged.mismatches)")
    }

    /// What llama.cpp itself aborts on (GGML_ASSERT in load_hparams) is its refusal, not a mismatch.
    static let refused: [([(String, GGUFValue)], String)] = [
        ([("llama.rope.scaling.type", .string("dynamic"))], "llama.rope.scaling.type = 'dynamic'"),
        ([("llama.expert_used_count", .uint32(2))], "GGML_ASSERT(n_expert_used_max == 0) failed"),
        ([("llama.attention.causal", .uint32(0))], "key llama.attention.causal has wrong type u32 but expected type bool"),
    ]

    @Test("a value llama.cpp's loader refuses is its refusal", arguments: try nonEmpty(0..<refused.count, "refused values"))
    func loaderRefusals(index: Int) throws {
        let (changes, reason) = Self.refused[index]
        let judged = try Self.judged(changes)
        let refusal = try #require(judged.refusal, "\(changes): loaded; mismatches \(judged.mismatches)")
        #expect(refusal.reason.contains(reason), "\(changes): \(refusal.reason)")
    }
}
