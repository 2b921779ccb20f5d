import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// Every tensor of a Llama file read the way its runtime reads it (through the `LlamaWeightSource` the engine
/// computes from), with the layout that brings it to the Hugging Face reference parameter.
///
/// Q and K: a runtime that rotates adjacent pairs (2i, 2i+1) of each head — llama.cpp's `llama` graph (ggml's
/// NORMAL RoPE), mlx with `rope_traditional: true` — computes the reference's rotation of the pair (i, i + D/2)
/// (`rotate_half`) only if stored row h·D + 2i + p holds reference row h·D + p·D/2 + i. That layout is derived
/// here from the reader's `ropeStyle` and the head counts the file itself states, never from a converter's table.
public enum LlamaRuntimeWeights {
    /// One binding per parameter role and layer, in the order of the Llama block (embedding, each layer, final norm,
    /// output). `referenceHas` says whether the reference has a tensor (a tied reference has no `lm_head.weight`).
    public static func bindings(_ source: any LlamaWeightSource, referenceHas: (String) -> Bool) -> [RuntimeWeight] {
        let h = source.hyperparameters
        var out: [RuntimeWeight] = []
        var slots: [(LlamaTensorRole, Int)] = [(.tokenEmbedding, 0)]
        for layer in 0..<h.layerCount {
            for role in LlamaTensorRole.allCases where role.isPerLayer { slots.append((role, layer)) }
        }
        slots += [(.outputNorm, 0), (.output, 0)]
        for (role, layer) in slots { out.append(binding(source, role: role, layer: layer, referenceHas: referenceHas)) }
        return out
    }

    /// The [rows, columns] (or [n]) of each role in `LlamaForCausalLM`, from the file's own hyperparameters.
    public static func shape(of role: LlamaTensorRole, _ h: LlamaHyperparameters) -> [Int] {
        let q = h.headCount * h.headDimension, kv = h.keyValueHeadCount * h.headDimension
        switch role {
        case .tokenEmbedding, .output: return [h.vocabularySize, h.hiddenSize]
        case .query: return [q, h.hiddenSize]
        case .key, .value: return [kv, h.hiddenSize]
        case .attentionOutput: return [h.hiddenSize, q]
        case .gate, .up: return [h.intermediateSize, h.hiddenSize]
        case .down: return [h.hiddenSize, h.intermediateSize]
        case .attentionNorm, .feedForwardNorm, .outputNorm: return [h.hiddenSize]
        }
    }

    /// The layout of a Q or K matrix of `heads` heads of `headDimension` rows under a runtime that rotates adjacent
    /// pairs: stored rows viewed [H, D/2, 2, C], axes (0, 2, 1, 3) give the reference's [H, 2, D/2, C].
    public static func adjacentPairRows(heads: Int, headDimension: Int, columns: Int, what: String) -> StoredLayout {
        StoredLayout(view: [heads, headDimension / 2, 2, columns], permutation: [0, 2, 1, 3],
                     description: "\(what) rows for RoPE on adjacent pairs (2i, 2i+1) of each of \(heads) heads of \(headDimension): stored row "
                        + "h·\(headDimension)+2i+p is reference row h·\(headDimension)+p·\(headDimension / 2)+i (rotate_half's pair (i, i+\(headDimension / 2)))")
    }

    /// The layout the runtime's RoPE needs for a role; identity for every role but Q/K under adjacent pairs.
    static func layout(_ role: LlamaTensorRole, _ source: any LlamaWeightSource, shape: [Int], base: String) -> StoredLayout {
        let h = source.hyperparameters
        guard role == .query || role == .key, source.ropeStyle == .adjacentPairs, shape.count == 2, h.headDimension % 2 == 0 else {
            return .identity(shape, base)
        }
        let heads = role == .query ? h.headCount : h.keyValueHeadCount
        guard heads > 0, shape[0] == heads * h.headDimension else { return .identity(shape, base) }
        return adjacentPairRows(heads: heads, headDimension: h.headDimension, columns: shape[1], what: base + "; " + (role == .query ? "Q" : "K"))
    }

