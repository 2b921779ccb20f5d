import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import Testing

/// ggml-semantics Llama ops against llama.cpp itself. The weights are the reference's, with Q/K rows permuted as
/// convert_hf_to_gguf permutes them (the f32 GGUF llama.cpp ran holds exactly these values: its converter copies
/// f32 tensors bit for bit), so any difference is in the compute: ours against libllama's.
@Suite("Llama ggml semantics vs llama.cpp")
struct LlamaGGMLTests {
    static let llamaCppLogits = Repo.fixtures + "/llama-compute/llamacpp-logits.h5"
    static let ecosystemLogits = Repo.fixtures + "/llama/logits.h5"

    struct Measured {
        let engineVsLlamaCpp: Double
        let llamaCppVsReference: Double
        let engineVsReference: Double
    }

    /// Our logits for both golden sequences under `kv`, against llama.cpp's dataset `dataset` and the float64 reference.
    func measure(kv: GGMLKVCacheType, dataset: String) throws -> Measured {
        let golden = try TinyLlamaGolden()
        let source = try ReferenceLlamaSource(ropeStyle: .adjacentPairs, permutedQueryKey: true)
        let forward = LlamaForward(source: source, ops: GGMLLlamaOps(source: source, kvCache: kv))
        let ours = try forward.forward(ids: golden.ids, shape: golden.shape)
        let fixture = try HDF5File(readingFrom: Self.llamaCppLogits)
        #expect(try fixture.readIntegers("input_ids").values == golden.ids.map { Int64($0) }, "the fixture's tokens are the goldens'")
        let llamaCpp = try fixture.readFloats(dataset)
        let reference = try golden.file.readFloats("/reference/logits_f64")
        let m = Measured(engineVsLlamaCpp: maxAbsDifference(ours, llamaCpp), llamaCppVsReference: maxAbsDifference(llamaCpp, reference),
                         engineVsReference: maxAbsDifference(ours, reference))
        print(String(format: "ggml kv %@: rel L2 engine vs llama.cpp %.2e; llama.cpp vs float64 %.2e", kv.rawValue,
                     TransformerTensors.distance(ours, llamaCpp).relL2, TransformerTensors.distance(llamaCpp, reference).relL2))
        print(String(format: "ggml kv %@: max|Δlogit| engine vs llama.cpp %.2e; llama.cpp vs float64 %.2e; engine vs float64 %.2e",
                     kv.rawValue, m.engineVsLlamaCpp, m.llamaCppVsReference, m.engineVsReference))
        return m
    }

    @Test("KV cache F32: the engine's logits agree with llama.cpp's")
    func kvF32() throws {
        let m = try measure(kv: .f32, dataset: "kv-f32")
        // The ecosystem fixtures' llama.cpp run of the same file (first sequence) is the same data.
        let ecosystem = try HDF5File(readingFrom: Self.ecosystemLogits).readFloats("gguf__tiny-llama-f32.gguf")
        let recorded = try HDF5File(readingFrom: Self.llamaCppLogits).readFloats("kv-f32")
        #expect(Array(recorded.data.prefix(ecosystem.count)) == ecosystem.data, "llama.cpp's KV F32 logits in both fixtures agree bit for bit")
        // Both compute in float32 with other summation orders (BLAS vs ggml's SIMD dots, expf vs ggml_v_expf):
        // float32 noise through 3 layers, the size of PyTorch's own noise floor at the logits (7.7e-6).
        #expect(m.engineVsLlamaCpp <= 2e-5, "logits vs llama.cpp (KV F32): max |Δ| \(m.engineVsLlamaCpp) > 2e-5 (float32 noise)")
    }

