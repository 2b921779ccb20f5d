import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// llama.cpp's numerics options that change what its CPU backend computes on the same file.
public struct LlamaRuntimeSettings: Equatable, Sendable, CustomStringConvertible {
    public var kvCache: GGMLKVCacheType
    public var flashAttention: Bool

    /// What llama.cpp's own CLI tools (llama-cli, llama-perplexity, llama-server) use on the CPU backend when given
    /// no option, in the llama.cpp the fixtures were made with (llama-cpp-python 0.3.36's vendored llama.cpp):
    /// - KV cache F16: common/common.h:343-344 `ggml_type cache_type_k = GGML_TYPE_F16;` / `cache_type_v = GGML_TYPE_F16;`
    ///   (the C API's `llama_context_default_params` too, src/llama-context.cpp:3780-3781).
    /// - flash attention on: common/common.h:501 `flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO`, and
    ///   src/llama-context.cpp:557-560 resolves AUTO by probing whether the backend runs GGML_OP_FLASH_ATTN_EXT —
    ///   ggml's CPU backend does, so AUTO becomes enabled on CPU.
    public static let llamaCppCLIDefaults = LlamaRuntimeSettings(kvCache: .f16, flashAttention: true)

    public init(kvCache: GGMLKVCacheType, flashAttention: Bool) {
        self.kvCache = kvCache
        self.flashAttention = flashAttention
    }

    public var description: String { "KV cache \(kvCache.rawValue.uppercased()), flash attention \(flashAttention ? "on" : "off")" }
}

/// The Llama cells of `verify`: which files Parity writes in GGUF (convert_hf_to_gguf's outtypes and llama-quantize's
/// mixes) and MLX (mlx_lm convert's dtypes and quantizations), and how a GGUF / MLX Llama file is run: through the
/// reader that loads it as the runtime does (GGUFLlamaWeights, MLXLlamaWeights) and `LlamaGraphEngine`.
public enum LlamaCells {
    /// The Hugging Face Llama directory of a reference model (nil: not a Llama).
    public static func llamaDirectory(_ model: ReferenceModel) -> String? {
        model.config.llama == nil ? nil : model.directory
    }

    /// The cells `verify` runs by default: every GGUF type/mix and MLX dtype/quantization Parity writes that
    /// llama.cpp / mlx-lm users make of a Llama.
    public static func defaultCells(_ format: Variant.Format) -> [String] {
        switch format {
        case .safetensors: return FloatType.allCases.map(\.rawValue)
        case .gguf: return ["f32", "f16", "bf16", "q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"]
        case .mlx: return ["f32", "f16", "bf16", "affine-b8-g64", "affine-b4-g64", "mxfp4"]
        }
    }

    /// Checks a `--variant` for a Llama cell of `format` (a usage error names the valid forms).
    public static func parseCell(_ text: String, format: Variant.Format) throws(ParityError) -> String {
        switch format {
        case .safetensors:
            guard FloatType(rawValue: text) != nil else { throw .usage("safetensors variant \"\(text)\": give f32, f16 or bf16") }
        case .gguf:
            guard GGUFLlamaConverter.Output(name: text) != nil else {
                throw .usage("gguf Llama variant \"\(text)\": give one of \(GGUFLlamaConverter.Output.names.joined(separator: ", "))")
            }
        case .mlx:
            let (float, quant) = mlxCellParts(text)
            if let float, FloatType(rawValue: float) == nil { throw .usage("mlx Llama variant \"\(text)\": \"\(float)\" is not f32, f16 or bf16") }
            if let quant { _ = try MLXQuantSpec.parse(quant) }
        }
        return text
    }

    /// "f16", "affine-b4-g64", "f16+affine-b4-g64" → (float, quantization).
    static func mlxCellParts(_ text: String) -> (float: String?, quantization: String?) {
        if let plus = text.firstIndex(of: "+") { return (String(text[..<plus]), String(text[text.index(after: plus)...])) }
        return FloatType(rawValue: text) != nil ? (text, nil) : (nil, text)
    }

    /// Writes the cell's file with Parity's converters (GGUFLlamaConverter, MLXLlamaConverter, SafetensorsConverter).
    public static func convert(_ model: ReferenceModel, format: Variant.Format, cell: String, to path: String) throws -> [String] {
        switch format {
        case .safetensors:
            return try SafetensorsConverter.convert(model, dtype: cell, to: path)
        case .gguf:
            guard let output = GGUFLlamaConverter.Output(name: cell) else { throw ParityError.usage("gguf Llama variant \"\(cell)\" unknown") }
            return try GGUFLlamaConverter.convert(directory: model.directory, output: output, to: path)
        case .mlx:
            let names: [String: String] = ["f32": "float32", "f16": "float16", "bf16": "bfloat16"]
            let (float, quant) = mlxCellParts(cell)
            let q = try quant.map { text throws -> MLXQuantParameters in
                let spec = try MLXQuantSpec.parse(text)
                return MLXQuantParameters(mode: spec.mode.rawValue, groupSize: spec.groupSize, bits: spec.bits)
            }
            return try MLXLlamaConverter.convert(directory: model.directory, dtype: float.flatMap { names[$0] }, quantization: q, to: path)
        }
    }

