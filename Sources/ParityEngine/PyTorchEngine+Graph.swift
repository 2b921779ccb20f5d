import ParityCore
import ParityModels

/// The PyTorch engine as a graph engine: image layers run as before (`apply`); on a Hugging Face Llama
/// checkpoint every other node runs with transformers' float32 semantics (`LlamaGraphEngine.pytorch`: `PyTorchLlamaOps`
/// over `PyTorchLlamaWeights`, the checkpoint read as `load_state_dict` reads it).
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
        var source = llama
        source.overrides = overrides
        return try LlamaGraphEngine.pytorch(source).run(node, inputs: inputs)
    }
}

extension PyTorchEngine: ParameterOverridingEngine {
    public func referenceParameter(_ name: String) -> Tensor? {
        if let override = overrides[name] { return override }
        guard let entry = weights.entry(named: name) else { return nil }
        do { return try weights.tensor(entry) } catch { return nil }
    }

    public func overridingParameters(_ overrides: [String: Tensor]) -> PyTorchEngine { overriding(overrides) }
}
