import ParityCore
import ParityModels

/// Called with each node and its value, in the reference layout, as the executor computes it.
public typealias GraphHook = (_ node: GraphNode, _ value: GraphValue) -> Void

/// Runs a model graph for any engine: every node in topological order, composite modules resolved to their
/// `output` node's value, the hook called after each node. Engines supply only the ops (`GraphEngine.run`).
public enum GraphExecutor {
    /// Runs the whole graph on the model inputs (by path, `/inputs/input_ids`). Returns every node's value by path.
    /// Stops at the first node that cannot run: its error is thrown, the values computed so far were hooked.
    @discardableResult
    public static func run(_ graph: ModelGraph, engine: GraphEngine, inputs: [String: GraphValue],
                           hook: GraphHook = { _, _ in }) throws(LayerExecutionError) -> [String: GraphValue] {
        var values: [String: GraphValue] = [:]
        for input in graph.inputs {
            guard let value = inputs[input.path] else {
                throw LayerExecutionError(layer: input.path, reason: "model input \(input.path) was not given")
            }
            try check(value, is: input)
            values[input.path] = value
        }
        for node in graph.nodes {
            let value = try evaluate(node, engine: engine) { values[$0] }
            values[node.path] = value
            hook(node, value)
        }
        return values
    }

    /// One node fed the given values (the golden datasets, by path) for everything it reads: the node's own
    /// error, not the error it inherits. A composite module (a decoder layer) runs its members, each reading its
    /// own computed values inside the module and the given values at the module's boundary.
    public static func runIsolated(_ node: GraphNode, in graph: ModelGraph, engine: GraphEngine,
                                   values given: (String) -> GraphValue?) throws(LayerExecutionError) -> GraphValue {
        guard node.isComposite else { return try evaluate(node, engine: engine, lookup: given) }
        var computed: [String: GraphValue] = [:]
        let boundary = Set(node.inputs)
        for member in graph.members(of: node) {
            computed[member.path] = try evaluate(member, engine: engine) { path in
                boundary.contains(path) ? given(path) : (computed[path] ?? given(path))
            }
        }
        return try evaluate(node, engine: engine) { computed[$0] ?? given($0) }
    }

    static func evaluate(_ node: GraphNode, engine: GraphEngine, lookup: (String) -> GraphValue?) throws(LayerExecutionError) -> GraphValue {
        if case let .module(_, output) = node.op {
            guard let value = lookup(output) else {
                throw LayerExecutionError(layer: node.name, reason: "its output node \(GraphNode.name(forPath: output)) has no value")
            }
            return value
        }
        var arguments: [GraphValue] = []
        for path in node.inputs + node.implicitInputs {
            guard let value = lookup(path) else {
                throw LayerExecutionError(layer: node.name, reason: "its input \(path) has no value")
            }
            arguments.append(value)
        }
        return try engine.run(node, inputs: arguments)
    }

    static func check(_ value: GraphValue, is input: GraphInput) throws(LayerExecutionError) {
        let matches: Bool
        switch (input.type, value) {
        case (.float32, .floats), (.int32, .integers): matches = true
        default: matches = false
        }
        guard matches else {
            throw LayerExecutionError(layer: input.path, reason: "model input \(input.path) must be \(input.type.rawValue), got \(value.typeName)")
        }
    }
}
