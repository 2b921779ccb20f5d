import ParityCore
import ParityFormats

/// What a quantizer of one storage type may legitimately do to a block of reference values, as bounds that a
/// corrupted block (a changed code, a scaled or shifted scale/min) violates by construction.
///
/// Every block type stores, per scale group, values `y = s·c + m` with codes c from a grid (integers lo...hi,
/// or a table such as E2M1). Three rules, each with the reason it holds for every real quantizer:
///
/// 1. **Nearest code.** Every quantizer Parity knows (ggml's reference and imatrix quantizers, gguf-py's,
///    `mx.quantize`) picks, for each element, the grid value nearest to it for the scale it settled on:
///    `round`, `nearest_int`, `(int)(x·id + 8.5)` or an argmin over the table. The k-quants recompute the codes
///    with the final stored sub-scales; Q4_0…Q8_0 and MLX affine compute them with the unrounded float scale
///    and store the scale rounded (f16 / the weight dtype), which moves a value by at most |c|·(half an ulp of
///    the scale) + half an ulp of the offset. Inputs may have been rounded to bf16 first (convert → f16/bf16
///    GGUF → llama-quantize; MLX casts before quantizing): at most 2⁻⁹·|x|. So
///    `|x − y| ≤ dist(x, grid) + slack`, with slack = 2⁻⁹|x| + |c|·δs + δm + float rounding (4·2⁻²⁴ of the
///    magnitudes). A changed code is farther than the nearest grid value; a scaled or shifted group moves every
///    value off its nearest code.
/// 2. **Clipping.** A value beyond the grid's end may only be clipped by a bounded amount: `clipSteps` gaps
///    of the grid at that end, plus |c_end|·(the quantum of the stored scale) + the quantum of the stored min
///    (a k-quant's 6-bit sub-scale moves its group's scale by up to d/2). A halved scale clips the group's
///    large values by far more.
/// 3. **Scale tightness.** The group's scale may exceed the nominal one — the smallest that reaches the group's
///    values, `amax / c_ref` (symmetric types) or `(max − min) / (2^b − 1)` (affine types) — by at most
///    `maxScaleRatio` (+ the scale's quantum): a doubled scale is out of bounds even where the codes were
///    recomputed for it.
public struct QuantBoundPolicy: Sendable {
    public enum Nominal: Sendable {
        /// Symmetric: s_nom = amax / code.
        case amax(code: Float)
        /// Affine: s_nom = (max − min) / levels; `includeZero`: the grid is made to include 0 (k-quants force
        /// min ≤ 0), so the range is max(max, 0) − min(min, 0).
        case range(levels: Float, includeZero: Bool)
    }

    public let type: String
    public let groupLength: Int
    public let grid: QuantGrid
    public let nominal: Nominal
    public let maxScaleRatio: Float
    public let clipSteps: Float
    /// The reason for each number, printed in reports.
    public let derivation: String
    /// A floor the quantizer puts under its scale (MLX affine: 1e-7, rounded to the weight dtype ≤ 1.2e-7).
    public var minimumScale: Float = 0
    /// The scale a quantizer writes when amax/top underflows to zero in f16 (MLX mxfp4/mxfp8: E8M0 127 = 1.0).
    public var underflowScale: Float?
    /// The largest scale the format can store (nvfp4: E4M3 448): a group that needs more is clipped without bound.
    public var maxScale: Float?
    /// Steps a code may sit beyond the nearest one: importance-matrix quantizers (Q4_0/Q5_0 `make_qx_quants`,
    /// Q4_1/Q5_1 `make_qkx3_quants`) choose the codes for a trial scale and store the least-squares refit
    /// scale (and min) of those codes, which moves them off the nearest level (measured up to 1.0 step).
    public var refitSteps: Float = 0
    /// Blocks whose f16 scale is subnormal (values below ~1e-3 per step) are beyond what those quantizers
    /// compute reliably (their weighted sums underflow): any code on the grid is allowed there, and the scale
    /// ratio is not judged. The error such a block can hide is below its grid's span (< 2e-3 absolute).
    public var subnormalScaleAnyCode = false
    /// Importance-matrix quantizers (every ggml type but Q8_0 and MXFP4 takes an imatrix) may give an element no
    /// importance, and then clip it without limit: an element stored at the grid's end code with its reference
    /// beyond that end is nearest rounding for the group's scale and is counted (a finding), not bounded.
    public var clipUnbounded = false
    /// The aggregate rule (with `refitSteps`): the RMS of (stored − reference) over a group's elements that are
    /// not clipped at the grid's end, in steps of the group's grid, may not exceed this (0: not applied). Nearest
    /// rounding gives ≤ ½ (≈ 0.29 for spread data); a least-squares refit moves a few codes by one step, but
    /// not every one: a one-level shift of every code gives ≈ 1.04, a min moved by ½ step ≈ 0.58.
    public var maxRMSSteps: Float = 0
    /// A per-block factor on `maxScaleRatio` read from the stored block (q3_K: the second-level refit of the
    /// sub-scales, see `gguf(.q3_K)`); nil: 1.
    public var blockScaleRatio: (@Sendable (UnsafeRawPointer) -> Float)?

