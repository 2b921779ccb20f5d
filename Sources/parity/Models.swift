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
            let graph = model.config.graph
            if let llama = model.config.llama {
                print("  \(name)  [\(model.config.architecture), Hugging Face]  reference \(model.config.referenceFramework)")
                print("      \(llama.layerCount) layers, hidden \(llama.hiddenSize), \(llama.headCount) heads × \(llama.headDimension) (\(llama.keyValueHeadCount) KV), "
                    + "intermediate \(llama.intermediateSize), vocabulary \(llama.vocabularySize), \(llama.tiedEmbeddings ? "tied" : "untied") output; "
                    + "graph of \(graph.nodes.count) nodes, \(graph.recordedNodes.count) recorded")
            } else {
                print("  \(name)  [\(model.config.architecture)]  test accuracy \(accuracy)  reference \(model.config.referenceFramework)")
                print("      \(graph.nodes.map(\.name).joined(separator: " → "))")
            }
        }
        for (name, external) in ExternalModels.known.sorted(by: { $0.key < $1.key }) {
            // Weights installed by a set-up script, goldens in golden/<name>/.
            do { print("  \(name)  [weights installed at \(try external.directory())]") } catch {
                print("  \(name)  [not installed: run \(external.setupScript)]")
            }
        }
        print("formats: " + FormatRegistry.all.map { "\($0.name) (\($0.variants.map(\.label).joined(separator: ", ")))" }.joined(separator: "; "))
    }
}
