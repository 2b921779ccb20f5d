import ParityFormats

/// llama-quantize's file types (`llama_ftype`) whose tensor types Parity's quantizers can all write, with the
/// per-tensor choice `llama_tensor_get_type` (src/llama-quant.cpp) makes for a dense Llama (no experts, not 70B,
/// not Falcon). The i-quant and ternary mixes are absent: Parity has no i-quant quantizer.
public enum LlamaQuantizeMix: String, CaseIterable, Sendable {
    case Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q2_K_S, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K

    /// `general.file_type` (`llama_ftype`).
    public var fileType: UInt32 {
        switch self {
        case .Q4_0: return 2
        case .Q4_1: return 3
        case .Q8_0: return 7
        case .Q5_0: return 8
        case .Q5_1: return 9
        case .Q2_K: return 10
        case .Q3_K_S: return 11
        case .Q3_K_M: return 12
        case .Q3_K_L: return 13
        case .Q4_K_S: return 14
        case .Q4_K_M: return 15
        case .Q5_K_S: return 16
        case .Q5_K_M: return 17
        case .Q6_K: return 18
        case .Q2_K_S: return 21
        }
    }

    /// `llama_ftype_get_default_type`: the type of every quantizable tensor the mix does not single out.
    public var defaultType: GGMLType {
        switch self {
        case .Q4_0: return .q4_0
        case .Q4_1: return .q4_1
        case .Q5_0: return .q5_0
        case .Q5_1: return .q5_1
        case .Q8_0: return .q8_0
        case .Q2_K, .Q2_K_S: return .q2_K
        case .Q3_K_S, .Q3_K_M, .Q3_K_L: return .q3_K
        case .Q4_K_S, .Q4_K_M: return .q4_K
        case .Q5_K_S, .Q5_K_M: return .q5_K
        case .Q6_K: return .q6_K
        }
    }

    /// A tensor llama-quantize sees: its GGUF name, `ne` and stored type.
    public struct TensorShape: Sendable {
        public let name: String
        public let ne: [Int]
        public let type: GGMLType
        public init(name: String, ne: [Int], type: GGMLType) { self.name = name; self.ne = ne; self.type = type }
    }

    /// The type llama-quantize writes for each tensor (in the order given, which must be llama.cpp's processing
    /// order: the loader's layer-then-name order, see `GGUFLlamaConverter.quantizerOrder`), without an importance
    /// matrix, for a model of `layerCount` layers with `headCount / keyValueHeadCount` query heads per KV head.
    /// `pure` is llama-quantize's `--pure`: every quantizable tensor gets `defaultType`, only the block fallback applies.
    public func tensorTypes(_ tensors: [TensorShape], layerCount: Int, headCount: Int, keyValueHeadCount: Int, pure: Bool = false) -> [GGMLType] {
        LlamaQuantizeMix.tensorTypes(tensors, defaultType: defaultType, mix: pure ? nil : self, layerCount: layerCount,
                                     gqa: keyValueHeadCount > 0 ? headCount / keyValueHeadCount : 0)
    }

    /// `--pure` with any type Parity quantizes (llama-quantize's `--pure` for a file type, or a type no mix names,
    /// like MXFP4 for a dense model): every quantizable tensor in `type`, with the block fallback.
    public static func pureTensorTypes(_ tensors: [TensorShape], type: GGMLType) -> [GGMLType] {
        tensorTypes(tensors, defaultType: type, mix: nil, layerCount: 0, gqa: 0)
    }

