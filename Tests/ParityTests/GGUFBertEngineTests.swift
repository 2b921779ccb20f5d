import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import Testing

/// The GGUF BERT reader (llama.cpp's `bert` loader) and the ggml BERT engine, against llama.cpp's own sentence
/// embeddings of held-out sentences (tools/minilm/llamacpp_fixtures.sh; none is in the goldens).
@Suite("GGUF BERT reader and ggml engine vs llama.cpp's embeddings")
struct GGUFBertEngineTests {
    /// Parity's GGUF of the installed model, in memory. GGUFBertTests shows its bytes equal llama.cpp's file of
    /// the same name, so llama.cpp's embeddings of that file are the embeddings of these bytes.
    static func convertedFile(_ type: GGMLType) throws -> GGUFFile {
        let (writer, _) = try GGUFBertConverter.build(directory: try GGUFBertTests.modelDirectory(), type: type)
        return try GGUFFile(file: MappedFile(data: Data(writer.serialized()), name: "minilm-l6-\(type.name).gguf"))
    }

    static func architecture() throws -> BertArchitecture {
        try BertArchitecture.load(path: try GGUFBertTests.modelDirectory() + "/config.json")
    }

    @Test("the reader takes the hyperparameters from the keys llama.cpp reads, as recorded in llama.cpp's own file")
    func readerHyperparameters() throws {
        let source = try GGUFBertWeights.load(try Self.convertedFile(.f16)).get()
        let record = try required(try MiniLMGGUF.tables(), "minilm-l6-f16.gguf", in: MiniLMGGUF.tablesPath)
        let metadata = try #require(record["metadata"]?.arrayValue)
        func recorded(_ key: String) throws -> JSONValue { try #require(metadata.first { $0["key"]?.stringValue == key }?["value"], "no \(key)") }
        let hp = source.hyperparameters
        #expect(hp.hiddenSize == (try recorded("bert.embedding_length")).intValue)
        #expect(hp.layerCount == (try recorded("bert.block_count")).intValue)
        #expect(hp.headCount == (try recorded("bert.attention.head_count")).intValue)
        #expect(hp.intermediateSize == (try recorded("bert.feed_forward_length")).intValue)
        #expect(hp.maxPositions == (try recorded("bert.context_length")).intValue)
        #expect(hp.tokenTypeCount == (try recorded("tokenizer.ggml.token_type_count")).intValue)
        #expect(hp.layerNormEpsilon == (try recorded("bert.attention.layer_norm_epsilon")).doubleValue)
        let pooling = try recorded("bert.pooling_type"), causal = try recorded("bert.attention.causal")
        #expect(hp.pooling == .mean && pooling.intValue == 1)
        #expect(!source.causalAttention && causal == .bool(false))
        #expect(hp.vocabularySize == 30522 && hp.activation == .geluTanh && source.tokenizerModel == "bert")
        #expect(!source.loading.refused)
        let q = try source.matrix(.query, layer: 3)
        #expect(q.fileName == "blk.3.attn_q.weight" && q.rows == 384 && q.columns == 384)
    }

    /// A small `bert` GGUF with the tensors llama.cpp's loader creates, to plant one mistake at a time.
    static func tinyBert(edit: (inout [(key: String, value: GGUFValue)], inout [(name: String, ne: [Int])]) -> Void) throws -> GGUFFile {
        let (n, ff, vocab, ctx) = (8, 16, 5, 4)
        var metadata: [(key: String, value: GGUFValue)] = [
            ("bert.context_length", .uint32(UInt32(ctx))), ("bert.embedding_length", .uint32(UInt32(n))),
            ("bert.feed_forward_length", .uint32(UInt32(ff))), ("bert.attention.head_count", .uint32(2)), ("bert.block_count", .uint32(1)),
            ("bert.attention.layer_norm_epsilon", .float32(1e-12)), ("bert.attention.causal", .bool(false)), ("bert.pooling_type", .uint32(1)),
            ("tokenizer.ggml.token_type_count", .uint32(2)), ("tokenizer.ggml.model", .string("bert")),
            ("tokenizer.ggml.tokens", .array(.string, (0..<vocab).map { .string("t\($0)") })),
        ]
        var tensors: [(name: String, ne: [Int])] = [("token_embd.weight", [n, vocab]), ("token_types.weight", [n, 2]), ("position_embd.weight", [n, ctx]),
                                                   ("token_embd_norm.weight", [n]), ("token_embd_norm.bias", [n])]
        for (name, ne) in [("attn_q.weight", [n, n]), ("attn_q.bias", [n]), ("attn_k.weight", [n, n]), ("attn_k.bias", [n]), ("attn_v.weight", [n, n]),
                           ("attn_v.bias", [n]), ("attn_output.weight", [n, n]), ("attn_output.bias", [n]), ("attn_output_norm.weight", [n]),
                           ("attn_output_norm.bias", [n]), ("ffn_up.weight", [n, ff]), ("ffn_up.bias", [ff]), ("ffn_down.weight", [ff, n]),
                           ("ffn_down.bias", [n]), ("layer_output_norm.weight", [n]), ("layer_output_norm.bias", [n])] {
            tensors.append(("blk.0." + name, ne))
        }
        edit(&metadata, &tensors)
        var w = try GGUFWriter(architecture: "bert")
        for (key, value) in metadata { try w.set(key, value) }
        for t in tensors {
            let count = t.ne.reduce(1, *)
            try w.add(name: t.name, type: .f32, ne: t.ne, bytes: try GGMLQuants.quantize([Float](repeating: 0.5, count: count), to: .f32))
        }
        return try GGUFFile(file: MappedFile(data: Data(w.serialized()), name: "tiny-bert.gguf"))
    }

    static func refusal(_ file: GGUFFile) throws -> LlamaRuntimeRefusal? {
        if case let .failure(refusal) = try GGUFBertWeights.load(file) { return refusal }
        return nil
    }

    @Test("what llama.cpp's loader refuses is refused with its message; what it accepts silently is read as it reads it")
    func readerRefusals() throws {
        let accepted = try GGUFBertWeights.load(try Self.tinyBert { _, _ in }).get()
        #expect(!accepted.causalAttention && accepted.hyperparameters.pooling == .mean)

        let noEpsilon = try Self.refusal(try Self.tinyBert { m, _ in m.removeAll { $0.key == "bert.attention.layer_norm_epsilon" } })
        #expect(noEpsilon?.reason == "error loading model hyperparameters: key not found in model: bert.attention.layer_norm_epsilon")
        let noTypes = try Self.refusal(try Self.tinyBert { m, _ in m.removeAll { $0.key == "tokenizer.ggml.token_type_count" } })
        #expect(noTypes?.reason == "bert model needs to define token type count")
        let wrongNe = try Self.refusal(try Self.tinyBert { _, t in
            if let i = t.firstIndex(where: { $0.name == "blk.0.ffn_up.weight" }) { t[i].ne = [16, 8] }
        })
        #expect(wrongNe?.reason.hasPrefix("check_tensor_dims: tensor 'blk.0.ffn_up.weight' has wrong shape") == true, "\(String(describing: wrongNe))")
        let extra = try Self.refusal(try Self.tinyBert { _, t in t.append(("blk.0.ffn_gate.weight", [8, 16])) })
        #expect(extra?.reason == "done_getting_tensors: wrong number of tensors; expected 22, got 21")

        // llama.cpp's defaults when a converter leaves keys out: causal attention, no pooling; biases optional.
        let noCausal = try GGUFBertWeights.load(try Self.tinyBert { m, t in
            m.removeAll { $0.key == "bert.attention.causal" || $0.key == "bert.pooling_type" }
            t.removeAll { $0.name == "blk.0.attn_q.bias" }
        }).get()
        #expect(noCausal.causalAttention && noCausal.hyperparameters.pooling == .none)
        #expect(try noCausal.vector(.queryBias, layer: 0) == [Float](repeating: 0, count: 8))

        #expect { try GGUFBertWeights.load(try Self.tinyBert { _, t in t.append(("blk.0.attn_qkv.weight", [8, 24])) }) } throws: { error in
            guard let e = error as? ParityError, case let .unsupported(_, reason) = e else { return false }
            return reason.contains("attn_qkv")
        }
    }

