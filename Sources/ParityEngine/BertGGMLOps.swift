#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ParityCore
import ParityFormats

/// BERT as llama.cpp's `bert` graph (src/models/bert.cpp) computes it on ggml's CPU backend for embeddings:
/// - input: `ggml_get_rows(token_embd)` (the row dequantized from the stored type) + **row 0** of `token_types`
///   (llama.cpp hard-codes token type 0, "Sentence A", whatever the ids) + `ggml_get_rows(position_embd, pos)`,
///   each `ggml_add` in float;
/// - `build_norm(LLM_NORM)`: `ggml_norm` — mean = float(Σx in double)/n, y = x − mean, variance = Σy² / n,
///   scale = 1/sqrtf(variance + eps) with eps the f32 key, y·scale — then `ggml_mul` by the weight and `ggml_add` of
///   the bias, each rounded to float;
/// - every projection `ggml_mul_mat(W, x)` with the activation converted to the weight type's `vec_dot_type` (F16 /
///   BF16 rounding, Q8_0 / Q8_1 / Q8_K blocks for quantized weights), then `ggml_add` of the bias;
/// - attention without a KV cache (`build_attn_inp_no_cache`), non-causal unless the file says otherwise: KQ =
///   `ggml_mul_mat(k, q)` in float32, `ggml_soft_max_ext(kq, mask, 1/sqrtf(d))` with the mask −∞ for keys of other
///   sequences (padding here) — x·scale + mask, max, expf, the sum in double, times float(1/sum) — and KQV =
///   `ggml_mul_mat(v, kq)`. With flash attention (llama.cpp's "auto", on for the CPU backend, as llama-embedding runs
///   it), K and V are cast to F16 (`ggml_cast`) and, for a batch of 64 or more tokens, ggml's tiled kernel keeps Q in
///   float32 and accumulates in float32 — modelled as K and V rounded to F16;
/// - `ggml_gelu`: the **tanh** form through ggml's F16 table — the input rounded to F16, the table holding
///   f16(0.5·x·(1 + tanhf(√(2/π)·x·(1 + 0.044715·x²)))), 0 below −10 and x above 10 — where PyTorch's "gelu" is erf;
/// - MEAN pooling: `ggml_mul_mat(inpᵀ, inp_mean)` with inp_mean = 1/n on the sequence's tokens: Σ x·(1/n) in float;
/// - normalisation as llama-embedding's `common_embd_normalize(…, 2)`: Σ x·x (float products) in double, sqrt,
///   float(1/norm), x·norm.
public struct BertGGMLOps: BertOps {
    /// llama.cpp's flash attention (off: `soft_max_ext` and two `mul_mat`s in float32).
    public let flashAttention: Bool
    /// `bert.attention.causal` as the file says it (llama.cpp's default when absent is causal).
    public let causal: Bool

    public init(flashAttention: Bool = false, causal: Bool = false) {
        self.flashAttention = flashAttention
        self.causal = causal
        Kernels.pinBLASThreads()
    }

    /// The ops for a GGUF file. Never causal, whatever `bert.attention.causal` says: llama.cpp reads the key into its
    /// hparams, but a `bert` model has no KV memory, so `llama_decode` runs `llama_context::encode`, which sets
    /// `cparams.causal_attn = false` for the encoder graph (measured: llama-embedding gives bit-identical embeddings
    /// for all-MiniLM-L6-v2's q8_0 file with the key false and flipped to true).
    public init(source: GGUFBertWeights, flashAttention: Bool = false) {
        self.init(flashAttention: flashAttention, causal: false)
    }

    public var semantics: String {
        "ggml CPU backend, llama.cpp's bert graph (flash attention \(flashAttention ? "on: K/V cast to F16" : "off")\(causal ? ", causal attention" : ""); "
            + "mul_mat converts activations to the weight's vec_dot_type; ggml_gelu tanh form via its F16 table; token type 0)"
    }

    public func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor {
        // llama.cpp adds token_types' row 0 to every token ("token types are hardcoded to zero").
        let rows = table.fileName == "token_types.weight" ? [Int32](repeating: 0, count: ids.count) : ids
        try table.checkIds(rows, node: "\(table.fileName) (get_rows)")
        switch table.storage {
        case let .dense(values, _):
            return TransformerTensors.gatherRows(values, width: table.columns, ids: rows, shape: shape)
        case let .ggml(file, tensor):
            do { return try BertGGMLOps.getRows(file: file, tensor: tensor, width: table.columns, ids: rows, shape: shape) } catch {
                throw LayerExecutionError(layer: table.fileName, reason: "get_rows cannot dequantize: \(error)")
            }
        case .mlxQuantized:
            throw LayerExecutionError(layer: table.fileName, reason: "is an MLX quantized tensor; ggml reads ggml types")
        }
    }

