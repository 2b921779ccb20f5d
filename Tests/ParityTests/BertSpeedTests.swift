#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import Testing

/// The BERT engine's fast paths compute what the code they replaced computed, bit for bit: weights decoded once per
/// loaded file against decoded on every call, get_rows of the needed rows against the whole table, attention heads read
/// in place against split/merge copies, in-place softmax against the row functions, F16 rounding in float/integer
/// operations against Swift's Float16 conversion.
@Suite("BERT engine speed paths equal the computation they replace")
struct BertSpeedTests {
    /// A reader that hands the engine the file's tensors as `matrix` gives them (`.ggml`, decoded by the ops on
    /// every call) — the engine before the decoded-once path.
    struct DecodingEveryCall: BertWeightSource {
        let base: any BertWeightSource
        var path: String { base.path }
        var hyperparameters: BertHyperparameters { base.hyperparameters }
        func matrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix { try base.matrix(role, layer: layer) }
        func vector(_ role: BertTensorRole, layer: Int) throws(ParityError) -> [Float] { try base.vector(role, layer: layer) }
    }

    /// A PyTorch reader that reads and widens each tensor from the safetensors file on every call, as
    /// PyTorchBertWeights did before it kept them.
    struct ReadingEveryCall: BertWeightSource {
        let weights: SafetensorsFile
        let shapes: PyTorchBertWeights
        var path: String { weights.path }
        var hyperparameters: BertHyperparameters { shapes.hyperparameters }
        func read(_ name: String) throws(ParityError) -> [Float] {
            guard let entry = weights.entry(named: name) else { throw .notFound(path: path, what: name) }
            do { return try weights.tensor(entry).data } catch { throw .io(path: path, reason: "\(error)") }
        }
        func matrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix {
            let shape = shapes.shape(of: role), name = role.referenceName(layer: layer)
            return StoredMatrix(rows: shape[0], columns: shape[1], storage: .dense(values: try read(name), dtype: .f32), fileName: name)
        }
        func vector(_ role: BertTensorRole, layer: Int) throws(ParityError) -> [Float] { try read(role.referenceName(layer: layer)) }
    }

    /// Every node's value of the held-out sentences (llama.cpp's token ids, 8 sentences of different lengths, padded).
    static func allValues(_ engine: BertGraphEngine, _ architecture: BertArchitecture) throws -> [String: GraphValue] {
        try GraphExecutor.run(architecture.graph(), engine: engine, inputs: MiniLMGGUF.inputs(try MiniLMGGUF.tokenIDs()))
    }

    static func bits(_ t: Tensor) -> [UInt32] { t.data.map(\.bitPattern) }

    /// Node paths whose float values differ in any bit (empty when the runs are identical); fails when nothing was compared.
    static func differingNodes(_ a: [String: GraphValue], _ b: [String: GraphValue]) throws -> [String] {
        let floatNodes = try nonEmpty(a.keys.filter { a[$0]?.floats != nil }.sorted(), "float node values")
        return try floatNodes.filter { path in
            let x = try #require(a[path]?.floats), y = try #require(b[path]?.floats, "\(path) missing from the second run")
            return x.shape != y.shape || bits(x) != bits(y)
        }
    }

    @Test("ggml engine on a GGUF file: weights decoded once give every node's value bit for bit as decoding on every call",
          arguments: try nonEmpty([GGMLType.f32, .f16, .bf16, .q8_0], "ggml types"))
    func ggufDecodedOnce(type: GGMLType) throws {
        let source = try GGUFBertWeights.load(try GGUFBertEngineTests.convertedFile(type)).get()
        let architecture = try GGUFBertEngineTests.architecture()
        let fast = BertGraphEngine(source: source, ops: BertGGMLOps(source: source))
        let everyCall = BertGraphEngine(source: DecodingEveryCall(base: source), ops: BertGGMLOps(source: source))
        let first = try Self.allValues(fast, architecture)
        #expect(try Self.differingNodes(first, try Self.allValues(everyCall, architecture)) == [])
        // A second pass reads the decoded weights: still the same values.
        #expect(try Self.differingNodes(first, try Self.allValues(fast, architecture)) == [])
        // The float projections come back decoded (dense, with the stored type); the tables stay in the file.
        let q = try source.computeMatrix(.query, layer: 2), table = try source.computeMatrix(.tokenEmbedding, layer: 0)
        if case .ggml = table.storage {} else { Issue.record("token_embd should be read in place by get_rows") }
        switch (type, q.storage) {
        case (.q8_0, .ggml): break
        case (.f32, .dense(_, .f32)), (.f16, .dense(_, .f16)), (.bf16, .dense(_, .bf16)): break
        default: Issue.record("\(type.name) attn_q came back as \(q.storage)")
        }
    }

