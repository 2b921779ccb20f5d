import ParityCore
import ParityFormats

/// Called with each node's value, named by its golden dataset path (`/activations/model.layers.0.self_attn.q_proj`,
/// `/attention/model.layers.0.self_attn/probs`, `/intermediates/model.layers.0.mlp.down_proj.input`), in the
/// reference layout.
public typealias LlamaNodeHook = (_ path: String, _ value: Tensor) -> Void

/// A Llama forward pass over any `LlamaWeightSource`, computed by one runtime's `LlamaOps`. It produces every
/// node the goldens record (format_version 2, `causal-lm`) in topological order, and runs any one node alone on
/// given inputs (`node(_:inputs:)`), which is what isolation feeds from the goldens.
public struct LlamaForward {
    public let source: any LlamaWeightSource
    public let ops: any LlamaOps
    public var hyperparameters: LlamaHyperparameters { source.hyperparameters }

    public init(source: any LlamaWeightSource, ops: any LlamaOps) {
        self.source = source
        self.ops = ops
    }

    public var semantics: String { ops.semantics + " on " + source.path }

    // MARK: Node names (the golden's dataset paths)

    public static func activation(_ module: String) -> String { "/activations/" + module }
    public static func attention(layer: Int, _ what: String) -> String { "/attention/model.layers.\(layer).self_attn/" + what }
    public static func intermediate(_ name: String) -> String { "/intermediates/" + name }
    static func block(_ layer: Int, _ module: String) -> String { activation("model.layers.\(layer).\(module)") }

    // MARK: Parameters

    func matrix(_ role: LlamaTensorRole, layer: Int = 0, node: String) throws(LayerExecutionError) -> StoredMatrix {
        do { return try source.matrix(role, layer: layer) } catch {
            throw LayerExecutionError(layer: node, reason: error.description)
        }
    }

    func vector(_ role: LlamaTensorRole, layer: Int = 0, node: String) throws(LayerExecutionError) -> [Float] {
        let v: [Float]
        do { v = try source.vector(role, layer: layer) } catch {
            throw LayerExecutionError(layer: node, reason: error.description)
        }
        guard v.count == hyperparameters.hiddenSize else {
            throw LayerExecutionError(layer: node, reason: "\(role.referenceName(layer: layer)) has \(v.count) values; the model's width is \(hyperparameters.hiddenSize)")
        }
        return v
    }

    // MARK: The whole model

    /// Runs the model on token ids [B, T] (positions 0..T-1 and no padding unless given) and returns the logits
    /// [B, T, vocab], calling `hook` with every node the goldens record plus the aliases they store twice
    /// (`self_attn` = `o_proj`, `mlp` = `down_proj`, `model` = `model.norm`).
    public func forward(ids: [Int32], shape: [Int], positions: [Int32]? = nil, attentionMask: [Int32]? = nil,
                        hook: LlamaNodeHook = { _, _ in }) throws(LayerExecutionError) -> Tensor {
        guard shape.count == 2, shape[0] * shape[1] == ids.count else {
            throw LayerExecutionError(layer: "/inputs/input_ids", reason: "ids \(shape) are not [batch, tokens]")
        }
        let (b, t) = (shape[0], shape[1])
        let hp = hyperparameters
        let positions = positions ?? (0..<b).flatMap { _ in (0..<t).map { Int32($0) } }
        let attentionMask = attentionMask ?? [Int32](repeating: 1, count: b * t)

        var h = try ops.embedding(ids: ids, shape: shape, table: matrix(.tokenEmbedding, node: LlamaForward.activation("model.embed_tokens")))
        hook(LlamaForward.activation("model.embed_tokens"), h)
        let cos = ops.rotary(positions: positions, shape: shape, headDimension: hp.headDimension, theta: hp.ropeTheta, sine: false)
        let sin = ops.rotary(positions: positions, shape: shape, headDimension: hp.headDimension, theta: hp.ropeTheta, sine: true)
        hook(LlamaForward.activation("model.rotary_emb"), cos)
        hook(LlamaForward.activation("model.rotary_emb:1"), sin)
        let mask = TransformerTensors.causalMask(attentionMask: attentionMask, batch: b, tokens: t)
        hook(LlamaForward.intermediate("model.layers.0.attention_mask"), mask)

        for layer in 0..<hp.layerCount {
            h = try decoderLayer(layer, h, cos: cos, sin: sin, mask: mask, positions: positions, hook: hook)
        }
        let normed = ops.rmsNorm(h, weight: try vector(.outputNorm, node: LlamaForward.activation("model.norm")), epsilon: hp.rmsNormEpsilon)
        hook(LlamaForward.activation("model.norm"), normed)
        hook(LlamaForward.activation("model"), normed)
        let outputRole: LlamaTensorRole = hp.tiedEmbeddings ? .tokenEmbedding : .output
        let logits = try ops.linear(normed, matrix(outputRole, node: LlamaForward.activation("lm_head")), role: outputRole)
        hook(LlamaForward.activation("lm_head"), logits)
        return logits
    }