    @Test("ggml's GELU is the tanh form through its F16 table: measured against PyTorch's erf GELU")
    func geluTable() throws {
        let ops = BertGGMLOps()
        let xs: [Float] = stride(from: -6, through: 6, by: 0.001).map { Float($0) }
        let ggml = ops.gelu(Tensor(shape: [xs.count], data: xs), activation: .geluTanh).data
        var worstTable = 0.0, worstErf = 0.0
        for (x, y) in zip(xs, ggml) {
            let exactTanh = 0.5 * Double(x) * (1 + tanh((2 / Double.pi).squareRoot() * (Double(x) + 0.044715 * pow(Double(x), 3))))
            let erf = Double(x) * 0.5 * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
            // The table rounds its input and its output to F16 (2^-11 relative each): the output's rounding costs up
            // to 2^-11·|y|, the input's up to 2^-11·|x| times the slope (|GELU'| < 1.13). The ratio to that bound
            // must stay below 1.
            worstTable = max(worstTable, abs(Double(y) - exactTanh) / (0x1p-11 * (abs(exactTanh) + 1.13 * abs(Double(x))) + 1e-9))
            worstErf = max(worstErf, abs(Double(y) - erf))
        }
        #expect(worstTable <= 1, "F16 table vs tanh GELU: \(worstTable) of the F16 rounding bound")
        // tanh vs erf GELU differ by at most ~1e-3 in absolute terms on [-6, 6] (the tanh fit's known error); the
        // F16 rounding adds 2^-11 of |y| ≤ 6.
        #expect(worstErf < 4.5e-3, "ggml GELU vs erf GELU: \(worstErf)")
        #expect(worstErf > 1e-4, "the tanh form must differ measurably from erf (\(worstErf))")
    }