    @Test("PyTorch engine: tensors kept widened give every node's value bit for bit as reading the file on every call")
    func pytorchReadOnce() throws {
        let model = try ModelRepository.locate("minilm-l6")
        let architecture = try BertArchitecture.load(path: model.configPath)
        let weights = try model.weights()
        let source = PyTorchBertWeights(weights: weights, config: architecture)
        let first = try Self.allValues(.pytorch(source), architecture)
        #expect(try Self.differingNodes(first, try Self.allValues(.pytorch(ReadingEveryCall(weights: weights, shapes: source)), architecture)) == [])
        #expect(try Self.differingNodes(first, try Self.allValues(.pytorch(source), architecture)) == [])
        // An override still replaces the kept tensor (looked up first, never stored).
        var changed = source
        let name = BertTensorRole.query.referenceName(layer: 0)
        changed.overrides[name] = Tensor(shape: [384, 384], data: [Float](repeating: 0.5, count: 384 * 384))
        guard case let .dense(values, _) = try changed.matrix(.query, layer: 0).storage else { Issue.record("not dense"); return }
        #expect(values.allSatisfy { $0 == 0.5 })
        guard case let .dense(original, _) = try source.matrix(.query, layer: 0).storage else { Issue.record("not dense"); return }
        #expect(original.contains { $0 != 0.5 })
    }

    @Test("get_rows dequantizes only the requested rows, to the values of the whole table's rows",
          arguments: try nonEmpty([GGMLType.f32, .f16, .bf16, .q8_0], "ggml types"))
    func getRowsEqualsWholeTable(type: GGMLType) throws {
        let source = try GGUFBertWeights.load(try GGUFBertEngineTests.convertedFile(type)).get()
        let table = try source.matrix(.tokenEmbedding, layer: 0)
        guard case let .ggml(file, tensor) = table.storage else { Issue.record("token_embd is not a file tensor"); return }
        let ids: [Int32] = [101, 0, 30521, 2023, 2023, 102, 1, 29999]
        let rows = try BertGGMLOps().embedding(ids: ids, shape: [2, 4], table: table)
        let whole = TransformerTensors.gatherRows(try file.values(tensor), width: table.columns, ids: ids, shape: [2, 4])
        #expect(rows.shape == [2, 4, 384] && Self.bits(rows) == Self.bits(whole))
    }

    // MARK: attention

