import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import Testing

/// The Llama ops as graph engines: the tiny-llama graph (built from its config.json by the architecture registry)
/// run by the shared executor, end to end and one node at a time on golden inputs, per runtime.
@Suite("Llama graph engines")
struct LlamaGraphEngineTests {
    enum Runtime: String, CaseIterable, CustomTestStringConvertible {
        case pytorch, ggmlKVF32 = "ggml kv f32", ggmlKVF16 = "ggml kv f16", mlx
        var testDescription: String { rawValue }

        /// The engine on the reference weights, as that runtime would hold them (ggml: Q/K rows permuted as
        /// convert_hf_to_gguf writes them).
        func engine() throws -> LlamaGraphEngine {
            switch self {
            case .pytorch: return .pytorch(try ReferenceLlamaSource())
            case .ggmlKVF32: return .ggml(try ReferenceLlamaSource(ropeStyle: .adjacentPairs, permutedQueryKey: true), kvCache: .f32)
            case .ggmlKVF16: return .ggml(try ReferenceLlamaSource(ropeStyle: .adjacentPairs, permutedQueryKey: true), kvCache: .f16)
            case .mlx: return .mlx(try ReferenceLlamaSource())
            }
        }

        /// How far a node may be from the golden, with the reason.
        var isolatedRelL2Limit: Double {
            switch self {
            // float32 arithmetic against float32 PyTorch: rounding noise only (measured ≤ 6.2e-7 anywhere).
            case .pytorch, .ggmlKVF32, .mlx: return 1e-5
            // The F16 cache rounds K, V, Q and the probabilities: 2^-11 relative per value, ~1e-3 at the
            // probabilities and the attention output (measured ≤ 4.0e-4 rel L2): 4 F16 ulps.
            case .ggmlKVF16: return 2e-3
            }
        }
    }

    static func graph() throws -> ModelGraph {
        let path = Repo.golden + "/tiny-llama/config.json"
        return try ArchitectureRegistry.graph(config: try fixtureJSON(path), path: path)
    }

    static func inputs(_ golden: TinyLlamaGolden) throws -> [String: GraphValue] {
        var values: [String: GraphValue] = [:]
        for name in ["input_ids", "position_ids", "attention_mask"] {
            let read = try golden.file.readIntegers("/inputs/" + name)
            values["/inputs/" + name] = .integers(IntegerTensor(shape: read.shape, data: read.values.map { Int32($0) }))
        }
        return values
    }

    @Test("The executor's end-to-end run equals the standalone forward pass bit for bit, for every runtime",
          arguments: try nonEmpty(Runtime.allCases, "runtimes"))
    func executorEqualsForward(runtime: Runtime) throws {
        let golden = try TinyLlamaGolden()
        let engine = try runtime.engine()
        let values = try GraphExecutor.run(try Self.graph(), engine: engine, inputs: try Self.inputs(golden))
        var forward: [String: Tensor] = [:]
        _ = try LlamaForward(source: engine.source, ops: engine.ops).forward(ids: golden.ids, shape: golden.shape) { forward[$0] = $1 }
        for path in try nonEmpty(golden.nodePaths(), "golden nodes") {
            let a = try #require(values[path]?.floats, "the executor produced no \(path)")
            let b = try #require(forward[path], "the forward pass produced no \(path)")
            #expect(a == b, "\(path) (\(runtime.rawValue)): the executor and the standalone forward compute the same ops on the same values")
        }
    }

    @Test("Every recorded node, composite modules included, run alone on its golden inputs stays within its runtime's limit",
          arguments: try nonEmpty(Runtime.allCases, "runtimes"))
    func isolatedThroughExecutor(runtime: Runtime) throws {
        let golden = try TinyLlamaGolden()
        let graph = try Self.graph()
        let engine = try runtime.engine()
        // Every golden dataset, read once: what a node reads at its boundary.
        var given: [String: GraphValue] = try Self.inputs(golden)
        for path in try golden.nodePaths() { given[path] = .floats(try golden.file.readFloats(path)) }
        let cachePosition = "/intermediates/model.layers.0.cache_position"
        let positions = try golden.file.readIntegers(cachePosition)
        given[cachePosition] = .integers(IntegerTensor(shape: positions.shape, data: positions.values.map { Int32($0) }))
        var worst = 0.0
        for node in try nonEmpty(graph.recordedNodes, "recorded nodes") {
            let out = try GraphExecutor.runIsolated(node, in: graph, engine: engine) { given[$0] }
            if case let .integers(ints) = out {
                #expect(.integers(ints) == given[node.path], "\(node.path): int32 values must equal the golden's")
                continue
            }
            let expected = try golden.file.readFloats(node.path)
            let value = try #require(out.floats, "\(node.path) is float32")
            #expect(value.shape == expected.shape, "\(node.path): shape \(value.shape), golden \(expected.shape)")
            let d = TransformerTensors.distance(value, expected)
            worst = max(worst, d.relL2)
            #expect(d.relL2 <= runtime.isolatedRelL2Limit,
                    "\(node.path) isolated (\(runtime.rawValue)): rel L2 \(d.relL2) > \(runtime.isolatedRelL2Limit) — max |Δ| \(d.maxAbs)")
        }
        print("graph isolated \(runtime.rawValue): \(graph.recordedNodes.count) nodes, worst rel L2 \(worst)")
    }
}
