import ParityCore
import ParityFormats
import ParityModels

/// A graph engine for the BERT graph (`BertArchitecture.graph()`): each node computed by one runtime's `BertOps` on
/// the parameters a `BertWeightSource` reads from the file as that runtime reads it. The node says which op and which
/// parameters (by PyTorch name); the numbers the runtime takes from its own file — ε, head count, activation, pooling —
/// come from the source's hyperparameters, never from the reference's config, so a converter that wrote a wrong
/// value shows in the activations.
public struct BertGraphEngine: GraphEngine {
    public let source: any BertWeightSource
    public let ops: any BertOps
    /// Parameter name (`encoder.layer.0.attention.self.query.weight`) → role and layer.
    let roles: [String: (role: BertTensorRole, layer: Int)]

    public init(source: any BertWeightSource, ops: any BertOps) {
        self.source = source
        self.ops = ops
        var roles: [String: (role: BertTensorRole, layer: Int)] = [:]
        for role in BertTensorRole.allCases {
            for layer in role.isPerLayer ? Array(0..<source.hyperparameters.layerCount) : [0] {
                roles[role.referenceName(layer: layer)] = (role, layer)
            }
        }
        self.roles = roles
    }

    /// transformers' float32 arithmetic (BertModel, eager attention) + sentence-transformers' pooling, on the source's weights.
    public static func pytorch(_ source: any BertWeightSource) -> BertGraphEngine {
        BertGraphEngine(source: source, ops: BertPyTorchOps())
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
        func parameter(_ i: Int) throws(LayerExecutionError) -> (role: BertTensorRole, layer: Int) {
            guard i < node.parameters.count else {
                throw LayerExecutionError(layer: node.name, reason: "names \(node.parameters.count) parameters; a BERT \(node.op.label) needs \(i + 1)")
            }
            let name = node.parameters[i].name
            guard let found = roles[name] else {
                throw LayerExecutionError(layer: node.name, reason: "parameter \(name) has no counterpart in \(source.path) (a BERT of \(hp.layerCount) layers)")
            }
            return found
        }
        func matrix(_ p: (role: BertTensorRole, layer: Int)) throws(LayerExecutionError) -> StoredMatrix {
            do { return try source.computeMatrix(p.role, layer: p.layer) } catch { throw LayerExecutionError(layer: node.name, reason: error.description) }
        }
        func vector(_ p: (role: BertTensorRole, layer: Int), width: Int) throws(LayerExecutionError) -> [Float] {
            let values: [Float]
            do { values = try source.vector(p.role, layer: p.layer) } catch { throw LayerExecutionError(layer: node.name, reason: error.description) }
            guard values.count == width else {
                throw LayerExecutionError(layer: node.name, reason: "\(p.role.referenceName(layer: p.layer)) has \(values.count) values; the node needs \(width)")
            }
            return values
        }
        /// 1 for a real token, 0 for padding, from HF's 0/1 attention_mask.
        func padding(_ mask: IntegerTensor) -> [Float] { mask.data.map { $0 != 0 ? 1 : 0 } }

        switch node.op {
        case .embedding:
            let ids = try integers(0)
            return .floats(try ops.embedding(ids: ids.data, shape: ids.shape, table: matrix(parameter(0))))
        case .add:
            var sum = try floats(0)
            for i in 1..<max(inputs.count, 2) {
                let next = try floats(i)
                guard next.shape == sum.shape else { throw LayerExecutionError(layer: node.name, reason: "adds \(sum.shape) and \(next.shape)") }
                sum = ops.add(sum, next)
            }
            return .floats(sum)
        case .layerNorm:
            let x = try floats(0)
            guard let width = x.shape.last else { throw LayerExecutionError(layer: node.name, reason: "input is a scalar") }
            return .floats(ops.layerNorm(x, weight: try vector(parameter(0), width: width), bias: try vector(parameter(1), width: width),
                                         epsilon: hp.layerNormEpsilon))
        case .linear:
            let w = try parameter(0), b = try parameter(1)
            let weight = try matrix(w)
            return .floats(try ops.linear(try floats(0), weight, bias: try vector(b, width: weight.rows), role: w.role))
        case .extendedAttentionMask:
            let mask = try integers(0)
            guard mask.rank == 2 else { throw LayerExecutionError(layer: node.name, reason: "attention_mask \(mask.shape) is not [B, S]") }
            // (1.0 − mask) · finfo(float32).min, computed in float32 as get_extended_attention_mask does (0 · min = −0).
            let lowest = -Float.greatestFiniteMagnitude
            return .floats(Tensor(shape: [mask.shape[0], 1, 1, mask.shape[1]], data: mask.data.map { (1 - Float($0)) * lowest }))
        case .attentionProbs:
            let q = try floats(0), k = try floats(1), mask = try floats(2)
            guard q.rank == 3, k.shape == q.shape, q.shape[2] == hp.hiddenSize, mask.shape == [q.shape[0], 1, 1, q.shape[1]] else {
                throw LayerExecutionError(layer: node.name, reason: "q \(q.shape), k \(k.shape), mask \(mask.shape) are not [B, T, \(hp.hiddenSize)] twice and [B, 1, 1, T]")
            }
            // The runtime's own mask from which keys are padding (the additive mask hides a key with float32's lowest value).
            let keep = mask.data.map { TransformerTensors.hides($0) ? Float(0) : 1 }
            return .floats(ops.attentionProbs(q: q, k: k, padding: keep, heads: hp.headCount))
        case .attentionOutput:
            let probs = try floats(0), v = try floats(1)
            guard probs.rank == 4, probs.shape[1] == hp.headCount, v.shape == [probs.shape[0], probs.shape[3], hp.hiddenSize] else {
                throw LayerExecutionError(layer: node.name, reason: "probs \(probs.shape), v \(v.shape) are not [B, \(hp.headCount), T, S], [B, S, \(hp.hiddenSize)]")
            }
            return .floats(ops.attentionOutput(probs: probs, v: v, heads: hp.headCount))
        case .gelu:
            return .floats(ops.gelu(try floats(0), activation: hp.activation))
        case .sentencePooling:
            let x = try floats(0), mask = try integers(1)
            guard x.rank == 3, mask.shape == Array(x.shape.prefix(2)) else {
                throw LayerExecutionError(layer: node.name, reason: "token states \(x.shape) and attention_mask \(mask.shape) are not [B, T, C] and [B, T]")
            }
            return .floats(ops.pool(x, padding: padding(mask), pooling: hp.pooling))
        case .l2Normalize:
            return .floats(ops.l2Normalize(try floats(0)))
        case .layer, .module, .rmsNorm, .rotaryEmbedding, .applyRope, .mul, .silu, .causalMask, .positions:
            throw LayerExecutionError(layer: node.name, reason: "op \(node.op.label) is not part of a BERT graph computed by \(semantics)")
        }
    }
}