    /// Relative rounding of a quantizer's input: bf16's unit roundoff 2⁻⁸ (8 significant bits), the coarsest dtype a
    /// pipeline casts to first (MLX also rounds amax/top and x/scale to the weight dtype).
    public static let inputRounding: Float = 0x1p-8

    public var ruleText: String {
        let nominalText: String
        switch nominal {
        case let .amax(code): nominalText = "amax/\(formatCode(code))"
        case let .range(levels, zero): nominalText = zero ? "(max(max,0)−min(min,0))/\(formatCode(levels))" : "(max−min)/\(formatCode(levels))"
        }
        return "each element at a nearest grid value (|x−y| ≤ dist(x, grid) + slack); clipping ≤ \(formatCode(clipSteps)) end gap(s); "
            + "scale ≤ \(formatNumber(Double(maxScaleRatio)))× \(nominalText)"
    }

    private func formatCode(_ v: Float) -> String { v == v.rounded() ? String(Int(v)) : String(describing: v) }

    // MARK: GGUF block types

    /// The bound for a ggml block type. The scale ratios and clip allowances: the reference quantizers'
    /// analytic ranges (ggml-quants.c), widened for the imatrix quantizers' scale searches, then checked
    /// against the largest values measured on real quantizers (WeightBoundsTests, README "Weight bounds").
    public static func gguf(_ type: GGMLType) -> QuantBoundPolicy? {
        guard let (length, grid) = GGMLQuants.groupStructure(type) else { return nil }
        switch type {
        case .q8_0:
            // d = amax/127 in every Q8_0 quantizer (ggml ignores an imatrix for Q8_0); stored as f16 (half an ulp,
            // added as the scale quantum) of an input possibly rounded to bf16 (×(1+2⁻⁸)). Nothing is clipped.
            return QuantBoundPolicy(type: type.name, groupLength: length, grid: grid, nominal: .amax(code: 127), maxScaleRatio: 1.002, clipSteps: 0.5,
                                    derivation: "q8_0: d = amax/127 (ggml, gguf-py; imatrix unused); f16 d (+ half an f16 ulp) of a bf16-rounded input (×(1+2⁻⁸)) → ratio ≤ 1.002 beyond those; no clipping (half a step)")
        case .q4_0, .q5_0:
            // Reference: d = max/−8 (−16): the max-magnitude value lands on the end code −8·d; the other end
            // clips to +7d (+15d), at most 1 step. imatrix (make_qx_quants) tries 1/d = (n ± 0.9)/max and refits by
            // least squares: another ≤ 0.9 step of clipping, ratio ≤ n/(n−0.9)·refit → 1.25, 2 steps.
            let n: Float = type == .q4_0 ? 8 : 16
            var policy = QuantBoundPolicy(type: type.name, groupLength: length, grid: grid, nominal: .amax(code: n), maxScaleRatio: 1.25, clipSteps: 4,
                                    derivation: "\(type.name): d = amax/\(Int(n)) (reference: the far end clips ≤ 1 step); imatrix scale search ±0.9/\(Int(n)) + least-squares refit → scale ≤ 1.25× nominal; an imatrix lets unimportant values clip (measured 3.4 steps) → clipping ≤ 4 steps; the refit leaves codes ≤ 1 step off the nearest (measured with ggml's imatrix path)")
            policy.refitSteps = 1
            policy.maxRMSSteps = rmsStepsRefit
            policy.clipUnbounded = true
            policy.subnormalScaleAnyCode = true
            return policy
        case .q4_1, .q5_1:
            let levels: Float = type == .q4_1 ? 15 : 31
            var policy = QuantBoundPolicy(type: type.name, groupLength: length, grid: grid, nominal: .range(levels: levels, includeZero: true), maxScaleRatio: 1.25, clipSteps: 2,
                                    derivation: "\(type.name): d = (max−min)/\(Int(levels)), m = min (reference, no clipping); imatrix make_qkx3_quants forces min ≤ 0 (so the nominal range includes 0), searches 1/d in (n ± 0.9)/range and refits scale and min → ≤ 1.25× nominal, clipping ≤ 2 steps; the refit leaves codes ≤ 1 step off the nearest (measured with ggml's imatrix path)")
            policy.refitSteps = 1
            policy.maxRMSSteps = rmsStepsRefit
            policy.clipUnbounded = true
            policy.subnormalScaleAnyCode = true
            return policy
        case .q2_K:
            return imatrixClipping(QuantBoundPolicy(type: type.name, groupLength: length, grid: grid, nominal: .range(levels: 3, includeZero: true), maxScaleRatio: 2.2, clipSteps: 2,
                                    derivation: "q2_K: make_qkx2_quants(nmax 3, rmin −0.5, 15 steps of 0.1, weighted by |x|) searches 1/d in (2.5…4)/range and refits scale and min by weighted least squares, which can push the min far below the data: measured up to 1.9× nominal; bound 2.2× (so only rule 1 catches a doubled q2_K scale), 2 steps of clipping; 4-bit sub-scales of d and dmin add d/2, dmin/2"))
        case .q3_K:
            // Level 1 (per group of 16): the imatrix path's make_qx_quants(16, nmax 4, rmse_type 1, weights
            // qw·√(σ²+x²) ≥ 0) codes l = clamp(nearest_int(iscale·x), −4, 3) for trial iscale = −(4 + 0.1·k)/max,
            // k ∈ −9…9, and stores the refit Σw·x·l / Σw·l²: a convex combination of x/l over the elements with l ≠ 0,
            // weighted by w·l² — whatever the importances. |x/l| is largest for an unclamped l = ±1 at
            // |iscale·x| = 1.5 with the smallest |iscale| = 3.1/amax: 1.5·amax/3.1 = (6/3.1)× amax/4 = 1.935×
            // (|l| = 2: 1.25·amax/3.1·…; clamped −4: amax/4; clamped +3: amax/3 — all smaller). An importance
            // concentrated on such elements reaches it (tiny-llama's imatrix: 1.51×, blk.0.ffn_down row 23).
            // Level 2 (the 16 group scales of a super-block): the imatrix path codes them Ls = clamp(nearest_int(t),
            // −32, 31) with t = iscale₂·scale, iscale₂ = −(32 + 0.1·k)/max, and stores d = the refit Σ sw·scale·Ls /
            // Σ sw·Ls², again a convex combination — of scale_k/Ls_k = (t_k/Ls_k)/iscale₂. So the stored group scale
            // d·Ls_j ≤ r·|scale_j| + d/2 with r = max over the block's non-zero Ls_k of t_k/Ls_k ≤ (|Ls_k| + ½)/|Ls_k|
            // (a clamped end code: 32.9/31), read per block from the stored sub-scales (`blockScaleRatio`). The
            // reference path (make_q3_quants: d = amax/4 refit with x²-weights after moving codes; then d = max/−32 and
            // nearest sub-scales, only d/2) has no such closed form: measured 1.34×, under the imatrix bound.
            // Float sums: ×(1 + 2⁻¹⁶). Measured: reference path 1.34×, imatrix 1.51× = 0.74 of 1.935·r (r 1.03–1.06 in nearly every block: the largest group sits on an end code).
            var policy = imatrixClipping(QuantBoundPolicy(type: type.name, groupLength: length, grid: grid, nominal: .amax(code: 4), maxScaleRatio: q3KGroupRefitRatio, clipSteps: 2,
                                    derivation: "q3_K: each group's scale is a weighted least-squares refit Σw·x·l/Σw·l² (make_qx_quants, imatrix) — a convex combination of x/l — with codes from trial 1/d ≥ 3.1/amax: |x/l| ≤ 1.5·amax/3.1 (an l = ±1 at 1.5 steps) → ≤ 1.935× amax/4; the super-block's 6-bit sub-scales are refit the same way: × r = max (|Ls|+½)/|Ls| over the block's non-zero stored sub-scales (32.9/31 for a clamped end), + d/2; 2 steps of clipping"))
            policy.blockScaleRatio = q3KSubScaleRefitFactor
            return policy
        case .q4_K, .q5_K:
            let levels: Float = type == .q4_K ? 15 : 31
            return imatrixClipping(QuantBoundPolicy(type: type.name, groupLength: length, grid: grid, nominal: .range(levels: levels, includeZero: true), maxScaleRatio: 1.35, clipSteps: 2,
                                    derivation: "\(type.name): make_qkx2_quants(nmax \(Int(levels))) searches 1/d in (n ± 1)/range (min ≤ 0) and refits; imatrix make_qkx3_quants a similar range → measured up to 1.10× nominal (q4_K), 1.04× (q5_K); bound 1.35×, 2 steps of clipping; 6-bit sub-scales and mins add d/2, dmin/2"))
        case .q6_K:
            // make_qx_quants(16, nmax 32, rmse_type 1; weights the imatrix qw, or x² without one) refits
            // Σw·x·l / Σw·l² — a convex combination of x/l — from codes of trial 1/d ≥ 31.1/amax: |x/l| ≤
            // 1.5·amax/31.1 (an unclamped l = ±1 at 1.5 steps) = 1.543× amax/32. The 8-bit sub-scales are then
            // nearest_int(−128·scale/max_scale) with d = max_scale/−128: only d/2. Float sums ×(1 + 2⁻¹⁶).
            return imatrixClipping(QuantBoundPolicy(type: type.name, groupLength: length, grid: grid, nominal: .amax(code: 32), maxScaleRatio: 1.5 * 32 / 31.1 * (1 + 0x1p-16), clipSteps: 2,
                                    derivation: "q6_K: make_qx_quants(nmax 32) stores the weighted refit Σw·x·l/Σw·l², a convex combination of x/l with codes from trial 1/d ≥ 31.1/amax → ≤ 1.5·32/31.1 = 1.543× nominal (measured 1.03×); 8-bit sub-scales add d/2; 2 steps of clipping"))
        case .mxfp4:
            // e = floor(log2 amax) − 2 + 127 → top value 12·2^(e−128) = 1.5·2^⌊log2 amax⌋ ∈ (0.75, 1.5]·amax: the
            // scale is ≤ 1.5× amax/12, and amax can be clipped to 0.75·amax: one top gap (8 → 12 is 4 scale units).
            return QuantBoundPolicy(type: type.name, groupLength: length, grid: grid, nominal: .amax(code: 12), maxScaleRatio: 1.5 * (1 + 0x1p-9), clipSteps: 1,
                                    derivation: "mxfp4 (ggml): E8M0 e = ⌊log2 amax⌋ − 2 + 127 puts the top value at 1.5·2^⌊log2 amax⌋ ∈ (0.75, 1.5]·amax → scale ≤ 1.5× amax/12, clipping ≤ 1 top gap")
        default:
            return nil
        }
    }

