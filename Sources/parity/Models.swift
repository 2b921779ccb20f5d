import ArgumentParser
import ParityModels
import ParityVerify

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the bundled reference models (golden/*).")

    func run() throws {
        guard let dir = ModelRepository.bundledDirectory() else {
            printError("error: no golden/ directory found (set PARITY_GOLDEN_DIR or run from the repository)")
            throw ExitCode(Exit.badInput)
        }
        print("bundled models in \(dir):")
        for name in ModelRepository.bundledNames() {
            let model = try ModelRepository.locate(name)
            let accuracy = model.config.testAccuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "?"
            let layers = model.config.layers.map(\.name).joined(separator: " → ")
            print("  \(name)  [\(model.config.architecture)]  test accuracy \(accuracy)  reference \(model.config.referenceFramework)")
            print("      \(layers)")
        }
        for (name, reason) in ModelRepository.pendingBundled() {
            print("  \(name)  not verifiable yet: \(reason)")
        }
        print("formats: " + FormatRegistry.all.map { "\($0.name) (\($0.variants.map(\.label).joined(separator: ", ")))" }.joined(separator: "; "))
    }
}
