#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ParityCore
import ParityFormats

/// BERT as mlx-embeddings 0.1.0's models/bert.py computes it on MLX's CPU stream (mlx 0.32):
/// - `nn.Embedding` rows (`nn.QuantizedEmbedding`: `mx.dequantize` of the looked-up rows, in the scales' dtype);
///   the sum `word + position + token_type`;
/// - `nn.LayerNorm` → `mx.fast.layer_norm`: the row's mean and variance in float32, `(x − mean) · rsqrt(var + eps)`
///   cast to the output dtype, then `· weight`, `+ bias`;
/// - `nn.Linear` → `mx.addmm(bias, x, Wᵀ)`: float32 accumulation, one rounding to the result dtype;
///   `nn.QuantizedLinear` → `mx.quantized_matmul` (Parity's MLX kernel), then `+ bias`;
/// - attention: `q @ kᵀ`, `/ math.sqrt(head_dim)` (the Python float cast to the scores' dtype), `+` the extended mask
///   `(1 − mask) · −10000` (float32: **not** the dtype's lowest value), `mx.softmax`, `@ v`;
/// - `nn.GELU()` (approx "none"): `x · (1 + erf(x / √2)) / 2`, one rounding per MLX op — the erf form, whatever
///   config.json's `hidden_act` says;
/// - `mean_pooling` (`sum(x · mask) / max(sum(mask), 1e-9)`) and `normalize_embeddings` (`x / max(‖x‖₂, 1e-9)`).
///
/// Dtypes follow MLX's promotion, which for a float16/bfloat16 model is not "everything in float16": the mask is
/// float32, so from the first attention scores on every activation is float32 (measured with mlx-embeddings: the
/// embeddings, their LayerNorm and layer 0's q/k/v are float16; layer 0's attention output, everything after it and
/// `text_embeds` are float32). An activation's dtype is inferred from its values: a tensor whose every value is
/// exactly representable in the weights' dtype is taken to be of that dtype (an MLX float16 array always is; a
/// float32 activation of hundreds of values never is in practice), else float32. Golden inputs (float32 from
/// PyTorch) therefore run in float32, as MLX would given float32 inputs.
public struct BertMLXOps: BertOps {
    /// The dtype of the stored floats (dense weights, or quantized scales): float32, float16 or bfloat16.
    public let weightType: MLXFloatType

    public init(weightType: MLXFloatType = .f32) {
        self.weightType = weightType
        Kernels.pinBLASThreads()
    }

    public init(source: MLXBertWeights) { self.init(weightType: source.activationType) }

    public var semantics: String {
        "MLX (mlx-embeddings bert.py on the CPU stream: fast.layer_norm, addmm, −10000 float32 mask, GELU erf, \(weightType.rawValue) weights, QuantizedLinear → quantized_matmul)"
    }

    /// The dtype MLX holds `t` in (see the type's documentation).
    func type(of t: Tensor) -> MLXFloatType {
        guard weightType != .f32 else { return .f32 }
        for v in t.data where weightType.round(v) != v { return .f32 }
        return weightType
    }

    func round(_ t: Tensor, to type: MLXFloatType) -> Tensor {
        type == .f32 ? t : Tensor(shape: t.shape, data: type.rounded(t.data))
    }

    public func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor {
        try table.checkIds(ids, node: table.fileName)
        let values: [Float], type: MLXFloatType
        switch table.storage {
        case let .dense(v, dtype):
            values = v
            type = MLXFloatType(dtype) ?? .f32
        case let .mlxQuantized(weight, scales, biases, mode, groupSize, bits):
            do {
                let q = try MLXQuantized(weight: weight, scales: scales, biases: biases, mode: MLXQuantMode.parse(mode), groupSize: groupSize, bits: bits)
                guard q.rows == table.rows, q.cols == table.columns else {
                    throw ParityError.mismatch(file: table.fileName, reason: "unpacks to [\(q.rows), \(q.cols)], the embedding is [\(table.rows), \(table.columns)]")
                }
                values = MLXQuantization.dequantize(q)
                type = MLXFloatType(scales.dtype) ?? .f32
            } catch {
                throw LayerExecutionError(layer: table.fileName, reason: "QuantizedEmbedding cannot dequantize: \(error)")
            }
        case .ggml:
            throw LayerExecutionError(layer: table.fileName, reason: "is a GGUF tensor; mlx-embeddings reads safetensors")
        }
        return round(TransformerTensors.gatherRows(values, width: table.columns, ids: ids, shape: shape), to: type)
    }

    public func layerNorm(_ x: Tensor, weight: [Float], bias: [Float], epsilon: Double) -> Tensor {
        let out = MLXFloatType.promote(type(of: x), weightType)
        let width = x.shape[x.rank - 1]
        let eps = Float(epsilon)
        var y = x.data
        for row in stride(from: 0, to: x.count, by: width) {
            var sum: Float = 0
            for c in 0..<width { sum += x.data[row + c] }
            let mean = sum / Float(width)
            var squares: Float = 0
            for c in 0..<width { let d = x.data[row + c] - mean; squares += d * d }
            let rstd = 1 / (squares / Float(width) + eps).squareRoot()
            for c in 0..<width {
                let normalized = out.round((x.data[row + c] - mean) * rstd)
                y[row + c] = out.round(out.round(normalized * weight[c]) + bias[c])
            }
        }
        return Tensor(shape: x.shape, data: y)
    }

