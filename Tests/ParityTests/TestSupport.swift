import CParityKernels
import Foundation
import ParityCore
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// Paths shared by the tests: the repository root is found from this file's location, so tests run from any
/// working directory and never depend on Python.
enum Repo {
    static let root: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let golden = root + "/golden"
    static let fixtures = root + "/Tests/ParityTests/Fixtures"
    static let bundledModels = ["fmnist-cnn", "fmnist-mlp"]

    static func model(_ name: String) throws -> ReferenceModel { try ReferenceModel(directory: golden + "/" + name) }

    /// The `parity` executable that `swift test` built next to the test bundle.
    static var parityExecutable: String {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("parity").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return root + "/.build/debug/parity"
    }
}

/// A scratch directory removed when the value goes away.
final class TemporaryDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "parity-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }  // checked: cleanup of scratch space, not a check
}

struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
    /// The child's own peak resident set size in KiB, as it reports it with PARITY_PEAK_RSS set (VmHWM);
    /// 0 when it did not report.
    var peakRSSKiB: Int {
        guard let range = stderr.range(of: "parity: peak RSS ") else { return 0 }
        return Int(stderr[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }
}

/// Runs the built `parity` binary (the way a user or CI does) and captures its output and exit status. A run longer than `timeout` seconds is killed and recorded as a hang (status -1).
func runParity(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 120) throws -> CommandResult {
    let out = try TemporaryDirectory()
    let pid = try spawn(Repo.parityExecutable, arguments, environment: ProcessInfo.processInfo.environment
        .merging(["PARITY_GOLDEN_DIR": Repo.golden]) { $1 }.merging(environment) { $1 }, stdout: out.file("o"), stderr: out.file("e"))
    var status: Int32 = 0
    var usage = rusage()
    let deadline = Date().addingTimeInterval(timeout)
    var finished = false
    while !finished {
        let r = wait4(pid, &status, WNOHANG, &usage)
        if r == pid { finished = true; break }
        if Date() > deadline {
            kill(pid, SIGKILL)
            _ = wait4(pid, &status, 0, &usage)
            Issue.record("parity \(arguments.joined(separator: " ")) did not finish in \(timeout) s")
            return CommandResult(status: -1, stdout: "", stderr: "timeout")
        }
        usleep(2_000)
    }
    // Exit code, or 128 + signal for a crash (so a crash never looks like exit 0, 1 or 2).
    let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return CommandResult(status: code, stdout: String(decoding: try readBytes(out.file("o")), as: UTF8.self),
                         stderr: String(decoding: try readBytes(out.file("e")), as: UTF8.self))
}

/// posix_spawn with stdout/stderr redirected to files (so large outputs never block on a pipe).
func spawn(_ path: String, _ arguments: [String], environment: [String: String], stdout: String, stderr: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
    // A clean signal state for the child, as a shell would give it (the test runner may block signals).
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    guard rc == 0 else { throw ParityError.io(path: path, reason: "posix_spawn failed: \(rc)") }
    return pid
}

/// With PARITY_PRINT_MARGINS set, tests with near-exact limits print how much of each limit they use (value /
/// limit), so a run under another OpenBLAS kernel (OPENBLAS_CORETYPE) shows how close it comes to failing.
func printMargin(_ test: String, _ what: String, value: Double, limit: Double) {
    guard ProcessInfo.processInfo.environment["PARITY_PRINT_MARGINS"] != nil else { return }  // checked: printing only
    print("margin \(test) \(what): \(value) / \(limit) = \(value / limit)")
}

/// The share of its tolerance each layer of a verification uses (with PARITY_PRINT_MARGINS).
func printMargins(_ report: VerificationReport, _ label: String) {
    for layer in report.layers {
        guard let m = layer.metrics, let t = layer.tolerance else { continue }  // checked: printing only
        printMargin("gate", "\(label) \(layer.name) rel L2", value: m.relL2, limit: t.maxRelL2)
        printMargin("gate", "\(label) \(layer.name) max abs", value: m.maxAbs, limit: t.maxAbsOverScale * m.goldenMaxAbs)
    }
}

/// Bytes of a file.
func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
func writeBytes(_ bytes: [UInt8], to path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

/// An empty list of cases is a lost fixture or manifest key, never a pass. Swift Testing reports a parameterized
/// test whose argument list is empty as skipped and the run as passed, and a loop over an empty collection checks
/// nothing; so every parameterized test takes its arguments through `nonEmpty`, and every loop that holds the
/// test's expectations iterates through it. A throw while evaluating `arguments:` fails the test with this message.
struct EmptyCases: Error, CustomStringConvertible {
    let what: String
    var description: String { "no cases: \(what) is empty, so nothing would be checked" }
}

func nonEmpty<C: Collection>(_ items: C, _ what: String) throws -> C {
    guard !items.isEmpty else { throw EmptyCases(what: what) }
    return items
}

/// A fixture's JSON, or an error naming the file: a manifest that cannot be read must fail the tests built on it.
func fixtureJSON(_ path: String) throws -> JSONValue { try JSONParser.parse(readBytes(path)) }

/// A required member of a fixture's JSON: a missing key is an error naming the file and the key, never a default.
func required(_ value: JSONValue?, _ key: String, in file: String) throws -> JSONValue {
    guard let member = value?[key] else { throw ParityError.malformed(file: file, at: "key '\(key)'", reason: "missing from the fixture") }
    return member
}

/// SplitMix64: the tests' deterministic generator, so every generated data set is the same on every run and machine.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) from the top 53 bits.
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    /// A standard normal: Box–Muller in double precision, rounded to Float.
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

/// The kernels' path switch (`pk_force_portable`) is one process-wide flag, and Swift Testing runs tests in parallel:
/// without a lock, one test's reset could switch the kernels back to the CPU's best path while another test checks
/// what it labels the portable path (the review found this; it cannot cause a false failure, only lost coverage).
/// Every test that forces a path holds this from setting the flag until `release()` resets it.
final class ForcedKernelPath: @unchecked Sendable {
    private static let lock = NSLock()
    private init() {}

    /// 0: the CPU's best path; 1: portable C only; 2: AVX2 at most.
    static func force(_ mode: Int32) -> ForcedKernelPath {
        lock.lock()
        pk_force_portable(mode)
        return ForcedKernelPath()
    }

    func release() {
        pk_force_portable(0)
        Self.lock.unlock()
    }
}
