#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ParityCore
import ParityFormats

/// The type of llama.cpp's KV cache (`--cache-type-k/-v`, llama-cpp-python's `type_k`/`type_v`).
public enum GGMLKVCacheType: String, Sendable, CaseIterable {
    /// llama.cpp's default: K and V are stored as F16, so the attention products see rounded K/V (and, through
    /// `mul_mat`'s conversion to F16's vec_dot_type, rounded queries and probabilities).
    case f16
    /// `type_k = type_v = GGML_TYPE_F32`: the attention is computed in float32.
    case f32
}

/// Llama as llama.cpp's `llama` graph computes it on ggml's CPU backend (flash attention off, one sequence at a
/// time, positions 0..T-1):
/// - embedding: `ggml_get_rows` — the token's row dequantized from the stored type;
/// - `build_norm(LLM_NORM_RMS)`: `ggml_rms_norm` (Σx² of float products accumulated in double, mean rounded to
///   float, scale `1/sqrtf(mean + eps)`, x·scale) then `ggml_mul` by the weight;
/// - every projection `ggml_mul_mat(W, x)`: the activation row converted to the weight type's `vec_dot_type`
///   (F16/BF16 rounding, or Q8_0/Q8_1/Q8_K blocks) and dotted as ggml's CPU kernels define it;
/// - `ggml_rope_ext` in the stored rows' mode: NORMAL (adjacent pairs) for `llama`, with the rope cache
///   θ = p·s^i built by repeated float multiplication, s = powf(freq_base, −2/n_dims), cos/sin in float;
/// - KQ = `ggml_mul_mat(k, q)` with k from the cache (F16 cache: k rounded to F16, q converted to F16), then
///   `ggml_soft_max_ext(kq, mask, 1/sqrtf(D))`: x·scale + mask (−∞ above the diagonal), max, expf, the sum in
///   double, times float(1/sum); KQV = `ggml_mul_mat(v, kq)` (F16 cache: v and the probabilities rounded to F16);
/// - `ggml_swiglu` = `x/(1 + expf(−x))·g`, residual `ggml_add`s in float.
/// convert_hf_to_gguf stores Q/K rows permuted so that NORMAL RoPE rotates the pairs HF's `rotate_half` rotates;
/// the ops move values between that order and the reference order at their boundaries (exact moves), so every
/// value reported is in HF order and the pipeline of ops computes what llama.cpp's graph computes.
///
/// With `flashAttention` (llama.cpp's `-fa`; the C API's default "auto" turns it on where the backend supports it,
/// as the CPU backend does; llama-cpp-python's default is off), llama.cpp casts an F32 cache to F16 too and calls
/// `ggml_flash_attn_ext`, whose CPU kernel for fewer than 64 queries (`flash_attn_ext_f16_one_chunk`) converts Q to
/// F16, walks the keys in order with a running maximum M and sum S, and accumulates V·exp(s − M) in an F16
/// accumulator rounded at every key (`ggml_vec_mad_f16`, rescaled by exp(M_old − M) when M grows), dividing by S at
/// the end. The probabilities are never materialised; `attentionOutput` replays that recurrence from them
/// (exp(s_i − M) is p_i / p_max, up to float32 rounding of p), which is what the graph's split into probs and
/// probs·V allows. From 64 queries on ggml takes its tiled kernel instead: Q stays float32, K and V are widened from
/// F16 and everything accumulates in float32 — modelled as the float32 products of those values.
public struct GGMLLlamaOps: LlamaOps {
    public let kvCache: GGMLKVCacheType
    /// llama.cpp's flash attention (off: `soft_max_ext` and two `mul_mat`s).
    public let flashAttention: Bool
    /// The RoPE mode the stored Q/K rows are rotated in: `.adjacentPairs` (ggml NORMAL, llama.cpp's `llama`) on
    /// rows in convert_hf_to_gguf's permuted order; `.halves` (NEOX) on rows in HF order.
    public let ropeStyle: RopeStyle

    /// Per-head width of Q and K: the unit of convert_hf_to_gguf's row permutation.
    public let headDimension: Int

    public init(headDimension: Int, kvCache: GGMLKVCacheType = .f16, ropeStyle: RopeStyle = .adjacentPairs, flashAttention: Bool = false) {
        self.kvCache = kvCache
        self.flashAttention = flashAttention
        self.ropeStyle = ropeStyle
        self.headDimension = headDimension
        Kernels.pinBLASThreads()
    }

