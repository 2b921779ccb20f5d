import Foundation
import ParityModels

/// A metric that exceeded its limit.
public struct Violation: Equatable, Sendable {
    public let metric: String
    public let value: Double
    public let limit: Double
    public var description: String { "\(metric) \(formatNumber(value)) > \(formatNumber(limit))" }
}

/// The limits a layer's output must meet, and why these numbers.
public struct Tolerance: Equatable, Sendable {
    /// ‖a − b‖ / ‖b‖ at most this.
    public let maxRelL2: Double
    /// max |a − b| at most this × max |b| (the golden's scale at the layer), so one limit serves layers whose
    /// activations are 2 and layers whose logits are 20.
    public let maxAbsOverScale: Double
    public let reason: String

    public func violations(_ m: LayerMetrics) -> [Violation] {
        var out: [Violation] = []
        if m.relL2 > maxRelL2 { out.append(Violation(metric: "rel L2", value: m.relL2, limit: maxRelL2)) }
        let absLimit = maxAbsOverScale * m.goldenMaxAbs
        if m.maxAbs > absLimit { out.append(Violation(metric: "max abs", value: m.maxAbs, limit: absLimit)) }
        return out
    }
}

/// Tolerances for one (format, variant), e.g. (safetensors, f16). Every number carries its reason.
public struct TolerancePolicy: Sendable {
    public let format: String
    public let variant: String
    public let tolerance: Tolerance

    public func tolerance(for layer: LayerSpec) -> Tolerance { tolerance }

    /// The policies Parity knows. An unknown (format, variant) has none, and then nothing is called a pass or a
    /// first divergence (Model Explorer's rule: no threshold is invented).
    public static func lookup(format: String, variant: String) -> TolerancePolicy? {
        switch (format, variant) {
        case ("safetensors", "f32"):
            return TolerancePolicy(format: format, variant: variant, tolerance: Tolerance(
                maxRelL2: 1e-5, maxAbsOverScale: 1e-5,
                reason: "f32 weights, f32 compute: only the summation order differs from PyTorch (OpenBLAS vs oneDNN). "
                    + "Random-walk rounding error of a length-K dot product is about sqrt(K)·2^-24 = 1.7e-6 for K = 784; "
                    + "1e-5 leaves ~6x headroom and sits 1000x below the 1e-2 that a 1% weight error causes."))
        case ("safetensors", "f16"):
            return TolerancePolicy(format: format, variant: variant, tolerance: Tolerance(
                maxRelL2: 2e-3, maxAbsOverScale: 4e-3,
                reason: "weights rounded to f16 (unit roundoff 2^-11 = 4.9e-4, RMS relative error 2.8e-4 per weight), "
                    + "then f32 compute as PyTorch does after loading: output rel L2 is about 3e-4 per layer and adds across "
                    + "layers; 2e-3 is 4x the per-weight bound. max abs: 8x the f16 unit roundoff of the layer's scale."))
        case ("safetensors", "bf16"):
            return TolerancePolicy(format: format, variant: variant, tolerance: Tolerance(
                maxRelL2: 1.6e-2, maxAbsOverScale: 3.2e-2,
                reason: "weights rounded to bf16 (unit roundoff 2^-8 = 3.9e-3, RMS relative error 2.3e-3 per weight), f32 compute: "
                    + "rel L2 1.6e-2 is 4x the per-weight bound; max abs: 8x the bf16 unit roundoff of the layer's scale."))
        default:
            return nil
        }
    }
}

/// Numbers in reports: 3 significant digits, scientific when small or large.
public func formatNumber(_ x: Double) -> String {
    if x.isNaN { return "nan" }
    if x.isInfinite { return x > 0 ? "inf" : "-inf" }
    if x == 0 { return "0" }
    let magnitude = abs(x)
    if magnitude >= 1e-2 && magnitude < 1e4 { return String(format: "%.4g", x) }
    return String(format: "%.2e", x)
}
