#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ParityCore
import ParityFormats

/// Llama as mlx-lm's `models/llama.py` computes it on MLX's CPU stream, in float32 (a float32 or quantized model
/// with float32 scales: mlx-lm computes in the weights' dtype). On the CPU every `mx.fast` op runs its fallback
/// (fast.cpp), built from ordinary MLX ops, each rounding once:
/// - `nn.RMSNorm` → `mx.fast.rms_norm`: `x · rsqrt(mean(x²) + eps)` (eps as float32), then `· weight`;
/// - `nn.RoPE(traditional=False, base=θ)` → `mx.fast.rope`: inverse frequencies `exp(−i · (log(θ)/(D/2)))` with the
///   factor computed in float32 (`std::log` of a float), angle = position · frequency, then `x1·cos − x2·sin`,
///   `x1·sin + x2·cos` on the halves (`traditional=True`: on adjacent pairs);
/// - `mx.fast.scaled_dot_product_attention(mask="causal")`: `q · scale` first (scale = D^−½ in float32), then
///   `q·kᵀ` with K heads broadcast over each group of queries, masked entries set to float32's lowest,
///   `softmax(precise=True)` (max, exp, float32 sum, times 1/sum), `· v`;
/// - `nn.silu`: `x · sigmoid(x)`; `nn.Linear`: `x @ Wᵀ`; `nn.QuantizedLinear`: `mx.quantized_matmul`;
///   `nn.QuantizedEmbedding`: `mx.dequantize` of the looked-up rows.
/// A float16/bfloat16 model runs every op in that dtype in mlx-lm; these ops compute in float32 on the widened
/// weights (the difference is that dtype's rounding of activations, not modelled here).
public struct MLXLlamaOps: LlamaOps {
    /// `rope_traditional` from config.json: `.halves` (False, mlx-lm's default for Llama) or `.adjacentPairs`.
    public let ropeStyle: RopeStyle

    public init(ropeStyle: RopeStyle = .halves) {
        self.ropeStyle = ropeStyle
        Kernels.pinBLASThreads()
    }

    public init(source: any LlamaWeightSource) { self.init(ropeStyle: source.ropeStyle) }

    public var semantics: String {
        "MLX (mlx-lm llama.py on the CPU stream: mx.fast fallbacks, rope traditional=\(ropeStyle == .adjacentPairs ? "True" : "False"), float32 compute, QuantizedLinear → quantized_matmul)"
    }

    // MARK: Embedding and projections

    public func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor {
        try table.checkIds(ids, node: "model.embed_tokens")
        let values: [Float]
        switch table.storage {
        case let .dense(v, _): values = v
        case let .mlxQuantized(weight, scales, biases, mode, groupSize, bits):
            do {
                let q = try MLXQuantized(weight: weight, scales: scales, biases: biases, mode: MLXQuantMode.parse(mode), groupSize: groupSize, bits: bits)
                guard q.rows == table.rows, q.cols == table.columns else {
                    throw ParityError.mismatch(file: table.fileName, reason: "unpacks to [\(q.rows), \(q.cols)], the embedding is [\(table.rows), \(table.columns)]")
                }
                values = MLXQuantization.dequantize(q)
            } catch {
                throw LayerExecutionError(layer: table.fileName, reason: "QuantizedEmbedding cannot dequantize: \(error)")
            }
        case .ggml:
            throw LayerExecutionError(layer: table.fileName, reason: "is a GGUF tensor; mlx-lm reads safetensors")
        }
        return TransformerTensors.gatherRows(values, width: table.columns, ids: ids, shape: shape)
    }

    public func linear(_ x: Tensor, _ w: StoredMatrix, role: LlamaTensorRole) throws(LayerExecutionError) -> Tensor {
        guard x.shape.last == w.columns else {
            throw LayerExecutionError(layer: w.fileName, reason: "input \(x.shape) does not end in the weight's \(w.columns) columns")
        }
        switch w.storage {
        case let .dense(values, _):
            return TransformerTensors.linearF32(x, weight: values, outFeatures: w.rows)
        case let .mlxQuantized(weight, scales, biases, mode, groupSize, bits):
            let rows = x.count / w.columns
            do {
                let y = try MLXQuantization.quantizedMatmul(x: x.data, rows: rows, weight: weight, scales: scales, biases: biases,
                                                            outFeatures: w.rows, inFeatures: w.columns, mode: mode, groupSize: groupSize, bits: bits)
                return Tensor(shape: Array(x.shape.dropLast()) + [w.rows], data: y)
            } catch {
                throw LayerExecutionError(layer: w.fileName, reason: "quantized_matmul (\(mode), \(bits) bits, group \(groupSize)): \(error)")
            }
        case .ggml:
            throw LayerExecutionError(layer: w.fileName, reason: "is a GGUF tensor; mlx-lm reads safetensors")
        }
    }

    // MARK: RoPE

