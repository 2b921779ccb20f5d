import Foundation
import ParityCore

/// A Hugging Face `BertConfig` (`model_type` `bert`) with, when the directory is a sentence-transformers model, its
/// `modules.json` (is there a `Normalize` module?) and `1_Pooling/config.json` (mean or CLS pooling). Read with
/// transformers' defaults for absent keys and refused where it asks for something this graph does not compute
/// (relative position embeddings, a decoder, another activation).
public struct BertArchitecture: Equatable, Sendable {
    public let vocabularySize: Int
    public let hiddenSize: Int
    public let intermediateSize: Int
    public let layerCount: Int
    public let headCount: Int
    public let maxPositions: Int
    public let tokenTypeCount: Int
    public let layerNormEpsilon: Double
    /// `hidden_act` is a tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`) rather than erf (`gelu`).
    public let tanhGELU: Bool
    /// sentence-transformers pooling: `mean`, `cls`, or nil for a plain `BertModel` directory (no pooling nodes).
    public let pooling: String?
    /// A `sentence_transformers.models.Normalize` module follows the pooling.
    public let normalizes: Bool

    public var headDimension: Int { hiddenSize / headCount }

    public init(config json: JSONValue, path: String) throws(ParityError) {
        func fail(_ key: String, _ reason: String) -> ParityError { .malformed(file: path, at: "key \"\(key)\"", reason: reason) }
        func int(_ key: String, default value: Int) throws(ParityError) -> Int {
            guard let v = json[key], v != .null else { return value }
            guard let i = v.intValue, i > 0, i <= 1 << 24 else { throw fail(key, "expected a positive integer, found \(v.serialized())") }
            return i
        }
        guard json.objectValue != nil else { throw .malformed(file: path, at: "offset 0", reason: "config is not a JSON object") }
        // transformers' BertConfig defaults (bert-base-uncased).
        vocabularySize = try int("vocab_size", default: 30522)
        hiddenSize = try int("hidden_size", default: 768)
        layerCount = try int("num_hidden_layers", default: 12)
        headCount = try int("num_attention_heads", default: 12)
        intermediateSize = try int("intermediate_size", default: 3072)
        maxPositions = try int("max_position_embeddings", default: 512)
        tokenTypeCount = try int("type_vocab_size", default: 2)
        if let v = json["layer_norm_eps"], v != .null {
            guard let d = v.doubleValue, d.isFinite, d > 0 else { throw fail("layer_norm_eps", "expected a positive number, found \(v.serialized())") }
            layerNormEpsilon = d
        } else {
            layerNormEpsilon = 1e-12
        }
        guard hiddenSize % headCount == 0 else {
            throw fail("num_attention_heads", "\(headCount) does not divide hidden_size \(hiddenSize)")
        }
        switch json["hidden_act"]?.stringValue ?? "gelu" {
        case "gelu": tanhGELU = false
        case "gelu_new", "gelu_pytorch_tanh": tanhGELU = true
        case let other: throw .unsupported(file: path, reason: "hidden_act \"\(other)\": Parity's BERT graph computes GELU (erf or tanh) only")
        }
        if let kind = json["position_embedding_type"]?.stringValue, kind != "absolute" {
            throw .unsupported(file: path, reason: "position_embedding_type \"\(kind)\": Parity's BERT graph computes absolute position embeddings only")
        }
        if json["is_decoder"]?.boolValue == true || json["add_cross_attention"]?.boolValue == true {
            throw .unsupported(file: path, reason: "a BERT decoder (is_decoder / add_cross_attention): Parity's BERT graph is the encoder only")
        }
        let directory = (path as NSString).deletingLastPathComponent
        (pooling, normalizes) = try BertArchitecture.sentenceTransformerModules(directory: directory)
    }

    /// Reads a `config.json` (and the sentence-transformers modules beside it).
    public static func load(path: String) throws(ParityError) -> BertArchitecture {
        try BertArchitecture(config: readJSON(path), path: path)
    }

