import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// `layer-diff` for a BERT (minilm-l6): the file opened as its runtime opens it — GGUF as llama.cpp's bert loader
/// (ggml's ops), an MLX directory as mlx-embeddings, safetensors as PyTorch — every golden node compared propagated
/// and isolated (run alone on its golden inputs), and each node that fails isolated diagnosed with the BERT
/// conversion mistakes and runtime conventions (Diagnosis+Bert.swift).
public enum BertLayerDiff {
    /// The engine the runtime of `format` would be for `path`, and the variant label; a GGUF llama.cpp refuses is
    /// returned as its refusal.
    public static func open(_ path: String, format: Variant.Format, model: ReferenceModel) throws(ParityError)
        -> Result<(engine: BertGraphEngine, variant: String), LlamaRuntimeRefusal> {
        switch format {
        case .safetensors:
            let engine = try BertCells.pytorchEngine(path, model: model)
            let weights = try SafetensorsFile(path: path)
            let dtypes = Set(weights.entries.filter { $0.dtype.isFloatingPoint }.map(\.dtype))
            return .success((engine, dtypes.count == 1 ? (FloatType(dtypes.first!)?.rawValue ?? dtypes.first!.rawValue) : "mixed"))
        case .gguf:
            switch try GGUFBertWeights.load(path: path) {
            case let .success(source): return .success((BertGraphEngine(source: source, ops: BertGGMLOps(source: source)), GGUFBertCells.label(source)))
            case let .failure(refusal): return .failure(refusal)
            }
        case .mlx:
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw .unsupported(file: path, reason: "an MLX BERT is a directory (config.json + model*.safetensors), as mlx_embeddings.load reads it")
            }
            let source = try MLXBertWeights.load(directory: path)
            return .success((BertGraphEngine(source: source, ops: BertMLXOps(source: source)), MLXBertCells.label(source)))
        }
    }

    /// Runs `layer-diff` on a BERT file; a GGUF llama.cpp refuses is the same failure `verify` reports.
    public static func run(_ path: String, format: Variant.Format, model: ReferenceModel, golden: GoldenFile, diagnose: Bool = true,
                           progress: (String) -> Void = { _ in }) throws(ParityError) -> VerificationReport {
        switch try open(path, format: format, model: model) {
        case .failure:
            return try BertCells.verify(path, format: format, model: model, golden: golden)
        case let .success((engine, variant)):
            return try run(engine, variant: variant, file: path, format: format, model: model, golden: golden, diagnose: diagnose, progress: progress)
        }
    }

    /// `layer-diff` on an opened engine (tests pass planted files they built in memory).
    public static func run(_ engine: BertGraphEngine, variant: String, file: String, format: Variant.Format, model: ReferenceModel, golden: GoldenFile,
                           diagnose: Bool = true, progress: (String) -> Void = { _ in }) throws(ParityError) -> VerificationReport {
        var report = try Comparator.layerDiff(model: model, golden: golden, engine: engine, format: format.rawValue, variant: variant, file: file,
                                              diagnose: diagnose, progress: progress)
        // Comparator's generic note says transformers' weights go unchecked; BERT's are checked here, tensor by tensor.
        report.notes.removeAll { $0.hasPrefix("weights were not checked tensor by tensor") }
        if let stored = engine.source as? any BertStoredTensors {
            report.weights = try WeightVerifier.verify(bert: stored, reference: model.weights())
        }
        if let loading = (engine.source as? GGUFBertWeights)?.loading ?? (engine.source as? MLXBertWeights)?.loading {
            report.loadRefusals += loading.refusals.filter { !report.loadRefusals.contains($0) }
            report.notes += loading.refusals.map { "FAIL: \($0)" } + loading.warnings.map { "warning: \($0)" }
        }
        if !golden.omittedModules.isEmpty {
            report.notes.append("the golden omits \(golden.omittedModules.joined(separator: ", ")) to stay small: those layers ran, their nodes were not compared")
        }
        return report
    }
}
