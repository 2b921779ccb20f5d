import ArgumentParser
import Foundation
import ParityCore
import ParityVerify

/// Exit codes (ARCHITECTURE.md CLI contract): 0 all passed, 1 a verification failed, 2 bad input or usage.
enum Exit {
    static let verificationFailed: Int32 = 1
    static let badInput: Int32 = 2
}

@main
struct Parity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Prove a model conversion is correct, layer by layer, against PyTorch goldens.",
        subcommands: [Models.self, Verify.self, LayerDiff.self, Convert.self, Quantize.self, Inspect.self])

    /// Runs the command and maps every failure onto the exit-code contract; argument-parser's own usage
    /// errors (which it would exit with 64) also become 2.
    static func main() {
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

func printError(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }
var stdoutIsTTY: Bool { isatty(STDOUT_FILENO) == 1 }
