import ParityCore
import ParityFormats

/// The computations of a Llama forward pass as one runtime performs them, one function per node of the
/// reference graph. Every op takes and returns tensors in the reference (PyTorch) layout — [B, T, C] activations,
/// [B, H, T, D] heads, [B, H, T, S] attention, Q/K features in Hugging Face order — so each op can be fed its
/// golden inputs alone (`layer-diff --isolated`) and its output compared with its golden. A runtime that computes
/// in another order (ggml on convert_hf_to_gguf's permuted Q/K rows) moves values in and out of its order inside
/// the op; moving values is exact, so the chained ops compute exactly what the runtime's own graph computes.
public protocol LlamaOps: Sendable {
    /// What is emulated, for reports.
    var semantics: String { get }
    /// `nn.Embedding` / ggml `get_rows` / MLX `Embedding` or `QuantizedEmbedding`: ids [B, T] → [B, T, C].
    func embedding(ids: [Int32], shape: [Int], table: StoredMatrix) throws(LayerExecutionError) -> Tensor
    /// The rotary cos (or sin) table the runtime applies, in HF's layout [B, T, D]: the angle of pair i at
    /// columns i and i + D/2 (`cat((freqs, freqs))`), whatever pairs the runtime rotates.
    func rotary(positions: [Int32], shape: [Int], headDimension: Int, theta: Double, sine: Bool) -> Tensor
    /// RMSNorm over the last axis, times the weight.
    func rmsNorm(_ x: Tensor, weight: [Float], epsilon: Double) -> Tensor
    /// A projection by a stored matrix on the last axis: [..., columns] → [..., rows], rows of Q/K in HF order.
    func linear(_ x: Tensor, _ w: StoredMatrix, role: LlamaTensorRole) throws(LayerExecutionError) -> Tensor
    /// RoPE of one projection [B, T, heads·D] (HF order) with the cos/sin of `rotary` → [B, heads, T, D] (HF order).
    func applyRope(_ x: Tensor, cos: Tensor, sin: Tensor, heads: Int) -> Tensor
    /// Attention probabilities softmax(q·kᵀ·scale + mask) with GQA: q [B, H, T, D], k [B, Hkv, S, D],
    /// additive mask [B, 1, T, S] (0 or float32's lowest) → [B, H, T, S].
    func attentionProbs(q: Tensor, k: Tensor, mask: Tensor) -> Tensor
    /// probs · v with GQA, heads concatenated: probs [B, H, T, S], v_proj [B, S, Hkv·D] → [B, T, H·D].
    func attentionOutput(probs: Tensor, v: Tensor, keyValueHeads: Int) -> Tensor
    /// SiLU.
    func silu(_ x: Tensor) -> Tensor
    /// Elementwise a + b (the residual) and a · b (SwiGLU's product); float32 unless the runtime computes in
    /// another dtype.
    func add(_ a: Tensor, _ b: Tensor) -> Tensor
    func mul(_ a: Tensor, _ b: Tensor) -> Tensor
    /// The same runtime's ops for another source of the same file (other conventions: its RoPE style), keeping the
    /// runtime's own settings (ggml's KV cache and flash attention, MLX's compute dtype).
    func adapted(to source: any LlamaWeightSource) -> any LlamaOps
    /// Where this runtime reads each of its `RuntimeConventions`, in its file format's words (diagnosis messages).
    var conventionOrigins: RuntimeConventionOrigins { get }
}

extension LlamaOps {
    public func add(_ a: Tensor, _ b: Tensor) -> Tensor { TransformerTensors.add(a, b) }
    public func mul(_ a: Tensor, _ b: Tensor) -> Tensor { TransformerTensors.mul(a, b) }
    /// Ops that read nothing from the source (PyTorch's: transformers always rotates halves).
    public func adapted(to source: any LlamaWeightSource) -> any LlamaOps { self }
}

extension StoredMatrix {
    /// Checks ids against the table's rows (a runtime reads out of bounds or asserts; Parity reports it).
    func checkIds(_ ids: [Int32], node: String) throws(LayerExecutionError) {
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= rows }) {
            throw LayerExecutionError(layer: node, reason: "token id \(bad) is outside \(fileName)'s \(rows) rows")
        }
    }

    /// The values of a dense matrix, or nil when it is stored quantized.
    var denseValues: (values: [Float], dtype: DType)? {
        if case let .dense(values, dtype) = storage { return (values, dtype) }
        return nil
    }
}
