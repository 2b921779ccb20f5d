import ArgumentParser
import Foundation
import ParityCore
import ParityFormats
import ParityModels

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Requantize a GGUF file (as llama-quantize does) or MLX weights (as mlx-lm quantizes).",
        discussion: """
            GGUF: --type T. Tensors with 2+ dimensions whose row length fits T's block size get T; others keep theirs.
            MLX (a directory with config.json, a .safetensors or an .npz): --mode affine|mxfp4|mxfp8|nvfp4
            [--bits B] [--group-size G]. Every 2-D *.weight whose last dimension divides by G is quantized.
            """)

    @Argument(help: "Input: a GGUF file, or MLX weights (directory, .safetensors, .npz).") var input: String
    @Argument(help: "Output file or directory (files are written to a temporary name, then renamed).") var output: String
    @Option(name: .long, help: "GGUF target type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_K, q3_K, q4_K, q5_K, q6_K, mxfp4.")
    var type: String?
    @Option(name: .long, help: "MLX mode: affine (default), mxfp4, mxfp8, nvfp4.") var mode: String?
    @Option(name: .long, help: "MLX bits (affine: 2, 3, 4, 5, 6, 8).") var bits: Int?
    @Option(name: .long, help: "MLX group size (affine: 32, 64, 128).") var groupSize: Int?

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
            guard mode == nil, bits == nil, groupSize == nil else { throw ValidationError("--mode/--bits/--group-size are for MLX inputs") }
            guard let target = GGMLType.named(type) else { throw ParityError.usage("unknown ggml type \"\(type)\"") }
            let decisions = try GGUFRequantizer.requantize(input: input, output: output, to: target, fileType: GGUFConverter.fileTypes[target])
            for d in decisions { print("  \(d.name): \(d.from.name) -> \(d.to.name)  (\(d.reason))") }
            print("wrote \(output): \(decisions.filter { $0.to == target }.count) of \(decisions.count) tensors are \(target.name)")
            return
        }
        guard type == nil else { throw ValidationError("--type is for GGUF inputs; MLX takes --mode/--bits/--group-size") }
        let m = mode ?? "affine"
        guard let defaults = MLXQuantization.defaults(mode: m) else { throw ParityError.usage("unknown MLX quantization mode \"\(m)\"") }
        let parameters = MLXQuantParameters(mode: m, groupSize: groupSize ?? defaults.groupSize, bits: bits ?? defaults.bits)
        for note in try MLXRequantizer.requantize(input: input, output: output, parameters: parameters) { print("  " + note) }
        print("wrote \(output)")
    }
}
