import Foundation
import ParityFormats
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
        // A NaN metric never passes (comparisons with NaN are false, so test for it explicitly).
        if m.relL2.isNaN || m.maxAbs.isNaN { return [Violation(metric: "rel L2", value: .nan, limit: maxRelL2)] }
        if m.relL2 > maxRelL2 { out.append(Violation(metric: "rel L2", value: m.relL2, limit: maxRelL2)) }
        let absLimit = maxAbsOverScale * m.goldenMaxAbs
        if m.maxAbs > absLimit { out.append(Violation(metric: "max abs", value: m.maxAbs, limit: absLimit)) }
        return out
    }
}

/// Tolerances for one (format, variant) on one model, layer by layer. Every number carries its reason.
public struct TolerancePolicy: Sendable {
    public let format: String
    public let variant: String
    /// Keyed by reference layer name.
    public let perLayer: [String: Tolerance]

    public func tolerance(for layer: LayerSpec) -> Tolerance? { perLayer[layer.name] }

    /// The distinct reasons, in first-use order, for the report.
    public func reasons(in order: [String]) -> [String] {
        var seen: [String] = []
        for name in order { if let r = perLayer[name]?.reason, !seen.contains(r) { seen.append(r) } }
        return seen
    }

    /// f32 weights and f32 compute: only the summation order differs from PyTorch.
    static let float32 = Tolerance(
        maxRelL2: 1e-5, maxAbsOverScale: 1e-5,
        reason: "f32 weights, f32 compute: only the summation order differs from PyTorch (OpenBLAS vs oneDNN). "
            + "Random-walk rounding error of a length-K dot product is about sqrt(K)*2^-24 = 1.7e-6 for K = 784; "
            + "1e-5 leaves ~6x headroom and sits 1000x below the 1e-2 that a 1% weight error causes.")

    /// One operand of every product rounded to f16.
    static let float16Weights = Tolerance(
        maxRelL2: 2e-3, maxAbsOverScale: 4e-3,
        reason: "weights rounded to f16 (unit roundoff 2^-11 = 4.9e-4, RMS relative error 2.8e-4 per weight), "
            + "then f32 compute as PyTorch does after loading: output rel L2 is about 3e-4 per layer and adds across "
            + "layers; 2e-3 is 4x the per-weight bound. max abs: 8x the f16 unit roundoff of the layer's scale.")

    static let bfloat16Weights = Tolerance(
        maxRelL2: 1.6e-2, maxAbsOverScale: 3.2e-2,
        reason: "weights rounded to bf16 (unit roundoff 2^-8 = 3.9e-3, RMS relative error 2.3e-3 per weight), f32 compute: "
            + "rel L2 1.6e-2 is 4x the per-weight bound; max abs: 8x the bf16 unit roundoff of the layer's scale.")

    /// Both operands of every product rounded to f16 (ggml: F16 im2col, or F16 weights with F16 activations).
    static let float16Both = Tolerance(
        maxRelL2: 3e-3, maxAbsOverScale: 6e-3,
        reason: "ggml rounds both operands to f16 before multiplying (conv_2d's im2col is F16 and the kernel is converted "
            + "to its vec_dot_type F16; F16 weights get F16 activations): two roundings of 2^-11 per product, RMS about "
            + "4e-4 per layer; 3e-3 is 3x the two-operand bound 2*2^-11, max abs 12x the f16 unit roundoff of the scale.")

    static let bfloat16Both = Tolerance(
        maxRelL2: 2.4e-2, maxAbsOverScale: 4.8e-2,
        reason: "ggml rounds weights and activations to bf16 (BF16 vec_dot_type; a BF16 kernel makes im2col BF16): two "
            + "roundings of 2^-8 per product; 2.4e-2 is 3x the two-operand bound 2*2^-8, max abs 12x bf16's unit roundoff.")