    /// `mx.fast.rope`'s inverse frequencies on the CPU: exp(−i · f) with f = logf(θ) / (D/2) in float32.
    public static func inverseFrequencies(headDimension d: Int, theta: Double) -> [Float] {
        let factor = logf(Float(theta)) / Float(d / 2)
        return (0..<(d / 2)).map { i in expf(Float(-i) * factor) }
    }

    public func rotary(positions: [Int32], shape: [Int], headDimension d: Int, theta: Double, sine: Bool) -> Tensor {
        let inv = MLXLlamaOps.inverseFrequencies(headDimension: d, theta: theta)
        var out = [Float](repeating: 0, count: positions.count * d)
        for (p, position) in positions.enumerated() {
            for i in 0..<(d / 2) {
                let angle = Float(position) * inv[i]  // positions = (arange(T) + offset) · scale, scale 1
                let v = sine ? sinf(angle) : cosf(angle)
                out[p * d + i] = v
                out[p * d + i + d / 2] = v
            }
        }
        return Tensor(shape: shape + [d], data: out)
    }

    public func applyRope(_ x: Tensor, cos: Tensor, sin: Tensor, heads: Int, positions: [Int32]) -> Tensor {
        let d = x.shape[2] / heads
        let split = TransformerTensors.splitHeads(x, heads: heads)
        // The same rotation formula as ggml's (x1·c − x2·s, x1·s + x2·c, each product rounded); the pairs differ.
        switch ropeStyle {
        case .halves: return GGMLLlamaOps.rotatePairs(split, cos: cos, sin: sin, partnerOffset: d / 2, pairStride: 1)
        case .adjacentPairs: return GGMLLlamaOps.rotatePairs(split, cos: cos, sin: sin, partnerOffset: 1, pairStride: 2)
        }
    }

    // MARK: Attention

    public func attentionProbs(q: Tensor, k: Tensor, mask: Tensor) -> Tensor {
        let (b, h, t, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (hkv, s) = (k.shape[1], k.shape[2])
        let scale = Float(1 / Double(d).squareRoot())  // head_dim ** -0.5 in Python, passed as a float
        let scaled = q.data.map { scale * $0 }
        var out = [Float](repeating: 0, count: b * h * t * s)
        var scores = [Float](repeating: 0, count: t * s)
        for bi in 0..<b {
            for hi in 0..<h {
                let kv = hi / (h / hkv)  // unflatten(q, 1, [Hkv, n_rep]): query head h reads KV head h / n_rep
                scaled.withUnsafeBufferPointer { qp in
                    k.data.withUnsafeBufferPointer { kp in
                        scores.withUnsafeMutableBufferPointer { sp in
                            Kernels.sgemm(m: t, n: s, k: d, a: qp.baseAddress! + ((bi * h + hi) * t) * d,
                                          b: kp.baseAddress! + ((bi * hkv + kv) * s) * d, transposeB: true, c: sp.baseAddress!)
                        }
                    }
                }
                for ti in 0..<t {
                    var row = [Float](repeating: 0, count: s)
                    for si in 0..<s {
                        row[si] = TransformerTensors.hides(mask.data[(bi * t + ti) * s + si]) ? -Float.greatestFiniteMagnitude : scores[ti * s + si]
                    }
                    let p = MLXLlamaOps.softmax(row)
                    for si in 0..<s { out[((bi * h + hi) * t + ti) * s + si] = p[si] }
                }
            }
        }
        return Tensor(shape: [b, h, t, s], data: out)
    }

    /// MLX's CPU softmax for float32: max, exp(x − max), a float32 sum, times 1/sum.
    static func softmax(_ row: [Float]) -> [Float] {
        let m = row.max() ?? 0
        var e = row.map { expf($0 - m) }
        var sum: Float = 0
        for v in e { sum += v }
        let inv = 1 / sum
        for i in 0..<e.count { e[i] *= inv }
        return e
    }

    public func attentionOutput(probs: Tensor, v: Tensor, keyValueHeads: Int) -> Tensor {
        PyTorchLlamaOps.probsTimesValues(probs: probs, values: TransformerTensors.splitHeads(v, heads: keyValueHeads))
    }

    // MARK: Norm and activation

    public func rmsNorm(_ x: Tensor, weight: [Float], epsilon: Double) -> Tensor {
        let width = x.shape[x.rank - 1]
        let eps = Float(epsilon)
        var out = x.data
        for row in stride(from: 0, to: x.count, by: width) {
            var sum = 0.0
            for c in 0..<width { let v = x.data[row + c]; sum += Double(v * v) }
            let mean = Float(sum) / Float(width)
            let scale = 1 / (mean + eps).squareRoot()
            for c in 0..<width { out[row + c] = (x.data[row + c] * scale) * weight[c] }
        }
        return Tensor(shape: x.shape, data: out)
    }

    public func silu(_ x: Tensor) -> Tensor {
        Tensor(shape: x.shape, data: x.data.map { $0 * (1 / (1 + expf(-$0))) })
    }
}
