import ParityCore

/// Layout moves and small shared pieces of the transformer engines. Every function works in the reference
/// (PyTorch) layouts: activations [B, T, C], heads [B, H, T, D], attention [B, H, T, S], masks [B, 1, T, S].
/// These are exact (values are moved, never recomputed), so they are shared by every runtime's ops.
public enum TransformerTensors {
    /// [B, T, H·D] → [B, H, T, D] (`x.view(B, T, H, D).transpose(1, 2)`).
    public static func splitHeads(_ x: Tensor, heads: Int) -> Tensor {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        return x.reshaped([b, t, heads, c / heads]).permuted([0, 2, 1, 3])
    }

    /// [B, H, T, D] → [B, T, H·D] (`transpose(1, 2).reshape(B, T, H·D)`).
    public static func mergeHeads(_ x: Tensor) -> Tensor {
        let (b, h, t, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return x.permuted([0, 2, 1, 3]).reshaped([b, t, h * d])
    }

    /// The order of a head's dimensions after convert_hf_to_gguf's Q/K row permutation
    /// (`w.reshape(n_head, 2, D/2, cols).swapaxes(1, 2)`): stored dimension 2j + k holds reference dimension
    /// k·D/2 + j. So a projection through permuted rows gives, at position 2j + k, what the reference gives at
    /// k·D/2 + j — which is what ggml's adjacent-pair RoPE needs to rotate the same pairs HF's `rotate_half` does.
    @inlinable public static func referenceDimension(ofStored stored: Int, headDimension d: Int) -> Int {
        (stored % 2) * (d / 2) + stored / 2
    }

    /// Reorders the last axis (heads × D, head-major) from reference order into convert_hf_to_gguf's permuted
    /// order: out[h, 2j + k] = x[h, k·D/2 + j].
    public static func permuteHeadDimensions(_ x: Tensor, headDimension d: Int) -> Tensor {
        reorderLastAxis(x, headDimension: d) { stored in referenceDimension(ofStored: stored, headDimension: d) }
    }

    /// The inverse: from the permuted order back to the reference order, out[h, k·D/2 + j] = x[h, 2j + k].
    public static func unpermuteHeadDimensions(_ x: Tensor, headDimension d: Int) -> Tensor {
        // out[reference r] = x[stored s] where r = ref(s); equivalently out[i] = x[stored(i)].
        var storedOf = [Int](repeating: 0, count: d)
        for s in 0..<d { storedOf[referenceDimension(ofStored: s, headDimension: d)] = s }
        return reorderLastAxis(x, headDimension: d) { storedOf[$0] }
    }

    /// out[..., h·D + i] = x[..., h·D + source(i)].
    static func reorderLastAxis(_ x: Tensor, headDimension d: Int, source: (Int) -> Int) -> Tensor {
        let width = x.shape[x.rank - 1]
        precondition(width % d == 0, "last axis \(width) is not a multiple of the head dimension \(d)")
        let map = (0..<d).map(source)
        var out = x.data
        for base in stride(from: 0, to: x.count, by: d) {
            for i in 0..<d { out[base + i] = x.data[base + map[i]] }
        }
        return Tensor(shape: x.shape, data: out)
    }

    /// `x @ Wᵀ` over the last axis with an f32 BLAS product: x [..., in], W [out, in] row-major → [..., out].
    public static func linearF32(_ x: Tensor, weight: [Float], outFeatures: Int) -> Tensor {
        let inF = x.shape[x.rank - 1]
        let rows = x.count / max(inF, 1)
        var out = [Float](repeating: 0, count: rows * outFeatures)
        x.data.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                out.withUnsafeMutableBufferPointer { op in
                    Kernels.sgemm(m: rows, n: outFeatures, k: inF, a: xp.baseAddress!, b: wp.baseAddress!, transposeB: true, c: op.baseAddress!)
                }
            }
        }
        return Tensor(shape: Array(x.shape.dropLast()) + [outFeatures], data: out)
    }

    /// Rows `ids` of a [rows, width] table: [B, T] ids → [B, T, width]. Ids are checked by the caller.
    public static func gatherRows(_ table: [Float], width: Int, ids: [Int32], shape: [Int]) -> Tensor {
        var out = [Float](repeating: 0, count: ids.count * width)
        for (i, id) in ids.enumerated() {
            let src = Int(id) * width
            for c in 0..<width { out[i * width + c] = table[src + c] }
        }
        return Tensor(shape: shape + [width], data: out)
    }

    /// Elementwise a + b in float32 (the residual; every runtime adds two f32 tensors the same way).
    public static func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        var out = a.data
        for i in 0..<out.count { out[i] += b.data[i] }
        return Tensor(shape: a.shape, data: out)
    }

    /// Elementwise a · b in float32.
    public static func mul(_ a: Tensor, _ b: Tensor) -> Tensor {
        var out = a.data
        for i in 0..<out.count { out[i] *= b.data[i] }
        return Tensor(shape: a.shape, data: out)
    }

    /// transformers' 4-D causal mask from the 2-D attention mask [B, T] (1 = attend): float32 [B, 1, T, T],
    /// 0 where key ≤ query and the key is not padding, `-Float.greatestFiniteMagnitude` (torch.finfo.min) elsewhere.
    public static func causalMask(attentionMask: [Int32], batch: Int, tokens: Int) -> Tensor {
        var out = [Float](repeating: -Float.greatestFiniteMagnitude, count: batch * tokens * tokens)
        for b in 0..<batch {
            for q in 0..<tokens {
                for k in 0...q where attentionMask[b * tokens + k] != 0 { out[(b * tokens + q) * tokens + k] = 0 }
            }
        }
        return Tensor(shape: [batch, 1, tokens, tokens], data: out)
    }

    /// Whether an additive-mask entry hides its key. transformers writes float32's lowest value, llama.cpp −∞,
    /// MLX a boolean: a key is hidden when the additive value is below −FLT_MAX/2 (no real score is that low).
    /// q·kᵀ of one query head of one sequence against the KV head it reads (grouped-query attention: query head h reads
    /// KV head h / (H / H_kv), as repeat_kv, ggml_mul_mat's broadcast and MLX's unflatten all do): [T, S] into `scores`.
    /// `q` is [B, H, T, D], `k` [B, H_kv, S, D], both row-major.
    static func headScores(q: [Float], k: [Float], batch bi: Int, head hi: Int, heads h: Int, kvHeads hkv: Int,
                           queries t: Int, keys s: Int, headDimension d: Int, into scores: inout [Float]) {
        let kv = hi / (h / hkv)
        q.withUnsafeBufferPointer { qp in
            k.withUnsafeBufferPointer { kp in
                scores.withUnsafeMutableBufferPointer { sp in
                    Kernels.sgemm(m: t, n: s, k: d, a: qp.baseAddress! + ((bi * h + hi) * t) * d,
                                  b: kp.baseAddress! + ((bi * hkv + kv) * s) * d, transposeB: true, c: sp.baseAddress!)
                }
            }
        }
    }

    @inlinable public static func hides(_ maskValue: Float) -> Bool { maskValue < -Float.greatestFiniteMagnitude / 2 }

    /// The relative L2 distance ‖a − b‖ / ‖b‖ and the max |a − b| (accumulated in Double), for tests and logs.
    public static func distance(_ a: Tensor, _ b: Tensor) -> (maxAbs: Double, relL2: Double) {
        var maxAbs = 0.0, num = 0.0, den = 0.0
        for i in 0..<min(a.count, b.count) {
            let d = Double(a.data[i]) - Double(b.data[i])
            maxAbs = max(maxAbs, abs(d))
            num += d * d
            den += Double(b.data[i]) * Double(b.data[i])
        }
        return (maxAbs, den > 0 ? (num / den).squareRoot() : num.squareRoot())
    }
}
