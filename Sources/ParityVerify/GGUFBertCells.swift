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
    /// A block-quantized file's 1 − cos limit over the expected run's: the node limits' 2x margin squared (1 − cos ≈ r²/2).
    static let quantizedCosineFactor = TolerancePolicy.expectedErrorMargin * TolerancePolicy.expectedErrorMargin

    /// Every type the converter writes (`--variant`).
    public static let variants = GGUFBertConverter.types.map(\.name)
    /// The cells `parity verify minilm-l6` runs by default: every type the converter writes, q8_0 judged from the
    /// reference quantized to q8_0 and run as llama.cpp runs it (Tolerance+BertQuantized.swift).
    public static let defaultCells = variants

    /// Writes the cell's file with GGUFBertConverter; returns the converter's notes.
    public static func convert(_ model: ReferenceModel, cell: String, to path: String) throws -> [String] {
        guard let type = GGUFBertConverter.types.first(where: { $0.name == cell }) else {
            throw ParityError.usage("GGUF BERT variant \"\(cell)\": give one of \(variants.joined(separator: ", ")) (convert_hf_to_gguf.py's --outtype)"
                + kQuantNote(cell, model: model))
        }
        return try GGUFBertConverter.convert(directory: model.directory, type: type, to: path)
    }

    /// Why a K-quant (or a llama-quantize mix) is not a cell of this BERT: ggml's K types pack a row in super-blocks of
    /// QK_K = 256 values, and a row of `hidden` values that is not a multiple cannot be stored in them; llama-quantize
    /// then substitutes a legacy type per tensor (llama.cpp's tensor_type_fallback, recorded for all-MiniLM-L6-v2 in
    /// Tests/ParityTests/Fixtures/minilm-gguf). Empty for other names.
    static func kQuantNote(_ cell: String, model: ReferenceModel) -> String {
        let name = cell.lowercased()
        let legacy = ["q4_0", "q4_1", "q5_0", "q5_1"]
        guard name.contains("_k") || legacy.contains(name) else { return "" }
        let config = try? BertArchitecture.load(path: model.configPath)  // checked: without the config the note names no widths
        let hidden = config?.hiddenSize ?? 0, inner = config?.intermediateSize ?? 0
        if legacy.contains(name) {
            return ". convert_hf_to_gguf writes no \(cell); make it with `llama-quantize MODEL-f32.gguf OUT \(cell.uppercased())` and verify that file with "
                + "--file (its cells are judged from the reference quantized to the file's types, docs/bert.md)"
        }
        guard hidden > 0, hidden % 256 != 0 else { return "" }
        return ". \(cell) does not apply to \(model.name): ggml's K-quants store rows in super-blocks of 256 values and this model's token_embd, "
            + "attn_q/k/v/output and ffn_up rows are \(hidden) wide (\(hidden) % 256 = \(hidden % 256)); only ffn_down (rows of \(inner)"
            + "\(inner % 256 == 0 ? " = \(inner / 256) × 256" : ", not a multiple either")) could hold one. llama-quantize's K mixes fall back per tensor "
            + "(Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; token_embd takes the output type, Q6_K → Q8_0): make such a file with "
            + "llama-quantize and verify it with --file (docs/bert.md)"
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
        if source.causalAttention {
            report.notes.append("warning: bert.attention.causal is \(source.file["bert.attention.causal"] == nil ? "absent (llama.cpp's default: true)" : "true"), "
                + "but the reference is a bidirectional encoder; llama.cpp ignores it for bert (llama_context::encode forces non-causal attention), "
                + "so the file embeds as the reference does — a runtime that honoured it would not")
        }
        // llama.cpp tokenizes users' text with the file's vocabulary; the goldens' token ids cannot see it (BertVocabularyCheck).
        if let mismatch = try BertVocabularyCheck.firstMismatch(gguf: source.file, referenceDirectory: model.directory) {
            report.hyperparameterMismatches.append("tokenizer: " + mismatch)
            report.notes.append("FAIL: tokenizer: \(mismatch)")
        }
        if golden.kind == "sentence-embedding" {
            let agreement = try SentenceAgreement.compute(graph: model.config.graph, engine: engine, golden: golden)
            if let types = BertQuantizedExpectation.types(source), !Set(types.values).isSubset(of: [.f32, .f16, .bf16]) {
                // Block-quantized: the cosine the reference quantized to the same types reaches, run as llama.cpp runs it.
                if let expectedEngine = BertQuantizedExpectation.engine(model: model, types: types) {
                    let expected = try SentenceAgreement.compute(graph: model.config.graph, engine: expectedEngine, golden: golden)
                    let allowed = max(1 - SentenceAgreement.floatCosine, quantizedCosineFactor * (1 - expected.minimumCosine))
                    BertCells.judge(&report, agreement, cosineLimit: 1 - allowed,
                                    why: "the reference quantized to this file's types and run as llama.cpp runs it reaches 1 − cos "
                                        + "\(formatNumber(1 - expected.minimumCosine)) at worst; 1 − cos ≈ r²/2 for a relative error r, so the nodes' 2x "
                                        + "margin is 4x in 1 − cos (never tighter than the float bar 1e-4)")
                } else {
                    report.notes.append(agreement.summary + " (no limit: the reference could not be quantized)")
                }
            } else {
                BertCells.judge(&report, agreement, cosineLimit: SentenceAgreement.floatCosine, why: "the bar for float files")
            }
        }
        if !golden.omittedModules.isEmpty {
            report.notes.append("the golden omits \(golden.omittedModules.joined(separator: ", ")) to stay small: those layers ran, their nodes were not compared")
        }
        return report
    }
}
