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
}