    /// The ops for a weight source: its head dimension and the RoPE mode its runtime applies to its rows.
    public init(source: any LlamaWeightSource, kvCache: GGMLKVCacheType = .f16, flashAttention: Bool = false) {
        self.init(headDimension: source.hyperparameters.headDimension, kvCache: kvCache, ropeStyle: source.ropeStyle,
                  flashAttention: flashAttention)
    }

    public func adapted(to source: any LlamaWeightSource) -> any LlamaOps {
        GGMLLlamaOps(source: source, kvCache: kvCache, flashAttention: flashAttention)
    }

    /// llama.cpp's loader (llama-model.cpp) reads θ and ε from these GGUF keys, picks the RoPE mode from the
    /// architecture (LLAMA_ROPE_TYPE_NORM for `llama`), and duplicates token_embd when output.weight is absent.
    public var conventionOrigins: RuntimeConventionOrigins {
        RuntimeConventionOrigins(
            ropeStyle: "llama.cpp's RoPE mode for general.architecture llama: NORMAL, on rows convert_hf_to_gguf permuted",
            ropeTheta: "GGUF key llama.rope.freq_base", rmsNormEpsilon: "GGUF key llama.attention.layer_norm_rms_epsilon",
            tiedOutput: "the GGUF has no output.weight, and llama.cpp then uses token_embd.weight")
    }

    public var semantics: String {
        "ggml CPU backend, llama.cpp's llama graph (rope \(ropeStyle == .adjacentPairs ? "NORMAL (adjacent pairs)" : "NEOX (halves)"), KV cache \(kvCache.rawValue.uppercased()), flash attention \(flashAttention ? "on" : "off"); mul_mat converts activations to the weight's vec_dot_type)"
    }

    // MARK: Embedding and projections

    public func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor {
        try table.checkIds(ids, node: "token_embd (get_rows)")
        let values: [Float]
        switch table.storage {
        case let .dense(v, _): values = v
        case let .ggml(file, tensor):
            do { values = try file.values(tensor) } catch {
                throw LayerExecutionError(layer: table.fileName, reason: "get_rows cannot dequantize: \(error)")
            }
        case .mlxQuantized:
            throw LayerExecutionError(layer: table.fileName, reason: "is an MLX quantized tensor; ggml reads ggml types")
        }
        return TransformerTensors.gatherRows(values, width: table.columns, ids: ids, shape: shape)
    }

    public func linear(_ x: Tensor, _ w: StoredMatrix, role: LlamaTensorRole) throws(LayerExecutionError) -> Tensor {
        guard x.shape.last == w.columns else {
            throw LayerExecutionError(layer: w.fileName, reason: "mul_mat: input \(x.shape) does not end in the weight's ne0 = \(w.columns)")
        }
        let rows = x.count / w.columns
        var y: Tensor
        switch w.storage {
        case let .dense(values, dtype):
            let type: GGMLType = dtype == .f16 ? .f16 : dtype == .bf16 ? .bf16 : .f32
            let xr = GGMLNumerics.round(x, to: type)  // the activation in the weight's vec_dot_type (F16/BF16/F32)
            y = TransformerTensors.linearF32(xr, weight: values, outFeatures: w.rows)
        case let .ggml(file, tensor):
            y = try GGMLNumerics.mulMat(file: file, weight: tensor, x: x.reshaped([rows, w.columns]), layer: w.fileName)
            y = y.reshaped(Array(x.shape.dropLast()) + [w.rows])
        case .mlxQuantized:
            throw LayerExecutionError(layer: w.fileName, reason: "is an MLX quantized tensor; ggml's mul_mat reads ggml types")
        }
        if ropeStyle == .adjacentPairs && (role == .query || role == .key) {
            // Rows stored in convert_hf_to_gguf's order: report (and pass on) the features in HF order.
            guard w.rows % headDimension == 0 else {
                throw LayerExecutionError(layer: w.fileName, reason: "\(w.rows) rows are not whole heads of \(headDimension)")
            }
            y = TransformerTensors.unpermuteHeadDimensions(y, headDimension: headDimension)
        }
        return y
    }

    // MARK: RoPE

    /// ggml's rope cache for one position: θ_0 = p, θ_{i+1} = θ_i · s with s = powf(base, −2/n_dims).
    public static func ropeAngles(position: Int32, headDimension d: Int, theta: Double) -> [Float] {
        let scale = powf(Float(theta), -2.0 / Float(d))
        var angle = Float(position)
        var out = [Float](repeating: 0, count: d / 2)
        for i in 0..<(d / 2) {
            out[i] = angle
            angle *= scale
        }
        return out
    }

