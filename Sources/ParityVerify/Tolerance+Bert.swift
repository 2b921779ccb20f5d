import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

extension TolerancePolicy {
    /// What llama.cpp's `bert` graph costs by computing GELU as ggml does: `ggml_gelu` is the tanh approximation
    /// looked up in an F16 table (input and output rounded to F16), whatever the checkpoint's `hidden_act` says;
    /// all-MiniLM-L6-v2's is erf. That is a property of the runtime, not of the file, so every node from the first
    /// GELU on carries it. Measured on minilm-l6 with the f32 GGUF (weights identical to PyTorch's): the layer-0 GELU
    /// node is 5.5e-4 rel L2 from PyTorch's erf GELU (the tanh fit errs by up to ~1e-3 absolute, the table adds
    /// 2^-11 relative), and after six layers the worst node (layer 5's attention LayerNorm) is 2.8e-3 rel L2 and
    /// 6.0e-3 of its scale in max abs; the sentence embedding is 1.2e-3 rel L2, cosine 0.9999993 (golden/README.md:
    /// the same substitution inside PyTorch gives cosine 0.9999987 over the whole model).
    static let ggmlGELUvsErf = Tolerance(
        maxRelL2: 1e-2, maxAbsOverScale: 2e-2,
        reason: "llama.cpp's bert graph computes GELU as ggml_gelu (tanh approximation through an F16 table) where the checkpoint's "
            + "hidden_act is erf: a runtime property, not a conversion mistake. Measured with f32 weights: 5.5e-4 rel L2 at layer 0's "
            + "GELU, growing to 2.8e-3 rel L2 / 6.0e-3 of the scale by layer 5; 1e-2 / 2e-2 is 3.5x that and still 50-100x below a "
            + "swapped or misplaced tensor (errors near 100 %)")

    /// Independent errors add in quadrature: the weights' own limit and the runtime's GELU.
    static func combined(_ own: Tolerance, _ runtime: Tolerance) -> Tolerance {
        Tolerance(maxRelL2: (own.maxRelL2 * own.maxRelL2 + runtime.maxRelL2 * runtime.maxRelL2).squareRoot(),
                  maxAbsOverScale: (own.maxAbsOverScale * own.maxAbsOverScale + runtime.maxAbsOverScale * runtime.maxAbsOverScale).squareRoot(),
                  reason: own.reason + "; from the first GELU on, in quadrature with: " + runtime.reason)
    }

    /// Per node of a BERT read from GGUF and computed as llama.cpp's CPU embedding path (BertGGMLOps): lookups are
    /// exact copies of their stored table (f32) or within its rounding (f16/bf16); the attention mask comes from
    /// integers; every other node before the first GELU gets the limit of the linear matrices' ggml type (ggml
    /// rounds activations to that type's vec_dot_type too); from the first GELU on, that limit in quadrature with
    /// `ggmlGELUvsErf`. Block-quantized matrices (q8_0, llama-quantize's mixes): `ggufBertQuantized`, from the
    /// reference run as llama.cpp would run a file of those types (Tolerance+BertQuantized.swift).
    public static func ggufBert(graph: ModelGraph, model: ReferenceModel, golden: GoldenFile?, source: GGUFBertWeights, variant: String) -> TolerancePolicy? {
        func ggmlType(_ role: BertTensorRole) -> GGMLType? {
            guard let m = try? source.matrix(role, layer: 0), case let .ggml(_, tensor) = m.storage else { return nil }  // checked: absent → no policy
            return tensor.type
        }
        var matrixTypes = Set<GGMLType>()
        for layer in 0..<source.hyperparameters.layerCount {
            for role in [BertTensorRole.query, .key, .value, .attentionOutput, .intermediate, .output] {
                guard let m = try? source.matrix(role, layer: layer), case let .ggml(_, tensor) = m.storage else { return nil }  // checked: a refused matrix has no limit
                matrixTypes.insert(tensor.type)
            }
        }
        if !matrixTypes.isSubset(of: [.f32, .f16, .bf16]) {
            guard let golden else { return nil }
            return ggufBertQuantized(graph: graph, model: model, golden: golden, source: source, variant: variant)
        }
        guard matrixTypes.count == 1, let type = matrixTypes.first, let own = own(.ggml(type), format: .gguf) else { return nil }
        func lookup(_ role: BertTensorRole) -> Tolerance? {
            switch ggmlType(role) {
            case .f32?: return exactLookup
            case .f16?: return roundedLookup(.f16)
            case .bf16?: return roundedLookup(.bf16)
            default: return nil
            }
        }
        let tables: [String: BertTensorRole] = ["embeddings.word_embeddings": .tokenEmbedding, "embeddings.position_embeddings": .positionEmbedding,
                                                "embeddings.token_type_embeddings": .tokenTypeEmbedding]
        let afterGELU = combined(own, ggmlGELUvsErf)
        var perNode: [String: Tolerance] = [:]
        var pastGELU = false
        for node in graph.nodes {
            if case .gelu = node.op { pastGELU = true }
            guard node.isRecorded else { continue }
            switch node.op {
            case .extendedAttentionMask, .causalMask, .positions: perNode[node.name] = exactFromIntegers
            case .embedding: perNode[node.name] = tables[node.name].flatMap(lookup)
            default: perNode[node.name] = pastGELU ? afterGELU : own
            }
        }
        return TolerancePolicy(format: Variant.Format.gguf.rawValue, variant: variant, perLayer: perNode)
    }
}
