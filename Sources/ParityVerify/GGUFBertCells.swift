import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// The GGUF cells of a BERT (minilm-l6): files in the layout `convert_hf_to_gguf.py` writes (GGUFBertConverter),
/// read as llama.cpp's `bert` loader reads them (GGUFBertWeights) and run through `BertGraphEngine` with ggml's CPU
/// ops (BertGGMLOps: llama.cpp's embedding path, flash attention off). Cells are named by the converter's
/// `--outtype`: "f32", "f16", "bf16", "q8_0".
public enum GGUFBertCells {
    /// Every type the converter writes (`--variant`).
    public static let variants = GGUFBertConverter.types.map(\.name)
    /// The cells `parity verify minilm-l6` runs by default: the ones with a tolerance policy. q8_0 has none yet for
    /// BERT nodes (it runs and is measured, verdict UNJUDGED, with `--variant q8_0`); a default cell that can only
    /// be unjudged would make the bundled-model run exit 3.
    public static let defaultCells = variants.filter { $0 != "q8_0" }

    /// Writes the cell's file with GGUFBertConverter; returns the converter's notes.
    public static func convert(_ model: ReferenceModel, cell: String, to path: String) throws -> [String] {
        guard let type = GGUFBertConverter.types.first(where: { $0.name == cell }) else {
            throw ParityError.usage("GGUF BERT variant \"\(cell)\": give one of \(variants.joined(separator: ", ")) (convert_hf_to_gguf.py's --outtype)")
        }
        return try GGUFBertConverter.convert(directory: model.directory, type: type, to: path)
    }

    /// The ggml type of the file's linear matrices (the converter's --outtype), "mixed" when they differ.
    static func label(_ source: GGUFBertWeights) -> String {
        var types = Set<String>()
        for layer in 0..<source.hyperparameters.layerCount {
            for role in [BertTensorRole.query, .key, .value, .attentionOutput, .intermediate, .output] {
                if let m = try? source.matrix(role, layer: layer), case let .ggml(_, tensor) = m.storage { types.insert(tensor.type.name) }  // checked: a refused matrix fails the run itself
            }
        }
        return types.count == 1 ? types.first! : "mixed"
    }

    /// Opens a GGUF as llama.cpp's bert loader does and compares every recorded node with the goldens, every stored
    /// tensor with the reference weights,
    /// and the sentence embeddings of the reference sentences. A file llama.cpp refuses fails
    /// with llama.cpp's message; bad input throws ParityError.
    public static func verify(_ path: String, model: ReferenceModel, golden: GoldenFile) throws(ParityError) -> VerificationReport {
        let source: GGUFBertWeights
        switch try GGUFBertWeights.load(path: path) {
        case let .success(loaded): source = loaded
        case let .failure(refusal):
            // Nothing runs: every golden node is reported as not run, and the refusal fails the file.
            let layers = golden.activations.map { a in
                LayerResult(name: a.name, op: a.op, order: a.order, input: a.input, inputs: a.inputs, shape: a.value.shape, metrics: nil,
                            tolerance: nil, status: .notRun, growth: nil, noiseFloorRelL2: a.noiseFloorRelL2)
            }
            var report = VerificationReport(model: model.name, format: Variant.Format.gguf.rawValue, variant: "-", file: path,
                                            engine: "llama.cpp model loader (bert)", policy: nil, layers: layers, argmax: nil, inputCount: 0)
            report.loadRefusals = [refusal.description]
            report.notes = ["FAIL: \(refusal.description)"]
            return report
        }
        let engine = BertGraphEngine(source: source, ops: BertGGMLOps(source: source))
        var report = try Comparator.verify(model: model, golden: golden, engine: engine, format: Variant.Format.gguf.rawValue,
                                           variant: label(source), file: path, checkWeights: false)
        // Every tensor llama.cpp reads, against the reference, with its ggml type's bound (WeightVerifier+Bert.swift).
        report.weights = try WeightVerifier.verify(bert: source, reference: model.weights())
        report.loadRefusals += source.loading.refusals.filter { !report.loadRefusals.contains($0) }
        report.notes += source.loading.refusals.map { "FAIL: \($0)" } + source.loading.warnings.map { "warning: \($0)" }
        if golden.kind == "sentence-embedding" {
            report.notes.append(try SentenceAgreement.compute(graph: model.config.graph, engine: engine, golden: golden).summary)
        }
        if !golden.omittedModules.isEmpty {
            report.notes.append("the golden omits \(golden.omittedModules.joined(separator: ", ")) to stay small: those layers ran, their nodes were not compared")
        }
        return report
    }
}
