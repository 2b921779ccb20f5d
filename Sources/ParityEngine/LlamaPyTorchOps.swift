#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ParityCore
import ParityFormats

/// Llama as Hugging Face transformers (4.46, `LlamaForCausalLM`, eager attention) computes it in float32 on CPU.
/// Each op follows modeling_llama.py's arithmetic, one float32 rounding per torch op:
/// - `LlamaRMSNorm`: `x.pow(2).mean(-1)`, `x * torch.rsqrt(var + eps)` (eps as float32), then `weight * x`;
/// - `LlamaRotaryEmbedding`: `inv_freq = 1.0 / (base ** (arange(0, D, 2).float() / D))` — the exponent divided in
///   float32, `pow` and the reciprocal in float32 — times the position (a float32 product), `cat((freqs, freqs))`,
///   then `cos`/`sin` in float32;
/// - `apply_rotary_pos_emb`: `q * cos + rotate_half(q) * sin` with `rotate_half(x) = cat(-x2, x1)` (halves);
/// - eager attention: `q @ kᵀ / math.sqrt(D)` (a float32 division), `+ mask`, `softmax(dim=-1, dtype=float32)`,
///   `repeat_kv` for GQA, `probs @ v`;
/// - `SiLU`: `x / (1 + exp(-x))` (torch's CPU kernel); `nn.Linear`: a BLAS sgemm `x @ Wᵀ`.
/// Sums are accumulated in Double and rounded once, which is within PyTorch's own float32 reduction noise
/// (torch's cascade sums differ from the exact sum by about one ulp).
public struct PyTorchLlamaOps: LlamaOps {
    public init() { Kernels.pinBLASThreads() }

    public var semantics: String { "PyTorch (transformers LlamaForCausalLM, eager attention, float32)" }

    public var conventionOrigins: RuntimeConventionOrigins {
        RuntimeConventionOrigins(ropeStyle: "transformers' rotate_half", ropeTheta: "config.json rope_theta",
                                 rmsNormEpsilon: "config.json rms_norm_eps", tiedOutput: "config.json tie_word_embeddings true")
    }

    public func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor {
        try table.checkIds(ids, node: "model.embed_tokens")
        guard let dense = table.denseValues else {
            throw LayerExecutionError(layer: "model.embed_tokens", reason: "\(table.fileName) is quantized; PyTorch's nn.Embedding holds a dense table")
        }
        return TransformerTensors.gatherRows(dense.values, width: table.columns, ids: ids, shape: shape)
    }

    /// torch's `inv_freq`: 1 / θ^(2i/D), each step a float32 operation.
    public static func inverseFrequencies(headDimension d: Int, theta: Double) -> [Float] {
        (0..<(d / 2)).map { i in
            let exponent = Float(2 * i) / Float(d)
            return Float(1) / powf(Float(theta), exponent)
        }
    }

    public func rotary(positions: [Int32], shape: [Int], headDimension d: Int, theta: Double, sine: Bool) -> Tensor {
        let inv = PyTorchLlamaOps.inverseFrequencies(headDimension: d, theta: theta)
        var out = [Float](repeating: 0, count: positions.count * d)
        for (p, position) in positions.enumerated() {
            for i in 0..<(d / 2) {
                let angle = inv[i] * Float(position)
                let v = sine ? sinf(angle) : cosf(angle)
                out[p * d + i] = v
                out[p * d + i + d / 2] = v
            }
        }
        return Tensor(shape: shape + [d], data: out)
    }

    public func rmsNorm(_ x: Tensor, weight: [Float], epsilon: Double) -> Tensor {
        let width = x.shape[x.rank - 1]
        let eps = Float(epsilon)
        var out = x.data
        for row in stride(from: 0, to: x.count, by: width) {
            var sum = 0.0
            for c in 0..<width { let v = x.data[row + c]; sum += Double(v * v) }
            let variance = Float(sum / Double(width))
            let scale = 1 / (variance + eps).squareRoot()
            for c in 0..<width { out[row + c] = weight[c] * (x.data[row + c] * scale) }
        }
        return Tensor(shape: x.shape, data: out)
    }

    public func linear(_ x: Tensor, _ w: StoredMatrix, role: LlamaTensorRole) throws(LayerExecutionError) -> Tensor {
        guard let dense = w.denseValues else {
            throw LayerExecutionError(layer: w.fileName, reason: "is quantized; PyTorch's nn.Linear multiplies a dense float32 weight")
        }
        guard x.shape.last == w.columns else {
            throw LayerExecutionError(layer: w.fileName, reason: "input \(x.shape) does not end in the weight's \(w.columns) columns")
        }
        return TransformerTensors.linearF32(x, weight: dense.values, outFeatures: w.rows)
    }

