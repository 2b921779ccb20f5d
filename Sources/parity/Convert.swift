import ArgumentParser
import ParityCore
import ParityFormats
import ParityModels
import ParityVerify

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a reference model to another format.",
        discussion: """
            gguf: --type (ggml's mnist layouts). A matrix whose rows fit no block of the type stays F16; biases stay F32. A Hugging Face Llama or BERT directory (minilm-l6) is written as llama.cpp's convert_hf_to_gguf.py writes it (BERT: --type f32, f16, bf16 or q8_0).

            mlx: --dtype and optionally --mode [--bits B --group-size G]; a Linear whose last dimension no group divides stays in --dtype. -o DIR writes config.json + model.safetensors, -o FILE.safetensors or FILE.npz the weights only.

            safetensors: --dtype (PyTorch names and layouts).

            Every tensor's stored type is printed, and the output is labelled by what it holds (GGUF: general.file_type too), which may differ from what was asked for.
            """)

    @Argument(help: "A bundled model name (see `parity models`) or a reference model directory.")
    var model: String
    @Option(name: .long, help: "Target format.")
    var to: Variant.Format
    @Option(name: .long, help: "Float type of the weights (mlx, safetensors).")
    var dtype: FloatType?
    @Option(name: .long, help: "GGUF: ggml type of the weight matrices.")
    var type: GGUFTypeChoice?
    @Option(name: .long, help: "GGUF of a Hugging Face Llama directory: a llama-quantize mix (Q4_K_M, Q5_K_M, Q6_K, Q4_0, ...).")
    var mix: String?
    @OptionGroup var quantization: MLXQuantizationOptions
    @Option(name: .shortAndLong, help: "Output file or directory (files are written to a temporary name, then renamed).")
    var output: String

    /// The variant asked for, typed: checked here, before any file is read.
    func requested() throws -> Variant {
        switch to {
        case .gguf:
            guard dtype == nil else { throw ValidationError("--to gguf takes --type (f32, f16, bf16, q8_0, ...), not --dtype") }
            guard quantization.isEmpty else { throw ValidationError("--mode, --bits and --group-size apply to --to mlx") }
            return .gguf([(type ?? .f32).type])
        case .mlx:
            guard type == nil else { throw ValidationError("--type is for --to gguf; MLX takes --dtype and --mode/--bits/--group-size") }
            return .mlx([dtype ?? .f32], try quantization.spec().map { [$0] } ?? [])
        case .safetensors:
            guard type == nil, quantization.isEmpty else { throw ValidationError("--to safetensors takes --dtype only") }
            return .safetensors([dtype ?? .f32])
        }
    }

    func run() throws {
        // A Hugging Face Llama directory: convert_hf_to_gguf's layout (+ llama-quantize's mixes), GGUFLlamaConverter.
        if to == .gguf, dtype == nil, quantization.isEmpty, let directory = GGUFLlamaConverter.llamaDirectory(for: model) {
            let output = try GGUFLlamaConverter.output(type: type?.type, mix: mix)
            for note in try GGUFLlamaConverter.convert(directory: directory, output: output, to: self.output) { print("  " + note) }
            print("wrote \(self.output) (GGUF llama \(mix ?? type?.rawValue ?? "f32"))")
            return
        }
        // A Hugging Face BERT (minilm-l6, or a directory): convert_hf_to_gguf's `bert` file, GGUFBertConverter.
        if to == .gguf, dtype == nil, quantization.isEmpty, mix == nil, let directory = bertDirectory() {
            let t = type?.type ?? .f32
            for note in try GGUFBertConverter.convert(directory: directory, type: t, to: output) { print("  " + note) }
            print("wrote \(output) (GGUF bert \(t.name), as convert_hf_to_gguf.py --outtype \(t.name) writes it)")
            return
        }
        guard mix == nil else { throw ValidationError("--mix applies to --to gguf of a Hugging Face Llama directory") }
        let variant = try requested()
        if to == .mlx, let llama = MLXLlamaConverter.llamaDirectory(for: model) { return try convertLlamaToMLX(llama) }
        let format = FormatRegistry.all.first { $0.format == to }!
        let reference = try ModelRepository.locate(model)
        let notes = try format.convert(reference, variant: variant, to: output)
        for note in notes { print("  " + note) }
        // An MLX weights-only file says nothing about its quantization: read it against the model's layers.
        let written = try (format as? MLXSupport)?.variant(ofFile: output, model: reference) ?? format.variant(ofFile: output)
        if written == variant {
            print("wrote \(output) (\(format.name) \(written.label))")
        } else {
            print("wrote \(output) (\(format.name) \(written.label); asked for \(variant.label), see the notes above)")
        }
    }

    /// The Hugging Face BERT directory the model names: a directory, or a bundled model installed from a registry.
    func bertDirectory() -> String? {
        if let directory = GGUFBertConverter.bertDirectory(for: model) { return directory }
        guard !model.contains("/"), let located = try? ModelRepository.locate(model) else { return nil }  // not found: the general path reports it
        return GGUFBertConverter.bertDirectory(for: located.directory)
    }

    /// A Hugging Face Llama directory → the MLX directory `mlx_lm convert` writes (MLXLlamaConverter).
    func convertLlamaToMLX(_ directory: String) throws {
        let names: [FloatType: String] = [.f32: "float32", .f16: "float16", .bf16: "bfloat16"]
        let q = try quantization.spec().map { MLXQuantParameters(mode: $0.mode.rawValue, groupSize: $0.groupSize, bits: $0.bits) }
        for note in try MLXLlamaConverter.convert(directory: directory, dtype: dtype.flatMap { names[$0] }, quantization: q, to: output) {
            print("  " + note)
        }
        print("wrote \(output) (mlx-lm Llama directory\(q.map { ", \($0.mode) \($0.bits)-bit group \($0.groupSize)" } ?? ""))")
    }
}
