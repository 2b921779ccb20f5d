import ParityCore
import ParityFormats
import ParityModels

/// A graph engine for the Llama graph (`LlamaArchitecture.graph()`): each node is computed by one runtime's
/// `LlamaOps` on the parameters a `LlamaWeightSource` reads from the file as that runtime reads it. The node says
/// which op and which parameter (by PyTorch name); the numbers the runtime takes from its own file — ε, θ, head
/// counts — come from the source's hyperparameters, never from the reference's config, so a converter that wrote
/// a wrong value shows in the activations.
public struct LlamaGraphEngine: GraphEngine {
    public let source: any LlamaWeightSource
    public let ops: any LlamaOps
    /// Parameter name (`model.layers.0.self_attn.q_proj.weight`) → role and layer.
    let roles: [String: (role: LlamaTensorRole, layer: Int)]

    public init(source: any LlamaWeightSource, ops: any LlamaOps) {
        self.source = source
        self.ops = ops
        var roles: [String: (role: LlamaTensorRole, layer: Int)] = [:]
        for role in LlamaTensorRole.allCases {
            for layer in role.isPerLayer ? Array(0..<source.hyperparameters.layerCount) : [0] {
                roles[role.referenceName(layer: layer)] = (role, layer)
            }
        }
        self.roles = roles
    }

    /// transformers' float32 arithmetic on the source's weights.
    public static func pytorch(_ source: any LlamaWeightSource) -> LlamaGraphEngine {
        LlamaGraphEngine(source: source, ops: PyTorchLlamaOps())
    }

    /// llama.cpp's `llama` graph on ggml's CPU backend, with the given KV cache type (llama.cpp's default: F16) and
    /// flash attention on or off (llama-cpp-python's default: off; the C API's "auto": on for the CPU backend).
    public static func ggml(_ source: any LlamaWeightSource, kvCache: GGMLKVCacheType = .f16, flashAttention: Bool = false) -> LlamaGraphEngine {
        LlamaGraphEngine(source: source, ops: GGMLLlamaOps(source: source, kvCache: kvCache, flashAttention: flashAttention))
    }

    /// mlx-lm's Llama on MLX's CPU stream.
    public static func mlx(_ source: any LlamaWeightSource) -> LlamaGraphEngine {
        LlamaGraphEngine(source: source, ops: MLXLlamaOps(source: source))
    }

    public var semantics: String { ops.semantics }