    /// One `LlamaDecoderLayer`: x + attn(norm(x)), then h + mlp(norm(h)).
    public func decoderLayer(_ layer: Int, _ x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, positions: [Int32],
                             hook: LlamaNodeHook = { _, _ in }) throws(LayerExecutionError) -> Tensor {
        let hp = hyperparameters
        let b = LlamaForward.block
        let normed = ops.rmsNorm(x, weight: try vector(.attentionNorm, layer: layer, node: b(layer, "input_layernorm")), epsilon: hp.rmsNormEpsilon)
        hook(b(layer, "input_layernorm"), normed)
        let o = try attention(layer, normed, cos: cos, sin: sin, mask: mask, positions: positions, hook: hook)
        hook(b(layer, "self_attn"), o)
        let residual = ops.add(x, o)
        hook(LlamaForward.intermediate("model.layers.\(layer).post_attention_layernorm.hidden_states"), residual)
        let normed2 = ops.rmsNorm(residual, weight: try vector(.feedForwardNorm, layer: layer, node: b(layer, "post_attention_layernorm")),
                                  epsilon: hp.rmsNormEpsilon)
        hook(b(layer, "post_attention_layernorm"), normed2)
        let gate = try ops.linear(normed2, matrix(.gate, layer: layer, node: b(layer, "mlp.gate_proj")), role: .gate)
        hook(b(layer, "mlp.gate_proj"), gate)
        let up = try ops.linear(normed2, matrix(.up, layer: layer, node: b(layer, "mlp.up_proj")), role: .up)
        hook(b(layer, "mlp.up_proj"), up)
        let act = ops.silu(gate)
        hook(b(layer, "mlp.act_fn"), act)
        let product = ops.mul(act, up)
        hook(LlamaForward.intermediate("model.layers.\(layer).mlp.down_proj.input"), product)
        let down = try ops.linear(product, matrix(.down, layer: layer, node: b(layer, "mlp.down_proj")), role: .down)
        hook(b(layer, "mlp.down_proj"), down)
        hook(b(layer, "mlp"), down)
        let out = ops.add(residual, down)
        hook(LlamaForward.activation("model.layers.\(layer)"), out)
        return out
    }

    /// `LlamaAttention` on the normed hidden states: projections, RoPE, probabilities, `o_proj`.
    public func attention(_ layer: Int, _ normed: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, positions: [Int32],
                          hook: LlamaNodeHook = { _, _ in }) throws(LayerExecutionError) -> Tensor {
        let hp = hyperparameters
        let b = LlamaForward.block
        let q = try ops.linear(normed, matrix(.query, layer: layer, node: b(layer, "self_attn.q_proj")), role: .query)
        hook(b(layer, "self_attn.q_proj"), q)
        let k = try ops.linear(normed, matrix(.key, layer: layer, node: b(layer, "self_attn.k_proj")), role: .key)
        hook(b(layer, "self_attn.k_proj"), k)
        let v = try ops.linear(normed, matrix(.value, layer: layer, node: b(layer, "self_attn.v_proj")), role: .value)
        hook(b(layer, "self_attn.v_proj"), v)
        try checkWidth(q, hp.headCount * hp.headDimension, node: b(layer, "self_attn.q_proj"))
        try checkWidth(k, hp.keyValueHeadCount * hp.headDimension, node: b(layer, "self_attn.k_proj"))
        try checkWidth(v, hp.keyValueHeadCount * hp.headDimension, node: b(layer, "self_attn.v_proj"))
        let qRope = ops.applyRope(q, cos: cos, sin: sin, heads: hp.headCount, positions: positions)
        hook(LlamaForward.attention(layer: layer, "q_rope"), qRope)
        let kRope = ops.applyRope(k, cos: cos, sin: sin, heads: hp.keyValueHeadCount, positions: positions)
        hook(LlamaForward.attention(layer: layer, "k_rope"), kRope)
        let probs = ops.attentionProbs(q: qRope, k: kRope, mask: mask)
        hook(LlamaForward.attention(layer: layer, "probs"), probs)
        let attended = ops.attentionOutput(probs: probs, v: v, keyValueHeads: hp.keyValueHeadCount)
        hook(LlamaForward.intermediate("model.layers.\(layer).self_attn.o_proj.input"), attended)
        let o = try ops.linear(attended, matrix(.attentionOutput, layer: layer, node: b(layer, "self_attn.o_proj")), role: .attentionOutput)
        hook(b(layer, "self_attn.o_proj"), o)
        return o
    }

    func checkWidth(_ x: Tensor, _ width: Int, node: String) throws(LayerExecutionError) {
        guard x.shape.last == width else {
            throw LayerExecutionError(layer: node, reason: "output \(x.shape) should end in \(width) (heads × head dimension)")
        }
    }
}
