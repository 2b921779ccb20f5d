#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CBLAS
import ParityCore

/// Loops the BERT ops share, written over raw buffers so a forward pass allocates one array per op output and
/// nothing per row or per head. Each computes exactly what the code it replaced computed — the same float operations
/// in the same order (BertSpeedTests compare them bit for bit).
public enum BertKernels {
    /// y[r, o] += bias[o] for every row r of y [..., O] (`ggml_add` / nn.Linear's bias after the product).
    public static func addBias(_ y: inout Tensor, _ bias: [Float]) {
        let width = bias.count
        precondition(width > 0 && y.count % width == 0, "bias of \(width) for \(y.shape)")
        y.data.withUnsafeMutableBufferPointer { p in
            bias.withUnsafeBufferPointer { b in
                for row in stride(from: 0, to: p.count, by: width) {
                    for o in 0..<width { p[row + o] += b[o] }
                }
            }
        }
    }

    /// C[m×n] (row stride ldc) = A[m×k] (row stride lda) · op(B), op(B) = B[n×k]ᵀ (row stride ldb) with `transposeB`,
    /// else B[k×n]: Kernels.sgemm with the heads read in place from [B, T, H·D] rows instead of copied out first.
    /// OpenBLAS packs both operands into its own panels before multiplying, so the strides change only where it reads.
    private static func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                              transposeB: Bool, c: UnsafeMutablePointer<Float>, ldc: Int) {
        Kernels.pinBLASThreads()
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(lda),
                    b, Int32(ldb), 0, c, Int32(ldc))
    }

    /// Attention scores q·kᵀ of head `hi` of sequence `bi`, q and k [B, T, H·D] (heads side by side in a row, as the
    /// projections give them): [T, S] into `scores`, the product TransformerTensors.headScores computes after splitHeads.
    public static func headScores(q: Tensor, k: Tensor, heads: Int, batch bi: Int, head hi: Int, into scores: UnsafeMutableBufferPointer<Float>) {
        let (t, c) = (q.shape[1], q.shape[2])
        let s = k.shape[1], d = c / heads
        precondition(q.rank == 3 && k.rank == 3 && k.shape[2] == c && scores.count >= t * s, "scores of \(scores.count) for q \(q.shape), k \(k.shape)")
        q.data.withUnsafeBufferPointer { qp in
            k.data.withUnsafeBufferPointer { kp in
                sgemm(m: t, n: s, k: d, a: qp.baseAddress! + bi * t * c + hi * d, lda: c, b: kp.baseAddress! + bi * s * c + hi * d, ldb: c,
                      transposeB: true, c: scores.baseAddress!, ldc: s)
            }
        }
    }

    /// probs [B, H, T, S] · v [B, S, H·D] per head, written straight into the merged [B, T, H·D] rows: what
    /// PyTorchLlamaOps.probsTimesValues computes on splitHeads(v) followed by mergeHeads.
    public static func probsTimesValues(probs: Tensor, values v: Tensor) -> Tensor {
        let (b, h, t, s) = (probs.shape[0], probs.shape[1], probs.shape[2], probs.shape[3])
        let c = v.shape[2], d = c / h
        precondition(v.rank == 3 && v.shape[0] == b && v.shape[1] == s && c % h == 0, "probs \(probs.shape), v \(v.shape)")
        var out = [Float](repeating: 0, count: b * t * c)
        probs.data.withUnsafeBufferPointer { pp in
            v.data.withUnsafeBufferPointer { vp in
                out.withUnsafeMutableBufferPointer { op in
                    for bi in 0..<b {
                        for hi in 0..<h {
                            sgemm(m: t, n: d, k: s, a: pp.baseAddress! + ((bi * h + hi) * t) * s, lda: s, b: vp.baseAddress! + bi * s * c + hi * d, ldb: c,
                                  transposeB: false, c: op.baseAddress! + bi * t * c + hi * d, ldc: c)
                        }
                    }
                }
            }
        }
        return Tensor(shape: [b, t, c], data: out)
    }

    /// `ggml_soft_max` on one row, in place, with GGMLLlamaOps.softMax's arithmetic: the maximum (Sequence.max's
    /// comparisons), expf(x − max), the sum in double, times float(1/sum).
    public static func ggmlSoftMaxInPlace(_ row: UnsafeMutableBufferPointer<Float>) {
        guard var m = row.first else { return }
        for v in row where m < v { m = v }
        var sum = 0.0
        for i in row.indices {
            let e = expf(row[i] - m)
            row[i] = e
            sum += Double(e)
        }
        let inv = Float(1.0 / sum)
        for i in row.indices { row[i] *= inv }
    }

    /// `torch.softmax` on one row, in place, with PyTorchLlamaOps.softmax's arithmetic: the maximum (Sequence.max's
    /// comparisons), expf(x − max), the sum in double, times float(1) / float(sum).
    public static func torchSoftmaxInPlace(_ row: UnsafeMutableBufferPointer<Float>) {
        guard var m = row.first else { return }
        for v in row where m < v { m = v }
        var sum = 0.0
        for i in row.indices {
            let e = expf(row[i] - m)
            row[i] = e
            sum += Double(e)
        }
        let inv = Float(1) / Float(sum)
        for i in row.indices { row[i] *= inv }
    }

    // MARK: F16 rounding without compiler-rt's software conversions

    /// IEEE binary16 bits of `x`, round to nearest even — `Float16(x).bitPattern` for every non-NaN float, in float and
    /// integer operations (the branch-free conversion of Maratyszcza's FP16 library, which ggml also uses without F16C;
    /// x86 without F16C turns Swift's conversion into a `__truncsfhf2` call per value). The float
    /// steps do the rounding: |x|·2¹¹²·2⁻¹¹⁰ sends what overflows binary16 to infinity, and adding 2^(e+14) (e = x's
    /// exponent, at least −14 so subnormals land on the 2⁻²⁴ grid) makes the FPU round x to binary16's 11-bit
    /// significand, ties to even; the bits of that sum hold the half's exponent and significand. NaN: the caller's.
    @inlinable @inline(__always) public static func halfBits(_ x: Float) -> UInt16 {
        let magnitude = (abs(x) * Float(bitPattern: 0x7780_0000)) * Float(bitPattern: 0x0880_0000)  // ×2¹¹², ×2⁻¹¹⁰
        let w = x.bitPattern
        let doubled = w &+ w  // the sign shifted out
        let sign = w & 0x8000_0000
        let bias = max(doubled & 0xFF00_0000, 0x7100_0000)  // x's exponent, at least binary16's smallest normal's (2⁻¹⁴)
        let rounded = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + magnitude
        let bits = rounded.bitPattern
        let nonSign = ((bits >> 13) & 0x7C00) &+ (bits & 0x0FFF)
        return UInt16(truncatingIfNeeded: (sign >> 16) | (doubled > 0xFF00_0000 ? 0x7E00 : nonSign))
    }

    /// `x` rounded to binary16 and back — `Float(Float16(x))` for every non-NaN float (a NaN comes back as it went in)
    /// in float additions, branch-free so a loop of it vectorizes: with e = x's exponent (at least −14, binary16's
    /// smallest normal), K = 2^(e+13) has an ulp of 2^(e−10), binary16's spacing at e (2⁻²⁴ below 2⁻¹⁴), so |x| + K
    /// rounds |x| to binary16's grid, ties to even (K is an even multiple of that ulp), and subtracting K is exact;
    /// |x| ≥ 65520 (the midpoint above binary16's largest 65504) rounds to infinity.
    @inlinable @inline(__always) public static func halfRounded(_ x: Float) -> Float {
        let w = x.bitPattern & 0x7FFF_FFFF
        let exponent = max(w >> 23, 113)  // 127 − 14
        let k = Float(bitPattern: (exponent &+ 13) << 23)
        let rounded = (Float(bitPattern: w) + k) - k
        let magnitude = w > 0x7F80_0000 ? w : w >= 0x477F_F000 ? 0x7F80_0000 : rounded.bitPattern  // NaN kept; ≥ 65520 → ∞
        return Float(bitPattern: (x.bitPattern & 0x8000_0000) | magnitude)
    }

    /// Every value rounded to binary16 and back (ggml's F16 vec_dot_type for activations), as GGMLNumerics.round(_:to: .f16)
    /// rounds them; NaNs go through FloatCodecs so their payloads are what it gives.
    public static func roundedToHalf(_ x: Tensor) -> Tensor {
        var out = x.data
        out.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = halfRounded(p[i]) }
            for i in p.indices where p[i].isNaN { p[i] = FloatCodecs.halfToFloat(FloatCodecs.floatToHalf(p[i])) }
        }
        return Tensor(shape: x.shape, data: out)
    }
}