    /// Per converter type and llama.cpp run: the tolerance against llama.cpp's embeddings, with its reason.
    static let engineCases: [(file: String, type: GGMLType, flash: Bool, cosineGap: Double, maxAbs: Double)] = [
        // f32 / f16 measured: 1 − cos 1.2e-8 … 1.4e-7, max |Δ| 2.9e-5 … 9.5e-5. What remains is summation order
        // (llama.cpp's tinyBLAS vs Parity's BLAS) pushed through ggml's F16 GELU table, where a 1-ulp difference in
        // the input can move the output by an F16 step (2^-11 relative) — bounded at 10× the measured.
        ("minilm-l6-f32.gguf", .f32, false, 1e-6, 3e-4),
        ("minilm-l6-f32.gguf", .f32, true, 1e-6, 5e-4),
        ("minilm-l6-f16.gguf", .f16, true, 2e-6, 1e-3),
        // bf16 measured 4.5e-6 / 5.1e-4: the same mechanism with BF16's 2^-8 activation rounding in every product.
        ("minilm-l6-bf16.gguf", .bf16, true, 5e-5, 5e-3),
    ]

    @Test("Parity's ggml BERT engine gives llama.cpp's sentence embeddings of held-out sentences, and their nearest neighbours",
          arguments: try nonEmpty(Array(engineCases.indices), "engine cases"))
    func engineMatchesLlamaCpp(index: Int) throws {
        let c = Self.engineCases[index]
        let source = try GGUFBertWeights.load(try Self.convertedFile(c.type)).get()
        let engine = BertGraphEngine(source: source, ops: BertGGMLOps(source: source, flashAttention: c.flash))
        let ours = try MiniLMGGUF.run(engine, architecture: try Self.architecture())
        let key = "\(c.file)|flash_attn_\(c.flash ? "auto" : "off")"
        let stored = try required(try required(try MiniLMGGUF.embeddings(), "files", in: MiniLMGGUF.embeddingsPath), key, in: MiniLMGGUF.embeddingsPath)
        let theirs = try MiniLMGGUF.vectors(try #require(stored.stringValue))
        try #require(ours.count == theirs.count, "\(key): \(ours.count) sentences vs llama.cpp's \(theirs.count)")
        let (cosine, maxAbs) = MiniLMGGUF.compare(ours, theirs)
        #expect(1 - cosine <= c.cosineGap, "\(key): sentence embedding 1 − cosine \(1 - cosine) vs llama.cpp's > \(c.cosineGap)")
        #expect(maxAbs <= c.maxAbs, "\(key): sentence embedding max |Δ| \(maxAbs) vs llama.cpp's > \(c.maxAbs)")
        #expect(MiniLMGGUF.nearest(ours) == MiniLMGGUF.nearest(theirs), "\(key): nearest neighbours differ from llama.cpp's")
    }

    @Test("the tokens llama.cpp fed its embeddings are the ones Parity's WordPiece tokenizer gives")
    func tokensAgree() throws {
        let tokenizer = try WordPieceTokenizer(directory: try GGUFBertTests.modelDirectory())
        let sentences = try #require(try MiniLMGGUF.embeddings()["sentences"]?.arrayValue?.compactMap(\.stringValue))
        #expect(try nonEmpty(sentences, "sentences").map { tokenizer.encode($0) } == (try MiniLMGGUF.tokenIDs()))
    }
}
