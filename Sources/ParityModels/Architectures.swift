import ParityCore

/// Builds model graphs from Hugging Face `config.json` files, keyed by `model_type` (as mlx-lm's and llama.cpp's
/// model registries are): one entry per architecture, each reading its own config keys.
public enum ArchitectureRegistry {
    public typealias Builder = @Sendable (_ config: JSONValue, _ path: String) throws(ParityError) -> ModelGraph

    /// The architectures Parity can build, by `model_type`.
    public static let builders: [String: Builder] = [
        "llama": { config, path throws(ParityError) in try LlamaArchitecture(config: config, path: path).graph() },
        "bert": { config, path throws(ParityError) in try BertArchitecture(config: config, path: path).graph() },
    ]

    public static var modelTypes: [String] { builders.keys.sorted() }

    /// The graph for a Hugging Face config; an unknown `model_type` is unsupported (exit 2), naming the known ones.
    public static func graph(config: JSONValue, path: String) throws(ParityError) -> ModelGraph {
        guard let modelType = config["model_type"]?.stringValue else {
            throw .malformed(file: path, at: "key \"model_type\"", reason: "expected a string (a Hugging Face config.json names its architecture there)")
        }
        guard let builder = builders[modelType] else {
            throw .unsupported(file: path, reason: "model_type \"\(modelType)\" has no architecture in Parity (known: \(modelTypes.joined(separator: ", ")))")
        }
        let graph = try builder(config, path)
        try graph.validate()
        return graph
    }
}

/// Parity's sequential image models (config.json `layers`): the simplest architecture, a chain in which each
/// layer reads the previous layer's output and the first reads the model input.
public enum SequentialArchitecture {
    public static func graph(architecture: String, input: InputSpec, layers: [LayerSpec]) -> ModelGraph {
        let modelInput = GraphInput(name: input.name, type: .float32, layout: input.layout)
        var previous = modelInput.path
        var nodes: [GraphNode] = []
        for layer in layers {
            let node = GraphNode(path: "/activations/" + layer.name, kind: .module, op: .layer(layer), inputs: [previous], inputArgs: ["input"],
                                 parameters: layer.parameters.map { GraphParameter(name: $0.name, shape: $0.shape) }, module: layer.name)
            nodes.append(node)
            previous = node.path
        }
        return ModelGraph(architecture: architecture, inputs: [modelInput], nodes: nodes, output: previous)
    }
}

/// A Hugging Face `LlamaConfig` (`model_type` `llama`), read with transformers' defaults for absent keys and
/// refused where it asks for something this graph does not compute (RoPE scaling, biases, another activation).
public struct LlamaArchitecture: Equatable, Sendable {
    public let vocabularySize: Int
    public let hiddenSize: Int
    public let intermediateSize: Int
    public let layerCount: Int
    public let headCount: Int
    public let keyValueHeadCount: Int
    public let headDimension: Int
    public let rmsNormEpsilon: Double
    public let ropeTheta: Double
    public let tiedEmbeddings: Bool

