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
/// A float16/bfloat16 model (dense weights, or quantized scales, of that dtype) computes in that dtype: mlx-lm never
/// casts, so every op's result is rounded to it — the fallbacks' float32 steps (`rms_norm`'s normalisation,
/// `softmax(precise=True)`, matmul accumulation) round once at their end, elementwise ops after each operation
/// (MLX's CPU float16_t/bfloat16_t arithmetic goes through float per operation), cos/sin are cast to the dtype,
/// and the causal mask uses the dtype's lowest value.
public struct MLXLlamaOps: LlamaOps {
    /// `rope_traditional` from config.json: `.halves` (False, mlx-lm's default for Llama) or `.adjacentPairs`.
    public let ropeStyle: RopeStyle
    /// The dtype mlx-lm computes in: the model's (float32, float16, bfloat16).
    public let computeType: MLXFloatType

    public init(ropeStyle: RopeStyle = .halves, computeType: MLXFloatType = .f32) {
        self.ropeStyle = ropeStyle
        self.computeType = computeType
        Kernels.pinBLASThreads()
    }

    /// The ops for a weight source: its RoPE style, and the dtype of its embedding table (dense) or of its scales
    /// (quantized), which is the dtype of every activation in mlx-lm.
    public init(source: any LlamaWeightSource) {
        var type = MLXFloatType.f32
        if let table = try? source.matrix(.tokenEmbedding, layer: 0) {  // an unreadable table fails later, at the embedding node
            switch table.storage {
            case let .dense(_, dtype): type = MLXFloatType(dtype) ?? .f32
            case let .mlxQuantized(_, scales, _, mode, _, _): type = mode == "affine" ? MLXFloatType(scales.dtype) ?? .f32 : .f32
            case .ggml: break
            }
        }
        self.init(ropeStyle: source.ropeStyle, computeType: type)
    }

    public func adapted(to source: any LlamaWeightSource) -> any LlamaOps {
        MLXLlamaOps(ropeStyle: source.ropeStyle, computeType: computeType)
    }

    /// mlx-lm's ModelArgs (models/llama.py) take these config.json keys; its `sanitize` drops lm_head.weight when
    /// tie_word_embeddings is true (its default when the key is absent).
    public var conventionOrigins: RuntimeConventionOrigins {
        let traditional = ropeStyle == .adjacentPairs
        return RuntimeConventionOrigins(
            ropeStyle: "config.json rope_traditional: \(traditional), so mlx-lm builds nn.RoPE(traditional=\(traditional ? "True" : "False"))",
            ropeTheta: "config.json rope_theta", rmsNormEpsilon: "config.json rms_norm_eps",
            tiedOutput: "config.json tie_word_embeddings is true or absent, and mlx-lm then drops lm_head.weight and uses embed_tokens.as_linear")
    }

    public var semantics: String {
        "MLX (mlx-lm llama.py on the CPU stream: mx.fast fallbacks, rope traditional=\(ropeStyle == .adjacentPairs ? "True" : "False"), \(computeType.rawValue) compute, QuantizedLinear → quantized_matmul)"
    }