    public func applyRope(_ x: Tensor, cos: Tensor, sin: Tensor, heads: Int) -> Tensor {
        PyTorchLlamaOps.rotateHalf(TransformerTensors.splitHeads(x, heads: heads), cos: cos, sin: sin)
    }

    /// `x·cos + rotate_half(x)·sin` on [B, H, T, D] with cos/sin [B, T, D]: each product rounded, then the sum.
    static func rotateHalf(_ x: Tensor, cos: Tensor, sin: Tensor) -> Tensor {
        let (b, h, t, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var out = x.data
        for bi in 0..<b {
            for hi in 0..<h {
                for ti in 0..<t {
                    let base = ((bi * h + hi) * t + ti) * d, cs = (bi * t + ti) * d
                    for i in 0..<d {
                        let rotated = i < d / 2 ? -x.data[base + i + d / 2] : x.data[base + i - d / 2]
                        let a = x.data[base + i] * cos.data[cs + i]
                        let r = rotated * sin.data[cs + i]
                        out[base + i] = a + r
                    }
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }

    public func attentionProbs(q: Tensor, k: Tensor, mask: Tensor) -> Tensor {
        let (b, h, t, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (hkv, s) = (k.shape[1], k.shape[2])
        let divisor = Float(Double(d).squareRoot())
        var out = [Float](repeating: 0, count: b * h * t * s)
        var scores = [Float](repeating: 0, count: t * s)
        for bi in 0..<b {
            for hi in 0..<h {
                TransformerTensors.headScores(q: q.data, k: k.data, batch: bi, head: hi, heads: h, kvHeads: hkv, queries: t, keys: s,
                                              headDimension: d, into: &scores)
                for ti in 0..<t {
                    var row = [Float](repeating: 0, count: s)
                    for si in 0..<s { row[si] = scores[ti * s + si] / divisor + mask.data[(bi * t + ti) * s + si] }
                    let p = PyTorchLlamaOps.softmax(row)
                    for si in 0..<s { out[((bi * h + hi) * t + ti) * s + si] = p[si] }
                }
            }
        }
        return Tensor(shape: [b, h, t, s], data: out)
    }

    /// torch's CPU softmax: max, exp(x − max), sum, times the reciprocal of the sum.
    static func softmax(_ row: [Float]) -> [Float] {
        let m = row.max() ?? 0
        var e = row.map { expf($0 - m) }
        var sum = 0.0
        for v in e { sum += Double(v) }
        let inv = Float(1) / Float(sum)
        for i in 0..<e.count { e[i] *= inv }
        return e
    }

    public func attentionOutput(probs: Tensor, v: Tensor, keyValueHeads hkv: Int) -> Tensor {
        PyTorchLlamaOps.probsTimesValues(probs: probs, values: TransformerTensors.splitHeads(v, heads: hkv))
    }

    /// probs [B, H, T, S] · v [B, Hkv, S, D] (f32 BLAS) → [B, T, H·D].
    static func probsTimesValues(probs: Tensor, values: Tensor) -> Tensor {
        let (b, h, t, s) = (probs.shape[0], probs.shape[1], probs.shape[2], probs.shape[3])
        let (hkv, d) = (values.shape[1], values.shape[3])
        var heads = [Float](repeating: 0, count: b * h * t * d)
        probs.data.withUnsafeBufferPointer { pp in
            values.data.withUnsafeBufferPointer { vp in
                heads.withUnsafeMutableBufferPointer { op in
                    for bi in 0..<b {
                        for hi in 0..<h {
                            let kv = hi / (h / hkv)
                            Kernels.sgemm(m: t, n: d, k: s, a: pp.baseAddress! + ((bi * h + hi) * t) * s,
                                          b: vp.baseAddress! + ((bi * hkv + kv) * s) * d, transposeB: false,
                                          c: op.baseAddress! + ((bi * h + hi) * t) * d)
                        }
                    }
                }
            }
        }
        return TransformerTensors.mergeHeads(Tensor(shape: [b, h, t, d], data: heads))
    }

    public func silu(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, data: x.data.map { $0 / (1 + expf(-$0)) })
    }
}
