import ParityCore
import ParityModels

/// Called with each module's output, named by the reference module name, already in the reference layout.
public typealias ActivationHook = (_ layer: String, _ output: Tensor) -> Void

/// A node (layer) could not run on this file's weights: it is reported as failed with this reason, and the
/// nodes that depend on it as not run. (A file that is unreadable is a `ParityError` instead: bad input, exit 2.)
public struct LayerExecutionError: Error, CustomStringConvertible {
    public let layer: String
    public let reason: String
    public init(layer: String, reason: String) { self.layer = layer; self.reason = reason }
    public var description: String { "\(layer): \(reason)" }
}

/// A runtime for one converted file, computing graph nodes as that format's runtime computes them. An engine
/// supplies only the ops; `GraphExecutor` runs a whole graph (in topological order, calling the hooks) or one node
/// on its golden inputs, the same way for every engine.
public protocol GraphEngine {
    /// Human-readable description of what it emulates (printed in reports).
    var semantics: String { get }
    /// Runs one node on the values it reads — `node.inputs` in order, then `node.implicitInputs` — each in the
    /// reference layout, and returns its value in the reference layout. Never called for a composite module
    /// (`GraphOp.module`): its value is its `output` node's. An op the engine does not implement, or weights the
    /// runtime would refuse, throw `LayerExecutionError` naming the node.
    func run(_ node: GraphNode, inputs: [GraphValue]) throws(LayerExecutionError) -> GraphValue
}

/// A graph engine whose parameters (by reference name) can be read and replaced, so that `layer-diff` can test
/// hypotheses about a failing node of any graph ("the rows of k_proj are in llama.cpp's permuted order") by
/// running the node again on its golden inputs with the parameter rearranged.
public protocol ParameterOverridingEngine: GraphEngine {
    /// A parameter as the file stores it under its reference name, widened to float32 (nil: absent or not dense).
    func referenceParameter(_ name: String) -> Tensor?
    /// The same engine with some parameters (by reference name) replaced by float32 values.
    func overridingParameters(_ overrides: [String: Tensor]) -> Self
}

/// A graph engine for Parity's sequential image layers: it computes `GraphOp.layer` nodes, one float input each.
public protocol FormatEngine: GraphEngine {
    /// Runs the layer with reference name `layer` on an input in the reference layout and returns its output in
    /// the reference layout. Used both for the end-to-end run and for feeding a layer its golden input.
    func apply(_ layer: LayerSpec, to input: Tensor) throws(LayerExecutionError) -> Tensor
    /// The last layer's output only (no hook), each element as `forward(_:input:hook:)` computes it; an engine may
    /// run the batch in slices (PyTorchEngine does, so a slice's activations stay in cache). Benchmarks time this.
    func forwardOutput(_ layers: [LayerSpec], input: Tensor) throws(LayerExecutionError) -> Tensor
}

extension FormatEngine {
    public func run(_ node: GraphNode, inputs: [GraphValue]) throws(LayerExecutionError) -> GraphValue {
        guard case let .layer(layer) = node.op else {
            throw LayerExecutionError(layer: node.name, reason: "op \(node.op.label) is not computed by \(semantics)")
        }
        guard inputs.count == 1, let x = inputs[0].floats else {
            throw LayerExecutionError(layer: node.name, reason: "a \(layer.op) layer reads one float tensor, got \(inputs.map(\.typeName))")
        }
        return .floats(try apply(layer, to: x))
    }

    public func forwardOutput(_ layers: [LayerSpec], input: Tensor) throws(LayerExecutionError) -> Tensor {
        try forward(layers, input: input, hook: { _, _ in })
    }

    /// Runs every layer in order, calling `hook` after each. Stops at the first layer that cannot run.
    public func forward(_ layers: [LayerSpec], input: Tensor, hook: ActivationHook) throws(LayerExecutionError) -> Tensor {
        var x = input
        for layer in layers {
            x = try apply(layer, to: x)
            hook(layer.name, x)
        }
        return x
    }
}

/// A layer parameter as the converted file stores it, in the engine's own naming and row-major layout: what
/// diagnosis rearranges to test the mistakes people make.
public struct StoredParameter: Sendable {
    public enum Role: Sendable { case weight, bias }
    public let name: String
    public let role: Role
    /// Values in the stored (row-major) shape, which may differ from `expectedShape` when the file is wrong.
    public let values: Tensor
    /// The shape the runtime requires.
    public let expectedShape: [Int]
    /// The stored dtype and bytes when they are 16-bit floats (to test a dtype read as the other one).
    public let raw16: RawTensor?
    /// For a convolution weight: the axes of `expectedShape` holding the kernel height and width.
    public let spatialAxes: (Int, Int)?

    public init(name: String, role: Role, values: Tensor, expectedShape: [Int], raw16: RawTensor? = nil, spatialAxes: (Int, Int)? = nil) {
        self.name = name
        self.role = role
        self.values = values
        self.expectedShape = expectedShape
        self.raw16 = raw16
        self.spatialAxes = spatialAxes
    }
}

/// An engine whose parameters can be inspected and replaced, so that `layer-diff` can test hypotheses about a
/// failing layer ("the matrix is transposed") by running the layer again with the parameter rearranged.
public protocol DiagnosableEngine: FormatEngine {
    /// The layer's parameters as stored (empty when the layer has none or they cannot be rearranged, e.g. packed).
    func storedParameters(of layer: LayerSpec) -> [StoredParameter]
    /// The same engine with some parameters (by `StoredParameter.name`) replaced by float32 values.
    func overriding(_ overrides: [String: Tensor]) -> Self
}

extension RawTensor {
    /// The tensor as a 16-bit float record for `StoredParameter.raw16`, if it is one.
    public var asRaw16: RawTensor? { dtype == .f16 || dtype == .bf16 ? self : nil }
}