    /// A value rounded to the compute dtype.
    @inline(__always) func r(_ x: Float) -> Float { computeType.round(x) }
    func rounded(_ t: Tensor) -> Tensor { computeType == .f32 ? t : Tensor(shape: t.shape, data: computeType.rounded(t.data)) }

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
        return rounded(TransformerTensors.gatherRows(values, width: table.columns, ids: ids, shape: shape))
    }

    public func linear(_ x: Tensor, _ w: StoredMatrix, role: LlamaTensorRole) throws(LayerExecutionError) -> Tensor {
        guard x.shape.last == w.columns else {
            throw LayerExecutionError(layer: w.fileName, reason: "input \(x.shape) does not end in the weight's \(w.columns) columns")
        }
        switch w.storage {
        case let .dense(values, _):
            // MLX's CPU gemm accumulates in float32 and rounds each result to the dtype once.
            return rounded(TransformerTensors.linearF32(x, weight: values, outFeatures: w.rows))
        case let .mlxQuantized(weight, scales, biases, mode, groupSize, bits):
            let rows = x.count / w.columns
            do {
                let q = try MLXQuantized(weight: weight, scales: scales, biases: biases, mode: MLXQuantMode.parse(mode), groupSize: groupSize, bits: bits)
                guard q.rows == w.rows, q.cols == w.columns else {
                    throw ParityError.mismatch(file: w.fileName, reason: "unpacks to [\(q.rows), \(q.cols)]; the layer is [\(w.rows), \(w.columns)]")
                }
                let y = try MLXQuantization.quantizedMatmul(x: x.data, rows: rows, weight: q, xType: computeType)
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
                let v = r(sine ? sinf(angle) : cosf(angle))  // astype(cos(theta), t)
                out[p * d + i] = v
                out[p * d + i + d / 2] = v
            }
        }
        return Tensor(shape: shape + [d], data: out)
    }

    public func applyRope(_ x: Tensor, cos: Tensor, sin: Tensor, heads: Int) -> Tensor {
        let d = x.shape[2] / heads
        let split = TransformerTensors.splitHeads(x, heads: heads)
        // The same rotation formula as ggml's (x1·c − x2·s, x1·s + x2·c, each product rounded); the pairs differ.
        let (offset, stride) = ropeStyle == .halves ? (d / 2, 1) : (1, 2)
        return GGMLLlamaOps.rotatePairs(split, cos: cos, sin: sin, partnerOffset: offset, pairStride: stride, round: computeType.round)
    }

    // MARK: Attention

    public func attentionProbs(q: Tensor, k: Tensor, mask: Tensor) -> Tensor {
        let (b, h, t, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (hkv, s) = (k.shape[1], k.shape[2])
        let scale = r(Float(1 / Double(d).squareRoot()))  // head_dim ** -0.5 in Python, passed as a float, array(scale, dtype)
        let scaled = q.data.map { r(scale * $0) }
        let lowest: Float  // finfo(dtype).min
        switch computeType {
        case .f32: lowest = -Float.greatestFiniteMagnitude
        case .f16: lowest = -Float(Float16.greatestFiniteMagnitude)
        case .bf16: lowest = -FloatCodecs.bfloat16ToFloat(0x7F7F)
        }
        var out = [Float](repeating: 0, count: b * h * t * s)
        var scores = [Float](repeating: 0, count: t * s)
        for bi in 0..<b {
            for hi in 0..<h {
                TransformerTensors.headScores(q: scaled, k: k.data, batch: bi, head: hi, heads: h, kvHeads: hkv, queries: t, keys: s,
                                              headDimension: d, into: &scores)
                for ti in 0..<t {
                    var row = [Float](repeating: 0, count: s)
                    for si in 0..<s {
                        row[si] = TransformerTensors.hides(mask.data[(bi * t + ti) * s + si]) ? lowest : r(scores[ti * s + si])
                    }
                    let p = MLXLlamaOps.softmax(row)
                    for si in 0..<s { out[((bi * h + hi) * t + ti) * s + si] = r(p[si]) }
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
        rounded(PyTorchLlamaOps.probsTimesValues(probs: probs, values: TransformerTensors.splitHeads(v, heads: keyValueHeads)))
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
            // astype(x · rsqrt(…), dtype), then · weight in the dtype.
            for c in 0..<width { out[row + c] = r(r(x.data[row + c] * scale) * weight[c]) }
        }
        return Tensor(shape: x.shape, data: out)
    }

    public func silu(_ x: Tensor) -> Tensor {
        // MLX's CPU Sigmoid is `1.0f / (1.0f + simd::exp(-x))` on Simd<T>: exp in the dtype (rounded), the rest in
        // float, rounded once; then x · sigmoid in the dtype. Measured against mlx 0.32 on 16,384 float16 values:
        // 97 % bit-identical (its float division of the remaining ones differs by one float16 ulp: an approximate
        // reciprocal, not modelled); rounding 1 + exp as well would match 75 %.
        Tensor(shape: x.shape, data: x.data.map { v in r(v * r(1 / (1 + r(expf(-v))))) })
    }

    public func add(_ a: Tensor, _ b: Tensor) -> Tensor { rounded(TransformerTensors.add(a, b)) }
    public func mul(_ a: Tensor, _ b: Tensor) -> Tensor { rounded(TransformerTensors.mul(a, b)) }
}
