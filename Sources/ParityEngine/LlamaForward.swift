import ParityCore
import ParityFormats
import ParityModels

/// Called with each node's value, named by its golden dataset path (`/activations/model.layers.0.self_attn.q_proj`,
/// `/attention/model.layers.0.self_attn/probs`, `/intermediates/model.layers.0.mlp.down_proj.input`), in the
/// reference layout.
public typealias LlamaNodeHook = (_ path: String, _ value: Tensor) -> Void

/// A whole Llama forward pass over any `LlamaWeightSource` with one runtime's `LlamaOps`, without a reference
/// model: the Llama graph built from the source's own hyperparameters, run by the shared `GraphExecutor` on a
/// `LlamaGraphEngine`. For checking a file against goldens, the verifier builds the graph from the reference's
/// config instead; this is the runtime's view alone (what the file computes, e.g. for logits).
public struct LlamaForward {
    public let engine: LlamaGraphEngine
    public var source: any LlamaWeightSource { engine.source }
    public var hyperparameters: LlamaHyperparameters { engine.source.hyperparameters }

    public init(source: any LlamaWeightSource, ops: any LlamaOps) {
        engine = LlamaGraphEngine(source: source, ops: ops)
    }

    public var semantics: String { engine.semantics + " on " + source.path }

    /// The Llama graph for the source's hyperparameters.
    public var graph: ModelGraph {
        let h = hyperparameters
        return LlamaArchitecture(vocabularySize: h.vocabularySize, hiddenSize: h.hiddenSize, intermediateSize: h.intermediateSize,
                                 layerCount: h.layerCount, headCount: h.headCount, keyValueHeadCount: h.keyValueHeadCount,
                                 headDimension: h.headDimension, rmsNormEpsilon: h.rmsNormEpsilon, ropeTheta: h.ropeTheta,
                                 tiedEmbeddings: h.tiedEmbeddings).graph()
    }

    /// Runs the model on token ids [B, T] (positions 0..T-1 and no padding unless given) and returns the logits
    /// [B, T, vocab], calling `hook` with every float node of the graph (every node the goldens record, the
    /// composite modules included) in topological order.
    public func forward(ids: [Int32], shape: [Int], positions: [Int32]? = nil, attentionMask: [Int32]? = nil,
                        hook: LlamaNodeHook = { _, _ in }) throws(LayerExecutionError) -> Tensor {
        guard shape.count == 2, shape[0] * shape[1] == ids.count else {
            throw LayerExecutionError(layer: "/inputs/input_ids", reason: "ids \(shape) are not [batch, tokens]")
        }
        let (b, t) = (shape[0], shape[1])
        let positions = positions ?? (0..<b).flatMap { _ in (0..<t).map { Int32($0) } }
        let attentionMask = attentionMask ?? [Int32](repeating: 1, count: b * t)
        let graph = self.graph
        let values = try GraphExecutor.run(graph, engine: engine, inputs: [
            "/inputs/input_ids": .integers(IntegerTensor(shape: shape, data: ids)),
            "/inputs/position_ids": .integers(IntegerTensor(shape: shape, data: positions)),
            "/inputs/attention_mask": .integers(IntegerTensor(shape: shape, data: attentionMask)),
        ]) { node, value in
            if let t = value.floats { hook(node.path, t) }
        }
        guard let logits = values[graph.output]?.floats else {
            throw LayerExecutionError(layer: graph.output, reason: "the graph produced no logits")
        }
        return logits
    }
}