    /// A Linear layer whose weights are MLX-quantized. The expected error follows from the grid: for affine
    /// b-bit groups of Gaussian weights the range spans about 5σ, the step is 5σ/(2^b − 1) and the RMS rounding
    /// error step/√12, i.e. a relative weight error of 1.44/(2^b − 1); a layer's output error is of the same
    /// order. The FP4 formats (E2M1 values: 0, .5, 1, 1.5, 2, 3, 4, 6) space their top values 1/3 apart, which
    /// gives 8–10 % RMS relative error on Gaussian weights (measured with MLX on these models: 9 %).
    /// The limits are 1.5x these estimates: wide enough for the quantization a format implies, far below the
    /// ~100 % error of a wrong scale, a misordered pack or a transposed weight.
    static func mlxQuantized(_ q: MLXQuantParameters) -> Tolerance? {
        let expected: Double
        switch q.mode {
        case "affine": expected = 1.44 / Double((1 << q.bits) - 1)
        case "mxfp4", "nvfp4": expected = 0.10
        case "mxfp8": expected = 0.03  // E4M3: 3 mantissa bits, relative spacing 2^-3, RMS ~2^-3/√12·2 ≈ 2.5 %
        default: return nil
        }
        let limit = 1.5 * expected
        return Tolerance(maxRelL2: limit, maxAbsOverScale: 2 * limit,
                         reason: "\(q.mode) \(q.bits)-bit, group \(q.groupSize): expected RMS relative error of the quantized weights "
                            + "about \(formatNumber(expected)) (\(q.mode == "affine" ? "1.44/(2^b - 1) for Gaussian groups" : "the grid's spacing")); "
                            + "rel L2 limit 1.5x that, max abs 2x the limit times the layer's scale; a wrong scale or packing errs by ~100 %")
    }

    /// The policies Parity knows. An unknown (format, variant) has none, and then nothing is called a pass or a
    /// first divergence (Model Explorer's rule: no threshold is invented).
    /// `layerTypes`: each parametric layer's weight storage type where a file mixes types (GGUF), by layer name.
    public static func lookup(format: String, variant: String, layers: [LayerSpec], layerTypes: [String: String] = [:]) -> TolerancePolicy? {
        var perLayer: [String: Tolerance] = [:]
        switch (format, variant) {
        case ("safetensors", "f32"): for l in layers { perLayer[l.name] = float32 }
        case ("safetensors", "f16"): for l in layers { perLayer[l.name] = float16Weights }
        case ("safetensors", "bf16"): for l in layers { perLayer[l.name] = bfloat16Weights }
        case ("gguf", _):
            // ggml rounds both operands of a product when a weight is F16/BF16 (activations go to the vec_dot
            // type). ggml 0.15 convolves in the kernel's type; emulating older ggml ("+im2col-f16") rounds the
            // conv operands to F16 too. Error enters at the first layer that rounds; later layers inherit it.
            // A file mixing types ("mixed(bf16,f32)") is judged layer by layer from each layer's weight type.
            let parts = variant.split(separator: "+").map(String.init)
            let legacyIm2col = parts.dropFirst().contains("im2col-f16")
            guard let dtype = parts.first, parts.count == 1 || (parts.count == 2 && legacyIm2col) else { return nil }
            func tolerance(forType type: String) -> Tolerance? {
                switch type { case "f32": return float32; case "f16": return float16Both; case "bf16": return bfloat16Both; default: return nil }
            }
            var current = float32
            for l in layers {
                let type = dtype.hasPrefix("mixed(") ? (layerTypes[l.name] ?? "f32") : dtype
                guard let own = tolerance(forType: type) else { return nil }
                if l.hasParameters, own.maxRelL2 > current.maxRelL2 { current = own }
                if case .conv2d = l, legacyIm2col, current.maxRelL2 < float16Both.maxRelL2 { current = float16Both }
                perLayer[l.name] = current
            }
        case ("mlx", _):
            // mlx.nn promotes half-precision weights meeting float32 inputs to float32: the error is the weights'
            // rounding alone, as for safetensors. Quantized Linear layers add their quantization error, which
            // every later layer inherits.
            guard let (dtype, quantization) = try? MLXSupport.parse(variant: variant) else { return nil }
            let base: Tolerance = dtype == "f32" ? float32 : dtype == "f16" ? float16Weights : dtype == "bf16" ? bfloat16Weights : float32
            var current = base
            for l in layers {
                if case .linear = l, let q = quantization {
                    guard let quantized = mlxQuantized(q) else { return nil }
                    current = quantized
                }
                perLayer[l.name] = current
            }
        default:
            return nil
        }
        return TolerancePolicy(format: format, variant: variant, perLayer: perLayer)
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
