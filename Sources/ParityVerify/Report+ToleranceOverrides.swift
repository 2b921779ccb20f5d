import Foundation
import ParityCore

/// A user's tolerance for the nodes whose names match a pattern (a matrix config's `tolerances`): it replaces the
/// policy's limit at those nodes and the node is judged again on the metrics already measured.
public struct ToleranceOverride: Hashable, Sendable {
    /// fnmatch(3) pattern over golden node names (`*` matches across dots: `layers.*.mlp*`).
    public let pattern: String
    public let maxRelL2: Double
    public let maxAbsOverScale: Double
    /// Why these numbers (shown next to the limit in reports, as every tolerance's reason is).
    public let reason: String

    public init(pattern: String, maxRelL2: Double, maxAbsOverScale: Double, reason: String) {
        self.pattern = pattern
        self.maxRelL2 = maxRelL2
        self.maxAbsOverScale = maxAbsOverScale
        self.reason = reason
    }

    public func matches(_ node: String) -> Bool { fnmatch(pattern, node, 0) == 0 }

    var tolerance: Tolerance { Tolerance(maxRelL2: maxRelL2, maxAbsOverScale: maxAbsOverScale, reason: "config override (\(pattern)): \(reason)") }
}

extension VerificationReport {
    /// Re-judges every compared node a pattern matches against the override's limits (the last matching override
    /// wins). Nodes that could not be compared (missing, wrong shape, non-finite, not run) keep their status: an
    /// override loosens a limit, it never excuses a broken node. Argmax margins and logit limits are left as the
    /// policy set them.
    public mutating func applyToleranceOverrides(_ overrides: [ToleranceOverride]) {
        guard !overrides.isEmpty else { return }
        layers = layers.map { layer in
            guard let override = overrides.last(where: { $0.matches(layer.name) }), let metrics = layer.metrics else { return layer }
            switch layer.status {
            case .pass, .fail, .unjudged: break
            default: return layer
            }
            let tolerance = override.tolerance
            let violations = tolerance.violations(metrics)
            var judged = LayerResult(name: layer.name, op: layer.op, order: layer.order, input: layer.input, inputs: layer.inputs, shape: layer.shape,
                                     metrics: metrics, tolerance: tolerance, status: violations.isEmpty ? .pass : .fail(violations),
                                     growth: layer.growth, noiseFloorRelL2: layer.noiseFloorRelL2)
            judged.isolated = layer.isolated
            judged.isolatedStatus = layer.isolatedStatus
            judged.diagnosis = layer.diagnosis
            judged.diagnosesTried = layer.diagnosesTried
            return judged
        }
    }
}
