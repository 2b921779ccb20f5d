import ParityCore
import ParityFormats

/// A node input: float activations or int32 values (token ids, positions, the 2-D attention mask), with the shape.
public enum LlamaValue: Sendable {
    case floats(Tensor)
    case integers([Int32], shape: [Int])
}

/// What a golden path names, in Llama terms: which op, which layer, which parameter.
public enum LlamaNodeKind: Equatable, Sendable {
    case embedding
    case rotary(sine: Bool)
    case causalMask
    case norm(LlamaTensorRole, layer: Int)
    case projection(LlamaTensorRole, layer: Int)
    case rope(query: Bool, layer: Int)
    case probs(layer: Int)
    case attentionOutput(layer: Int)
    case residual(layer: Int)
    case silu(layer: Int)
    case swigluProduct(layer: Int)
    case attentionBlock(layer: Int)
    case mlpBlock(layer: Int)
    case decoderLayer(layer: Int)
    case model

    /// Parses a golden dataset path of a Llama (`/activations/model.layers.0.self_attn.q_proj`, …).
    public init?(path: String) {
        func layerAndRest(_ s: Substring) -> (Int, String)? {
            guard s.hasPrefix("model.layers.") else { return nil }
            let rest = s.dropFirst("model.layers.".count)
            let digits = rest.prefix { $0.isNumber }
            guard let n = Int(digits) else { return nil }
            let tail = rest.dropFirst(digits.count)
            return (n, tail.hasPrefix(".") ? String(tail.dropFirst()) : String(tail))
        }
        if path.hasPrefix("/attention/") {
            let body = path.dropFirst("/attention/".count)
            guard let (n, rest) = layerAndRest(body) else { return nil }
            switch rest {
            case "self_attn/q_rope": self = .rope(query: true, layer: n)
            case "self_attn/k_rope": self = .rope(query: false, layer: n)
            case "self_attn/probs": self = .probs(layer: n)
            default: return nil
            }
            return
        }
        if path.hasPrefix("/intermediates/") {
            let body = path.dropFirst("/intermediates/".count)
            guard let (n, rest) = layerAndRest(body) else { return nil }
            switch rest {
            case "attention_mask": self = .causalMask
            case "self_attn.o_proj.input": self = .attentionOutput(layer: n)
            case "post_attention_layernorm.hidden_states": self = .residual(layer: n)
            case "mlp.down_proj.input": self = .swigluProduct(layer: n)
            default: return nil
            }
            return
        }
        guard path.hasPrefix("/activations/") else { return nil }
        let module = path.dropFirst("/activations/".count)
        switch module {
        case "model.embed_tokens": self = .embedding; return
        case "model.rotary_emb": self = .rotary(sine: false); return
        case "model.rotary_emb:1": self = .rotary(sine: true); return
        case "model.norm": self = .norm(.outputNorm, layer: 0); return
        case "lm_head": self = .projection(.output, layer: 0); return
        case "model": self = .model; return
        default: break
        }
        guard let (n, rest) = layerAndRest(module) else { return nil }
        switch rest {
        case "": self = .decoderLayer(layer: n)
        case "input_layernorm": self = .norm(.attentionNorm, layer: n)
        case "post_attention_layernorm": self = .norm(.feedForwardNorm, layer: n)
        case "self_attn.q_proj": self = .projection(.query, layer: n)
        case "self_attn.k_proj": self = .projection(.key, layer: n)
        case "self_attn.v_proj": self = .projection(.value, layer: n)
        case "self_attn.o_proj": self = .projection(.attentionOutput, layer: n)
        case "mlp.gate_proj": self = .projection(.gate, layer: n)
        case "mlp.up_proj": self = .projection(.up, layer: n)
        case "mlp.down_proj": self = .projection(.down, layer: n)
        case "mlp.act_fn": self = .silu(layer: n)
        case "self_attn": self = .attentionBlock(layer: n)
        case "mlp": self = .mlpBlock(layer: n)
        default: return nil
        }
    }
}

