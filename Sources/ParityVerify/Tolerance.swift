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

    /// The tolerance of a graph node, by report name (`conv1`, `attention/model.layers.0.self_attn/probs`).
    public func tolerance(forNode name: String) -> Tolerance? { perLayer[name] }

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
    /// ~100 % error of a wrong scale, a misordered pack or a transposed weight. 1-bit affine has none: its
    /// expected error (144 %) is that of a broken file, so no limit could tell the two apart.
    static func mlxQuantized(_ q: MLXQuantSpec) -> Tolerance? {
        let expected: Double
        switch q.mode {
        case .affine: expected = 1.44 / Double((1 << q.bits) - 1)
        case .mxfp4, .nvfp4: expected = 0.10
        case .mxfp8: expected = 0.03  // E4M3: 3 mantissa bits, relative spacing 2^-3, RMS ~2^-3/√12·2 ≈ 2.5 %
        }
        guard expected < 0.5 else { return nil }
        let limit = 1.5 * expected
        return Tolerance(maxRelL2: limit, maxAbsOverScale: 2 * limit,
                         reason: "MLX \(q.label): expected RMS relative error of the quantized weights "
                            + "about \(formatNumber(expected)) (\(q.mode == .affine ? "1.44/(2^b - 1) for Gaussian groups" : "the grid's spacing")); "
                            + "rel L2 limit 1.5x that, max abs 2x the limit times the layer's scale; a wrong scale or packing errs by ~100 %")
    }

    /// A ggml block type: the expected RMS relative error of the stored weights (`weightError`) and of the
    /// activations, which ggml's mul_mat quantizes to the type's vec_dot_type (Q8_0, Q8_1 or Q8_K) before the
    /// integer dot products (`activationError`). Rounding to a grid of step s errs by s/√12 RMS; the step follows
    /// from each type's block layout (ggml-common.h / the reference quantizers in ggml-quants.c), expressed in
    /// units of the block's standard deviation σ using the mean extremes of Gaussian blocks (numerically:
    /// E max|x| = 2.08σ for 16 values, 2.35σ for 32, 3.05σ for 256; E(max − min) = 3.53σ for 16, 4.14σ for 32):
    ///
    /// | type | grid | step | weight error |
    /// |---|---|---|---|
    /// | q8_0 | d = amax/127, q ∈ −127…127, blocks of 32 | 2.35σ/127 | 0.53 % |
    /// | q4_0, q5_0 | d = max/−8 (−16), q ∈ −8…7 (−16…15), blocks of 32 | 2.35σ/8 (/16) | 8.5 % (4.2 %) |
    /// | q4_1, q5_1 | min + d·q, d = (max − min)/15 (/31), blocks of 32 | 4.14σ/15 (/31) | 8.0 % (3.9 %) |
    /// | q2_K | min + d·q, 2 bits, sub-blocks of 16 | 3.53σ/3 | 34 % |
    /// | q3_K | d·q, q ∈ −4…3, sub-blocks of 16 | 2.08σ/4 | 15 % |
    /// | q4_K, q5_K | min + d·q, 4 (5) bits, sub-blocks of 32 | 4.14σ/15 (/31) | 8.0 % (3.9 %) |
    /// | q6_K | d·q, q ∈ −32…31, sub-blocks of 16 | 2.08σ/32 | 1.9 % |
    /// | mxfp4 | E2M1 values × a power of two per 32 | top values 1/3 apart | 10 % (as MLX's fp4) |
    ///
    /// The k-quants also store their sub-block scales in 4–8 bits; their reference quantizers search for the
    /// scale that minimises the error, which more than pays for that (measured on Gaussian rows, see
    /// GGUFToleranceTests). Activations: a block of 32 (Q8_0, Q8_1) or 256 (Q8_K) is scaled by amax/127; real
    /// activations (ReLU outputs, images) are more peaked than a Gaussian, so a crest factor amax/RMS of 4
    /// (5 for 256) is assumed: 4/(127·√12) = 0.91 % (1.14 %). A layer's output error is about the quadrature sum
    /// of the two; the limit is 2x that (trained weights have heavier tails than Gaussians, and a trained
    /// layer's output can partly cancel), still far below the ~100 % of a wrong scale, packing or layout.
    public static func ggmlBlockErrors(_ type: GGMLType) -> (weight: Double, activation: Double)? {
        let weight: Double
        switch type {
        case .q8_0: weight = 0.0053
        case .q4_0: weight = 0.085
        case .q5_0: weight = 0.042
        case .q4_1, .q4_K: weight = 0.080
        case .q5_1, .q5_K: weight = 0.039
        case .q2_K: weight = 0.34
        case .q3_K: weight = 0.15
        case .q6_K: weight = 0.019
        case .mxfp4: weight = 0.10
        default: return nil
        }
        let activation: Double
        switch type.vecDotType {
        case .q8_0, .q8_1: activation = 4 / (127 * 12.0.squareRoot())
        case .q8_K: activation = 5 / (127 * 12.0.squareRoot())
        default: return nil
        }
        return (weight, activation)
    }

    static func ggmlBlock(_ type: GGMLType) -> Tolerance? {
        guard let (weight, activation) = ggmlBlockErrors(type) else { return nil }
        let expected = (weight * weight + activation * activation).squareRoot()
        let limit = 2 * expected
        return Tolerance(maxRelL2: limit, maxAbsOverScale: 2 * limit,
                         reason: "ggml \(type.name) weights (expected RMS relative error \(formatNumber(weight)) from the block grid) with "
                            + "activations quantized to \(type.vecDotType.name) (\(formatNumber(activation)), amax/127 per block): output error "
                            + "about \(formatNumber(expected)) in quadrature; rel L2 limit 2x that, max abs 2x the limit times the layer's scale; "
                            + "a wrong scale, packing or layout errs by ~100 %")
    }

    /// The tolerance for one layer's own stored weights in a format; nil where Parity has no derivation.
    static func own(_ storage: WeightStorage, format: Variant.Format) -> Tolerance? {
        switch (format, storage) {
        case (.gguf, let .ggml(type)):
            switch type {
            case .f32: return float32
            case .f16: return float16Both
            case .bf16: return bfloat16Both
            default: return ggmlBlock(type)
            }
        case (.safetensors, let .float(dtype)), (.mlx, let .float(dtype)):
            // PyTorch and mlx.nn widen half-precision weights to float32 before the product: weight rounding only.
            switch dtype {
            // F64 weights are at least as precise as f32: PyTorch's load_state_dict rounds them into the f32
            // parameters, and mlx.nn computes with them as they are; either way the f32 limit holds.
            case .f32, .f64: return float32
            case .f16: return float16Weights
            case .bf16: return bfloat16Weights
            default: return nil
            }
        case (.mlx, let .mlxQuantized(q)):
            return mlxQuantized(q)
        default:
            return nil
        }
    }

    /// Derives a policy layer by layer from what each layer's weights actually are in the file (`stored`), not
    /// from the variant's name: an f16 Linear in a 4-bit MLX file gets f16's limit. Error enters at a layer with
    /// weights and every later layer inherits it: float limits (which already allow for accumulation) carry the
    /// largest so far; a quantized layer's limit adds in quadrature to the inherited one (independent errors).
    /// A layer whose storage has no derivation has no tolerance, and nor does anything after it (it is unjudged,
    /// never passed or failed). Returns nil when no layer can be judged.
    public static func derive(format: Variant.Format, variant: String, layers: [LayerSpec], stored: StoredWeights) -> TolerancePolicy? {
        var perLayer: [String: Tolerance] = [:]
        var current: Tolerance? = float32
        for l in layers {
            if l.hasParameters {
                guard let storage = stored.byLayer[l.name], let own = own(storage, format: format), let inherited = current else {
                    current = nil
                    continue
                }
                switch storage {
                case .ggml(let t) where t.isQuantized: current = inherited.addingInQuadrature(own)
                case .mlxQuantized: current = inherited.addingInQuadrature(own)
                default: current = own.maxRelL2 > inherited.maxRelL2 ? own : inherited
                }
            }
            // ggml up to d99724f built conv_2d's im2col in F16 (both operands rounded to f16).
            if case .conv2d = l, stored.legacyIm2col, let c = current, c.maxRelL2 < float16Both.maxRelL2 { current = float16Both }
            if let current { perLayer[l.name] = current }
        }
        guard !perLayer.isEmpty else { return nil }
        return TolerancePolicy(format: format.rawValue, variant: variant, perLayer: perLayer)
    }
}

extension Tolerance {
    /// This (inherited) limit combined with a new layer's independent error: limits add in quadrature.
    func addingInQuadrature(_ other: Tolerance) -> Tolerance {
        if maxRelL2 <= TolerancePolicy.float32.maxRelL2 { return other }
        func rss(_ a: Double, _ b: Double) -> Double { (a * a + b * b).squareRoot() }
        return Tolerance(maxRelL2: rss(maxRelL2, other.maxRelL2), maxAbsOverScale: rss(maxAbsOverScale, other.maxAbsOverScale),
                         reason: other.reason + "; added in quadrature to the limit inherited from earlier layers (\(formatNumber(maxRelL2)))")
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