    static func binding(_ source: any LlamaWeightSource, role: LlamaTensorRole, layer: Int, referenceHas: (String) -> Bool) -> RuntimeWeight {
        let h = source.hyperparameters
        let shape = shape(of: role, h)
        // The graph node that reads the parameter (`model.layers.0.self_attn.q_proj`), so the report can say whether
        // its activations show a weight error.
        let module = String(role.referenceName(layer: layer).dropLast(".weight".count))
        // A tied output reads the embedding; against a reference that has its own lm_head.weight, an untied
        // checkpoint converted without output.weight then fails here, as the runtime would compute it.
        let tiedOutput = role == .output && h.tiedEmbeddings
        var referenceName = role.referenceName(layer: layer)
        if role == .output, !referenceHas(referenceName) { referenceName = LlamaTensorRole.tokenEmbedding.referenceName(layer: 0) }
        let readRole: LlamaTensorRole = tiedOutput ? .tokenEmbedding : role
        var storedSource: StoredWeightSource?
        var fileName = readRole.referenceName(layer: layer)
        var consumed: [String] = []
        var refusal: String?
        var base = "rows = outputs, no transpose"
        switch source {
        case let gguf as GGUFLlamaWeights:
            fileName = GGUFLlamaWeights.tensorName(readRole, layer: layer)
            base = shape.count == 2 ? "ggml ne [\(shape[1]), \(shape[0])] is [\(shape[0]), \(shape[1])] row-major" : "ne [\(shape[0])]"
            if let t = gguf.file.tensor(named: fileName) {
                storedSource = .gguf(gguf.file, t)
                consumed = [fileName]
                if t.shape != shape { refusal = "shape \(t.shape); llama.cpp asserts \(shape)" }
            }
        case let mlx as MLXLlamaWeights:
            base = shape.count == 2 ? "mlx.nn [out, in]" : "[n]"
            if shape.count == 2 {
                do {
                    let m = try mlx.matrix(readRole, layer: layer)
                    switch m.storage {
                    case let .mlxQuantized(weight, scales, biases, mode, groupSize, bits):
                        fileName = m.fileName + ".weight"
                        storedSource = .mlxQuantized(weight: weight, scales: scales, biases: biases,
                                                parameters: MLXQuantParameters(mode: mode, groupSize: groupSize, bits: bits))
                        consumed = [m.fileName + ".weight", m.fileName + ".scales"] + (biases == nil ? [] : [m.fileName + ".biases"])
                    case .dense, .ggml:
                        fileName = m.fileName
                        storedSource = mlx.storedTensor(named: fileName).map { .mlxArray($0) }
                        consumed = [fileName]
                    }
                } catch {
                    refusal = error.description
                    storedSource = mlx.storedTensor(named: fileName).map { .mlxArray($0) }
                }
            } else {
                storedSource = mlx.storedTensor(named: fileName).map { .mlxArray($0) }
                consumed = [fileName]
                if case let .mlxArray(raw)? = storedSource, raw.shape != shape { refusal = "shape \(raw.shape); mlx.nn expects \(shape)" }
            }
            if mlx.loading.refused, refusal == nil { refusal = "mlx-lm refuses the directory: " + mlx.loading.refusals.joined(separator: "; ") }
        case let pytorch as PyTorchLlamaWeights:
            base = "state_dict: same name, same shape"
            if let entry = pytorch.weights.entry(named: fileName) {
                storedSource = .safetensors(pytorch.weights, entry)
                consumed = [fileName]
                if entry.shape != shape { refusal = "shape \(entry.shape); LlamaForCausalLM's is \(shape) (load_state_dict: size mismatch)" }
            }
        default:
            refusal = "\(type(of: source)) does not say how it stores its tensors; the weight check reads GGUF, MLX and PyTorch Llama files"
        }
        var layout = layout(role, source, shape: shape, base: base)
        if tiedOutput {
            layout = StoredLayout(view: layout.view, permutation: layout.permutation,
                                  description: "tied: the file has no separate output matrix, so the runtime's output reads \(fileName); " + layout.description)
        }
        return RuntimeWeight(layer: module, referenceName: referenceName, referenceShape: shape, fileName: fileName, requiredShape: shape,
                             layout: layout, source: storedSource, refusal: refusal, consumedNames: consumed)
    }