    public func rotary(positions: [Int32], shape: [Int], headDimension d: Int, theta: Double, sine: Bool) -> Tensor {
        var out = [Float](repeating: 0, count: positions.count * d)
        for (p, position) in positions.enumerated() {
            let angles = GGMLLlamaOps.ropeAngles(position: position, headDimension: d, theta: theta)
            for i in 0..<(d / 2) {
                let v = sine ? sinf(angles[i]) : cosf(angles[i])
                out[p * d + i] = v
                out[p * d + i + d / 2] = v
            }
        }
        return Tensor(shape: shape + [d], data: out)
    }

    public func applyRope(_ x: Tensor, cos: Tensor, sin: Tensor, heads: Int) -> Tensor {
        let d = x.shape[2] / heads
        switch ropeStyle {
        case .adjacentPairs:
            // Into the stored (permuted) order, rotate (2i, 2i+1) by angle i, back to HF order.
            let stored = TransformerTensors.splitHeads(TransformerTensors.permuteHeadDimensions(x, headDimension: d), heads: heads)
            let rotated = GGMLLlamaOps.rotatePairs(stored, cos: cos, sin: sin, partnerOffset: 1, pairStride: 2)
            return TransformerTensors.unpermuteHeadDimensions(rotated, headDimension: d)
        case .halves:
            return GGMLLlamaOps.rotatePairs(TransformerTensors.splitHeads(x, heads: heads), cos: cos, sin: sin, partnerOffset: d / 2, pairStride: 1)
        }
    }

