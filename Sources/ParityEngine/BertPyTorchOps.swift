#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ParityCore
import ParityFormats

/// BERT as transformers (4.46, `BertModel`, eager attention) and sentence-transformers compute it in float32 on CPU,
/// one float32 rounding per torch op:
/// - `nn.LayerNorm` (ATen's CPU kernel): mean and variance of the row (accumulated wider here, within torch's own
///   reduction noise), `rstd = 1 / sqrt(var + eps)` with eps as float32, then `(x · rstd + (−mean · rstd)) · γ + β`;
/// - `nn.Linear`: `x @ Wᵀ + b` (a BLAS sgemm, then the bias);
/// - eager self-attention: `q @ kᵀ / sqrt(D)` (a float32 division), `+ extended mask` (float32's lowest value where the
///   key is padding, −0 elsewhere), `softmax(dim=-1)`, `probs @ v`;
/// - `GELUActivation` (`"gelu"`): `x · 0.5 · (1 + erf(x · √½))`; the tanh form for `"gelu_new"`;
/// - sentence-transformers `Pooling` (mean): `sum(x · mask) / clamp(sum(mask), 1e-9)`; `Normalize`: `x / max(‖x‖₂, 1e-12)`.
public struct BertPyTorchOps: BertOps {
    public init() { Kernels.pinBLASThreads() }

    public var semantics: String { "PyTorch (transformers BertModel, eager attention, float32; sentence-transformers pooling)" }

    public func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor {
        try table.checkIds(ids, node: table.fileName)
        guard let dense = table.denseValues else {
            throw LayerExecutionError(layer: table.fileName, reason: "is quantized; PyTorch's nn.Embedding holds a dense table")
        }
        return TransformerTensors.gatherRows(dense.values, width: table.columns, ids: ids, shape: shape)
    }

