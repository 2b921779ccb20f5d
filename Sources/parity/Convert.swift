import ArgumentParser
import ParityModels
import ParityVerify

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a reference model to another format.",
        discussion: """
            gguf: --type f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_K|q3_K|q4_K|q5_K|q6_K|mxfp4 (ggml's mnist layouts).
            mlx: --dtype f32|f16|bf16 and optionally --mode affine|mxfp4|mxfp8|nvfp4 [--bits B --group-size G];
                 -o DIR writes config.json + model.safetensors, -o FILE.safetensors or FILE.npz the weights only.
            safetensors: --dtype f32|f16|bf16 (PyTorch names and layouts).
            """)

    @Argument(help: "A bundled model name (see `parity models`) or a reference model directory.")
    var model: String
    @Option(name: .long, help: "Target format: \(FormatRegistry.all.map(\.name).joined(separator: ", ")).")
    var to: String
    @Option(name: [.customLong("dtype"), .customLong("type")], help: "A dtype (f32, f16, bf16) or, for gguf, any ggml type (q8_0, q4_K, ...).")
    var dtype: String = "f32"
    @Option(name: .long, help: "MLX quantization mode (affine, mxfp4, mxfp8, nvfp4).")
    var mode: String?
    @Option(name: .long, help: "MLX quantization bits (affine: 2, 3, 4, 5, 6, 8).")
    var bits: Int?
    @Option(name: .long, help: "MLX quantization group size (affine: 32, 64, 128).")
    var groupSize: Int?
    @Option(name: .shortAndLong, help: "Output file or directory (files are written to a temporary name, then renamed).")
    var output: String

    func run() throws {
        let format = try FormatRegistry.named(to)
        var variant = dtype
        if mode != nil || bits != nil || groupSize != nil {
            guard format.name == "mlx" else { throw ValidationError("--mode, --bits and --group-size apply to --to mlx") }
            let m = mode ?? "affine"
            let quant = "\(m)" + (bits.map { "-b\($0)" } ?? "") + (groupSize.map { "-g\($0)" } ?? "")
            variant = dtype == "f32" ? quant : "\(dtype)+\(quant)"
        }
        let reference = try ModelRepository.locate(model)
        let notes = try format.convert(reference, variant: variant, to: output)
        for note in notes { print("  " + note) }
        print("wrote \(output) (\(format.name) \(variant))")
    }
}
