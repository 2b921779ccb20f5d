import ArgumentParser
import ParityCore
import ParityModels
import ParityVerify

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Convert a reference model to another format.")

    @Argument(help: "A bundled model name (see `parity models`) or a reference model directory.")
    var model: String
    @Option(name: .long, help: "Target format: \(FormatRegistry.all.map(\.name).joined(separator: ", ")).")
    var to: String
    @Option(name: [.customLong("dtype"), .customLong("type")], help: "Variant: a dtype (f32, f16, bf16) or a quantization type.")
    var dtype: String = "f32"
    @Option(name: .shortAndLong, help: "Output file (written to a temporary name, then renamed).")
    var output: String

    func run() throws {
        let format = try FormatRegistry.named(to)
        guard format.variants.contains(dtype) else {
            throw ParityError.usage("\(format.name) has no variant \"\(dtype)\"; choose one of \(format.variants.joined(separator: ", "))")
        }
        let reference = try ModelRepository.locate(model)
        let notes = try format.convert(reference, variant: dtype, to: output)
        for note in notes { print("  " + note) }
        print("wrote \(output) (\(format.name) \(dtype))")
    }
}
