// Measures a fixed-summation-order product against OpenBLAS sgemm on the shapes Parity runs (docs/numerics.md).
// Not part of the package. Run from this directory:
//   swiftc -O fixed_order_bench.swift -o /tmp/bench && /tmp/bench
//   swiftc -Onone fixed_order_bench.swift -o /tmp/bench-debug && /tmp/bench-debug     (what `swift test` builds)
//   env -u OPENBLAS_CORETYPE /tmp/bench                                                (OpenBLAS picks its own kernel)
// The "fixed-order result hash" must be the same for every build and machine; the OpenBLAS columns are not.
import Glibc
import Foundation

func now() -> Double { var t = timespec(); clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9 }

/// Fixed-order product C[m×n] = A[m×k]·B[k×n] (B row-major, not transposed): every C element is summed over k in
/// increasing order (one multiply and one add per term, no FMA), vectorised across 16 columns of C.
@_optimize(speed)
func fixedOrderGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>) {
    let raw = UnsafeRawPointer(b)
    var i = 0
    while i < m {
        let rows = min(4, m - i)
        var j = 0
        while j + 16 <= n {
            var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>(), acc2 = SIMD16<Float>(), acc3 = SIMD16<Float>()
            for kk in 0..<k {
                let bv = raw.loadUnaligned(fromByteOffset: 4 * (kk * n + j), as: SIMD16<Float>.self)
                acc0 = acc0 + SIMD16(repeating: a[i * k + kk]) * bv
                if rows > 1 { acc1 = acc1 + SIMD16(repeating: a[(i + 1) * k + kk]) * bv }
                if rows > 2 { acc2 = acc2 + SIMD16(repeating: a[(i + 2) * k + kk]) * bv }
                if rows > 3 { acc3 = acc3 + SIMD16(repeating: a[(i + 3) * k + kk]) * bv }
            }
            for l in 0..<16 {
                c[i * n + j + l] = acc0[l]
                if rows > 1 { c[(i + 1) * n + j + l] = acc1[l] }
                if rows > 2 { c[(i + 2) * n + j + l] = acc2[l] }
                if rows > 3 { c[(i + 3) * n + j + l] = acc3[l] }
            }
            j += 16
        }
        while j < n {
            for r in 0..<rows {
                var s: Float = 0
                for kk in 0..<k { s = s + a[(i + r) * k + kk] * b[kk * n + j] }
                c[(i + r) * n + j] = s
            }
            j += 1
        }
        i += 4
    }
}

typealias SgemmFn = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>, Int32, UnsafePointer<Float>, Int32, Float, UnsafeMutablePointer<Float>, Int32) -> Void
let lib = dlopen("libopenblas.so.0", RTLD_NOW)!
let sgemm = unsafeBitCast(dlsym(lib, "cblas_sgemm")!, to: SgemmFn.self)
let setThreads = unsafeBitCast(dlsym(lib, "openblas_set_num_threads")!, to: (@convention(c) (Int32) -> Void).self)
let corename = unsafeBitCast(dlsym(lib, "openblas_get_corename")!, to: (@convention(c) () -> UnsafeMutablePointer<CChar>).self)
setThreads(1)

var seed: UInt64 = 1
func rnd() -> Float { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Float(seed >> 40) / Float(1 << 24) - 0.5 }

// Shapes Parity runs: mlp fc1 (64 images, 784 → 500, as A·Bᵀ with B pre-transposed to k×n), cnn conv1 per image
// (8 × 9 · 9 × 784), conv2 per image (16 × 72 · 72 × 196), dense (64 × 784 · 784 × 10).
let shapes: [(String, Int, Int, Int, Int)] = [("mlp fc1 64x784x500", 64, 500, 784, 1), ("cnn conv1 8x9x784 x64 images", 8, 784, 9, 64),
                                               ("cnn conv2 16x72x196 x64 images", 16, 196, 72, 64), ("cnn dense 64x784x10", 64, 10, 784, 1)]
print("OpenBLAS core \(String(cString: corename()))")
var hash: UInt64 = 0
for (name, m, n, k, reps) in shapes {
    let a = (0..<(m * k)).map { _ in rnd() }, b = (0..<(k * n)).map { _ in rnd() }
    var c1 = [Float](repeating: 0, count: m * n), c2 = c1
    var best1 = 1e9, best2 = 1e9
    for _ in 0..<5 {
        var t = now()
        for _ in 0..<reps { sgemm(101, 111, 111, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c1, Int32(n)) }
        best1 = min(best1, now() - t)
        t = now()
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c2.withUnsafeMutableBufferPointer { cp in
            for _ in 0..<reps { fixedOrderGEMM(m: m, n: n, k: k, a: ap.baseAddress!, b: bp.baseAddress!, c: cp.baseAddress!) }
        } } }
        best2 = min(best2, now() - t)
    }
    let differ = zip(c1, c2).filter { $0.0 != $0.1 }.count
    for v in c2 { hash = (hash ^ UInt64(v.bitPattern)) &* 1099511628211 }
    print("\(name): OpenBLAS \(String(format: "%.3f", best1 * 1e3)) ms, fixed order \(String(format: "%.3f", best2 * 1e3)) ms (\(String(format: "%.1f", best2 / best1))x); \(differ) of \(c1.count) outputs differ in bits")
}
print("fixed-order result hash \(String(hash, radix: 16))")