extension LlamaForward {
    /// Runs one node alone on the given inputs, in the order the golden's `inputs` attribute lists them:
    /// `model.embed_tokens` (ids), `model.rotary_emb` (x, position_ids), norms and projections (x), q_rope/k_rope
    /// (projection, cos, sin), probs (q_rope, k_rope, 4-D mask), `o_proj.input` (probs, v_proj), the residual sum
    /// and the SwiGLU product (a, b), `act_fn` (gate), the causal mask (2-D attention mask), `self_attn` and a
    /// decoder layer (hidden states, 4-D mask, position_ids, cache_position, cos, sin), `mlp` (x), `model` (ids,
    /// attention mask, position_ids). Composite modules run their members with this engine's ops.
    public func node(_ path: String, inputs: [LlamaValue]) throws(LayerExecutionError) -> Tensor {
        guard let kind = LlamaNodeKind(path: path) else {
            throw LayerExecutionError(layer: path, reason: "not a node of Parity's Llama graph")
        }
        let hp = hyperparameters
        func floats(_ i: Int) throws(LayerExecutionError) -> Tensor {
            guard i < inputs.count, case let .floats(t) = inputs[i] else {
                throw LayerExecutionError(layer: path, reason: "input \(i) should be a float tensor")
            }
            return t
        }
        func integers(_ i: Int) throws(LayerExecutionError) -> ([Int32], [Int]) {
            guard i < inputs.count, case let .integers(v, shape) = inputs[i] else {
                throw LayerExecutionError(layer: path, reason: "input \(i) should be int32 values")
            }
            return (v, shape)
        }
        switch kind {
        case .embedding:
            let (ids, shape) = try integers(0)
            return try ops.embedding(ids: ids, shape: shape, table: matrix(.tokenEmbedding, node: path))
        case let .rotary(sine):
            let (positions, shape) = try integers(1)
            return ops.rotary(positions: positions, shape: shape, headDimension: hp.headDimension, theta: hp.ropeTheta, sine: sine)
        case .causalMask:
            let (mask, shape) = try integers(0)
            return TransformerTensors.causalMask(attentionMask: mask, batch: shape[0], tokens: shape[1])
        case let .norm(role, layer):
            return ops.rmsNorm(try floats(0), weight: try vector(role, layer: layer, node: path), epsilon: hp.rmsNormEpsilon)
        case let .projection(role, layer):
            let role = role == .output && hp.tiedEmbeddings ? .tokenEmbedding : role
            return try ops.linear(try floats(0), matrix(role, layer: layer, node: path), role: role)
        case let .rope(query, _):
            return ops.applyRope(try floats(0), cos: try floats(1), sin: try floats(2), heads: query ? hp.headCount : hp.keyValueHeadCount,
                                 positions: try positionsFor(try floats(0)))
        case .probs:
            return ops.attentionProbs(q: try floats(0), k: try floats(1), mask: try floats(2))
        case .attentionOutput:
            return ops.attentionOutput(probs: try floats(0), v: try floats(1), keyValueHeads: hp.keyValueHeadCount)
        case .residual:
            return ops.add(try floats(0), try floats(1))
        case .swigluProduct:
            return ops.mul(try floats(0), try floats(1))
        case .silu:
            return ops.silu(try floats(0))
        case let .attentionBlock(layer):
            let x = try floats(0)
            let (positions, _) = try integers(2)
            return try attentionBlock(layer, x, cos: try floats(4), sin: try floats(5), mask: try floats(1), positions: positions)
        case let .mlpBlock(layer):
            return try mlpBlock(layer, try floats(0))
        case let .decoderLayer(layer):
            let (positions, _) = try integers(2)
            return try decoderLayer(layer, try floats(0), cos: try floats(4), sin: try floats(5), mask: try floats(1), positions: positions)
        case .model:
            let (ids, shape) = try integers(0)
            let (mask, _) = try integers(1)
            let (positions, _) = try integers(2)
            var normed: Tensor?
            _ = try forward(ids: ids, shape: shape, positions: positions, attentionMask: mask) { p, v in
                if p == LlamaForward.activation("model.norm") { normed = v }
            }
            guard let normed else { throw LayerExecutionError(layer: path, reason: "the forward pass produced no model.norm") }
            return normed
        }
    }

    /// Positions 0..T-1 per sequence for a [B, T, C] input (RoPE ops that take the angle from the cos/sin tables
    /// ignore them; ggml's rope reads positions, which the goldens record as 0..T-1).
    func positionsFor(_ x: Tensor) throws(LayerExecutionError) -> [Int32] {
        guard x.rank == 3 else { throw LayerExecutionError(layer: "rope", reason: "input \(x.shape) is not [B, T, C]") }
        return (0..<x.shape[0]).flatMap { _ in (0..<x.shape[1]).map { Int32($0) } }
    }

    /// `LlamaAttention` alone: projections, RoPE, probabilities, output projection.
    public func attentionBlock(_ layer: Int, _ normed: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, positions: [Int32]) throws(LayerExecutionError) -> Tensor {
        try attention(layer, normed, cos: cos, sin: sin, mask: mask, positions: positions)
    }

    /// `LlamaMLP` alone: down(silu(gate(x)) · up(x)).
    public func mlpBlock(_ layer: Int, _ x: Tensor) throws(LayerExecutionError) -> Tensor {
        let b = LlamaForward.block
        let gate = try ops.linear(x, matrix(.gate, layer: layer, node: b(layer, "mlp.gate_proj")), role: .gate)
        let up = try ops.linear(x, matrix(.up, layer: layer, node: b(layer, "mlp.up_proj")), role: .up)
        return try ops.linear(ops.mul(ops.silu(gate), up), matrix(.down, layer: layer, node: b(layer, "mlp.down_proj")), role: .down)
    }
}
