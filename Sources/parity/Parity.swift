import ArgumentParser
import Foundation
import ParityCore
import ParityVerify

/// Exit codes: 0 all passed, 1 a verification failed, 2 bad input or usage, 3 nothing failed but something could
/// not be judged (verdict UNJUDGED: no tolerance policy). UNJUDGED is its own outcome — neither a pass nor a
/// failure — and non-zero, so a file Parity cannot judge never turns a CI run green.
enum Exit {
    static let verificationFailed: Int32 = 1
    static let badInput: Int32 = 2
    static let unjudged: Int32 = 3

    /// The status for a set of verdicts: any failure → 1, else any unjudged → 3, else 0.
    static func status(for verdict: Verdict) -> Int32 {
        switch verdict {
        case .pass: return 0
        case .fail: return verificationFailed
        case .unjudged: return unjudged
        }
    }
}

@main
struct Parity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Prove a model conversion is correct, layer by layer, against PyTorch goldens.",
        subcommands: [Models.self, Verify.self, LayerDiff.self, Convert.self, Quantize.self, Inspect.self, Embed.self, Bench.self, ReportCommand.self])

    /// Runs the command and maps every failure onto the exit-code contract; argument-parser's own usage
    /// errors (which it would exit with 64) also become 2.
    static func main() {
        if ProcessInfo.processInfo.environment["PARITY_PEAK_RSS"] != nil { atexit { reportPeakRSS() } }
        // PARITY_KERNELS caps Parity's own SIMD kernels (docs/numerics.md): a typo must not silently run the best path.
        if let kernels = ProcessInfo.processInfo.environment["PARITY_KERNELS"], !["portable", "avx2"].contains(kernels) {
            FileHandle.standardError.write(Data("error: PARITY_KERNELS=\(kernels): expected portable (portable C only) or avx2 (AVX2 at most); unset for the CPU's best\n".utf8))
            Foundation.exit(Exit.badInput)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ParityError {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            Foundation.exit(Exit.badInput)
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            let status = exitCode(for: error)
            if status == .success {
                exit(withError: error)  // --help, --version
            }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(Exit.badInput)
        }
    }
}

/// With `PARITY_PEAK_RSS` set, prints this process's peak resident set size at exit. VmHWM in /proc/self/status
/// counts this program's own address space only (getrusage's ru_maxrss also carries over the parent's peak
/// across exec when the parent spawned with vfork semantics).
func reportPeakRSS() {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return }
    let kib = line.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
    FileHandle.standardError.write(Data("parity: peak RSS \(kib) KiB\n".utf8))
}

func printError(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }
var stdoutIsTTY: Bool { isatty(STDOUT_FILENO) == 1 }
