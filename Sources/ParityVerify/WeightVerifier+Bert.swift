import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

extension WeightVerifier {
    /// Checks every parameter a BERT runtime reads from its file against the reference weights (the same rules as
    /// for the other models: f32 identical, f16/bf16 round-to-nearest-even, per-block bounds for quantized types),
    /// each read as the reader says the runtime stores it (`BertStoredTensors`).
    public static func verify(bert source: any BertStoredTensors, reference: SafetensorsFile) throws(ParityError) -> WeightReport {
        let start = Date()
        let h = source.hyperparameters
        var slots: [(BertTensorRole, Int)] = BertTensorRole.allCases.filter { !$0.isPerLayer }.map { ($0, 0) }
        for layer in 0..<h.layerCount { slots += BertTensorRole.allCases.filter(\.isPerLayer).map { ($0, layer) } }
        var bindings: [RuntimeWeight] = []
        var entries: [SafetensorsEntry] = []
        var consumed = Set<String>()
        var bytes = 0
        for (role, layer) in slots {
            let referenceName = role.referenceName(layer: layer)
            guard let entry = reference.entry(named: referenceName) else {
                throw .mismatch(file: reference.path, reason: "the reference weights have no tensor \"\(referenceName)\", which \(source.path) "
                    + "(a BERT of \(h.layerCount) layers) stores")
            }
            let stored = source.storedTensor(role, layer: layer)
            let module = referenceName.hasSuffix(".weight") ? String(referenceName.dropLast(".weight".count)) : String(referenceName.dropLast(".bias".count))
            var refusal = stored.refusal
            if stored.source != nil, refusal == nil, stored.layout.view.reduce(1, *) != entry.shape.reduce(1, *) {
                refusal = "the file's hyperparameters make this tensor \(stored.layout.view); the reference's \(referenceName) is \(entry.shape)"
            }
            // A quantized MLX module is read from its packed weight and its scales (and biases, for affine).
            var names = [stored.fileName]
            if case let .mlxQuantized(_, _, biases, _)? = stored.source, stored.fileName.hasSuffix(".weight") {
                let prefix = String(stored.fileName.dropLast(".weight".count))
                names += [prefix + ".scales"] + (biases == nil ? [] : [prefix + ".biases"])
            }
            bindings.append(RuntimeWeight(layer: module, referenceName: referenceName, referenceShape: entry.shape, fileName: stored.fileName,
                                          requiredShape: entry.shape, layout: stored.layout, source: stored.source, refusal: refusal,
                                          consumedNames: stored.source == nil ? [] : names))
            entries.append(entry)
            consumed.formUnion(names)
            bytes += storedBytes(stored.source)
        }
        var results: [TensorWeightResult] = []
        let mlxFloat = LlamaRuntimeWeights.mlxFloatType(bindings)  // an MLX directory's float type (nil for other formats)
        for (binding, entry) in zip(bindings, entries) {
            let expected: [Float]
            do { expected = try reference.tensor(entry).data } catch {
                throw .unsupported(file: reference.path, reason: "cannot read reference tensor \"\(binding.referenceName)\": \(error)")
            }
            var result = check(binding, reference: expected, mlxFloat: mlxFloat, execution: .automatic)
            if result.status == .outOfBounds || result.status == .refused {
                result.diagnosis = WeightDiagnosis.diagnose(binding, reference: expected)
            }
            results.append(result)
        }
        let stored = source.loaderTensorNames
        for name in stored.names where !consumed.contains(name) {
            var extra = TensorWeightResult(layer: nil, referenceName: nil, fileName: name, storedType: "-", storedShape: [], referenceShape: [],
                                           layout: "-", status: .extra, failsVerification: stored.refusesUnread)
            extra.detail = "no parameter of the BERT graph reads it; " + stored.why
            results.append(extra)
        }
        return WeightReport(tensors: results, bytesChecked: bytes, seconds: Date().timeIntervalSince(start), referenceFile: reference.path)
    }
}