    /// q3_K's level-1 bound (see `gguf(.q3_K)`): 1.5·4/3.1, with 2⁻¹⁶ for the float sums.
    static let q3KGroupRefitRatio: Float = 1.5 * 4 / 3.1 * (1 + 0x1p-16)

    /// q3_K's level-2 factor r for one stored block: the largest t/Ls a refit of the 16 group scales on their stored
    /// 6-bit codes Ls = sc − 32 can weigh in — (|Ls| + ½)/|Ls| for a code nearest to t, 32.9/|Ls| for a clamped one
    /// (|t| ≤ 32 + 0.9 at the block's largest group); 1 when every code is 0. Both ends are read as possibly clamped
    /// (−32, 31) since the file does not say which group set the trial scale.
    public static let q3KSubScaleRefitFactor: @Sendable (UnsafeRawPointer) -> Float = { x in
        var r: Float = 1
        for j in 0..<16 {
            let low = j < 8 ? x.load(fromByteOffset: 96 + j, as: UInt8.self) & 0x0F : x.load(fromByteOffset: 96 + j - 8, as: UInt8.self) >> 4
            let high = (x.load(fromByteOffset: 96 + 8 + j % 4, as: UInt8.self) >> UInt8(2 * (j / 4))) & 3
            let code = abs(Float(Int(low | high << 4) - 32))
            guard code > 0 else { continue }
            var t = code + 0.5
            if code >= 31 { t = max(t, 32.9) }
            r = max(r, t / code)
        }
        return r * (1 + 0x1p-16)
    }

