import ArgumentParser
import Foundation
import ParityCore
import ParityFormats
import ParityModels
import ParityVerify

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Requantize a GGUF file (as llama-quantize does) or MLX weights (as mlx-lm quantizes).",
        discussion: """
            GGUF: --type T. Tensors with 2+ dimensions whose row length fits T's block size get T; others keep theirs; general.file_type says what the matrices end up as.

            MLX (a directory with config.json, a .safetensors or an .npz): --mode [--bits B] [--group-size G]. Every 2-D *.weight whose last dimension divides by G is quantized.
            """)

    @Argument(help: "Input: a GGUF file, or MLX weights (directory, .safetensors, .npz).") var input: String
    @Argument(help: "Output file or directory (files are written to a temporary name, then renamed).") var output: String
    @Option(name: .long, help: "GGUF target type.")
    var type: GGUFTypeChoice?
    @OptionGroup var quantization: MLXQuantizationOptions

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else { throw ParityError.notFound(path: input, what: "file") }
        var head: [UInt8] = []
        if !isDirectory.boolValue {
            let file = try MappedFile(path: input)
            head = try file.bytes(0..<min(4, file.count))
        }
        if head == GGUFFile.magic {
            guard let type else { throw ValidationError("a GGUF input needs --type") }
            guard quantization.isEmpty else { throw ValidationError("--mode/--bits/--group-size are for MLX inputs") }
            let target = type.type
            let decisions = try GGUFRequantizer.requantize(input: input, output: output, to: target, fileType: GGUFConverter.fileType(matrixTypes:))
            for d in decisions { print("  \(d.name): \(d.from.name) -> \(d.to.name)  (\(d.reason))") }
            let written = try GGUFSupport().variant(ofFile: output)
            print("wrote \(output) (gguf \(written.label)): \(decisions.filter { $0.to == target }.count) of \(decisions.count) tensors are \(target.name)")
            return
        }
        guard type == nil else { throw ValidationError("--type is for GGUF inputs; MLX takes --mode/--bits/--group-size") }
        let spec = try quantization.spec() ?? MLXQuantSpec(mode: .affine)
        let result = try MLXRequantizer.requantizeReporting(input: input, output: output, parameters: spec.parameters)
        for note in result.notes { print("  " + note) }
        // Read back from the file written: each module's quantization from its shapes against the width it had.
        let written = try MLXSupport().variant(ofFile: result.path, linear: result.modules)
        print("wrote \(result.path) (mlx \(written.label))")
    }
}