    /// Every tensor the runtime's loader sees, and whether it refuses one no parameter reads.
    static func storedTensors(_ source: any LlamaWeightSource) -> (names: [String], refusesUnread: Bool, why: String) {
        switch source {
        case let gguf as GGUFLlamaWeights:
            return (gguf.file.tensors.map(\.name), true, "llama.cpp's loader counts the file's tensors and refuses one it did not create (done_getting_tensors)")
        case let mlx as MLXLlamaWeights:
            return (mlx.storedTensorNames, true, "mlx-lm's load_weights(strict=True) refuses unread parameters")
        case let pytorch as PyTorchLlamaWeights:
            return (pytorch.weights.entries.map(\.name), true, "load_state_dict(strict=True) refuses unexpected keys")
        default:
            return ([], false, "")
        }
    }

    /// The float type of an MLX directory's unquantized weights (the dtype an fp-mode quantizer rounded from).
    static func mlxFloatType(_ bindings: [RuntimeWeight]) -> MLXFloatType? {
        var types = Set<DType>()
        for b in bindings { if case let .mlxArray(raw)? = b.source { types.insert(raw.dtype) } }
        return types.count == 1 ? MLXFloatType(types.first!) : nil
    }
}

extension WeightVerifier {
    /// Checks every tensor a Llama runtime reads from its file against the reference Hugging Face weights: the same
    /// rules as for the image models (f32 identical, f16/bf16 round-to-nearest-even, per-block bounds, byte
    /// identity with the reference quantizer), with Q/K rows compared in the order the runtime's RoPE needs.
    public static func verify(llama source: any LlamaWeightSource, reference: SafetensorsFile) throws(ParityError) -> WeightReport {
        let start = Date()
        let bindings = LlamaRuntimeWeights.bindings(source) { reference.entry(named: $0) != nil }
        var entries: [SafetensorsEntry] = []
        var bytes = 0
        var consumed = Set<String>()
        // A reference tensor whose shape differs from what the file's own hyperparameters make it: the file describes
        // another model (LlamaHyperparameterCheck names which value). That tensor fails; it is not bad input.
        var otherShape: [Int: String] = [:]
        for (i, binding) in bindings.enumerated() {
            consumed.formUnion(binding.consumedNames)
            guard let entry = reference.entry(named: binding.referenceName) else {
                throw .mismatch(file: reference.path, reason: "the reference weights have no tensor \"\(binding.referenceName)\", which \(source.path) "
                    + "(a Llama of \(source.hyperparameters.layerCount) layers) stores as \(binding.fileName)")
            }
            if entry.shape != binding.referenceShape {
                otherShape[i] = "the file's hyperparameters make this tensor \(binding.referenceShape); the reference's \(binding.referenceName) is \(entry.shape)"
            }
            entries.append(entry)
            bytes += storedBytes(binding.source)
        }
        let mlxFloat = LlamaRuntimeWeights.mlxFloatType(bindings)
        let slots = ResultSlots(count: bindings.count)
        func checkOne(_ i: Int, _ execution: WeightCheckExecution) {
            let binding = bindings[i]
            if let reason = otherShape[i] {
                var result = TensorWeightResult(layer: binding.layer, referenceName: binding.referenceName, fileName: binding.fileName,
                                                storedType: "-", storedShape: binding.requiredShape, referenceShape: entries[i].shape,
                                                layout: binding.layout.description, status: .refused, failsVerification: true)
                result.detail = reason
                slots.set(i, result)
                return
            }
            let expected: [Float]
            do { expected = try reference.tensor(entries[i]).data } catch {
                slots.fail(ParityError.unsupported(file: reference.path, reason: "cannot read reference tensor \"\(binding.referenceName)\": \(error)"))
                return
            }
            var result = check(binding, reference: expected, mlxFloat: mlxFloat, execution: execution)
            if result.status == .outOfBounds || result.status == .refused {
                result.diagnosis = LlamaWeightDiagnosis.diagnose(binding, reference: expected, source: source)
                    ?? WeightDiagnosis.diagnose(binding, reference: expected)
            }
            slots.set(i, result)
        }
        let large = Set(bindings.indices.filter { bindings[$0].referenceShape.reduce(1, *) >= largeTensorElements })
        let small = bindings.indices.filter { !large.contains($0) }
        withoutActuallyEscaping(checkOne) { run in
            let task = UncheckedSendable(run)
            DispatchQueue.concurrentPerform(iterations: small.count) { k in task.value(small[k], .serial) }
        }
        for i in bindings.indices where large.contains(i) { checkOne(i, .automatic) }
        if let error = slots.error { throw error }
        var results = slots.results.compactMap { $0 }
        WeightOtherParameter.annotate(&results, bindings: bindings, entries: entries, reference: reference, mlxFloat: mlxFloat)
        let stored = LlamaRuntimeWeights.storedTensors(source)
        for name in stored.names where !consumed.contains(name) {
            var extra = TensorWeightResult(layer: nil, referenceName: nil, fileName: name, storedType: "-", storedShape: [], referenceShape: [],
                                           layout: "-", status: .extra, failsVerification: stored.refusesUnread)
            extra.detail = "no parameter of the Llama reads it; " + stored.why
            results.append(extra)
        }
        return WeightReport(tensors: results, bytesChecked: bytes, seconds: Date().timeIntervalSince(start), referenceFile: reference.path)
    }
}