    static func tensorTypes(_ tensors: [TensorShape], defaultType: GGMLType, mix: LlamaQuantizeMix?, layerCount: Int, gqa: Int) -> [GGMLType] {
        // quantize_state_impl's counters: attn_v tensors counted up front, ffn_down indexed in processing order.
        let attentionVCount = tensors.filter { $0.name.contains("attn_v.weight") }.count
        let hasOutput = tensors.contains { $0.name == "output.weight" }
        var attentionVIndex = 0, ffnDownIndex = 0
        func moreBits(_ i: Int, _ n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }
        return tensors.map { t in
            // tensor_allows_quantization: ggml_n_dims >= 2 (a dimension after ne[0] above 1), named "*weight", no
            // norms; the others keep their stored type.
            guard t.ne.dropFirst().contains(where: { $0 > 1 }), t.name.hasSuffix("weight"),
                  !t.name.contains("_norm.weight") else { return t.type }
            var chosen = defaultType
            if let mix {
                chosen = choose(mix, t, defaultType: defaultType, tiedEmbedding: !hasOutput, gqa: gqa,
                                attentionV: (attentionVIndex, attentionVCount), ffnDown: (ffnDownIndex, layerCount), moreBits: moreBits)
            }
            if t.name.contains("attn_v.weight") { attentionVIndex += 1 }
            if t.name.contains("ffn_down") { ffnDownIndex += 1 }
            return fallback(chosen, rowLength: t.ne[0])
        }
    }

    /// `llama_tensor_get_type_impl` for the non-i-quant mixes of a dense, non-Falcon model below 70B.
    static func choose(_ mix: LlamaQuantizeMix, _ t: TensorShape, defaultType: GGMLType, tiedEmbedding: Bool, gqa: Int,
                       attentionV: (i: Int, n: Int), ffnDown: (i: Int, n: Int), moreBits: (Int, Int) -> Bool) -> GGMLType {
        let name = t.name
        if name == "output.weight" || (tiedEmbedding && name == "token_embd.weight") {
            // The output projection: Q8_0 when its rows fit no block of the default type, else Q6_K (Q8_0 stays).
            if t.ne[0] % defaultType.blockSize != 0 { return .q8_0 }
            return defaultType == .q8_0 ? .q8_0 : .q6_K
        }
        if name == "token_embd.weight" { return defaultType }
        if name.contains("attn_v.weight") {
            switch mix {
            case .Q2_K: return gqa >= 4 ? .q4_K : .q3_K
            case .Q2_K_S where gqa >= 4: return .q4_K
            case .Q3_K_M: return attentionV.i < 2 ? .q5_K : .q4_K
            case .Q3_K_L: return .q5_K
            case .Q4_K_M, .Q5_K_M: return moreBits(attentionV.i, attentionV.n) ? .q6_K : defaultType
            case .Q4_K_S where attentionV.i < 4: return .q5_K
            default: return defaultType
            }
        }
        if name.contains("ffn_down") {
            let (i, n) = ffnDown
            switch mix {
            case .Q2_K: return .q3_K
            case .Q2_K_S: return i < n / 8 ? .q4_K : defaultType
            case .Q3_K_M: return i < n / 16 ? .q5_K : .q4_K
            case .Q3_K_L: return .q5_K
            case .Q4_K_M, .Q5_K_M: return moreBits(i, n) ? .q6_K : defaultType
            case .Q4_K_S: return i < n / 8 ? .q5_K : defaultType
            default: return defaultType
            }
        }
        if name.contains("attn_output.weight") {
            switch mix {
            case .Q2_K: return .q3_K
            case .Q3_K_M: return .q4_K
            case .Q3_K_L: return .q5_K
            default: return defaultType
            }
        }
        return defaultType
    }

    /// `tensor_type_fallback`: a row length the chosen block does not divide falls back to a 32-block type, and to
    /// F16 when even that does not divide it.
    static func fallback(_ type: GGMLType, rowLength: Int) -> GGMLType {
        guard rowLength % type.blockSize != 0 else { return type }
        let demoted: GGMLType
        switch type {
        case .q2_K, .q3_K: demoted = .q4_0
        case .q4_K: demoted = .q5_0
        case .q5_K: demoted = .q5_1
        case .q6_K: demoted = .q8_0
        default: demoted = type
        }
        return rowLength % demoted.blockSize == 0 ? demoted : .f16
    }
}
