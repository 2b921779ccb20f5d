import ArgumentParser
import ParityEngine
import ParityFormats
import ParityVerify

// Options shared by several subcommands, each group declared once. Fixed sets of values are enums, so `--help`
// lists them and a typo is a usage error (exit 2) before anything runs.

extension MLXQuantMode: ExpressibleByArgument {}
extension FloatType: ExpressibleByArgument {}
extension GGUFTypeChoice: ExpressibleByArgument {}
extension Variant.Format: ExpressibleByArgument {}
extension GGMLIm2colRule: ExpressibleByArgument {}

/// MLX quantization (`convert --to mlx`, `quantize` of MLX weights): mx.quantize's modes and what each accepts.
struct MLXQuantizationOptions: ParsableArguments {
    @Option(name: .long, help: "MLX quantization mode.")
    var mode: MLXQuantMode?
    @Option(name: .long, help: ArgumentHelp(
        "MLX quantization bits: affine \(MLXQuantMode.affine.allowedBits.map(String.init).joined(separator: ", ")) (default 4; MLX refuses 7); mxfp4 and nvfp4 4, mxfp8 8 (their only value).",
        valueName: "bits"))
    var bits: Int?
    @Option(name: .long, help: ArgumentHelp(
        "MLX quantization group size: affine 32, 64 or 128 (default 64); mxfp4 and mxfp8 32, nvfp4 16 (their only value).",
        valueName: "group"))
    var groupSize: Int?

    var isEmpty: Bool { mode == nil && bits == nil && groupSize == nil }

    /// The quantization asked for (mode affine when only bits/group are given), checked as mx.quantize checks it.
    func spec() throws -> MLXQuantSpec? {
        guard !isEmpty else { return nil }
        return try MLXQuantSpec(mode: mode ?? .affine, bits: bits, groupSize: groupSize)
    }
}

/// Which converted-file format to read (`verify`, `layer-diff`), when not detected from the content.
struct GGMLIm2colOptions: ParsableArguments {
    @Option(name: .long, help: "GGUF: emulate ggml's conv_2d im2col typing: kernel (ggml 0.15, default) or f16 (ggml up to d99724f).")
    var ggmlIm2col: GGMLIm2colRule = .kernelType

    /// The format's support, with the GGUF im2col rule applied.
    func support(_ format: FormatSupport) -> FormatSupport { format.format == .gguf ? GGUFSupport(im2col: ggmlIm2col) : format }
}

extension GGMLIm2colRule {
    /// `f32` is an internal counterfactual (attribution), not a ggml that exists: not offered on the command line.
    public static var allValueStrings: [String] { [GGMLIm2colRule.kernelType.rawValue, GGMLIm2colRule.f16.rawValue] }
    public init?(argument: String) {
        guard let rule = GGMLIm2colRule(rawValue: argument), rule != .f32 else { return nil }
        self = rule
    }
}
