import CBLAS
import CParityKernels
import ParityCore

/// CPU kernels shared by the engines. Layout conventions are stated per function; the engines decide
/// which layout they run in (PyTorch: NCHW; MLX: NHWC; ggml: its own).
public enum Kernels {
    /// OpenBLAS splits a product across threads, and the thread count changes the summation order (measured with
    /// OpenBLAS 0.3.21: a [64×784]·[784×500] product differs in its last bits between 1 and 2 threads). Verification
    /// wants the same numbers on every run, so every product runs on one thread — set before the first product,
    /// whoever calls it, and overriding OPENBLAS_NUM_THREADS (which OpenBLAS reads only when it loads).
    /// (How freed batch-sized arrays are kept for reuse is the process's choice, not a kernel's:
    /// `ProcessMemory.reuseFreedMemory()`, which `parity verify` and `parity bench` call.)
    private static let oneThreadBeforeFirstProduct: Void = { openblas_set_num_threads(1) }()

    /// Pins OpenBLAS to `n` threads (1 unless a benchmark asks otherwise; see `oneThreadBeforeFirstProduct`).
    public static func pinBLASThreads(_ n: Int32 = 1) {
        _ = oneThreadBeforeFirstProduct
        openblas_set_num_threads(n)
    }

    /// The thread count OpenBLAS will use, and the kernel family it picked for this CPU (OPENBLAS_CORETYPE
    /// overrides it): which CPU-specific summation order the f32 products follow.
    public static var blasThreads: Int { _ = oneThreadBeforeFirstProduct; return Int(openblas_get_num_threads()) }
    public static var blasCore: String { String(cString: openblas_get_corename()) }

    /// The cap PARITY_KERNELS puts on Parity's own SIMD kernels as the C dispatchers read it, in words; nil when the
    /// CPU's best paths run (docs/numerics.md).
    public static var kernelCap: String? {
        switch pk_environment_limit() {
        case 1: return "portable C only (PARITY_KERNELS=portable)"
        case 2: return "AVX2 at most (PARITY_KERNELS=avx2)"
        default: return nil
        }
    }

    /// C[m×n] = A[m×k] · op(B) (+ C when `accumulate`), row-major; op(B) is B[k×n] or, with `transposeB`, B[n×k]ᵀ.
    public static func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, transposeB: Bool,
                             c: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        _ = oneThreadBeforeFirstProduct
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(transposeB ? k : n),
                    accumulate ? 1 : 0, c, Int32(n))
    }

    /// How a max pool treats NaN: PyTorch's max_pool2d propagates it (and starts from -inf); ggml_pool_2d starts
    /// from -FLT_MAX and keeps `v > best`, so a NaN is skipped.
    public enum MaxPoolNaN { case propagate, skip }

    /// PyTorch Linear: y[N, out] = x[N, in] · W[out, in]ᵀ + b.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let n = x.shape[0], inF = weight.shape[1], outF = weight.shape[0]
        // Not zero-filled: with a bias every row starts from it (β = 1, as addmm does); without, β = 0 sets all of C.
        let out = [Float](unsafeUninitializedCapacity: n * outF) { op, initialized in
            if let bias {
                bias.data.withUnsafeBufferPointer { bp in
                    for i in 0..<n { (op.baseAddress! + i * outF).initialize(from: bp.baseAddress!, count: outF) }
                }
            }
            x.data.withUnsafeBufferPointer { xp in
                weight.data.withUnsafeBufferPointer { wp in
                    sgemm(m: n, n: outF, k: inF, a: xp.baseAddress!, b: wp.baseAddress!, transposeB: true,
                          c: op.baseAddress!, accumulate: bias != nil)
                }
            }
            initialized = n * outF
        }
        return Tensor(shape: [n, outF], data: out)
    }
}
