import Foundation
import ParityCore
import ParityFormats
import ParityModels
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
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct CommandResult { let status: Int32; let stdout: String; let stderr: String }

/// Runs the built `parity` binary (the way a user or CI does) and captures its output and exit status.
func runParity(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Repo.parityExecutable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(["PARITY_GOLDEN_DIR": Repo.golden]) { $1 }.merging(environment) { $1 }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read before waiting so a large output cannot fill the pipe and block the child.
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
}

/// Bytes of a file.
func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
func writeBytes(_ bytes: [UInt8], to path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
