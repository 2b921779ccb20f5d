import ParityCore
import ParityModels

/// Called with each module's output, named by the reference module name, already in the reference layout.
public typealias ActivationHook = (_ layer: String, _ output: Tensor) -> Void

/// A layer could not run on this file's weights: the layer is reported as failed with this reason, and the
/// layers after it as not run. (A file that is unreadable is a `ParityError` instead: bad input, exit 2.)
public struct LayerExecutionError: Error, CustomStringConvertible {
    public let layer: String
    public let reason: String
    public init(layer: String, reason: String) { self.layer = layer; self.reason = reason }
    public var description: String { "\(layer): \(reason)" }
}

/// A runtime for one converted file, following that format's own semantics.
public protocol FormatEngine {
    /// Human-readable description of what it emulates (printed in reports).
    var semantics: String { get }
    /// Runs the layer with reference name `layer` on an input in the reference layout and returns its output in
    /// the reference layout. Used both for the end-to-end run and for feeding a layer its golden input.
    func apply(_ layer: LayerSpec, to input: Tensor) throws(LayerExecutionError) -> Tensor
}

extension FormatEngine {
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