/// Llama-specific explanations of a failing Q or K tensor, tried before the general ones of `WeightDiagnosis`:
/// the rows as the checkpoint stores them where the runtime rotates adjacent pairs (the converter did not
/// permute), the permutation applied twice, or applied for a runtime that rotates halves.
enum LlamaWeightDiagnosis {
    static func diagnose(_ binding: RuntimeWeight, reference: [Float], source: any LlamaWeightSource) -> String? {
        let name = binding.fileName
        if source.hyperparameters.tiedEmbeddings, binding.referenceName == LlamaTensorRole.output.referenceName(layer: 0) {
            // The reference has its own lm_head (the binding only names it then), but the runtime reads the embedding.
            switch source {
            case is GGUFLlamaWeights:
                return "[output-missing] the file has no output.weight, so llama.cpp's loader uses \(name) as the output matrix "
                    + "(output is TENSOR_NOT_REQUIRED, then token_embd is created again as TENSOR_DUPLICATED); the reference has its own "
                    + "lm_head.weight (untied), which the token embedding is not"
            case is MLXLlamaWeights:
                return "[output-tied] config.json ties the output to the embedding (tie_word_embeddings true or absent: mlx-lm's default), so "
                    + "mlx-lm computes the output with embed_tokens.as_linear and reads no lm_head; the reference has its own lm_head.weight (untied)"
            default:
                return "[output-tied] the file has no separate output matrix, so the runtime's output reads \(name); the reference has its own lm_head.weight"
            }
        }
        guard binding.referenceShape.count == 2, let stored = binding.source.flatMap(WeightDiagnosis.stored),
              stored.values.count == reference.count else { return nil }
        let h = source.hyperparameters
        let isQuery = binding.referenceName.hasSuffix("q_proj.weight"), isKey = binding.referenceName.hasSuffix("k_proj.weight")
        guard isQuery || isKey else { return nil }
        let heads = isQuery ? h.headCount : h.keyValueHeadCount
        let rows = binding.referenceShape[0], columns = binding.referenceShape[1]
        guard heads > 0, rows == heads * h.headDimension, h.headDimension % 2 == 0 else { return nil }
        // m[s]: the reference index convert_hf_to_gguf's permutation puts at stored index s.
        guard let m = LlamaRuntimeWeights.adjacentPairRows(heads: heads, headDimension: h.headDimension, columns: columns, what: "")
            .referenceIndexOfStored() else { return nil }
        let what = isQuery ? "Q" : "K"
        if !binding.layout.isIdentity {
            if WeightDiagnosis.matches(stored, reference) {
                return "[qk-not-permuted] \(name) holds \(what) rows in the checkpoint's order, not permuted for the runtime's RoPE: it rotates adjacent "
                    + "pairs (2i, 2i+1) of each of \(heads) heads, which equals rotate_half only when the converter interleaves each head's rows i and "
                    + "i+\(h.headDimension / 2) (convert_hf_to_gguf's permute)"
            }
            if WeightDiagnosis.matches(stored, m.map { reference[m[$0]] }) {
                return "[qk-permuted-twice] \(name) holds \(what) rows permuted twice for RoPE on adjacent pairs (the converter permuted rows "
                    + "that were already in llama.cpp's order)"
            }
        } else if WeightDiagnosis.matches(stored, m.map { reference[$0] }) {
            return "[qk-permuted-for-adjacent-pairs] \(name) holds \(what) rows permuted for RoPE on adjacent pairs (llama.cpp's order), but this "
                + "runtime rotates halves (rotate_half) of rows in the checkpoint's order"
        }
        return nil
    }
}