    /// What a GGUF Llama file says it is: llama.cpp's file type name (`general.file_type`: the converter's outtypes
    /// f32/f16/bf16/q8_0, llama-quantize's mixes Q4_K_M, …), else the ggml types of its matrices.
    static func ggufLabel(_ file: GGUFFile) -> String {
        let fileType: UInt32? = file.metadata.first { $0.key == "general.file_type" }.flatMap {
            if case let .uint32(v) = $0.value { return v }
            if case let .int32(v) = $0.value, v >= 0 { return UInt32(v) }
            return nil
        }
        let converterNames: [UInt32: String] = [0: "f32", 1: "f16", 32: "bf16", 7: "q8_0"]
        if let fileType, let name = converterNames[fileType] ?? LlamaQuantizeMix.allCases.first(where: { $0.fileType == fileType })?.rawValue {
            return name
        }
        let types = GGUFConverter.matrixTypes(of: file)
        return types.isEmpty ? "-" : Variant.gguf(types).label
    }

    /// What an MLX Llama directory holds, as mlx_lm.load decided it: the float dtype of the embedding table (or of its
    /// scales when quantized) and the quantization of each quantized module.
    static func mlxLabel(_ source: MLXLlamaWeights) -> String {
        var floats: [FloatType] = []
        if let embedding = try? source.matrix(.tokenEmbedding, layer: 0) {  // checked: a missing table is the engine's error to report
            switch embedding.storage {
            case let .dense(_, dtype): floats = FloatType(dtype).map { [$0] } ?? []
            case let .mlxQuantized(_, scales, _, _, _, _): floats = FloatType(scales.dtype).map { [$0] } ?? []
            case .ggml: break
            }
        }
        let quantizations = source.quantizedModules.values.compactMap { try? MLXQuantSpec($0) }  // checked: an unknown mode has no label
        return Variant.mlx(floats.isEmpty ? [.f32] : floats, quantizations).label
    }

    /// Opens a GGUF or MLX Llama file as llama.cpp / mlx-lm loads it and runs it through `LlamaGraphEngine` against the
    /// goldens. A file the runtime refuses fails (its rule named); a file that is not what it claims throws ParityError.
    public static func verify(_ path: String, format: Variant.Format, model: ReferenceModel, golden: GoldenFile,
                              settings: LlamaRuntimeSettings, layerDiff: Bool = false, diagnose: Bool = true,
                              progress: (String) -> Void = { _ in }) throws -> VerificationReport {
        let engine: GraphEngine, variant: String, refusals: [String], warnings: [String], notes: [String]
        switch format {
        case .gguf:
            let file = try GGUFFile(path: path)
            switch try GGUFLlamaWeights.load(file) {
            case let .failure(refusal):
                // Nothing runs: every golden node is reported as not run, and the refusal fails the file.
                let layers = golden.activations.map { a in
                    LayerResult(name: a.name, op: a.op, order: a.order, input: a.input, inputs: a.inputs, shape: a.value.shape, metrics: nil,
                                tolerance: nil, status: .notRun, growth: nil, noiseFloorRelL2: a.noiseFloorRelL2)
                }
                var report = VerificationReport(model: model.name, format: format.rawValue, variant: ggufLabel(file), file: path,
                                                engine: "llama.cpp model loader", policy: nil, layers: layers, argmax: nil, inputCount: 0)
                report.loadRefusals = [refusal.description]
                report.notes.append("FAIL: \(refusal.description)")
                return report
            case let .success(source):
                engine = LlamaGraphEngine.ggml(source, kvCache: settings.kvCache, flashAttention: settings.flashAttention)
                variant = ggufLabel(file)
                refusals = source.loading.refusals
                warnings = source.loading.warnings
                notes = ["llama.cpp runtime settings: \(settings)"]
            }
        case .mlx:
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ParityError.unsupported(file: path, reason: "an MLX Llama is a directory (config.json + safetensors), as mlx_lm.load reads it")
            }
            let source = try MLXLlamaWeights.load(directory: path, includingTokenizer: true)  // verify judges what mlx_lm.load loads
            engine = LlamaGraphEngine.mlx(source)
            variant = mlxLabel(source)
            refusals = source.loading.refusals
            warnings = source.loading.warnings
            notes = source.notes
        case .safetensors:
            return try SafetensorsSupport().verify(path, model: model, golden: golden)
        }
        var report = layerDiff
            ? try Comparator.layerDiff(model: model, golden: golden, engine: engine, format: format.rawValue, variant: variant, file: path,
                                       diagnose: diagnose, progress: progress)
            : try Comparator.verify(model: model, golden: golden, engine: engine, format: format.rawValue, variant: variant, file: path)
        if let architecture = model.config.llama, let source = (engine as? LlamaGraphEngine)?.source {
            report.hyperparameterMismatches = LlamaHyperparameterCheck.mismatches(source: source, reference: architecture)
            report.notes += report.hyperparameterMismatches.map { "FAIL: hyperparameter: \($0)" }
        }
        if format == .gguf, let gguf = ((engine as? LlamaGraphEngine)?.source as? GGUFLlamaWeights)?.file,
           let mismatch = try LlamaTokenizerCheck.firstMismatch(gguf: gguf, referenceDirectory: model.directory) {
            // Metadata that disagrees with the reference fails the file as a hyperparameter does.
            report.hyperparameterMismatches.append("tokenizer: " + mismatch)
            report.notes.append("FAIL: tokenizer: \(mismatch)")
        }
        // The reader's loading verdict (the Comparator carries it too if the engine reports it: each said once).
        report.loadRefusals += refusals.filter { !report.loadRefusals.contains($0) }
        let loadingNotes = (refusals.map { "FAIL: \($0)" } + warnings.map { "warning: \($0)" }).filter { !report.notes.contains($0) }
        report.notes = notes + report.notes + loadingNotes
        return report
    }
}
