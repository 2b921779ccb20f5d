import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import Testing

/// The Llama ops as graph engines: the tiny-llama graph (built from its config.json by the architecture registry)
/// run by the shared executor. The float32 runtimes' isolated checks live in their own suites; here the F16 cache,
/// and what the engine takes from the file rather than from the graph.
@Suite("Llama graph engines")
struct LlamaGraphEngineTests {
    @Test("KV cache F16: every recorded node, composite modules included, run alone on its golden inputs stays within F16 rounding")
    func isolatedKVF16() throws {
        let golden = try TinyLlamaGolden()
        let source = try ReferenceLlamaSource(ropeStyle: .adjacentPairs, permutedQueryKey: true)
        var worst = 0.0
        for row in try golden.isolatedDistances(.ggml(source, kvCache: .f16), label: "ggml kv f16") {
            worst = max(worst, row.relL2)
            // The F16 cache rounds K, V, Q and the probabilities: 2^-11 relative per value, measured ≤ 4.0e-4 rel L2
            // at the probabilities and the attention output; 2e-3 is 4 F16 ulps.
            #expect(row.relL2 <= 2e-3, "\(row.path) isolated (ggml, KV F16): rel L2 \(row.relL2) > 2e-3 — max |Δ| \(row.maxAbs)")
        }
        // And the cache is visible: some node is further than float32 noise.
        #expect(worst > 1e-5, "an F16 cache should show at the attention nodes (worst rel L2 \(worst))")
    }

    /// The reference weights with the hyperparameters a converter might have written wrongly.
    struct WrongHyperparameters: LlamaWeightSource {
        let base: ReferenceLlamaSource
        let hyperparameters: LlamaHyperparameters
        var path: String { base.path }
        var ropeStyle: RopeStyle { base.ropeStyle }
        func matrix(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> StoredMatrix { try base.matrix(role, layer: layer) }
        func vector(_ role: LlamaTensorRole, layer: Int) throws(ParityError) -> [Float] { try base.vector(role, layer: layer) }
    }

    @Test("ε and θ come from the file's own hyperparameters, not from the reference graph")
    func fileHyperparameters() throws {
        let golden = try TinyLlamaGolden()
        let graph = try TinyLlamaGolden.graph()
        let given = try golden.allValues()
        let base = try ReferenceLlamaSource()
        var h = base.hyperparameters
        h.rmsNormEpsilon = 1e-2
        h.ropeTheta = 500_000
        let engine = LlamaGraphEngine.pytorch(WrongHyperparameters(base: base, hyperparameters: h))
        func distance(_ path: String) throws -> Double {
            let node = try #require(graph.node(at: path))
            let out = try #require(try GraphExecutor.runIsolated(node, in: graph, engine: engine) { given[$0] }.floats)
            return TransformerTensors.distance(out, try golden.file.readFloats(path)).relL2
        }
        // The graph says ε = 1e-5 and θ = 10000; a file saying otherwise must compute otherwise.
        let norm = try distance("/activations/model.layers.0.input_layernorm"), cos = try distance("/activations/model.rotary_emb")
        print(String(format: "file ε 1e-2: input_layernorm rel L2 %.2e; file θ 5e5: rotary cos rel L2 %.2e", norm, cos))
        #expect(norm > 1e-3, "a file's ε of 1e-2 should change the norm (rel L2 \(norm))")
        #expect(cos > 1e-2, "a file's θ of 500000 should change the rotary table (rel L2 \(cos))")
    }

    @Test("A node that is not a Llama op is refused, naming the node")
    func foreignNode() throws {
        let engine = LlamaGraphEngine.pytorch(try ReferenceLlamaSource())
        let node = GraphNode(path: "/activations/relu1", kind: .module, op: .layer(.relu(name: "relu1")), inputs: ["/inputs/x"], inputArgs: ["input"])
        #expect {
            try engine.run(node, inputs: [.floats(Tensor(zeros: [1, 4]))])
        } throws: { error in
            guard let e = error as? LayerExecutionError else { return false }
            return e.layer == "relu1" && e.reason.contains("ReLU")
        }
    }

    @Test("Inputs of the wrong shape are refused with the node's name (a crash would hide the bad input)")
    func wrongShapes() throws {
        let graph = try TinyLlamaGolden.graph()
        let engine = LlamaGraphEngine.pytorch(try ReferenceLlamaSource())
        let cases: [(path: String, inputs: [GraphValue])] = [
            ("/attention/model.layers.0.self_attn/q_rope", [.floats(Tensor(zeros: [1, 4, 256])), .floats(Tensor(zeros: [1, 5, 32])), .floats(Tensor(zeros: [1, 5, 32]))]),
            ("/attention/model.layers.0.self_attn/probs", [.floats(Tensor(zeros: [1, 8, 4, 32])), .floats(Tensor(zeros: [1, 4, 4, 32])), .floats(Tensor(zeros: [1, 1, 4, 5]))]),
            ("/intermediates/model.layers.0.self_attn.o_proj.input", [.floats(Tensor(zeros: [1, 8, 4, 4])), .floats(Tensor(zeros: [1, 4, 64]))]),
            ("/activations/model.layers.0.self_attn.q_proj", [.floats(Tensor(zeros: [1, 4, 255]))]),
            ("/activations/model.embed_tokens", [.integers(IntegerTensor(shape: [1, 1], data: [512]))]),
        ]
        for c in try nonEmpty(cases, "malformed inputs") {
            let node = try #require(graph.node(at: c.path))
            #expect(throws: LayerExecutionError.self, "\(c.path) with \(c.inputs.map(\.shape))") { try engine.run(node, inputs: c.inputs) }
        }
    }
}