    @Test("KV cache F16 (llama.cpp's default): the engine reproduces llama.cpp's rounding, far closer than the reference")
    func kvF16() throws {
        let m = try measure(kv: .f16, dataset: "kv-f16")
        // The F16 cache moves llama.cpp 3.6e-3 away from the reference. The engine rounds K, V, Q and the
        // probabilities where ggml does (fed llama.cpp's own layer-0 Q/K/V it matches to 1e-6, test below), but its
        // float32 inputs to those roundings differ from llama.cpp's by float32 noise, so a few values land on the
        // other side of an F16 rounding boundary (one F16 ulp is 2^-11 relative) and those flips compound over 3
        // layers: measured 6.4e-4 max |Δ|, 5.6× closer to llama.cpp than to the reference. Bound: 4× closer.
        #expect(m.engineVsLlamaCpp <= m.llamaCppVsReference / 4,
                "logits vs llama.cpp (KV F16): max |Δ| \(m.engineVsLlamaCpp) not 4× below llama.cpp's own distance to the reference \(m.llamaCppVsReference)")
        #expect(m.llamaCppVsReference > 1e-3, "the F16 cache's effect on llama.cpp (\(m.llamaCppVsReference)) is what makes this test meaningful")
    }
}

extension LlamaGGMLTests {
    /// Layer 0's attention as llama.cpp computed it (`llama_logits --dump`), moved into the reference layout:
    /// Q/K [1, H, T, D] in HF dimension order (llama.cpp's dimension 2j + k is HF's k·D/2 + j), V [1, T, Hkv·D],
    /// probabilities [1, H, T, T], output [1, T, H·D].
    struct LlamaCppAttention {
        let q, k, v, output: Tensor
        /// nil for flash attention, which materialises no probabilities.
        let probs: Tensor?
        init(setting: String) throws {
            let f = try HDF5File(readingFrom: LlamaGGMLTests.llamaCppLogits)
            func heads(_ name: String) throws -> Tensor {
                let t = try f.readFloats("nodes/\(setting)/\(name)")  // [T, H, D], D in llama.cpp's order
                let (tokens, h, d) = (t.shape[0], t.shape[1], t.shape[2])
                var out = [Float](repeating: 0, count: t.count)
                for ti in 0..<tokens { for hi in 0..<h { for j in 0..<(d / 2) { for kk in 0..<2 {
                    out[(hi * tokens + ti) * d + kk * (d / 2) + j] = t.data[(ti * h + hi) * d + 2 * j + kk]
                } } } }
                return Tensor(shape: [1, h, tokens, d], data: out)
            }
            q = try heads("Qcur")
            k = try heads("Kcur")
            let vv = try f.readFloats("nodes/\(setting)/Vcur")
            v = vv.reshaped([1] + vv.shape)
            if f.exists("nodes/\(setting)/kq_soft_max") {
                let p = try f.readFloats("nodes/\(setting)/kq_soft_max")
                probs = p.reshaped([1] + p.shape)
            } else {
                probs = nil
            }
            let o = try f.readFloats("nodes/\(setting)/kqv_out")
            output = o.reshaped([1] + o.shape)
        }
    }

