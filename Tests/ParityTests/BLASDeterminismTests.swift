import Foundation
import ParityCore
import ParityEngine
import Testing

/// Parity's f32 products go through OpenBLAS, whose summation order depends on its thread count and on the kernel
/// it picks for the CPU. The thread count is pinned; the CPU's kernel is not (see GGMLRuntimeTests' FlipBound and
/// docs/numerics.md), so verdicts rest on limits derived from what any summation order can do.
@Suite("BLAS determinism")
struct BLASDeterminismTests {
    @Test("the first product pins OpenBLAS to one thread, whoever calls it")
    func pinnedInProcess() {
        let a = [Float](repeating: 1, count: 4), b = [Float](repeating: 2, count: 4)
        var c = [Float](repeating: 0, count: 4)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            Kernels.sgemm(m: 2, n: 2, k: 2, a: ap.baseAddress!, b: bp.baseAddress!, transposeB: false, c: cp.baseAddress!)
        } } }
        #expect(c == [4, 4, 4, 4])
        #expect(Kernels.blasThreads == 1, "OpenBLAS (\(Kernels.blasCore)) would use \(Kernels.blasThreads) threads")
    }

    @Test("OPENBLAS_NUM_THREADS=2 changes no number in a report: the pin overrides it")
    func pinnedAgainstEnvironment() throws {
        // Two BLAS threads split the [64×784]·[784×500] product of fmnist-mlp's fc1 differently from one thread
        // (measured with OpenBLAS 0.3.21), so without the pin the reports' metrics would differ in their last bits.
        let dir = try TemporaryDirectory()
        var metrics: [String: [(String, String)]] = [:]  // per run: (report/layer, its metrics as JSON)
        for threads in ["1", "2"] {
            let result = try runParity(["verify", "fmnist-mlp", "--format", "gguf", "--json", dir.file("\(threads).json")],
                                       environment: ["OPENBLAS_NUM_THREADS": threads])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            let report = try JSONParser.parse(readBytes(dir.file("\(threads).json")))
            for r in try nonEmpty(try #require(report["reports"]?.arrayValue), "reports") {
                for layer in try nonEmpty(try #require(r["layers"]?.arrayValue), "layers") {
                    let where_ = "\(r["variant"]?.stringValue ?? "?") \(layer["name"]?.stringValue ?? "?")"  // checked: labels only
                    metrics[threads, default: []].append((where_, try #require(layer["metrics"]).serialized()))
                }
            }
        }
        let one = try #require(metrics["1"]), two = try #require(metrics["2"])
        #expect(one.count == two.count && one.count >= 12, "\(one.count) and \(two.count) layers compared")
        for (a, b) in zip(one, two) {
            #expect(a.0 == b.0 && a.1 == b.1, "\(a.0): 1 thread \(a.1)\n2 threads \(b.1)")
        }
    }
}
