import CParityKernels
import ParityCore

extension Kernels {
    /// A Linear weight [out, in] packed once for `linearChained` (panels of 32 output features, k-major).
    public struct PackedLinearWeight: Sendable {
        public let outFeatures: Int, inFeatures: Int
        let panels: [Float]

        public init(_ weight: Tensor) {
            let (outF, inF) = (weight.shape[0], weight.shape[1])
            outFeatures = outF
            inFeatures = inF
            let count = Int(pk_linear_packed_count(Int64(outF), Int64(inF)))
            panels = [Float](unsafeUninitializedCapacity: count) { p, initialized in
                weight.data.withUnsafeBufferPointer { pk_linear_pack($0.baseAddress, Int64(outF), Int64(inF), p.baseAddress) }
                initialized = count
            }
        }
    }

    /// PyTorch Linear for the PyTorch engine: y[N, out] = x[N, in] · Wᵀ + b, each element one fused multiply-add
    /// chain from +0 over the input features in order, then + bias (`Reference.linearChained`, bit for bit but NaN payloads; C kernels
    /// on AVX-512 / AVX2+FMA / portable, the same numbers).
    ///
    /// Why this order is allowed: PyTorch's Linear is addmm(b, x, Wᵀ) — the output starts from the bias rows and the
    /// BLAS adds the finished product to it (β = 1), i.e. (Σ) + b, whose inner order is the BLAS's (Debian's torch
    /// calls the system BLAS; OpenBLAS splits long sums into blocks and vectorises differently per CPU). The f32
    /// tolerance (TolerancePolicy.float32) is a random-walk bound valid for any order of Σ; (Σ) + b is kept.
    /// OpenBLAS 0.3.21 runs its Haswell kernels on AVX-512 CPUs it does not know (this machine's AMD EPYC), which
    /// left the MLP at PyTorch's own speed; this kernel uses AVX-512 where the CPU has it.
    public static func linearChained(_ x: Tensor, packed w: PackedLinearWeight, bias: Tensor?) -> Tensor {
        let n = x.shape[0], inF = w.inFeatures, outF = w.outFeatures
        precondition(x.shape[1] == inF, "linear input \(x.shape) for \(inF) features")
        // Not zero-filled: the kernel writes every element.
        let out = [Float](unsafeUninitializedCapacity: n * outF) { op, initialized in
            x.data.withUnsafeBufferPointer { xp in
                w.panels.withUnsafeBufferPointer { wp in
                    if let bias {
                        bias.data.withUnsafeBufferPointer { bp in
                            pk_linear_packed(xp.baseAddress, Int64(n), Int64(inF), wp.baseAddress, Int64(outF), bp.baseAddress, op.baseAddress)
                        }
                    } else {
                        pk_linear_packed(xp.baseAddress, Int64(n), Int64(inF), wp.baseAddress, Int64(outF), nil, op.baseAddress)
                    }
                }
            }
            initialized = n * outF
        }
        return Tensor(shape: [n, outF], data: out)
    }
}

extension Kernels.Reference {
    /// The definition `Kernels.linearChained` must equal: y[i, j] = (fma chain from +0 over k of x[i, k]·W[j, k]) + b[j].
    public static func linearChained(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let n = x.shape[0], inF = weight.shape[1], outF = weight.shape[0]
        var out = [Float](repeating: 0, count: n * outF)
        for i in 0..<n {
            for j in 0..<outF {
                var sum: Float = 0
                for k in 0..<inF { sum.addProduct(x.data[i * inF + k], weight.data[j * inF + k]) }
                out[i * outF + j] = bias.map { sum + $0.data[j] } ?? sum
            }
        }
        return Tensor(shape: [n, outF], data: out)
    }
}
