import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

extension TolerancePolicy {
    /// What one stored Llama matrix is, as the runtime multiplies it.
    static func storage(of matrix: StoredMatrix) -> WeightStorage? {
        switch matrix.storage {
        case let .dense(_, dtype): return .float(dtype)
        case let .ggml(_, tensor): return .ggml(tensor.type)
        case let .mlxQuantized(_, _, _, mode, groupSize, bits):
            guard let parsed = try? MLXQuantMode.parse(mode), let spec = try? MLXQuantSpec(mode: parsed, bits: bits, groupSize: groupSize) else { return nil }  // checked: an unknown mode has no limit
            return .mlxQuantized(spec)
        }
    }

    /// The limit of a row lookup (`get_rows`, `nn.Embedding` / `QuantizedEmbedding`): the table's own rounding,
    /// no activation is quantized.
    static func lookup(_ storage: WeightStorage) -> Tolerance? {
        switch storage {
        case .float(.f32), .ggml(.f32): return exactLookup
        case .float(.f16), .ggml(.f16): return roundedLookup(.f16)
        case .float(.bf16), .ggml(.bf16): return roundedLookup(.bf16)
        case let .ggml(type):
            guard let (weight, _) = ggmlBlockErrors(type) else { return nil }
            return Tolerance(maxRelL2: 2 * weight, maxAbsOverScale: 4 * weight,
                             reason: "ggml get_rows dequantizes rows of the \(type.name) table: the stored values' expected RMS relative "
                                + "error \(formatNumber(weight)) (the block grid); rel L2 limit 2x that, max abs 4x it times the table's scale")
        case let .mlxQuantized(q): return mlxQuantized(q)
        default: return nil
        }
    }

    /// The error llama.cpp's KV cache and attention kernel add (nil: float32 throughout).
    static func attentionKernel(_ settings: LlamaRuntimeSettings) -> Tolerance? {
        guard settings.kvCache == .f16 || settings.flashAttention else { return nil }
        return Tolerance(
            maxRelL2: float16Both.maxRelL2, maxAbsOverScale: float16Both.maxAbsOverScale,
            reason: "llama.cpp's \(settings): K and V are stored as F16 and the products q·k and p·v are taken with F16 operands "
                + "(mul_mat's F16 vec_dot_type, or flash attention's F16 Q and V accumulator): two roundings of 2^-11 per product, the limit of "
                + "ggml's F16×F16 products (3e-3 rel L2, 3x the two-operand bound; max abs 12x the f16 unit roundoff of the scale)")
    }

