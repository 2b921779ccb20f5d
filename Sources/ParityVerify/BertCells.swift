import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// The BERT cells of `verify` (minilm-l6): safetensors files in float32/16 read as PyTorch loads them
/// (PyTorchBertWeights) and run through `BertGraphEngine` with PyTorch's ops. GGUF and MLX BERT cells are added by
/// their readers (`BertGraphEngine` over another `BertWeightSource` and `BertOps`).
public enum BertCells {
    public static func isBert(_ model: ReferenceModel) -> Bool { model.config.modelType == "bert" }

    public static func defaultCells(_ format: Variant.Format) -> [String] {
        switch format {
        case .safetensors: return FloatType.allCases.map(\.rawValue)
        case .mlx: return MLXBertCells.defaultCells
        case .gguf: return []
        }
    }

    /// The engine PyTorch would be for a safetensors file of this model (hyperparameters from the reference's config).
    public static func pytorchEngine(_ file: String, model: ReferenceModel) throws(ParityError) -> BertGraphEngine {
        let config = try BertArchitecture.load(path: model.configPath)
        return BertGraphEngine.pytorch(PyTorchBertWeights(weights: try SafetensorsFile(path: file), config: config))
    }

    /// Runs a safetensors file through the graph and compares every recorded node with the goldens.
    public static func verify(_ file: String, format: Variant.Format, model: ReferenceModel, golden: GoldenFile) throws(ParityError) -> VerificationReport {
        if format == .mlx { return try MLXBertCells.verify(file, model: model, golden: golden) }
        guard format == .safetensors else {
            throw .unsupported(file: file, reason: "a BERT in \(format.rawValue): Parity verifies BERT in safetensors so far")
        }
        let engine = try pytorchEngine(file, model: model)
        let weights = try SafetensorsFile(path: file)
        let dtypes = Set(weights.entries.filter { $0.dtype.isFloatingPoint }.map(\.dtype))
        let variant = dtypes.count == 1 ? (FloatType(dtypes.first!)?.rawValue ?? dtypes.first!.rawValue) : "mixed"
        var report = try Comparator.verify(model: model, golden: golden, engine: engine, format: format.rawValue, variant: variant, file: file)
        if !golden.omittedModules.isEmpty {
            report.notes.append("the golden omits \(golden.omittedModules.joined(separator: ", ")) to stay small: those layers ran, their nodes were not compared")
        }
        return report
    }
}