    /// Deterministic values in [-scale, scale) (a linear congruential sequence; the test needs variety, not randomness).
    static func values(_ count: Int, seed: UInt64, scale: Float) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }

    /// The attention of the engine before this change: splitHeads copies, one sgemm per head into a scratch array,
    /// a row array per query, `ggml_soft_max` / `torch.softmax` on arrays (GGMLLlamaOps.softMax, PyTorchLlamaOps.softmax).
    static func previousProbs(q: Tensor, k: Tensor, padding: [Float], heads: Int, ggml: Bool) -> Tensor {
        let qh = TransformerTensors.splitHeads(q, heads: heads), kh = TransformerTensors.splitHeads(k, heads: heads)
        let (b, h, t, d) = (qh.shape[0], qh.shape[1], qh.shape[2], qh.shape[3])
        let s = kh.shape[2]
        var out = [Float](repeating: 0, count: b * h * t * s)
        var scores = [Float](repeating: 0, count: t * s)
        for bi in 0..<b {
            for hi in 0..<h {
                qh.data.withUnsafeBufferPointer { qp in
                    kh.data.withUnsafeBufferPointer { kp in
                        scores.withUnsafeMutableBufferPointer { sp in
                            Kernels.sgemm(m: t, n: s, k: d, a: qp.baseAddress! + ((bi * h + hi) * t) * d, b: kp.baseAddress! + ((bi * h + hi) * s) * d,
                                          transposeB: true, c: sp.baseAddress!)
                        }
                    }
                }
                for ti in 0..<t {
                    var row = [Float](repeating: 0, count: s)
                    for si in 0..<s {
                        row[si] = ggml ? scores[ti * s + si] * (1 / sqrtf(Float(d))) + (padding[bi * s + si] == 0 ? -Float.infinity : 0)
                            : scores[ti * s + si] / Float(Double(d).squareRoot()) + (1 - padding[bi * s + si]) * -Float.greatestFiniteMagnitude
                    }
                    let m = row.max() ?? 0
                    var e = row.map { expf($0 - m) }
                    var sum = 0.0
                    for v in e { sum += Double(v) }
                    let inv = ggml ? Float(1.0 / sum) : Float(1) / Float(sum)
                    for i in 0..<e.count { e[i] *= inv }
                    for si in 0..<s { out[((bi * h + hi) * t + ti) * s + si] = e[si] }
                }
            }
        }
        return Tensor(shape: [b, h, t, s], data: out)
    }

    /// probs·V as before: splitHeads(v), one sgemm per head, mergeHeads.
    static func previousOutput(probs: Tensor, v: Tensor, heads: Int) -> Tensor {
        let vh = TransformerTensors.splitHeads(v, heads: heads)
        let (b, h, t, s) = (probs.shape[0], probs.shape[1], probs.shape[2], probs.shape[3])
        let d = vh.shape[3]
        var out = [Float](repeating: 0, count: b * h * t * d)
        probs.data.withUnsafeBufferPointer { pp in
            vh.data.withUnsafeBufferPointer { vp in
                out.withUnsafeMutableBufferPointer { op in
                    for bi in 0..<b {
                        for hi in 0..<h {
                            Kernels.sgemm(m: t, n: d, k: s, a: pp.baseAddress! + ((bi * h + hi) * t) * s, b: vp.baseAddress! + ((bi * h + hi) * s) * d,
                                          transposeB: false, c: op.baseAddress! + ((bi * h + hi) * t) * d)
                        }
                    }
                }
            }
        }
        return TransformerTensors.mergeHeads(Tensor(shape: [b, h, t, d], data: out))
    }

    /// MiniLM's shapes: 12 heads of 32; a padded batch of 3 × 13 and one sequence of 128 (pp128).
    static let attentionShapes: [(batch: Int, tokens: Int)] = [(3, 13), (1, 128)]

    @Test("attention probabilities and probs·V, heads read in place, equal the split/merge computation bit for bit",
          arguments: try nonEmpty(attentionShapes.indices.map { $0 }, "shapes"))
    func attentionInPlace(shapeIndex: Int) throws {
        let (b, t) = Self.attentionShapes[shapeIndex]
        let (heads, c) = (12, 384)
        // Scale 3: scores up to ~±100 after q·k over 32 dimensions, so the softmax has saturated and flat rows.
        let q = Tensor(shape: [b, t, c], data: Self.values(b * t * c, seed: 1, scale: 3))
        let k = Tensor(shape: [b, t, c], data: Self.values(b * t * c, seed: 2, scale: 3))
        let v = Tensor(shape: [b, t, c], data: Self.values(b * t * c, seed: 3, scale: 1))
        // Later sequences padded at the end (the last b − 1 sequences lose 2, 4, … keys).
        var padding = [Float](repeating: 1, count: b * t)
        for bi in 1..<max(b, 1) { for ti in (t - 2 * bi)..<t { padding[bi * t + ti] = 0 } }
        for ggml in [true, false] {
            let ops: any BertOps = ggml ? BertGGMLOps() : BertPyTorchOps()
            let probs = ops.attentionProbs(q: q, k: k, padding: padding, heads: heads)
            let expected = Self.previousProbs(q: q, k: k, padding: padding, heads: heads, ggml: ggml)
            #expect(probs.shape == expected.shape && Self.bits(probs) == Self.bits(expected), "\(ggml ? "ggml" : "PyTorch") probs")
            let out = ops.attentionOutput(probs: probs, v: v, heads: heads)
            let expectedOut = Self.previousOutput(probs: expected, v: v, heads: heads)
            #expect(out.shape == expectedOut.shape && Self.bits(out) == Self.bits(expectedOut), "\(ggml ? "ggml" : "PyTorch") probs·V")
        }
    }
}