    /// Per node of a Llama run by `LlamaGraphEngine` on a GGUF or MLX file, from what the file stores:
    /// - the causal mask and positions are exact; RoPE's tables carry float32 trig rounding;
    /// - the embedding has the limit of its table's storage (a lookup quantizes no activation);
    /// - every later node has the limit of the coarsest product computed so far in graph order — the largest of the
    ///   per-product limits of the stored types (ggml: weights and the activation's vec_dot_type; MLX: the weights,
    ///   and for a quantized matrix in an f16/bf16 model the grid's limit plus the compute dtype's, see `adding`),
    ///   and, from the first attention on, llama.cpp's F16 KV cache / flash attention. The largest, not their sum:
    ///   each RMSNorm rescales the residual stream, so a relative error does not compound from layer to layer
    ///   (measured on tiny-llama: every node of every Q4/Q5/Q6/q8 file within 1.1x of its coarsest single product's
    ///   expected error);
    /// - attention probabilities: the rel L2 limit as above; max abs from the goldens' scores, because softmax turns
    ///   a relative error ε of q·k into an absolute error of the scores ≈ ε·|s|, and a probability moves by up to
    ///   about that (p(1−p)·δs summed with the row's shift): 2·ε·rms|s| of the layer's golden scores, capped at 1.
    public static func llama(graph: ModelGraph, engine: LlamaGraphEngine, format: Variant.Format, variant: String, golden: GoldenFile?) -> TolerancePolicy? {
        let settings = (engine.ops as? GGMLLlamaOps).map { LlamaRuntimeSettings(kvCache: $0.kvCache, flashAttention: $0.flashAttention) }
        let layers = engine.source.hyperparameters.layerCount
        var roles: [String: (LlamaTensorRole, Int)] = [:]
        for role in LlamaTensorRole.allCases {
            for layer in role.isPerLayer ? Array(0..<layers) : [0] { roles[role.referenceName(layer: layer)] = (role, layer) }
        }
        func stored(_ node: GraphNode) -> WeightStorage? {
            guard let name = node.parameters.first?.name, var (role, layer) = roles[name] else { return nil }
            if role == .output && engine.source.hyperparameters.tiedEmbeddings { role = .tokenEmbedding; layer = 0 }
            return (try? engine.source.matrix(role, layer: layer)).flatMap(storage(of:))  // checked: a missing matrix fails the node itself
        }
        // mlx-lm computes in the dtype of the model's float parameters: an f16/bf16 directory rounds every activation
        // (and RoPE's cos/sin) to that dtype, so both operands of every product are rounded as in ggml's F16/BF16 products.
        let mlxActivations: FloatType? = format == .mlx
            ? (try? Variant.parse(variant, format: .mlx)).flatMap { v in v.floats.count == 1 && v.floats[0] != .f32 ? v.floats[0] : nil }  // checked: a label Parity cannot parse keeps float32
            : nil
        var running = transformerFloat32(graph)
        if let mlxActivations {
            let both = mlxActivations == .f16 ? float16Both : bfloat16Both
            running = Tolerance(maxRelL2: both.maxRelL2, maxAbsOverScale: both.maxAbsOverScale,
                                reason: "mlx-lm computes this \(mlxActivations.rawValue) model in \(mlxActivations.rawValue): weights and every activation "
                                    + "are rounded to it, as in ggml's \(mlxActivations.rawValue)×\(mlxActivations.rawValue) products (" + both.reason + ")")
        }
        var lastProbabilities: Tolerance?
        var perNode: [String: Tolerance] = [:]
        func raise(_ t: Tolerance) { if t.maxRelL2 > running.maxRelL2 { running = t } }
        for node in graph.nodes {
            var tolerance: Tolerance?
            switch node.op {
            case .causalMask, .positions: tolerance = exactFromIntegers
            case .rotaryEmbedding: tolerance = mlxActivations.map { roundedLookup($0) } ?? rotaryTables
            case .embedding:
                guard let s = stored(node), var t = lookup(s) else { return nil }
                if let mlxActivations, case .mlxQuantized = s { t = adding(roundedLookup(mlxActivations), to: t) }
                raise(t)
                tolerance = t
            case .linear:
                guard let s = stored(node), var own = own(s, format: format) else { return nil }
                if let mlxActivations, case .mlxQuantized = s, case let .linear(inFeatures, _, _) = node.op {
                    own = adding(mlxActivations == .f16 ? float16Both : bfloat16Both, to: own)
                    own = adding(quantizedMatmulAccumulation(mlxActivations, length: inFeatures), to: own)
                }
                raise(own)
                tolerance = running
            case .attentionProbs:
                if let settings, let kernel = attentionKernel(settings) { raise(kernel) }
                tolerance = probabilities(node: node, limit: running, golden: golden)
                lastProbabilities = tolerance
            case .attentionOutput:
                // p·v carries the probabilities' absolute error: a row of v weighted by a probability off by δp moves the
                // output by δp·|v|, so the attention output has the probabilities' max-abs limit relative to its scale.
                if let p = lastProbabilities, p.maxAbsOverScale > running.maxAbsOverScale {
                    tolerance = Tolerance(maxRelL2: running.maxRelL2, maxAbsOverScale: p.maxAbsOverScale,
                                          reason: running.reason + "; the attention output p·v carries the probabilities' absolute error: max abs "
                                            + "\(formatNumber(p.maxAbsOverScale)) of the scale, as for the probabilities")
                } else {
                    tolerance = running
                }
            default:
                tolerance = running
            }
            if node.isRecorded, let tolerance { perNode[node.name] = tolerance }
        }
        for node in graph.recordedNodes {
            guard case let .module(_, output) = node.op else { continue }
            var target = output
            while let inner = graph.node(at: target), inner.kind == .internal || inner.isComposite {
                if case let .module(_, next) = inner.op { target = next } else { break }
            }
            if let t = perNode[GraphNode.name(forPath: target)] { perNode[node.name] = t }
        }
        return TolerancePolicy(format: format.rawValue, variant: variant, perLayer: perNode)
    }

