import ParityCore
import ParityModels

/// The PyTorch engine as a graph engine: image layers run as before (`apply`); on a Hugging Face Llama
/// checkpoint every other node runs with transformers' float32 semantics (`PyTorchLlamaOps` over
/// `PyTorchLlamaWeights`, through `LlamaForward.node`, which names nodes by their golden paths).
extension PyTorchEngine {
    public func run(_ node: GraphNode, inputs: [GraphValue]) throws(LayerExecutionError) -> GraphValue {
        if case let .layer(layer) = node.op {
            guard inputs.count == 1, let x = inputs[0].floats else {
                throw LayerExecutionError(layer: node.name, reason: "a \(layer.op) layer reads one float tensor, got \(inputs.map(\.typeName))")
            }
            return .floats(try apply(layer, to: x))
        }
        guard let llama else {
            throw LayerExecutionError(layer: node.name, reason: "op \(node.op.label) needs a Llama checkpoint; this engine was opened without one")
        }
        switch node.op {
        case .positions:
            // cache_position = arange(T) over the tokens of the ids it is given (no cache: positions start at 0).
            guard let ids = inputs.last?.integers, ids.rank == 2 else {
                throw LayerExecutionError(layer: node.name, reason: "arange needs the [batch, tokens] token ids, got \(inputs.map(\.shape))")
            }
            return .integers(IntegerTensor(shape: [ids.shape[1]], data: (0..<ids.shape[1]).map { Int32($0) }))
        case .add where node.kind == .internal:
            // A decoder layer's second residual sum (no golden records it apart, so it has no path of its own there).
            guard inputs.count == 2, let a = inputs[0].floats, let b = inputs[1].floats, a.shape == b.shape else {
                throw LayerExecutionError(layer: node.name, reason: "add needs two float tensors of one shape, got \(inputs.map(\.shape))")
            }
            return .floats(TransformerTensors.add(a, b))
        default:
            let values = inputs.map { value -> LlamaValue in
                switch value {
                case let .floats(t): return .floats(t)
                case let .integers(t): return .integers(t.data, shape: t.shape)
                }
            }
            return .floats(try LlamaForward(source: llama, ops: PyTorchLlamaOps()).node(node.path, inputs: values))
        }
    }
}