    public func layerNorm(_ x: Tensor, weight: [Float], bias: [Float], epsilon: Double) -> Tensor {
        let width = x.shape[x.rank - 1]
        let eps = Float(epsilon)
        precondition(weight.count == width && bias.count == width, "LayerNorm of rows of \(width) with \(weight.count) weights, \(bias.count) biases")
        var out = x.data
        x.data.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                bias.withUnsafeBufferPointer { bp in
                    out.withUnsafeMutableBufferPointer { op in
                        for row in stride(from: 0, to: xp.count, by: width) {
                            var sum = 0.0
                            for c in 0..<width { sum += Double(xp[row + c]) }
                            let mean = sum / Double(width)
                            var squares = 0.0
                            for c in 0..<width { let d = Double(xp[row + c]) - mean; squares += d * d }
                            let variance = Float(squares / Double(width))
                            let rstd = 1 / (variance + eps).squareRoot()
                            let shift = -Float(mean) * rstd
                            for c in 0..<width { op[row + c] = (xp[row + c] * rstd + shift) * wp[c] + bp[c] }
                        }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }

    public func linear(_ x: Tensor, _ w: StoredMatrix, bias: [Float], role: BertTensorRole) throws(LayerExecutionError) -> Tensor {
        guard let dense = w.denseValues else {
            throw LayerExecutionError(layer: w.fileName, reason: "is quantized; PyTorch's nn.Linear multiplies a dense float32 weight")
        }
        guard x.shape.last == w.columns, bias.count == w.rows else {
            throw LayerExecutionError(layer: w.fileName, reason: "input \(x.shape) and bias of \(bias.count) do not fit the weight's [\(w.rows), \(w.columns)]")
        }
        var y = TransformerTensors.linearF32(x, weight: dense.values, outFeatures: w.rows)
        BertKernels.addBias(&y, bias)
        return y
    }

    public func attentionProbs(q: Tensor, k: Tensor, padding: [Float], heads: Int) -> Tensor {
        let (b, h, t, d) = (q.shape[0], heads, q.shape[1], q.shape[2] / heads)
        let s = k.shape[1]
        let divisor = Float(Double(d).squareRoot())
        let lowest = -Float.greatestFiniteMagnitude
        var out = [Float](repeating: 0, count: b * h * t * s)
        out.withUnsafeMutableBufferPointer { op in
            padding.withUnsafeBufferPointer { pad in
                for bi in 0..<b {
                    for hi in 0..<h {
                        // q·kᵀ straight into the output rows, then each row in place: / √D, + mask, softmax.
                        let head = UnsafeMutableBufferPointer(rebasing: op[((bi * h + hi) * t * s)..<((bi * h + hi + 1) * t * s)])
                        BertKernels.headScores(q: q, k: k, heads: h, batch: bi, head: hi, into: head)
                        for ti in 0..<t {
                            let row = UnsafeMutableBufferPointer(rebasing: head[(ti * s)..<((ti + 1) * s)])
                            for si in 0..<s { row[si] = row[si] / divisor + (1 - pad[bi * s + si]) * lowest }
                            BertKernels.torchSoftmaxInPlace(row)
                        }
                    }
                }
            }
        }
        return Tensor(shape: [b, h, t, s], data: out)
    }

    public func attentionOutput(probs: Tensor, v: Tensor, heads: Int) -> Tensor {
        BertKernels.probsTimesValues(probs: probs, values: v)
    }

    public func gelu(_ x: Tensor, activation: BertActivation) -> Tensor {
        switch activation {
        case .geluErf:
            let rootHalf = Float(0.5.squareRoot())
            return Tensor(shape: x.shape, data: x.data.map { $0 * 0.5 * (1 + erff($0 * rootHalf)) })
        case .geluTanh:
            let c = Float((2 / Double.pi).squareRoot())
            return Tensor(shape: x.shape, data: x.data.map { 0.5 * $0 * (1 + tanhf(c * ($0 + 0.044715 * $0 * $0 * $0))) })
        }
    }

    public func add(_ a: Tensor, _ b: Tensor) -> Tensor { TransformerTensors.add(a, b) }

    public func pool(_ x: Tensor, padding: [Float], pooling: BertPooling) -> Tensor {
        BertPyTorchOps.pool(x, padding: padding, pooling: pooling)
    }

    /// sentence-transformers' Pooling on [B, T, C] token states: mean over real tokens, the first token, or none.
    public static func pool(_ x: Tensor, padding: [Float], pooling: BertPooling) -> Tensor {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        switch pooling {
        case .none: return x
        case .cls:
            var out = [Float](repeating: 0, count: b * c)
            for bi in 0..<b { for ci in 0..<c { out[bi * c + ci] = x.data[bi * t * c + ci] } }
            return Tensor(shape: [b, c], data: out)
        case .mean:
            var out = [Float](repeating: 0, count: b * c)
            for bi in 0..<b {
                var count = 0.0
                for ti in 0..<t { count += Double(padding[bi * t + ti]) }
                let denominator = max(Float(count), 1e-9)
                for ci in 0..<c {
                    var sum = 0.0
                    for ti in 0..<t { sum += Double(x.data[(bi * t + ti) * c + ci] * padding[bi * t + ti]) }
                    out[bi * c + ci] = Float(sum) / denominator
                }
            }
            return Tensor(shape: [b, c], data: out)
        }
    }

    public func l2Normalize(_ x: Tensor) -> Tensor { BertPyTorchOps.l2Normalize(x) }

    /// `torch.nn.functional.normalize(x, p=2, dim=-1)`: x / max(‖x‖₂, 1e-12), the norm rounded to float32.
    public static func l2Normalize(_ x: Tensor) -> Tensor {
        let c = x.shape[x.rank - 1]
        var out = x.data
        for row in stride(from: 0, to: x.count, by: c) {
            var squares = 0.0
            for i in 0..<c { squares += Double(x.data[row + i]) * Double(x.data[row + i]) }
            let norm = max(Float(squares.squareRoot()), 1e-12)
            for i in 0..<c { out[row + i] = x.data[row + i] / norm }
        }
        return Tensor(shape: x.shape, data: out)
    }
}