    /// A quantized MLX matrix in a model mlx-lm computes in f16/bf16 carries two independent errors: the grid's (the
    /// weight limit `grid`) and the base dtype's rounding (`base`: the scales and biases are stored in it, dequantized
    /// values and every activation are rounded to it). The limit is their sum: rel L2 obeys the triangle inequality
    /// ‖e₁ + e₂‖ ≤ ‖e₁‖ + ‖e₂‖ whatever the errors' correlation, so a correct file stays within it, while the larger
    /// alone does not hold (measured on tiny-llama bf16+affine-b8-g64: embed_tokens 8.65e-3 over the grid's 8.47e-3,
    /// mlp.down_proj.input 0.0266 over bf16's 0.024). A float32 model adds nothing (float32 compute is ~1e-5).
    static func adding(_ base: Tolerance, to grid: Tolerance) -> Tolerance {
        Tolerance(maxRelL2: grid.maxRelL2 + base.maxRelL2, maxAbsOverScale: grid.maxAbsOverScale + base.maxAbsOverScale,
                  reason: grid.reason + "; plus the model's compute dtype, as mlx-lm dequantizes and multiplies in it: " + base.reason
                    + " (the two limits add: rel L2 and max abs obey the triangle inequality, whatever the errors' correlation)")
    }

    /// MLX's CPU `quantized_matmul` in an f16/bf16 model accumulates the dot product in that dtype, rounding the running
    /// sum after every term (unlike its dense gemm, which accumulates in float32). Each rounding errs by ulp/√12 RMS
    /// of the partial sum (ulp 2^-8 for bf16, 2^-10 for f16); partial sums of a length-K product grow like √(k/K) of
    /// the result, so the K roundings add to ulp/√12 · √(K/2) of it (bf16, K = 512: 1.8 %). Limit 3x that, as for
    /// the other rounding limits. Measured on tiny-llama bf16+affine-b8: 0.0266 at layers.0.mlp.down_proj.input and
    /// 0.051–0.056 at layer-1 attention probabilities, where grid (8.5e-3) and operand rounding (2.4e-2) alone give 0.033.
    static func quantizedMatmulAccumulation(_ dtype: FloatType, length k: Int) -> Tolerance {
        let ulp = dtype == .f16 ? 0x1p-10 : 0x1p-8
        let expected = ulp / 12.0.squareRoot() * (Double(k) / 2).squareRoot()
        return Tolerance(maxRelL2: 3 * expected, maxAbsOverScale: 6 * expected,
                         reason: "MLX's quantized_matmul accumulates in \(dtype.rawValue), rounding the running sum after each of the K = \(k) "
                            + "terms: ulp/√12 · √(K/2) = \(formatNumber(expected)) of the result; rel L2 3x that, max abs 6x it times the scale")
    }

    /// The probabilities' limit: `limit`'s rel L2; max abs from the root-mean-square attention score of the goldens'
    /// q_rope and k_rope for this layer (causal entries), when recorded.
    static func probabilities(node: GraphNode, limit: Tolerance, golden: GoldenFile?) -> Tolerance {
        guard node.inputs.count >= 2, let q = golden?.tensor(at: node.inputs[0]), let k = golden?.tensor(at: node.inputs[1]),
              q.rank == 4, k.rank == 4, q.shape[0] == k.shape[0], q.shape[3] == k.shape[3], k.shape[1] > 0, q.shape[1] % k.shape[1] == 0 else {
            return limit
        }
        let (b, h, t, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]), (hkv, s) = (k.shape[1], k.shape[2])
        var sum = 0.0, count = 0
        let scale = 1 / Double(d).squareRoot()
        for bi in 0..<b {
            for hi in 0..<h {
                let kh = hi / (h / hkv)
                for ti in 0..<t {
                    let qBase = ((bi * h + hi) * t + ti) * d
                    for si in 0...min(ti + s - t, s - 1) where si >= 0 {
                        let kBase = ((bi * hkv + kh) * s + si) * d
                        var dot = 0.0
                        for i in 0..<d { dot += Double(q.data[qBase + i]) * Double(k.data[kBase + i]) }
                        sum += (dot * scale) * (dot * scale)
                        count += 1
                    }
                }
            }
        }
        guard count > 0 else { return limit }
        let rms = (sum / Double(count)).squareRoot()
        let abs = min(1, max(limit.maxAbsOverScale, 2 * limit.maxRelL2 * rms))
        return Tolerance(maxRelL2: limit.maxRelL2, maxAbsOverScale: abs,
                         reason: limit.reason + "; attention probabilities: softmax turns a relative error ε of q·k into score errors ≈ ε·|s|; "
                            + "this layer's golden scores have rms |s| = \(formatNumber(rms)), so max abs is 2·ε·rms|s| (capped at 1)")
    }
}