    public func run(_ node: GraphNode, inputs: [GraphValue]) throws(LayerExecutionError) -> GraphValue {
        let hp = source.hyperparameters
        func floats(_ i: Int) throws(LayerExecutionError) -> Tensor {
            guard i < inputs.count, let t = inputs[i].floats else {
                throw LayerExecutionError(layer: node.name, reason: "input \(i) (\(i < node.inputArgs.count ? node.inputArgs[i] : "implicit")) should be float32")
            }
            return t
        }
        func integers(_ i: Int) throws(LayerExecutionError) -> IntegerTensor {
            guard i < inputs.count, let t = inputs[i].integers else {
                throw LayerExecutionError(layer: node.name, reason: "input \(i) (\(i < node.inputArgs.count ? node.inputArgs[i] : "implicit")) should be int32")
            }
            return t
        }
        func parameter() throws(LayerExecutionError) -> (role: LlamaTensorRole, layer: Int) {
            guard let name = node.parameters.first?.name else {
                throw LayerExecutionError(layer: node.name, reason: "names no parameter; a Llama \(node.op.label) needs its weight")
            }
            guard let found = roles[name] else {
                throw LayerExecutionError(layer: node.name, reason: "parameter \(name) has no counterpart in \(source.path) (a Llama of \(hp.layerCount) layers)")
            }
            return found
        }
        func matrix(_ role: LlamaTensorRole, _ layer: Int) throws(LayerExecutionError) -> StoredMatrix {
            do { return try source.matrix(role, layer: layer) } catch { throw LayerExecutionError(layer: node.name, reason: error.description) }
        }

        switch node.op {
        case .embedding:
            let ids = try integers(0)
            return .floats(try ops.embedding(ids: ids.data, shape: ids.shape, table: matrix(.tokenEmbedding, 0)))
        case let .rotaryEmbedding(component, _, _):
            let positions = try integers(1)
            return .floats(ops.rotary(positions: positions.data, shape: positions.shape, headDimension: hp.headDimension,
                                      theta: hp.ropeTheta, sine: component == .sin))
        case .causalMask:
            let mask = try integers(0)
            guard mask.rank == 2 else { throw LayerExecutionError(layer: node.name, reason: "attention_mask \(mask.shape) is not [B, T]") }
            return .floats(TransformerTensors.causalMask(attentionMask: mask.data, batch: mask.shape[0], tokens: mask.shape[1]))
        case .positions:
            let ids = try integers(0)
            let t = ids.shape.last ?? 0
            return .integers(IntegerTensor(shape: [t], data: (0..<t).map { Int32($0) }))
        case .rmsNorm:
            let (role, layer) = try parameter()
            let weight: [Float]
            do { weight = try source.vector(role, layer: layer) } catch { throw LayerExecutionError(layer: node.name, reason: error.description) }
            let x = try floats(0)
            guard weight.count == x.shape.last else {
                throw LayerExecutionError(layer: node.name, reason: "\(role.referenceName(layer: layer)) has \(weight.count) values; the input is \(x.shape)")
            }
            return .floats(ops.rmsNorm(x, weight: weight, epsilon: hp.rmsNormEpsilon))
        case .linear:
            var (role, layer) = try parameter()
            if role == .output && hp.tiedEmbeddings { role = .tokenEmbedding }
            return .floats(try ops.linear(try floats(0), matrix(role, layer), role: role))
        case let .applyRope(heads, _):
            let x = try floats(0)
            guard x.rank == 3, x.shape[2] == heads * hp.headDimension else {
                throw LayerExecutionError(layer: node.name, reason: "input \(x.shape) is not [B, T, \(heads) × \(hp.headDimension)]")
            }
            // Every runtime rotates by the angles of the cos/sin tables it is given (the rotary node's, or the goldens').
            let cos = try floats(1), sin = try floats(2)
            let table = [x.shape[0], x.shape[1], hp.headDimension]
            guard cos.shape == table, sin.shape == table else {
                throw LayerExecutionError(layer: node.name, reason: "cos \(cos.shape) / sin \(sin.shape) are not \(table) for input \(x.shape)")
            }
            return .floats(ops.applyRope(x, cos: cos, sin: sin, heads: heads))
        case .attentionProbs:
            let q = try floats(0), k = try floats(1), mask = try floats(2)
            guard q.rank == 4, k.rank == 4, q.shape[0] == k.shape[0], q.shape[3] == k.shape[3], k.shape[1] > 0, q.shape[1] % k.shape[1] == 0,
                  mask.shape == [q.shape[0], 1, q.shape[2], k.shape[2]] else {
                throw LayerExecutionError(layer: node.name, reason: "q \(q.shape), k \(k.shape), mask \(mask.shape) are not [B, H, T, D], [B, Hkv, S, D], [B, 1, T, S]")
            }
            return .floats(ops.attentionProbs(q: q, k: k, mask: mask))
        case let .attentionOutput(heads, keyValueHeads, headDimension):
            let probs = try floats(0), v = try floats(1)
            guard probs.rank == 4, probs.shape[1] == heads, heads % keyValueHeads == 0,
                  v.shape == [probs.shape[0], probs.shape[3], keyValueHeads * headDimension] else {
                throw LayerExecutionError(layer: node.name, reason: "probs \(probs.shape), v \(v.shape) are not [B, \(heads), T, S], [B, S, \(keyValueHeads) × \(headDimension)]")
            }
            return .floats(ops.attentionOutput(probs: probs, v: v, keyValueHeads: keyValueHeads))
        case .add:
            let a = try floats(0), b = try floats(1)
            guard a.shape == b.shape else { throw LayerExecutionError(layer: node.name, reason: "adds \(a.shape) and \(b.shape)") }
            return .floats(ops.add(a, b))
        case .mul:
            let a = try floats(0), b = try floats(1)
            guard a.shape == b.shape else { throw LayerExecutionError(layer: node.name, reason: "multiplies \(a.shape) and \(b.shape)") }
            return .floats(ops.mul(a, b))
        case .silu:
            return .floats(ops.silu(try floats(0)))
        case .layer, .module, .layerNorm, .gelu, .extendedAttentionMask, .sentencePooling, .l2Normalize:
            throw LayerExecutionError(layer: node.name, reason: "op \(node.op.label) is not computed by \(semantics)")
        }
    }
}
