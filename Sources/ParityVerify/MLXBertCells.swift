import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// The MLX cells of a BERT (minilm-l6): directories in mlx-embeddings' layout (MLXBertConverter), read as
/// mlx-embeddings loads them (MLXBertWeights) and run through `BertGraphEngine` with MLX's ops (BertMLXOps).
/// Cells are named as the Llama MLX cells are: "f32", "f16", "affine-b4-g64", "f32+affine-b8-g64"; a quantization
/// without a float dtype converts from float16, mlx-embeddings' default.
public enum MLXBertCells {
    /// The cells `parity verify minilm-l6` runs by default: the float directories and mlx-embeddings' 8- and 4-bit
    /// affine (group 64, its default), judged from the reference quantized with the same parameters
    /// (Tolerance+BertQuantized.swift). Other group sizes run with `--variant affine-b4-g32` etc.
    public static let defaultCells = ["f32", "f16", "affine-b8-g64", "affine-b4-g64"]

    /// Writes the cell's directory with MLXBertConverter; returns the converter's notes.
    public static func convert(_ model: ReferenceModel, cell: String, to path: String) throws -> [String] {
        let names: [String: String] = ["f32": "float32", "f16": "float16", "bf16": "bfloat16"]
        let (float, quant) = LlamaCells.mlxCellParts(cell)
        if let float, names[float] == nil { throw ParityError.usage("mlx BERT variant \"\(cell)\": \"\(float)\" is not f32, f16 or bf16") }
        let q = try quant.map { text throws -> MLXQuantParameters in try MLXQuantSpec.parse(text).parameters }
        return try MLXBertConverter.convert(directory: model.directory, dtype: float.flatMap { names[$0] }, quantization: q, to: path)
    }

    /// What the directory holds as mlx-embeddings decided it: the float dtype of its weights (scales) and its quantizations.
    static func label(_ source: MLXBertWeights) -> String {
        let float = FloatType(source.activationType.dtype) ?? .f32
        let quantizations = source.quantizedModules.values.compactMap { try? MLXQuantSpec($0) }  // checked: an unknown mode has no label
        return Variant.mlx([float], quantizations).label
    }

    /// Opens an MLX BERT directory as mlx-embeddings loads it and compares every recorded node with the goldens. A
    /// directory the runtime refuses fails with the refusal named; bad input throws ParityError.
    public static func verify(_ path: String, model: ReferenceModel, golden: GoldenFile) throws(ParityError) -> VerificationReport {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .unsupported(file: path, reason: "an MLX BERT is a directory (config.json + model*.safetensors), as mlx_embeddings.load reads it")
        }
        let source = try MLXBertWeights.load(directory: path)
        let engine = BertGraphEngine(source: source, ops: BertMLXOps(source: source))
        var report = try Comparator.verify(model: model, golden: golden, engine: engine, format: Variant.Format.mlx.rawValue,
                                           variant: label(source), file: path, checkWeights: false)
        // Every parameter mlx-embeddings reads, against the reference, with its dtype's or quantization's bound.
        report.weights = try WeightVerifier.verify(bert: source, reference: model.weights())
        report.loadRefusals += source.loading.refusals.filter { !report.loadRefusals.contains($0) }
        report.notes = source.notes + report.notes + source.loading.refusals.map { "FAIL: \($0)" } + source.loading.warnings.map { "warning: \($0)" }
        // A directory the runtime refuses fails already and cannot embed anything: no end metric.
        if golden.kind == "sentence-embedding" && source.loading.refusals.isEmpty {
            let agreement = try SentenceAgreement.compute(graph: model.config.graph, engine: engine, golden: golden)
            if source.quantizedModules.isEmpty {
                BertCells.judge(&report, agreement, cosineLimit: SentenceAgreement.floatCosine, why: "the bar for float files")
            } else if let expectedEngine = ExpectedMLXBertWeights.engine(model: model, source: source) {
                let expected = try SentenceAgreement.compute(graph: model.config.graph, engine: expectedEngine, golden: golden)
                let allowed = max(1 - SentenceAgreement.floatCosine, GGUFBertCells.quantizedCosineFactor * (1 - expected.minimumCosine))
                BertCells.judge(&report, agreement, cosineLimit: 1 - allowed,
                                why: "the reference quantized with this directory's parameters and run as mlx-embeddings runs it reaches 1 − cos "
                                    + "\(formatNumber(1 - expected.minimumCosine)) at worst; the nodes' 2x margin is 4x in 1 − cos (never tighter than 1e-4)")
            } else {
                report.notes.append(agreement.summary + " (no limit: the reference could not be quantized)")
            }
        }
        if !golden.omittedModules.isEmpty {
            report.notes.append("the golden omits \(golden.omittedModules.joined(separator: ", ")) to stay small: those layers ran, their nodes were not compared")
        }
        return report
    }
}
