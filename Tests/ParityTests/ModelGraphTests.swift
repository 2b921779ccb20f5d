import Foundation
import ParityCore
import ParityFormats
import ParityModels
import Testing

@Suite("Model graph")
struct ModelGraphTests {
    /// The graph an architecture builds must be the graph PyTorch ran: every dataset the golden records is a node
    /// reading exactly the golden's `inputs` as its `input_args`, and every node the graph records has a dataset.
    static func checkAgainstGolden(graph: ModelGraph, golden: GoldenFile) throws {
        let recorded = try nonEmpty(golden.activations, "golden datasets")
        for dataset in recorded {
            let node = try #require(graph.node(at: dataset.path), "the graph has no node \(dataset.path)")
            #expect(node.inputs == dataset.inputs, "\(dataset.path): graph reads \(node.inputs), golden \(dataset.inputs)")
            #expect(node.inputArgs == dataset.inputArgs, "\(dataset.path): graph args \(node.inputArgs), golden \(dataset.inputArgs)")
            #expect(node.name == dataset.name)
            if !dataset.op.isEmpty { #expect(node.op.label == dataset.op, "\(dataset.path): graph op \(node.op.label), golden \(dataset.op)") }
        }
        let goldenPaths = Set(recorded.map(\.path))
        for node in graph.recordedNodes { #expect(goldenPaths.contains(node.path), "the golden has no dataset for graph node \(node.path)") }
        // The golden's order is one topological order of the graph's edges.
        let orderOf = Dictionary(uniqueKeysWithValues: recorded.map { ($0.path, $0.order) })
        for node in graph.recordedNodes {
            for input in node.inputs where !input.hasPrefix("/inputs/") {
                let before = try #require(orderOf[input]), after = try #require(orderOf[node.path])
                #expect(before < after, "\(node.path) reads \(input) recorded later")
            }
        }
        try graph.validate()
    }

    @Test("tiny-llama: the llama graph from config.json is the graph the golden recorded (inputs, argument names, ops)")
    func llamaMatchesGolden() throws {
        let config = try ModelConfig.load(path: Repo.golden + "/tiny-llama/config.json", name: "tiny-llama")
        let golden = try GoldenFile(path: Repo.golden + "/tiny-llama/golden.h5")
        #expect(golden.version == 2 && golden.kind == "causal-lm")
        #expect(config.graph.architecture == "llama")
        try Self.checkAgainstGolden(graph: config.graph, golden: golden)
        // 44 modules that ran + rotary sin + 3 × (q_rope, k_rope, probs) + 2 + 3 × 3 inline tensors = 65 datasets.
        #expect(golden.activations.count == 65)
        #expect(config.graph.recordedNodes.count == 65)
        #expect(config.graph.output == "/activations/lm_head")
        let ids = try #require(golden.inputValues["input_ids"]?.integers, "token ids are integers")
        #expect(ids.shape == [2, 32] && ids.data.first == 1, "BOS first")
        #expect(golden.inputs["input_ids"] == nil, "no float copy of the ids")
    }

    @Test("tiny-llama: parameters are the checkpoint's tensors, with their shapes")
    func llamaParameters() throws {
        let config = try ModelConfig.load(path: Repo.golden + "/tiny-llama/config.json", name: "tiny-llama")
        let weights = try SafetensorsFile(path: Repo.golden + "/tiny-llama/model.safetensors")
        let parameters = config.graph.parameters
        #expect(parameters.count == 30)
        #expect(Set(parameters.map(\.name)) == Set(weights.entries.map(\.name)))
        for p in parameters { #expect(weights.entry(named: p.name)?.shape == p.shape, "\(p.name)") }
        let q = try #require(config.graph.node(named: "model.layers.0.self_attn.q_proj"))
        #expect(q.op == .linear(inFeatures: 256, outFeatures: 256, bias: false))
        let k = try #require(config.graph.node(named: "model.layers.1.self_attn.k_proj"))
        #expect(k.parameters == [GraphParameter(name: "model.layers.1.self_attn.k_proj.weight", shape: [128, 256])])
        #expect(config.llama?.keyValueHeadCount == 4 && config.llama?.headDimension == 32 && config.llama?.rmsNormEpsilon == 1e-5)
    }

    @Test("a decoder layer's members are its computation from its inputs, not the nodes before it")
    func compositeMembers() throws {
        let graph = try ModelConfig.load(path: Repo.golden + "/tiny-llama/config.json", name: "tiny-llama").graph
        let layer = try #require(graph.node(named: "model.layers.1"))
        let members = graph.members(of: layer).map(\.name)
        #expect(members.first == "model.layers.1.input_layernorm")
        #expect(members.last == "internal/model.layers.1.output")
        #expect(!members.contains("model.embed_tokens") && !members.contains("model.rotary_emb") && !members.contains("model.layers.0"))
        #expect(members.contains("attention/model.layers.1.self_attn/probs"))
    }

    @Test("image models: the chain matches the golden's input attributes", arguments: try nonEmpty(Repo.bundledModels, "bundled models"))
    func imageChains(modelName: String) throws {
        let model = try Repo.model(modelName)
        try Self.checkAgainstGolden(graph: model.config.graph, golden: try model.golden())
        #expect(model.config.graph.nodes.map(\.name) == model.config.layers.map(\.name))
    }

    @Test("a tied output reads the embedding table (listed once among the parameters); absent keys take transformers' defaults")
    func tiedAndDefaults() throws {
        let json = try JSONParser.parse(Array("""
            {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "vocab_size": 100, "tie_word_embeddings": true}
            """.utf8))
        let config = try ModelConfig(json: json, path: "config.json", name: "tiny")
        let llama = try #require(config.llama)
        #expect(llama.keyValueHeadCount == 4 && llama.headDimension == 16, "num_key_value_heads defaults to the heads, head_dim to hidden / heads")
        #expect(llama.rmsNormEpsilon == 1e-6 && llama.ropeTheta == 10000, "LlamaConfig's defaults")
        let head = try #require(config.graph.node(named: "lm_head"))
        #expect(head.parameters == [GraphParameter(name: "model.embed_tokens.weight", shape: [100, 64])])
        #expect(config.graph.parameters.filter { $0.name == "model.embed_tokens.weight" }.count == 1)
        #expect(!config.graph.parameters.contains { $0.name == "lm_head.weight" })
        #expect(config.graph.parameters.count == 1 + 2 * 9 + 1, "embedding, 9 per layer, final norm; no separate output")
    }

    @Test("an unknown model_type is refused naming the known architectures; RoPE scaling is refused")
    func registryRefusals() throws {
        #expect(throws: ParityError.unsupported(file: "c.json", reason: "model_type \"gpt2\" has no architecture in Parity (known: bert, llama)")) {
            _ = try ModelConfig(json: JSONValue.object([("model_type", .string("gpt2"))]), path: "c.json")
        }
        let scaled = JSONValue.object([("model_type", .string("llama")), ("rope_scaling", .object([("type", .string("linear"))]))])
        #expect(throws: ParityError.self) { _ = try ModelConfig(json: scaled, path: "c.json") }
    }
}