    @Test("Attention ops fed llama.cpp's own Q, K, V reproduce its probabilities and output, with each KV cache type",
          arguments: try nonEmpty(GGMLKVCacheType.allCases, "KV cache types"))
    func attentionOpsOnLlamaCppInputs(kv: GGMLKVCacheType) throws {
        let node = try LlamaCppAttention(setting: "kv-" + kv.rawValue)
        let llamaCppProbs = try #require(node.probs, "llama.cpp's probabilities without flash attention")
        let ops = GGMLLlamaOps(headDimension: 32, kvCache: kv)
        let other = GGMLLlamaOps(headDimension: 32, kvCache: kv == .f16 ? .f32 : .f16)
        let mask = TransformerTensors.causalMask(attentionMask: [Int32](repeating: 1, count: 32), batch: 1, tokens: 32)
        let probs = TransformerTensors.distance(ops.attentionProbs(q: node.q, k: node.k, mask: mask), llamaCppProbs)
        let output = TransformerTensors.distance(ops.attentionOutput(probs: llamaCppProbs, v: node.v, keyValueHeads: 4), node.output)
        let wrongProbs = TransformerTensors.distance(other.attentionProbs(q: node.q, k: node.k, mask: mask), llamaCppProbs)
        let wrongOutput = TransformerTensors.distance(other.attentionOutput(probs: llamaCppProbs, v: node.v, keyValueHeads: 4), node.output)
        print(String(format: "ggml kv %@ layer-0 attention on llama.cpp's inputs: probs max|Δ| %.2e (other cache type %.2e), output %.2e (other %.2e)",
                     kv.rawValue, probs.maxAbs, wrongProbs.maxAbs, output.maxAbs, wrongOutput.maxAbs))
        // Same inputs, same roundings: what is left is expf vs ggml's vectorised expf and the dot products'
        // summation order, ~1 float32 ulp of a probability ≤ 1 (measured ≤ 1e-6).
        #expect(probs.maxAbs <= 4e-6, "probs vs llama.cpp (KV \(kv.rawValue)): max |Δ| \(probs.maxAbs) > 4e-6")
        #expect(output.maxAbs <= 4e-6, "attention output vs llama.cpp (KV \(kv.rawValue)): max |Δ| \(output.maxAbs) > 4e-6")
        // The cache type is visible here: the other rounding misses llama.cpp by F16's rounding (~1e-3).
        #expect(wrongProbs.maxAbs > 1e-4 || wrongOutput.maxAbs > 1e-4,
                "the other cache type should be visible at layer 0's attention: probs \(wrongProbs.maxAbs), output \(wrongOutput.maxAbs)")
    }

    @Test("Flash attention (KV F16): layer 0 on llama.cpp's own Q, K, V and the logits reproduce llama.cpp's flash attention")
    func flashAttention() throws {
        let node = try LlamaCppAttention(setting: "kv-f16-flash-attn")
        let mask = TransformerTensors.causalMask(attentionMask: [Int32](repeating: 1, count: 32), batch: 1, tokens: 32)
        func output(_ ops: GGMLLlamaOps) -> Tensor {
            ops.attentionOutput(probs: ops.attentionProbs(q: node.q, k: node.k, mask: mask), v: node.v, keyValueHeads: 4)
        }
        let flash = maxAbsDifference(output(GGMLLlamaOps(headDimension: 32, kvCache: .f16, flashAttention: true)), node.output)
        let unfused = maxAbsDifference(output(GGMLLlamaOps(headDimension: 32, kvCache: .f16)), node.output)
        print(String(format: "ggml flash attention, layer 0 on llama.cpp's inputs: output max|Δ| %.2e (soft_max + mul_mat instead: %.2e)", flash, unfused))
        // The F16 accumulator is rounded at every key; replaying it from float32 probabilities differs from
        // llama.cpp's exp(s − M) by float32 noise, which flips an occasional F16 rounding of the accumulator
        // (one F16 ulp of an output near 1 is 4.9e-4 relative): bound at 1/4 of the unfused path's distance.
        #expect(flash <= unfused / 4, "flash attention output vs llama.cpp: \(flash), not 4× closer than soft_max + mul_mat (\(unfused))")

        let golden = try TinyLlamaGolden()
        let source = try ReferenceLlamaSource(ropeStyle: .adjacentPairs, permutedQueryKey: true)
        let ours = try LlamaForward(source: source, ops: GGMLLlamaOps(source: source, kvCache: .f16, flashAttention: true))
            .forward(ids: golden.ids, shape: golden.shape)
        let fixture = try HDF5File(readingFrom: Self.llamaCppLogits)
        let llamaCpp = try fixture.readFloats("kv-f16-flash-attn"), withoutFlash = try fixture.readFloats("kv-f16")
        let d = maxAbsDifference(ours, llamaCpp), flashEffect = maxAbsDifference(withoutFlash, llamaCpp)
        print(String(format: "ggml kv f16 + flash attention: max|Δlogit| engine vs llama.cpp %.2e; llama.cpp with vs without flash attention %.2e", d, flashEffect))
        // As for the F16 cache: rounding flips compound over layers; require 4× closer than flash attention's own effect.
        #expect(d <= flashEffect / 4, "logits vs llama.cpp (flash attention): max |Δ| \(d) not 4× below flash attention's effect \(flashEffect)")
    }

    @Test("Reference Q/K rows without convert_hf_to_gguf's permutation under adjacent-pair RoPE: llama.cpp's planted file, reproduced")
    func missingPermutation() throws {
        let golden = try TinyLlamaGolden()
        let unpermuted = try ReferenceLlamaSource(ropeStyle: .adjacentPairs, permutedQueryKey: false)
        let forward = LlamaForward(source: unpermuted, ops: GGMLLlamaOps(source: unpermuted, kvCache: .f32))
        let first = firstSequences(golden.ids, shape: golden.shape, count: 1)
        var nodes: [String: Tensor] = [:]
        let ours = try forward.forward(ids: first.ids, shape: first.shape) { nodes[$0] = $1 }
        let ecosystem = try HDF5File(readingFrom: Self.ecosystemLogits)
        let correct = try ecosystem.readFloats("gguf__tiny-llama-f32.gguf")
        let planted = try ecosystem.readFloats("planted__tiny-llama-f32-no-qk-permutation.gguf")
        let vsCorrect = maxAbsDifference(ours, correct), vsPlanted = maxAbsDifference(ours, planted)
        print(String(format: "ggml without the Q/K permutation: max|Δlogit| vs llama.cpp on the right file %.2e, on its planted file %.2e", vsCorrect, vsPlanted))
        // llama.cpp on the planted file is 8.4 away from the reference (fixture README): the mistake must show.
        #expect(vsCorrect > 1, "without the permutation the logits should disagree with llama.cpp's on the correct file; max |Δ| \(vsCorrect)")
        // And it is exactly llama.cpp's own behaviour on such a file: float32 noise (as with KV F32 above).
        #expect(vsPlanted <= 2e-5, "vs llama.cpp on the planted file: max |Δ| \(vsPlanted) > 2e-5")
        // Where it shows: the projections are read in llama.cpp's order, so Q/K already differ from HF's
        // (reported in HF order, assuming the converter permuted), while V and the norm before them match.
        let reference = try golden.file.readFloats("/activations/model.layers.0.self_attn.v_proj")
        let v = try #require(nodes["/activations/model.layers.0.self_attn.v_proj"])
        #expect(maxAbsDifference(v, Tensor(shape: v.shape, data: Array(reference.data.prefix(v.count)))) <= 1e-5, "V is unaffected by the Q/K row order")
        let q = try #require(nodes["/activations/model.layers.0.self_attn.q_proj"])
        let goldenQ = try golden.file.readFloats("/activations/model.layers.0.self_attn.q_proj")
        #expect(maxAbsDifference(q, Tensor(shape: q.shape, data: Array(goldenQ.data.prefix(q.count)))) > 0.1, "Q read in the wrong row order must differ")
    }

    @Test("With an F32 KV cache, every golden node fed its golden inputs agrees with the goldens to float32 noise")
    func isolatedKVF32() throws {
        let golden = try TinyLlamaGolden()
        let source = try ReferenceLlamaSource(ropeStyle: .adjacentPairs, permutedQueryKey: true)
        for row in try golden.isolatedDistances(.ggml(source, kvCache: .f32), label: "ggml kv f32") {
            // ggml's arithmetic in float32 on the same weights (permuted rows reported back in HF order): only
            // float32 rounding differs from PyTorch's, as for the PyTorch ops (same 1e-5 limit, same reason).
            #expect(row.relL2 <= 1e-5, "\(row.path) isolated (ggml, KV F32): rel L2 \(row.relL2) > 1e-5 — max |Δ| \(row.maxAbs)")
        }
    }
}

