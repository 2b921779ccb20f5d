import Foundation
import Testing

/// `parity verify --jobs N` runs independent cells on N threads: what it prints and its exit status must not depend
/// on N (reports are buffered and printed in cell order; every product runs on one OpenBLAS thread).
@Suite("verify --jobs")
struct VerifyJobsTests {
    /// The output with what legitimately differs between runs removed: each run's temporary directory and timings.
    static func normalized(_ stdout: String) -> String {
        stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            .filter { !$0.hasPrefix("  wall time") }
            .map { line in
                line.replacingOccurrences(of: #"/tmp/parity-[0-9]+-[0-9]+"#, with: "<temporary>", options: .regularExpression)
                    .replacingOccurrences(of: #"in [0-9.]+ s\)"#, with: "in <t> s)", options: .regularExpression)
            }
            .joined(separator: "\n")
    }

    @Test("one job and three jobs print the same reports in the same order, with the same exit status; the wall-time line names the jobs")
    func sameOutputForAnyJobCount() throws {
        // Both image models in every format: 20 cells of different lengths, so three jobs finish them out of order.
        let arguments = ["verify", "fmnist-cnn", "fmnist-mlp"]
        let one = try runParity(arguments + ["--jobs", "1"], timeout: 300)
        let three = try runParity(arguments + ["--jobs", "3"], timeout: 300)
        #expect(one.status == 0, "--jobs 1 exited \(one.status): \(one.stderr.suffix(2000))")
        #expect(three.status == one.status)
        let cells = one.stdout.components(separatedBy: "\nPASS\n").count - 1
        #expect(cells == 20, "20 cells, each a PASS report")
        #expect(Self.normalized(three.stdout) == Self.normalized(one.stdout))
        #expect(one.stdout.contains("  wall time (20 cells on 1 job): "))
        #expect(three.stdout.contains("  wall time (20 cells on 3 jobs): "))
    }

    /// PARITY_KERNELS caps Parity's SIMD kernels (image convolution/Linear/pool, quantized dot products, MLX affine,
    /// binary16 rounding, SHA-256) as a CPU without AVX-512 (avx2) or without AVX2 (portable) would run them. Every path
    /// computes the same numbers, so every report must be identical — the whole-run counterpart of the per-kernel
    /// equivalence tests (a run of all four bundled models incl. minilm-l6 was identical too, when this was written).
    @Test("PARITY_KERNELS=portable and =avx2 print the same reports as the CPU's best kernels; another value is exit 2")
    func sameOutputOnEveryKernelPath() throws {
        let arguments = ["verify", "fmnist-cnn", "fmnist-mlp", "tiny-llama"]
        let best = try runParity(arguments, timeout: 300)
        #expect(best.status == 0, "best path exited \(best.status): \(best.stderr.suffix(2000))")
        #expect(!best.stderr.contains("kernels: "), "the outer environment must not cap the kernels for this comparison")
        for path in ["avx2", "portable"] {
            let capped = try runParity(arguments, environment: ["PARITY_KERNELS": path], timeout: 300)
            #expect(capped.status == best.status, "PARITY_KERNELS=\(path) exited \(capped.status)")
            // The dispatchers really read it (else the comparison below could not fail): verify says which cap is on.
            #expect(capped.stderr.contains("kernels: ") && capped.stderr.contains("(PARITY_KERNELS=\(path))"), "\(capped.stderr.prefix(500))")
            #expect(Self.normalized(capped.stdout) == Self.normalized(best.stdout), "PARITY_KERNELS=\(path) changed a report")
        }
        let typo = try runParity(["verify", "fmnist-mlp"], environment: ["PARITY_KERNELS": "avx-2"])
        #expect(typo.status == 2)
        #expect(typo.stderr.contains("PARITY_KERNELS=avx-2: expected portable"))
    }

    @Test("--jobs 0 is a usage error (exit 2)")
    func zeroJobs() throws {
        let result = try runParity(["verify", "fmnist-mlp", "--jobs", "0"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("--jobs 0: give at least 1"))
    }
}