    /// sentence-transformers' `max_seq_length` (sentence_bert_config.json): inputs are cut to it.
    public static func maxSequenceLength(directory: String) throws(ParityError) -> Int {
        let path = directory + "/sentence_bert_config.json"
        guard let length = try readJSON(path)["max_seq_length"]?.intValue, length > 2 else {
            throw .malformed(file: path, at: "key \"max_seq_length\"", reason: "expected an integer above 2")
        }
        return length
    }

    /// The pooling mode and whether embeddings are normalised, from `modules.json` and the pooling module's
    /// `config.json`; (nil, false) when the directory has no `modules.json` (a plain transformers checkpoint).
    static func sentenceTransformerModules(directory: String) throws(ParityError) -> (pooling: String?, normalizes: Bool) {
        let modulesPath = directory + "/modules.json"
        guard FileManager.default.fileExists(atPath: modulesPath) else { return (nil, false) }
        let modules = try readJSON(modulesPath)
        guard let list = modules.arrayValue else { throw .malformed(file: modulesPath, at: "offset 0", reason: "expected a JSON list of modules") }
        var pooling: String?, normalizes = false
        for (i, module) in list.enumerated() {
            guard let type = module["type"]?.stringValue else { throw .malformed(file: modulesPath, at: "module \(i)", reason: "has no \"type\" string") }
            switch type {
            case "sentence_transformers.models.Transformer": continue
            case "sentence_transformers.models.Normalize": normalizes = true
            case "sentence_transformers.models.Pooling":
                let poolingPath = directory + "/" + (module["path"]?.stringValue ?? "") + "/config.json"
                let config = try readJSON(poolingPath)
                let modes = ["mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",
                             "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"].filter { config[$0.value]?.boolValue == true }.map(\.key)
                guard modes.count == 1, modes[0] == "mean" || modes[0] == "cls" else {
                    throw .unsupported(file: poolingPath, reason: "pooling modes \(modes.sorted()): Parity pools by exactly one of mean or cls")
                }
                pooling = modes[0]
            default:
                throw .unsupported(file: modulesPath, reason: "module \(i) is \(type): Parity's BERT graph knows Transformer, Pooling and Normalize")
            }
        }
        return (pooling, normalizes)
    }

    static func readJSON(_ path: String) throws(ParityError) -> JSONValue {
        let file = try MappedFile(path: path)
        do { return try JSONParser.parse(Array(file.data)) } catch { throw .malformed(file: path, at: "offset \(error.offset)", reason: error.reason) }
    }