extension LlamaGGMLTests {
    static let llamaCppMatmuls = Repo.fixtures + "/llama-compute/llamacpp-matmuls.gguf"

    @Test("mul_mat on every stored type llama.cpp's tools wrote reproduces llama.cpp's own V projection",
          arguments: try nonEmpty(["F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q5_K", "Q6_K"], "weight types"))
    func matmulAgainstLlamaCpp(type: String) throws {
        let file = try GGUFFile(path: Self.llamaCppMatmuls)
        let weight = try #require(file.tensor(named: "\(type).weight"), "\(type).weight in the fixture")
        #expect(weight.type.name.uppercased() == type, "the fixture's \(type) weight is stored as \(weight.type.name)")
        let x = try file.values(try #require(file.tensor(named: "\(type).input")))
        let y = try file.values(try #require(file.tensor(named: "\(type).output")))
        let (rows, columns) = (weight.ne[1], weight.ne[0])
        let input = Tensor(shape: [1, x.count / columns, columns], data: x)
        let expected = Tensor(shape: [1, x.count / columns, rows], data: y)
        let matrix = StoredMatrix(rows: rows, columns: columns, storage: .ggml(file: file, tensor: weight), fileName: weight.name)
        let ours = try GGMLLlamaOps(headDimension: 32, kvCache: .f32).linear(input, matrix, role: .value)
        // The counterfactual: the same dequantized weights times float32 activations (no vec_dot_type conversion).
        let unconverted = TransformerTensors.linearF32(input, weight: try file.values(weight), outFeatures: rows)
        let d = maxAbsDifference(ours, expected), dUnconverted = maxAbsDifference(unconverted, expected)
        let scale = try #require(y.map { abs(Double($0)) }.max(), "llama.cpp's output is not empty")
        print(String(format: "ggml mul_mat %@ vs llama.cpp: max|Δ| %.2e (float32 activations instead: %.2e), max |y| %.2f", type, d, dUnconverted, scale))
        // Same integer block dot products and scales; only the float32 accumulation order across blocks (ggml's
        // SIMD lanes) differs: a few float32 ulps of the largest output (measured ≤ 2e-6 at |y| ≤ 12).
        #expect(d <= 1e-6 * max(scale, 1) * 4, "\(type): max |Δ| \(d) vs llama.cpp > 4e-6 × max |y| \(scale)")
        // Converting the activations is what llama.cpp does: without it the result is visibly different.
        #expect(dUnconverted > 10 * d, "\(type): float32 activations (\(dUnconverted)) should be much further from llama.cpp than ggml's conversion (\(d))")
    }
}

extension LlamaGGMLTests {
    @Test("Flash attention on 80 tokens (ggml's tiled kernel from 64 queries): the engine reproduces llama.cpp")
    func flashAttentionTiled() throws {
        let fixture = try HDF5File(readingFrom: Self.llamaCppLogits)
        let read = try fixture.readIntegers("long/input_ids")
        let ids = read.values.map { Int32($0) }
        let llamaCpp = try fixture.readFloats("long/kv-f16-flash-attn")
        let source = try ReferenceLlamaSource(ropeStyle: .adjacentPairs, permutedQueryKey: true)
        func logits(_ ops: GGMLLlamaOps) throws -> Tensor { try LlamaForward(source: source, ops: ops).forward(ids: ids, shape: read.shape) }
        let tiled = maxAbsDifference(try logits(GGMLLlamaOps(source: source, kvCache: .f16, flashAttention: true)), llamaCpp)
        let unfused = maxAbsDifference(try logits(GGMLLlamaOps(source: source, kvCache: .f16)), llamaCpp)
        let f32 = maxAbsDifference(try logits(GGMLLlamaOps(source: source, kvCache: .f32)), llamaCpp)
        print(String(format: "ggml flash attention, 80 tokens (tiled): max|Δlogit| engine vs llama.cpp %.2e; without flash attention %.2e; KV F32 %.2e", tiled, unfused, f32))
        // The tiled kernel rounds only K and V (to F16); the rest is float32 noise, compounded through F16 flips of
        // K and V. The unfused path (Q and probabilities also rounded) and a float32 cache both miss it by more.
        #expect(tiled <= min(unfused, f32) / 2, "tiled flash attention: \(tiled) vs llama.cpp, not 2× closer than the unfused path (\(unfused)) or KV F32 (\(f32))")
    }
}