    /// ggml's `rotate_pairs`: pair i is (first, first + partnerOffset) with first = i·pairStride;
    /// y0 = x0·cos − x1·sin, y1 = x0·sin + x1·cos, products and sums each rounded to float.
    /// `round` rounds each product and sum to a narrower compute type (MLX in float16); ggml's is the identity.
    static func rotatePairs(_ x: Tensor, cos: Tensor, sin: Tensor, partnerOffset: Int, pairStride: Int,
                            round: (Float) -> Float = { $0 }) -> Tensor {
        let (b, h, t, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var out = x.data
        for bi in 0..<b {
            for hi in 0..<h {
                for ti in 0..<t {
                    let base = ((bi * h + hi) * t + ti) * d, cs = (bi * t + ti) * d
                    for i in 0..<(d / 2) {
                        let first = base + i * pairStride, second = first + partnerOffset
                        let c = cos.data[cs + i], s = sin.data[cs + i]
                        let x0 = x.data[first], x1 = x.data[second]
                        let a = round(x0 * c), bb = round(x1 * s), e = round(x0 * s), f = round(x1 * c)
                        out[first] = round(a - bb)
                        out[second] = round(e + f)
                    }
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }

    // MARK: Attention

    /// The values the cache holds (F16 rounds them) and the vec_dot_type the other operand is converted to.
    /// ggml's CPU flash attention takes its tiled float32 kernel (`flash_attn_ext_tiled`) from 64 queries on
    /// (GGML_FA_TILE_Q), the per-row F16 kernel below that.
    func tiledFlashAttention(queries: Int) -> Bool { flashAttention && queries >= 64 }

    /// Flash attention casts an F32 cache to F16 as well, so K and V (and Q, converted to K's vec_dot_type) are F16.
    func throughCache(_ t: Tensor) -> Tensor { kvCache == .f16 || flashAttention ? GGMLNumerics.round(t, to: .f16) : t }

    public func attentionProbs(q: Tensor, k: Tensor, mask: Tensor) -> Tensor {
        let (b, h, t, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (hkv, s) = (k.shape[1], k.shape[2])
        // ggml's tiled flash-attention kernel (≥ 64 queries) keeps Q in float32 and widens K to float32.
        let kc = throughCache(k), qc = tiledFlashAttention(queries: t) ? q : throughCache(q)
        let scale = Float(1) / sqrtf(Float(d))
        var out = [Float](repeating: 0, count: b * h * t * s)
        var kq = [Float](repeating: 0, count: t * s)
        for bi in 0..<b {
            for hi in 0..<h {
                TransformerTensors.headScores(q: qc.data, k: kc.data, batch: bi, head: hi, heads: h, kvHeads: hkv, queries: t, keys: s,
                                              headDimension: d, into: &kq)
                for ti in 0..<t {
                    var w = [Float](repeating: 0, count: s)
                    for si in 0..<s {
                        let m = mask.data[(bi * t + ti) * s + si]
                        w[si] = kq[ti * s + si] * scale + (TransformerTensors.hides(m) ? -Float.infinity : m)
                    }
                    let p = GGMLLlamaOps.softMax(w)
                    for si in 0..<s { out[((bi * h + hi) * t + ti) * s + si] = p[si] }
                }
            }
        }
        return Tensor(shape: [b, h, t, s], data: out)
    }

    /// `ggml_soft_max` on one row: max, expf(x − max), the sum in double, times float(1/sum).
    static func softMax(_ w: [Float]) -> [Float] {
        let m = w.max() ?? 0
        var e = w.map { expf($0 - m) }
        var sum = 0.0
        for v in e { sum += Double(v) }
        let inv = Float(1.0 / sum)
        for i in 0..<e.count { e[i] *= inv }
        return e
    }

    public func attentionOutput(probs: Tensor, v: Tensor, keyValueHeads: Int) -> Tensor {
        let values = throughCache(TransformerTensors.splitHeads(v, heads: keyValueHeads))
        if tiledFlashAttention(queries: probs.shape[2]) {
            // The tiled kernel: exp weights times V (widened from F16) in float32, divided by the sum at the end.
            return PyTorchLlamaOps.probsTimesValues(probs: probs, values: values)
        }
        if flashAttention { return GGMLLlamaOps.flashAttentionOutput(probs: probs, values: values) }
        return PyTorchLlamaOps.probsTimesValues(probs: throughCache(probs), values: values)
    }

    /// `flash_attn_ext_f16_one_chunk`'s V accumulation for F16 V, replayed from the probabilities: per query, keys
    /// in order, masked ones (p = 0) skipped; with w_i = p_i (∝ exp(s_i − M_final)) and W the running maximum of w,
    /// a new maximum rescales the F16 accumulator by W_old / w_i (= exp(M_old − M)), otherwise the key's weight is
    /// w_i / W (= exp(s − M)); `acc = f16(acc + v·weight)` (ggml's F16 FMA loop: float FMA, then F16 rounding),
    /// `S = S·scale + weight`; the output is float(acc) · (1/S).
    static func flashAttentionOutput(probs: Tensor, values: Tensor) -> Tensor {
        let (b, h, t, s) = (probs.shape[0], probs.shape[1], probs.shape[2], probs.shape[3])
        let (hkv, d) = (values.shape[1], values.shape[3])
        var heads = [Float](repeating: 0, count: b * h * t * d)
        var acc = [Float](repeating: 0, count: d)
        for bi in 0..<b {
            for hi in 0..<h {
                let kv = hi / (h / hkv)
                for ti in 0..<t {
                    for i in 0..<d { acc[i] = 0 }
                    var runningMax: Float = 0, sum: Float = 0
                    let row = ((bi * h + hi) * t + ti) * s
                    for si in 0..<s {
                        let w = probs.data[row + si]
                        guard w > 0 else { continue }
                        var scale: Float = 1, weight: Float = 1
                        if w > runningMax {
                            scale = runningMax / w
                            runningMax = w
                            for i in 0..<d { acc[i] = Float(Float16(acc[i] * scale)) }
                        } else {
                            weight = w / runningMax
                        }
                        let vrow = ((bi * hkv + kv) * s + si) * d
                        for i in 0..<d { acc[i] = Float(Float16(acc[i].addingProduct(values.data[vrow + i], weight))) }
                        sum = sum * scale + weight
                    }
                    let inv = 1 / sum
                    let out = ((bi * h + hi) * t + ti) * d
                    for i in 0..<d { heads[out + i] = acc[i] * inv }
                }
            }
        }
        return TransformerTensors.mergeHeads(Tensor(shape: [b, h, t, d], data: heads))
    }

    // MARK: Norm and activation

    public func rmsNorm(_ x: Tensor, weight: [Float], epsilon: Double) -> Tensor {
        let width = x.shape[x.rank - 1]
        let eps = Float(epsilon)  // llama.cpp reads layer_norm_rms_epsilon as a float32 key
        var out = x.data
        for row in stride(from: 0, to: x.count, by: width) {
            var sum = 0.0
            for c in 0..<width { let v = x.data[row + c]; sum += Double(v * v) }
            let mean = Float(sum / Double(width))
            let scale = 1 / sqrtf(mean + eps)
            for c in 0..<width { out[row + c] = (x.data[row + c] * scale) * weight[c] }
        }
        return Tensor(shape: x.shape, data: out)
    }

    public func silu(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, data: x.data.map { $0 / (1 + expf(-$0)) })
    }
}