    public init(vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, keyValueHeadCount: Int,
                headDimension: Int, rmsNormEpsilon: Double, ropeTheta: Double, tiedEmbeddings: Bool) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount
        self.headDimension = headDimension
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.tiedEmbeddings = tiedEmbeddings
    }

    public init(config json: JSONValue, path: String) throws(ParityError) {
        func fail(_ key: String, _ reason: String) -> ParityError { .malformed(file: path, at: "key \"\(key)\"", reason: reason) }
        func int(_ key: String, default value: Int? = nil) throws(ParityError) -> Int {
            guard let v = json[key], v != .null else {
                guard let value else { throw fail(key, "missing (a Llama config.json needs it)") }
                return value
            }
            guard let i = v.intValue, i > 0, i <= 1 << 24 else { throw fail(key, "expected a positive integer, found \(v.serialized())") }
            return i
        }
        func double(_ key: String, default value: Double) throws(ParityError) -> Double {
            guard let v = json[key], v != .null else { return value }
            guard let d = v.doubleValue, d.isFinite, d > 0 else { throw fail(key, "expected a positive number, found \(v.serialized())") }
            return d
        }
        func bool(_ key: String, default value: Bool) throws(ParityError) -> Bool {
            guard let v = json[key], v != .null else { return value }
            guard let b = v.boolValue else { throw fail(key, "expected true or false, found \(v.serialized())") }
            return b
        }
        guard json.objectValue != nil else { throw .malformed(file: path, at: "offset 0", reason: "config is not a JSON object") }
        hiddenSize = try int("hidden_size", default: 4096)
        intermediateSize = try int("intermediate_size", default: 11008)
        vocabularySize = try int("vocab_size", default: 32000)
        layerCount = try int("num_hidden_layers", default: 32)
        headCount = try int("num_attention_heads", default: 32)
        // transformers: num_key_value_heads defaults to num_attention_heads; head_dim to hidden / heads.
        keyValueHeadCount = try int("num_key_value_heads", default: headCount)
        headDimension = try int("head_dim", default: hiddenSize / headCount)
        rmsNormEpsilon = try double("rms_norm_eps", default: 1e-6)
        ropeTheta = try double("rope_theta", default: 10000)
        tiedEmbeddings = try bool("tie_word_embeddings", default: false)
        guard headCount % keyValueHeadCount == 0 else {
            throw fail("num_key_value_heads", "\(keyValueHeadCount) does not divide num_attention_heads \(headCount)")
        }
        guard headDimension % 2 == 0 else { throw fail("head_dim", "\(headDimension) is odd; RoPE rotates pairs of dimensions") }
        if let act = json["hidden_act"]?.stringValue, act != "silu" {
            throw .unsupported(file: path, reason: "hidden_act \"\(act)\": Parity's Llama graph computes SwiGLU with SiLU only")
        }
        if let scaling = json["rope_scaling"], scaling != .null {
            throw .unsupported(file: path, reason: "rope_scaling \(scaling.serialized()): Parity's Llama graph computes unscaled RoPE only")
        }
        for key in ["attention_bias", "mlp_bias"] where try bool(key, default: false) {
            throw .unsupported(file: path, reason: "\(key) true: Parity's Llama graph has no projection biases")
        }
        if let tp = json["pretraining_tp"]?.intValue, tp != 1 {
            throw .unsupported(file: path, reason: "pretraining_tp \(tp): only 1 (unsplit projections) is computed")
        }
    }

    /// The graph of `LlamaForCausalLM` (transformers 4.46, eager attention, no cache) with the nodes the goldens
    /// record (golden/README.md, format_version 2): every module that runs, RoPE'd queries and keys, attention
    /// probabilities, and the inline tensors (mask, residual sums, SwiGLU product, attention output).
    public func graph() -> ModelGraph {
        let ids = GraphInput(name: "input_ids", type: .int32, layout: "BT")
        let positions = GraphInput(name: "position_ids", type: .int32, layout: "BT")
        let mask = GraphInput(name: "attention_mask", type: .int32, layout: "BT")
        var nodes: [GraphNode] = []
        func activation(_ module: String) -> String { "/activations/" + module }
        func add(_ node: GraphNode) { nodes.append(node) }
        func linear(_ module: String, input: String, inFeatures: Int, outFeatures: Int, block: Int?, weight: String? = nil) {
            add(GraphNode(path: activation(module), kind: .module, op: .linear(inFeatures: inFeatures, outFeatures: outFeatures, bias: false),
                          inputs: [input], inputArgs: ["input"],
                          parameters: [GraphParameter(name: weight ?? module + ".weight", shape: [outFeatures, inFeatures])], module: module, block: block))
        }
        func rmsNorm(_ module: String, input: String, block: Int?) {
            add(GraphNode(path: activation(module), kind: .module, op: .rmsNorm(width: hiddenSize, epsilon: rmsNormEpsilon),
                          inputs: [input], inputArgs: ["hidden_states"],
                          parameters: [GraphParameter(name: module + ".weight", shape: [hiddenSize])], module: module, block: block))
        }

        let embedding = activation("model.embed_tokens")
        add(GraphNode(path: embedding, kind: .module, op: .embedding(vocabularySize: vocabularySize, width: hiddenSize),
                      inputs: [ids.path], inputArgs: ["input"],
                      parameters: [GraphParameter(name: "model.embed_tokens.weight", shape: [vocabularySize, hiddenSize])], module: "model.embed_tokens"))
        let cos = activation("model.rotary_emb"), sin = activation("model.rotary_emb:1")
        add(GraphNode(path: cos, kind: .module, op: .rotaryEmbedding(.cos, headDimension: headDimension, theta: ropeTheta),
                      inputs: [embedding, positions.path], inputArgs: ["x", "position_ids"], module: "model.rotary_emb"))
        add(GraphNode(path: sin, kind: .output, op: .rotaryEmbedding(.sin, headDimension: headDimension, theta: ropeTheta),
                      inputs: [embedding, positions.path], inputArgs: ["x", "position_ids"], module: "model.rotary_emb"))
        // Built by LlamaModel and read by every layer; the golden names such tensors after their first reader.
        let causalMask = "/intermediates/model.layers.0.attention_mask"
        add(GraphNode(path: causalMask, kind: .intermediate, op: .causalMask, inputs: [mask.path], inputArgs: ["attention_mask"]))
        let cachePosition = "/intermediates/model.layers.0.cache_position"
        add(GraphNode(path: cachePosition, kind: .intermediate, op: .positions, inputs: [], inputArgs: [], implicitInputs: [ids.path]))

        let q = headCount * headDimension, kv = keyValueHeadCount * headDimension
        let layerArguments = ["hidden_states", "attention_mask", "position_ids", "cache_position", "position_embeddings[0]", "position_embeddings[1]"]
        var hidden = embedding
        for n in 0..<layerCount {
            let layer = "model.layers.\(n)", attention = layer + ".self_attn", mlp = layer + ".mlp"
            rmsNorm(layer + ".input_layernorm", input: hidden, block: n)
            let normed = activation(layer + ".input_layernorm")
            linear(attention + ".q_proj", input: normed, inFeatures: hiddenSize, outFeatures: q, block: n)
            linear(attention + ".k_proj", input: normed, inFeatures: hiddenSize, outFeatures: kv, block: n)
            linear(attention + ".v_proj", input: normed, inFeatures: hiddenSize, outFeatures: kv, block: n)
            let qRope = "/attention/\(attention)/q_rope", kRope = "/attention/\(attention)/k_rope", probs = "/attention/\(attention)/probs"
            add(GraphNode(path: qRope, kind: .attention, op: .applyRope(heads: headCount, headDimension: headDimension),
                          inputs: [activation(attention + ".q_proj"), cos, sin], inputArgs: ["q", "cos", "sin"], module: attention, block: n))
            add(GraphNode(path: kRope, kind: .attention, op: .applyRope(heads: keyValueHeadCount, headDimension: headDimension),
                          inputs: [activation(attention + ".k_proj"), cos, sin], inputArgs: ["k", "cos", "sin"], module: attention, block: n))
            add(GraphNode(path: probs, kind: .output,
                          op: .attentionProbs(heads: headCount, keyValueHeads: keyValueHeadCount, headDimension: headDimension),
                          inputs: [qRope, kRope, causalMask], inputArgs: ["q", "k", "attention_mask"], module: attention, block: n))
            let attended = "/intermediates/\(attention).o_proj.input"
            add(GraphNode(path: attended, kind: .intermediate,
                          op: .attentionOutput(heads: headCount, keyValueHeads: keyValueHeadCount, headDimension: headDimension),
                          inputs: [probs, activation(attention + ".v_proj")], inputArgs: ["probs", "v"], module: attention, block: n))
            linear(attention + ".o_proj", input: attended, inFeatures: q, outFeatures: hiddenSize, block: n)
            add(GraphNode(path: activation(attention), kind: .module, op: .module(className: "LlamaAttention", output: activation(attention + ".o_proj")),
                          inputs: [normed, causalMask, positions.path, cachePosition, cos, sin], inputArgs: layerArguments, module: attention, block: n))
            let residual = "/intermediates/\(layer).post_attention_layernorm.hidden_states"
            add(GraphNode(path: residual, kind: .intermediate, op: .add, inputs: [hidden, activation(attention)], inputArgs: ["a", "b"], block: n))
            rmsNorm(layer + ".post_attention_layernorm", input: residual, block: n)
            let postNormed = activation(layer + ".post_attention_layernorm")
            linear(mlp + ".gate_proj", input: postNormed, inFeatures: hiddenSize, outFeatures: intermediateSize, block: n)
            add(GraphNode(path: activation(mlp + ".act_fn"), kind: .module, op: .silu, inputs: [activation(mlp + ".gate_proj")], inputArgs: ["input"],
                          module: mlp + ".act_fn", block: n))
            linear(mlp + ".up_proj", input: postNormed, inFeatures: hiddenSize, outFeatures: intermediateSize, block: n)
            let product = "/intermediates/\(mlp).down_proj.input"
            add(GraphNode(path: product, kind: .intermediate, op: .mul, inputs: [activation(mlp + ".act_fn"), activation(mlp + ".up_proj")],
                          inputArgs: ["a", "b"], block: n))
            linear(mlp + ".down_proj", input: product, inFeatures: intermediateSize, outFeatures: hiddenSize, block: n)
            add(GraphNode(path: activation(mlp), kind: .module, op: .module(className: "LlamaMLP", output: activation(mlp + ".down_proj")),
                          inputs: [postNormed], inputArgs: ["x"], module: mlp, block: n))
            // The layer's second residual sum is its output; no module reads it inline, so no golden records it apart.
            let output = "/internal/\(layer).output"
            add(GraphNode(path: output, kind: .internal, op: .add, inputs: [residual, activation(mlp)], inputArgs: ["a", "b"], block: n))
            add(GraphNode(path: activation(layer), kind: .module, op: .module(className: "LlamaDecoderLayer", output: output),
                          inputs: [hidden, causalMask, positions.path, cachePosition, cos, sin], inputArgs: layerArguments, module: layer, block: n))
            hidden = activation(layer)
        }
        rmsNorm("model.norm", input: hidden, block: nil)
        add(GraphNode(path: activation("model"), kind: .module, op: .module(className: "LlamaModel", output: activation("model.norm")),
                      inputs: [ids.path, mask.path, positions.path], inputArgs: ["input_ids", "attention_mask", "position_ids"], module: "model"))
        linear("lm_head", input: activation("model.norm"), inFeatures: hiddenSize, outFeatures: vocabularySize, block: nil,
               weight: tiedEmbeddings ? "model.embed_tokens.weight" : nil)
        return ModelGraph(architecture: "llama", inputs: [ids, positions, mask], nodes: nodes, output: activation("lm_head"))
    }
}