    /// The RMS bound of the aggregate rule for the refit types (Q4_0, Q4_1, Q5_0, Q5_1); see `maxRMSSteps`.
    static let rmsStepsRefit: Float = 0.3

    /// A k-quant policy with `clipUnbounded` (every k-quant takes an importance matrix).
    static func imatrixClipping(_ policy: QuantBoundPolicy) -> QuantBoundPolicy {
        var p = policy
        p.clipUnbounded = true
        return p
    }

    // MARK: MLX modes

    /// The bound for an MLX quantization mode.
    public static func mlx(mode: MLXQuantMode, bits: Int, groupSize: Int) -> QuantBoundPolicy {
        switch mode {
        case .affine:
            let levels = Float((1 << bits) - 1)
            // scale = (max−min)/levels, then snapped so the larger-magnitude end e is a level: scale = e/rint(e/scale)
            // with t = |e/scale| ≥ levels/2 = k + ½ (levels odd). The ratio t/rint(t) is largest when t = k + ½ rounds
            // down to k (ties to even, or float rounding just below): 1 + 1/(levels − 1) (measured: 3-bit groups with
            // min = −max hit 7/6). The other end then overshoots by ≤ 1 step. 1 bit: scale = max − min exactly.
            let ratio: Float = bits == 1 ? 1 : 1 + 1 / (levels - 1)
            var policy = QuantBoundPolicy(type: "affine-b\(bits)-g\(groupSize)", groupLength: groupSize, grid: .uniform(lo: 0, hi: Int(levels)),
                                    nominal: .range(levels: levels, includeZero: false), maxScaleRatio: ratio * (1 + 0x1p-8), clipSteps: 1,
                                    derivation: "affine \(bits)-bit: scale = (max−min)/\(Int(levels)) snapped so the larger end is a level → ratio ≤ 1 + 1/\(Int(levels) - 1), the other end overshoots ≤ 1 step; scales and biases rounded to the weight dtype after the codes were chosen; scale ≥ 1e-7 (MLX's floor)")
            policy.minimumScale = 1.2e-7
            return policy
        case .mxfp4, .mxfp8:
            let top: Float = mode == .mxfp8 ? 448 : 6
            let values = mode == .mxfp8 ? (0...255).map { FloatCodecs.f8E4M3ToFloat(UInt8($0)) }.filter(\.isFinite) : MLXQuantization.fp4Values
            // E8M0 scale 2^⌈log2(amax/top)⌉ ∈ [1, 2)·amax/top: nothing clipped.
            var policy = QuantBoundPolicy(type: mode.rawValue, groupLength: groupSize, grid: .table(Array(Set(values.map { $0 == 0 ? 0 : $0 })).sorted()),
                                          nominal: .amax(code: top), maxScaleRatio: 2 * (1 + 0x1p-8), clipSteps: 0.5,
                                          derivation: "\(mode.rawValue): E8M0 scale 2^⌈log2(amax/\(Int(top)))⌉ ∈ [1, 2)× amax/\(Int(top)) (MLX rounds up) → no clipping; a group whose amax/\(Int(top)) underflows to 0 in f16 gets E8M0 127 (scale 1)")
            policy.underflowScale = 1
            return policy
        case .nvfp4:
            // E4M3 scale = RNE(amax/6): relative error ≤ 2⁻⁴ (normal), absolute ≤ 2⁻¹⁰ (subnormal). Top value 6s.
            var policy = QuantBoundPolicy(type: "nvfp4", groupLength: groupSize, grid: .table(Array(Set(MLXQuantization.fp4Values.map { $0 == 0 ? 0 : $0 })).sorted()),
                                          nominal: .amax(code: 6), maxScaleRatio: (1 + 0x1p-4) * (1 + 0x1p-8), clipSteps: 0.25,
                                          derivation: "nvfp4: E4M3 scale = RNE(amax/6): within 2⁻⁴ relative (2⁻¹⁰ absolute when subnormal) → scale ≤ 1.0625× amax/6; amax clipped ≤ 6·2⁻⁴ of a scale unit; a group with amax > 6·448 saturates the scale at 448 and clips without bound")
            policy.maxScale = 448
            return policy
        }
    }
}

/// The quantum of an E4M3 value near `v` (half the spacing): used for nvfp4 scales.
@inline(__always) func halfSpacingE4M3(_ v: Float) -> Float {
    let a = abs(v)
    if a < 0x1p-6 { return 0x1p-10 }  // subnormal spacing 2⁻⁹
    return Float(sign: .plus, exponent: a.exponent - 3, significand: 1) / 2
}