    /// The graph of transformers 4.46's `BertModel` (eager attention, no pooler: sentence-transformers discards its
    /// output) followed by sentence-transformers' `Pooling` and `Normalize`, with the nodes the goldens record:
    /// every module that runs (dropouts are identities in eval mode: composite nodes whose value is their input),
    /// the attention probabilities, and the inline tensors (the embedding sum, the extended mask, residual sums).
    public func graph() -> ModelGraph {
        let ids = GraphInput(name: "input_ids", type: .int32, layout: "BT")
        let tokenTypes = GraphInput(name: "token_type_ids", type: .int32, layout: "BT")
        let positions = GraphInput(name: "position_ids", type: .int32, layout: "BT")
        let mask = GraphInput(name: "attention_mask", type: .int32, layout: "BT")
        var nodes: [GraphNode] = []
        func activation(_ module: String) -> String { "/activations/" + module }
        func add(_ node: GraphNode) { nodes.append(node) }
        func linear(_ module: String, input: String, inFeatures: Int, outFeatures: Int, block: Int) {
            add(GraphNode(path: activation(module), kind: .module, op: .linear(inFeatures: inFeatures, outFeatures: outFeatures, bias: true),
                          inputs: [input], inputArgs: ["input"],
                          parameters: [GraphParameter(name: module + ".weight", shape: [outFeatures, inFeatures]),
                                       GraphParameter(name: module + ".bias", shape: [outFeatures])], module: module, block: block))
        }
        func layerNorm(_ module: String, input: String, block: Int?) {
            add(GraphNode(path: activation(module), kind: .module, op: .layerNorm(width: hiddenSize, epsilon: layerNormEpsilon),
                          inputs: [input], inputArgs: ["input"],
                          parameters: [GraphParameter(name: module + ".weight", shape: [hiddenSize]),
                                       GraphParameter(name: module + ".bias", shape: [hiddenSize])], module: module, block: block))
        }
        /// `nn.Dropout` in eval mode returns its input: its value is the input node's.
        func dropout(_ module: String, input: String, block: Int?) {
            add(GraphNode(path: activation(module), kind: .module, op: .module(className: "Dropout", output: input),
                          inputs: [input], inputArgs: ["input"], module: module, block: block))
        }
        func embedding(_ module: String, input: String, rows: Int) {
            add(GraphNode(path: activation(module), kind: .module, op: .embedding(vocabularySize: rows, width: hiddenSize),
                          inputs: [input], inputArgs: ["input"],
                          parameters: [GraphParameter(name: module + ".weight", shape: [rows, hiddenSize])], module: module))
        }

        embedding("embeddings.word_embeddings", input: ids.path, rows: vocabularySize)
        embedding("embeddings.token_type_embeddings", input: tokenTypes.path, rows: tokenTypeCount)
        embedding("embeddings.position_embeddings", input: positions.path, rows: maxPositions)
        // `embeddings = inputs_embeds + token_type_embeddings; embeddings += position_embeddings`: summed in that order.
        let sum = "/intermediates/embeddings.LayerNorm.input"
        add(GraphNode(path: sum, kind: .intermediate, op: .add,
                      inputs: [activation("embeddings.word_embeddings"), activation("embeddings.token_type_embeddings"), activation("embeddings.position_embeddings")],
                      inputArgs: ["inputs_embeds", "token_type_embeddings", "position_embeddings"]))
        layerNorm("embeddings.LayerNorm", input: sum, block: nil)
        dropout("embeddings.dropout", input: activation("embeddings.LayerNorm"), block: nil)
        add(GraphNode(path: activation("embeddings"), kind: .module, op: .module(className: "BertEmbeddings", output: activation("embeddings.LayerNorm")),
                      inputs: [ids.path, tokenTypes.path, positions.path], inputArgs: ["input_ids", "token_type_ids", "position_ids"], module: "embeddings"))
        // Built by BertModel and read by the encoder; named after its first reader, as the goldens name inline tensors.
        let extendedMask = "/intermediates/encoder.attention_mask"
        add(GraphNode(path: extendedMask, kind: .intermediate, op: .extendedAttentionMask, inputs: [mask.path], inputArgs: ["attention_mask"]))

        let d = headDimension
        var hidden = activation("embeddings.LayerNorm")
        for n in 0..<layerCount {
            let layer = "encoder.layer.\(n)", attention = layer + ".attention", selfAttention = attention + ".self"
            linear(selfAttention + ".query", input: hidden, inFeatures: hiddenSize, outFeatures: hiddenSize, block: n)
            linear(selfAttention + ".key", input: hidden, inFeatures: hiddenSize, outFeatures: hiddenSize, block: n)
            linear(selfAttention + ".value", input: hidden, inFeatures: hiddenSize, outFeatures: hiddenSize, block: n)
            let probs = "/attention/\(selfAttention)/probs"
            add(GraphNode(path: probs, kind: .attention, op: .attentionProbs(heads: headCount, keyValueHeads: headCount, headDimension: d),
                          inputs: [activation(selfAttention + ".query"), activation(selfAttention + ".key"), extendedMask],
                          inputArgs: ["q", "k", "attention_mask"], module: selfAttention, block: n))
            dropout(selfAttention + ".dropout", input: probs, block: n)
            let context = "/internal/\(selfAttention).context"
            add(GraphNode(path: context, kind: .internal, op: .attentionOutput(heads: headCount, keyValueHeads: headCount, headDimension: d),
                          inputs: [probs, activation(selfAttention + ".value")], inputArgs: ["probs", "v"], module: selfAttention, block: n))
            add(GraphNode(path: activation(selfAttention), kind: .module, op: .module(className: "BertSelfAttention", output: context),
                          inputs: [hidden, extendedMask], inputArgs: ["hidden_states", "attention_mask"], module: selfAttention, block: n))
            linear(attention + ".output.dense", input: activation(selfAttention), inFeatures: hiddenSize, outFeatures: hiddenSize, block: n)
            dropout(attention + ".output.dropout", input: activation(attention + ".output.dense"), block: n)
            let attentionResidual = "/intermediates/\(attention).output.LayerNorm.input"
            add(GraphNode(path: attentionResidual, kind: .intermediate, op: .add, inputs: [activation(attention + ".output.dense"), hidden],
                          inputArgs: ["hidden_states", "input_tensor"], block: n))
            layerNorm(attention + ".output.LayerNorm", input: attentionResidual, block: n)
            let attended = activation(attention + ".output.LayerNorm")
            add(GraphNode(path: activation(attention + ".output"), kind: .module, op: .module(className: "BertSelfOutput", output: attended),
                          inputs: [activation(selfAttention), hidden], inputArgs: ["hidden_states", "input_tensor"], module: attention + ".output", block: n))
            add(GraphNode(path: activation(attention), kind: .module, op: .module(className: "BertAttention", output: attended),
                          inputs: [hidden, extendedMask], inputArgs: ["hidden_states", "attention_mask"], module: attention, block: n))
            linear(layer + ".intermediate.dense", input: attended, inFeatures: hiddenSize, outFeatures: intermediateSize, block: n)
            let act = layer + ".intermediate.intermediate_act_fn"
            add(GraphNode(path: activation(act), kind: .module, op: .gelu(tanhApproximation: tanhGELU), inputs: [activation(layer + ".intermediate.dense")],
                          inputArgs: ["input"], module: act, block: n))
            add(GraphNode(path: activation(layer + ".intermediate"), kind: .module, op: .module(className: "BertIntermediate", output: activation(act)),
                          inputs: [attended], inputArgs: ["hidden_states"], module: layer + ".intermediate", block: n))
            linear(layer + ".output.dense", input: activation(act), inFeatures: intermediateSize, outFeatures: hiddenSize, block: n)
            dropout(layer + ".output.dropout", input: activation(layer + ".output.dense"), block: n)
            let outputResidual = "/intermediates/\(layer).output.LayerNorm.input"
            add(GraphNode(path: outputResidual, kind: .intermediate, op: .add, inputs: [activation(layer + ".output.dense"), attended],
                          inputArgs: ["hidden_states", "input_tensor"], block: n))
            layerNorm(layer + ".output.LayerNorm", input: outputResidual, block: n)
            let output = activation(layer + ".output.LayerNorm")
            add(GraphNode(path: activation(layer + ".output"), kind: .module, op: .module(className: "BertOutput", output: output),
                          inputs: [activation(act), attended], inputArgs: ["hidden_states", "input_tensor"], module: layer + ".output", block: n))
            add(GraphNode(path: activation(layer), kind: .module, op: .module(className: "BertLayer", output: output),
                          inputs: [hidden, extendedMask], inputArgs: ["hidden_states", "attention_mask"], module: layer, block: n))
            hidden = output
        }
        add(GraphNode(path: activation("encoder"), kind: .module, op: .module(className: "BertEncoder", output: hidden),
                      inputs: [activation("embeddings.LayerNorm"), extendedMask], inputArgs: ["hidden_states", "attention_mask"], module: "encoder"))
        var output = activation("encoder")
        if let pooling {
            add(GraphNode(path: activation("pooling"), kind: .module, op: .sentencePooling(mode: pooling), inputs: [hidden, mask.path],
                          inputArgs: ["token_embeddings", "attention_mask"], module: "pooling"))
            output = activation("pooling")
            if normalizes {
                add(GraphNode(path: activation("normalize"), kind: .module, op: .l2Normalize, inputs: [output], inputArgs: ["sentence_embedding"],
                              module: "normalize"))
                output = activation("normalize")
            }
        }
        var graph = ModelGraph(architecture: "bert", inputs: [ids, tokenTypes, positions, mask], nodes: nodes, output: output)
        graph.unreadTensors = [
            "pooler.dense.weight": "BertModel's pooler: sentence-transformers discards its output",
            "pooler.dense.bias": "BertModel's pooler: sentence-transformers discards its output",
            "embeddings.position_ids": "a buffer (arange), not a parameter; Parity takes position_ids as an input",
        ]
        return graph
    }
}