    /// `ggml_get_rows` on a file's tensor: each requested row dequantized from its own bytes in the map (a row is
    /// whole blocks, so it decodes to exactly the values of the whole table's decoding), nothing else read.
    static func getRows(file: GGUFFile, tensor: GGUFTensorInfo, width: Int, ids: [Int32], shape: [Int]) throws -> Tensor {
        guard tensor.type.isSupported else {
            throw ParityError.unsupported(file: file.path, reason: "tensor '\(tensor.name)' has ggml type \(tensor.type.name), which Parity cannot decode")
        }
        let type = tensor.type
        guard width % type.blockSize == 0 else {
            throw ParityError.malformed(file: file.path, at: "tensor '\(tensor.name)'", reason: "rows of \(width) are not whole \(type.name) blocks")
        }
        let rowBytes = width / type.blockSize * type.typeSize
        let out = try file.withData(tensor) { bytes in
            [Float](unsafeUninitializedCapacity: ids.count * width) { buffer, initialized in
                for (i, id) in ids.enumerated() {
                    let start = Int(id) * rowBytes
                    GGMLQuants.dequantize(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + rowBytes)]), type: type, count: width,
                                          into: UnsafeMutableBufferPointer(rebasing: buffer[(i * width)..<((i + 1) * width)]))
                }
                initialized = ids.count * width
            }
        }
        return Tensor(shape: shape + [width], data: out)
    }

    public func layerNorm(_ x: Tensor, weight: [Float], bias: [Float], epsilon: Double) -> Tensor {
        BertGGMLOps.norm(x, weight: weight, bias: bias, epsilon: Float(epsilon))
    }

    /// `ggml_norm` + `ggml_mul` + `ggml_add`.
    static func norm(_ x: Tensor, weight: [Float], bias: [Float], epsilon: Float) -> Tensor {
        let width = x.shape[x.rank - 1]
        precondition(weight.count == width && bias.count == width, "norm of rows of \(width) with \(weight.count) weights, \(bias.count) biases")
        var out = x.data
        x.data.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                bias.withUnsafeBufferPointer { bp in
                    out.withUnsafeMutableBufferPointer { op in
                        for row in stride(from: 0, to: xp.count, by: width) {
                            var sum = 0.0
                            for c in 0..<width { sum += Double(xp[row + c]) }
                            let mean = Float(sum) / Float(width)
                            var squares = 0.0
                            for c in 0..<width {
                                let v = xp[row + c] - mean
                                op[row + c] = v
                                squares += Double(v * v)
                            }
                            let variance = Float(squares / Double(width))
                            let scale = 1 / sqrtf(variance + epsilon)
                            for c in 0..<width { op[row + c] = (op[row + c] * scale) * wp[c] + bp[c] }
                        }
                    }
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }

    public func linear(_ x: Tensor, _ w: StoredMatrix, bias: [Float], role: BertTensorRole) throws(LayerExecutionError) -> Tensor {
        guard x.shape.last == w.columns, bias.count == w.rows else {
            throw LayerExecutionError(layer: w.fileName, reason: "mul_mat: input \(x.shape) and bias of \(bias.count) do not fit ne [\(w.columns), \(w.rows)]")
        }
        let rows = x.count / w.columns
        var y: Tensor
        switch w.storage {
        case let .dense(values, dtype):
            // Activations rounded to the weight's vec_dot_type.
            let rounded = GGMLNumerics.round(x, to: dtype == .f16 ? .f16 : dtype == .bf16 ? .bf16 : .f32)
            y = TransformerTensors.linearF32(rounded, weight: values, outFeatures: w.rows)
        case let .ggml(file, tensor):
            y = try GGMLNumerics.mulMat(file: file, weight: tensor, x: x.reshaped([rows, w.columns]), layer: w.fileName)
            y = y.reshaped(Array(x.shape.dropLast()) + [w.rows])
        case .mlxQuantized:
            throw LayerExecutionError(layer: w.fileName, reason: "is an MLX quantized tensor; ggml's mul_mat reads ggml types")
        }
        BertKernels.addBias(&y, bias)
        return y
    }

    public func attentionProbs(q: Tensor, k: Tensor, padding: [Float], heads: Int) -> Tensor {
        let kc = flashAttention ? GGMLNumerics.round(k, to: .f16) : k
        let (b, h, t, d) = (q.shape[0], heads, q.shape[1], q.shape[2] / heads)
        let s = kc.shape[1]
        let scale = 1 / sqrtf(Float(d))
        var out = [Float](repeating: 0, count: b * h * t * s)
        out.withUnsafeMutableBufferPointer { op in
            padding.withUnsafeBufferPointer { pad in
                for bi in 0..<b {
                    for hi in 0..<h {
                        // KQ straight into the output rows, then each row in place: x·scale + mask, then ggml_soft_max.
                        let head = UnsafeMutableBufferPointer(rebasing: op[((bi * h + hi) * t * s)..<((bi * h + hi + 1) * t * s)])
                        BertKernels.headScores(q: q, k: kc, heads: h, batch: bi, head: hi, into: head)
                        for ti in 0..<t {
                            let row = UnsafeMutableBufferPointer(rebasing: head[(ti * s)..<((ti + 1) * s)])
                            for si in 0..<s {
                                let hidden = pad[bi * s + si] == 0 || (causal && si > ti)
                                row[si] = row[si] * scale + (hidden ? -Float.infinity : 0)
                            }
                            BertKernels.ggmlSoftMaxInPlace(row)
                        }
                    }
                }
            }
        }
        return Tensor(shape: [b, h, t, s], data: out)
    }

    public func attentionOutput(probs: Tensor, v: Tensor, heads: Int) -> Tensor {
        BertKernels.probsTimesValues(probs: probs, values: flashAttention ? GGMLNumerics.round(v, to: .f16) : v)
    }

    /// ggml's F16 GELU table, built once as ggml_cpu_init builds it: for every F16 bit pattern, f16(gelu_tanh(x)).
    static let geluTable: [Float] = (0..<65536).map { bits -> Float in
        let x = Float(Float16(bitPattern: UInt16(bits)))
        return Float(Float16(ggmlGeluTanh(x)))
    }

    /// `ggml_gelu_f32`: 0.5·x·(1 + tanhf(√(2/π)·x·(1 + 0.044715·x²))), each step in float.
    static func ggmlGeluTanh(_ x: Float) -> Float {
        let sqrt2OverPi: Float = 0.79788456080286535587989211986876
        let a: Float = 0.044715
        return 0.5 * x * (1 + tanhf(sqrt2OverPi * x * (1 + a * x * x)))
    }

    public func gelu(_ x: Tensor, activation: BertActivation) -> Tensor {
        // llama.cpp's bert graph calls ggml_gelu (tanh) whatever the checkpoint's hidden_act; `activation` is the
        // file's (always tanh from this reader) and is not consulted, as llama.cpp does not consult one.
        var out = x.data
        BertGGMLOps.geluTable.withUnsafeBufferPointer { table in
            out.withUnsafeMutableBufferPointer { p in
                for i in p.indices {
                    let v = p[i]
                    p[i] = v <= -10 ? 0 : v >= 10 ? v : table[Int(FloatCodecs.floatToHalf(v))]
                }
            }
        }
        return Tensor(shape: x.shape, data: out)
    }

    public func add(_ a: Tensor, _ b: Tensor) -> Tensor { TransformerTensors.add(a, b) }

    public func pool(_ x: Tensor, padding: [Float], pooling: BertPooling) -> Tensor {
        let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        switch pooling {
        case .none: return x
        case .cls:  // ggml_get_rows at the sequence's first token
            var out = [Float](repeating: 0, count: b * c)
            for bi in 0..<b { for ci in 0..<c { out[bi * c + ci] = x.data[bi * t * c + ci] } }
            return Tensor(shape: [b, c], data: out)
        case .mean:  // ggml_mul_mat(inpᵀ, inp_mean): Σ x·(1/n) over the sequence's tokens, in float
            var out = [Float](repeating: 0, count: b * c)
            for bi in 0..<b {
                var n = 0
                for ti in 0..<t where padding[bi * t + ti] != 0 { n += 1 }
                let weight = 1 / Float(max(n, 1))
                for ci in 0..<c {
                    var sum: Float = 0
                    for ti in 0..<t where padding[bi * t + ti] != 0 { sum += x.data[(bi * t + ti) * c + ci] * weight }
                    out[bi * c + ci] = sum
                }
            }
            return Tensor(shape: [b, c], data: out)
        }
    }

    /// `common_embd_normalize(…, 2)`.
    public func l2Normalize(_ x: Tensor) -> Tensor {
        let c = x.shape[x.rank - 1]
        var out = x.data
        for row in stride(from: 0, to: x.count, by: c) {
            var sum = 0.0
            for i in 0..<c { sum += Double(x.data[row + i] * x.data[row + i]) }
            sum = sum.squareRoot()
            let norm: Float = sum > 0 ? Float(1 / sum) : 0
            for i in 0..<c { out[row + i] = x.data[row + i] * norm }
        }
        return Tensor(shape: x.shape, data: out)
    }
}