    public func linear(_ x: Tensor, _ w: StoredMatrix, bias: [Float], role: BertTensorRole) throws(LayerExecutionError) -> Tensor {
        guard x.shape.last == w.columns, bias.count == w.rows else {
            throw LayerExecutionError(layer: w.fileName, reason: "input \(x.shape) and bias of \(bias.count) do not fit the weight's [\(w.rows), \(w.columns)]")
        }
        let xType = type(of: x)
        switch w.storage {
        case let .dense(values, dtype):
            // addmm: the bias enters the float32 accumulation; one rounding to the promoted dtype.
            let out = MLXFloatType.promote(xType, MLXFloatType(dtype) ?? .f32)
            var y = TransformerTensors.linearF32(x, weight: values, outFeatures: w.rows)
            for i in 0..<y.count { y.data[i] = out.round(y.data[i] + bias[i % w.rows]) }
            return y
        case let .mlxQuantized(weight, scales, biases, mode, groupSize, bits):
            let rows = x.count / w.columns
            do {
                let q = try MLXQuantized(weight: weight, scales: scales, biases: biases, mode: MLXQuantMode.parse(mode), groupSize: groupSize, bits: bits)
                guard q.rows == w.rows, q.cols == w.columns else {
                    throw ParityError.mismatch(file: w.fileName, reason: "unpacks to [\(q.rows), \(q.cols)]; the layer is [\(w.rows), \(w.columns)]")
                }
                var y = try MLXQuantization.quantizedMatmul(x: x.data, rows: rows, weight: q, xType: xType)
                // quantized_matmul's result (promoted with the scales' dtype), then `+ bias` in the promoted dtype.
                let out = MLXFloatType.promote(MLXFloatType.promote(xType, MLXFloatType(scales.dtype) ?? .f32), weightType)
                for i in 0..<y.count { y[i] = out.round(y[i] + bias[i % w.rows]) }
                return Tensor(shape: Array(x.shape.dropLast()) + [w.rows], data: y)
            } catch {
                throw LayerExecutionError(layer: w.fileName, reason: "quantized_matmul (\(mode), \(bits) bits, group \(groupSize)): \(error)")
            }
        case .ggml:
            throw LayerExecutionError(layer: w.fileName, reason: "is a GGUF tensor; mlx-embeddings reads safetensors")
        }
    }

    public func attentionProbs(q: Tensor, k: Tensor, padding: [Float], heads: Int) -> Tensor {
        let scoreType = MLXFloatType.promote(type(of: q), type(of: k))
        let qh = TransformerTensors.splitHeads(q, heads: heads), kh = TransformerTensors.splitHeads(k, heads: heads)
        let (b, h, t, d) = (qh.shape[0], qh.shape[1], qh.shape[2], qh.shape[3])
        let s = kh.shape[2]
        let divisor = scoreType.round(Float(Double(d).squareRoot()))
        var out = [Float](repeating: 0, count: b * h * t * s)
        var scores = [Float](repeating: 0, count: t * s)
        for bi in 0..<b {
            for hi in 0..<h {
                TransformerTensors.headScores(q: qh.data, k: kh.data, batch: bi, head: hi, heads: h, kvHeads: h, queries: t, keys: s,
                                              headDimension: d, into: &scores)
                for ti in 0..<t {
                    var row = [Float](repeating: 0, count: s)
                    for si in 0..<s {
                        let scaled = scoreType.round(scoreType.round(scores[ti * s + si]) / divisor)
                        row[si] = scaled + (1 - padding[bi * s + si]) * -10000  // float32 mask: the sum is float32
                    }
                    let p = MLXLlamaOps.softmax(row)
                    for si in 0..<s { out[((bi * h + hi) * t + ti) * s + si] = p[si] }
                }
            }
        }
        return Tensor(shape: [b, h, t, s], data: out)
    }

    public func attentionOutput(probs: Tensor, v: Tensor, heads: Int) -> Tensor {
        // float32 probabilities promote the product to float32.
        PyTorchLlamaOps.probsTimesValues(probs: probs, values: TransformerTensors.splitHeads(v, heads: heads))
    }

    public func gelu(_ x: Tensor, activation: BertActivation) -> Tensor {
        // nn.GELU() is always the erf form in mlx-embeddings' BERT (the activation argument is the file's config, which it ignores).
        let t = type(of: x)
        let root2 = t.round(Float(2.0.squareRoot()))
        return Tensor(shape: x.shape, data: x.data.map { v in
            t.round(t.round(v * t.round(1 + t.round(erff(t.round(v / root2))))) / 2)
        })
    }

    public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        round(TransformerTensors.add(a, b), to: MLXFloatType.promote(type(of: a), type(of: b)))
    }

    public func pool(_ x: Tensor, padding: [Float], pooling: BertPooling) -> Tensor {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        var out = [Float](repeating: 0, count: b * c)
        for bi in 0..<b {
            var count: Float = 0
            for ti in 0..<t { count += padding[bi * t + ti] }
            let denominator = max(count, 1e-9)
            for ci in 0..<c {
                var sum: Float = 0
                for ti in 0..<t { sum += x.data[(bi * t + ti) * c + ci] * padding[bi * t + ti] }
                out[bi * c + ci] = sum / denominator
            }
        }
        return Tensor(shape: [b, c], data: out)
    }

    public func l2Normalize(_ x: Tensor) -> Tensor {
        let c = x.shape[x.rank - 1]
        var out = x.data
        for row in stride(from: 0, to: x.count, by: c) {
            var squares: Float = 0
            for i in 0..<c { squares += x.data[row + i] * x.data[row + i] }
            let norm = max(squares.squareRoot(), 1e-9)
            for i in 0..<c { out[row + i] = x.data[row + i] / norm }
        }
        return Tensor(shape: x.shape, data: out)
    }
}
