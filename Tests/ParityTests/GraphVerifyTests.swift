import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

@Suite("Graph verification (tiny-llama)")
struct GraphVerifyTests {
    static let model = Result { try Repo.model("tiny-llama") }

    @Test("tiny-llama converted to safetensors passes node by node on the PyTorch engine", arguments: try nonEmpty(["f32", "f16", "bf16"], "variants"))
    func safetensorsPasses(variant: String) throws {
        let model = try Self.model.get()
        let golden = try model.golden()
        let dir = try TemporaryDirectory()
        let path = dir.file("tiny-llama-\(variant).safetensors")
        _ = try SafetensorsSupport().convert(model, variant: variant, to: path)
        let report = try SafetensorsSupport().verify(path, model: model, golden: golden)
        #expect(report.verdict == .pass, "\(report.layers.filter { !$0.status.isPass }.map { "\($0.name): \($0.status.detail)" })")
        #expect(report.covered == 65 && report.layers.count == 65, "every recorded node compared")
        #expect(report.argmax.map { $0.agreeing == $0.total && $0.total == 64 } == true, "2 sequences × 32 tokens, every top-1 agrees")
        // Exact where nothing rounds: the mask and positions come from integers, an f32 lookup copies the table.
        for name in ["intermediates/model.layers.0.attention_mask", "intermediates/model.layers.0.cache_position"] {
            #expect(report.layers.first { $0.name == name }?.metrics?.maxAbs == 0, "\(name) is exact")
        }
        if variant == "f32" { #expect(report.layers.first { $0.name == "model.embed_tokens" }?.metrics?.maxAbs == 0) }
    }

    /// A copy of tiny-llama's weights with one tensor changed (by default scaled by 1 %).
    static func planted(_ tensor: String, in dir: TemporaryDirectory, change: (Tensor) -> Tensor = { t in
        Tensor(shape: t.shape, data: t.data.map { $0 * 1.01 })
    }) throws -> String {
        let source = try SafetensorsFile(path: Repo.golden + "/tiny-llama/model.safetensors")
        var writer = SafetensorsWriter(metadata: [("format", "pt")])
        for entry in source.entries {
            let t = try source.tensor(entry)
            try writer.add(name: entry.name, tensor: entry.name == tensor ? change(t) : t)
        }
        let path = dir.file("planted.safetensors")
        try writer.write(to: path)
        return path
    }

    @Test("a 1 % error in layer 1's k_proj: first divergence there (every input passes), isolation blames it and the modules that contain it only")
    func plantedKeyProjection() throws {
        let model = try Self.model.get()
        let golden = try model.golden()
        let dir = try TemporaryDirectory()
        let path = try Self.planted("model.layers.1.self_attn.k_proj.weight", in: dir)
        let (engine, variant) = try SafetensorsSupport().openGraph(path, for: model)
        let propagated = try Comparator.verify(model: model, golden: golden, engine: engine, format: "safetensors", variant: variant.label, file: path)
        #expect(propagated.verdict == .fail)
        #expect(propagated.firstDivergence?.name == "model.layers.1.self_attn.k_proj", "Core ML's rule on the DAG")
        let report = try Comparator.layerDiff(model: model, golden: golden, engine: engine, format: "safetensors", variant: variant.label, file: path)
        #expect(report.firstDivergence?.name == "model.layers.1.self_attn.k_proj")
        #expect(report.layers.allSatisfy { $0.isolatedStatus != nil }, "every node was also run alone")
        let failingAlone = report.layers.filter { $0.isolatedStatus != .pass }.map(\.name)
        // The projection itself, and the composites whose members include it (each runs its members in isolation).
        #expect(failingAlone == ["model.layers.1.self_attn.k_proj", "model.layers.1.self_attn", "model.layers.1", "model"])
        // Downstream nodes fail propagated but pass on their golden inputs: they inherit the error.
        let kRope = try #require(report.layers.first { $0.name == "attention/model.layers.1.self_attn/k_rope" })
        #expect(!kRope.status.isPass && kRope.isolatedStatus == .pass)
        let growth = try #require(report.layers.first { $0.name == "model.layers.1.self_attn.k_proj" }?.growth)
        #expect(growth > 1000, "the error appears at k_proj: its input had float32 noise only")
    }

    @Test("CLI: layer-diff of the planted file exits 1 naming k_proj; its JSON follows the report schema; verify's default cells run every format")
    func commandLine() throws {
        let dir = try TemporaryDirectory()
        let path = try Self.planted("model.layers.1.self_attn.k_proj.weight", in: dir)
        let result = try runParity(["layer-diff", "tiny-llama", path, "--isolated", "--json", dir.file("r.json"), "--html", dir.file("r.html")], timeout: 300)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stdout.contains("model.layers.1.self_attn.k_proj"))
        let schema = JSONSchemaValidator(root: try JSONParser.parse(readBytes(Repo.root + "/tools/schemas/parity-report.schema.json")))
        let report = try JSONParser.parse(readBytes(dir.file("r.json")))
        #expect(schema.validate(report) == [])
        #expect(report["reports"]?.arrayValue?.first?["first_divergence"]?.stringValue == "model.layers.1.self_attn.k_proj")
        let verify = try runParity(["verify", "tiny-llama"], timeout: 600)
        #expect(verify.status == 0, "\(verify.stdout)\n\(verify.stderr)")
        #expect(verify.stdout.contains("PASS  tiny-llama  safetensors bf16"))
        // GGUF and MLX run through their Llama engines (LlamaVerifyTests covers every cell).
        #expect(verify.stdout.contains("PASS  tiny-llama  gguf f32") && verify.stdout.contains("PASS  tiny-llama  mlx f32"))
    }

    /// convert_hf_to_gguf's Q/K permutation, `w.reshape(heads, 2, rows / heads / 2, columns).swapaxes(1, 2)`, written
    /// out as index arithmetic on the numpy shapes (independent of the diagnosis's own row mapping).
    static func llamaCppPermuted(_ w: Tensor, heads: Int) -> Tensor {
        let rows = w.shape[0], columns = w.shape[1], half = rows / heads / 2
        var out = w.data
        for h in 0..<heads { for a in 0..<2 { for b in 0..<half {
            // Source element [h, a, b, :] of the reshaped array lands at [h, b, a, :] after swapaxes(1, 2).
            let source = ((h * 2 + a) * half + b) * columns, target = ((h * half + b) * 2 + a) * columns
            for c in 0..<columns { out[target + c] = w.data[source + c] }
        } } }
        return Tensor(shape: w.shape, data: out)
    }

    @Test("transformer mistakes are diagnosed at their node: Q/K RoPE permutation, RMSNorm w − 1, a transposed projection, a scale",
          arguments: try nonEmpty([
            ("model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.k_proj", "qk-rope-permuted"),
            ("model.layers.1.input_layernorm.weight", "model.layers.1.input_layernorm", "norm-one-plus"),
            ("model.layers.2.self_attn.o_proj.weight", "model.layers.2.self_attn.o_proj", "transposed"),
            ("model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.k_proj", "scale"),
          ], "planted mistakes"))
    func diagnoses(tensor: String, node: String, mistake: String) throws {
        let model = try Self.model.get()
        let golden = try model.golden()
        let dir = try TemporaryDirectory()
        let path = try Self.planted(tensor, in: dir) { t in
            switch mistake {
            case "qk-rope-permuted": return Self.llamaCppPermuted(t, heads: 4)  // tiny-llama's 4 KV heads
            case "norm-one-plus": return Tensor(shape: t.shape, data: t.data.map { $0 - 1 })
            case "transposed": return t.permuted([1, 0])
            default: return Tensor(shape: t.shape, data: t.data.map { $0 * 1.01 })
            }
        }
        let (engine, variant) = try SafetensorsSupport().openGraph(path, for: model)
        let report = try Comparator.layerDiff(model: model, golden: golden, engine: engine, format: "safetensors", variant: variant.label, file: path)
        #expect(report.firstDivergence?.name == node)
        let diagnosis = try #require(report.layers.first { $0.name == node }?.diagnosis, "no diagnosis at \(node)")
        #expect(diagnosis.id == mistake, "\(diagnosis.message)")
        #expect(diagnosis.after.relL2 < 1e-5, "the corrected node passes the f32 limit")
        // Only the planted node is diagnosed: composites containing it are explained by their member.
        #expect(report.layers.filter { $0.diagnosis != nil }.map(\.name) == [node])
    }

    @Test("a decoder layer run alone on its golden inputs computes its golden output")
    func compositeIsolation() throws {
        let model = try Self.model.get()
        let golden = try model.golden()
        let engine = try PyTorchEngine(weights: model.weights(), model: model.config)
        let graph = model.config.graph
        let layer = try #require(graph.node(named: "model.layers.2"))
        let value = try GraphExecutor.runIsolated(layer, in: graph, engine: engine) { golden.value(at: $0) }
        let expected = try #require(golden.activation(named: "model.layers.2")?.tensor)
        let m = LayerMetrics.compare(try #require(value.floats).data, expected.data)
        // f32 on the golden inputs: only float32 operation order differs (the f32 transformer limit, 1e-5).
        #expect(m.relL2 < 1e-5, "rel L2 \(m.relL2)")
    }
}

@Suite("Golden format_version 2")
struct GoldenVersion2Tests {
    /// A minimal causal-lm golden: ids → embedding-like value → a mask and an arange, with the attributes the
    /// format requires; `edit` changes one thing.
    static func write(_ path: String, overrides: [String: HDF5AttributeValue] = [:], edit: (HDF5File) throws -> Void = { _ in }) throws {
        let h5 = try HDF5File(creating: path)
        func set(_ name: String, _ value: HDF5AttributeValue, on object: String) throws {
            try h5.setAttribute(name, overrides["\(object)@\(name)"] ?? value, on: object)
        }
        for (name, value) in [("format", HDF5AttributeValue.string("parity-golden")), ("format_version", .integers([2])), ("kind", .string("causal-lm")),
                              ("model", .string("t")), ("reference_framework", .string("torch 1.13.1")), ("weights_sha256", .string("0")),
                              ("generator", .string("test")), ("seed", .integers([-1])), ("created", .string("now"))] {
            try h5.setAttribute(name, value)
        }
        try h5.createGroup("/inputs")
        try h5.writeIntegers("/inputs/input_ids", shape: [1, 2], values: [1, 7])
        for (k, v) in [("order", HDF5AttributeValue.integers([0])), ("kind", .string("input")), ("layout", .string("BT"))] {
            try h5.setAttribute(k, v, on: "/inputs/input_ids")
        }
        try h5.createGroup("/activations")
        try h5.writeFloats("/activations/e", Tensor(shape: [1, 2, 2], data: [0.5, -1, 2, 0.25]))
        try h5.createGroup("/intermediates")
        try h5.writeFloats("/intermediates/m", Tensor(shape: [1, 1, 2, 2], data: [0, -Float.greatestFiniteMagnitude, 0, 0]))
        try h5.writeIntegers("/intermediates/p", shape: [2], values: [0, 1])
        let common: [(String, String, Int64, String, [String], [String])] = [
            ("/activations/e", "Embedding", 1, "module", ["/inputs/input_ids"], ["input"]),
            ("/intermediates/m", "causal_mask", 2, "intermediate", ["/inputs/input_ids"], ["attention_mask"]),
            ("/intermediates/p", "arange", 3, "intermediate", [], []),
        ]
        for (object, op, order, kind, inputs, args) in common {
            try set("op", .string(op), on: object)
            try set("order", .integers([order]), on: object)
            try set("kind", .string(kind), on: object)
            try set("layout", .string("BTC"), on: object)
            try set("inputs", .strings(inputs), on: object)
            try set("input_args", .strings(args), on: object)
        }
        try set("noise_floor_max_abs", .floats([0]), on: "/activations/e")
        try set("noise_floor_rel_l2", .floats([0]), on: "/activations/e")
        try edit(h5)
    }

    @Test("a causal-lm golden reads typed: int32 ids, input lists (empty too), the mask without a noise floor")
    func reads() throws {
        let dir = try TemporaryDirectory()
        try Self.write(dir.file("g.h5"))
        let golden = try GoldenFile(path: dir.file("g.h5"))
        #expect(golden.version == 2 && golden.kind == "causal-lm")
        #expect(golden.inputValues["input_ids"] == .integers(IntegerTensor(shape: [1, 2], data: [1, 7])))
        #expect(golden.activations.map(\.name) == ["e", "intermediates/m", "intermediates/p"])
        #expect(golden.activation(named: "intermediates/p")?.inputs == [])
        #expect(golden.activation(named: "intermediates/p")?.value == .integers(IntegerTensor(shape: [2], data: [0, 1])))
        #expect(golden.activation(named: "intermediates/m")?.noiseFloorRelL2 == nil)
    }

    @Test("strictness: a missing noise floor, a noise floor above 1e-3, a NaN, an unknown input, a non-topological order, an id beyond int32",
          arguments: try nonEmpty(Array(0..<6), "cases"))
    func refuses(index: Int) throws {
        let none: (HDF5File) throws -> Void = { _ in }
        let edits: [(String, [String: HDF5AttributeValue], (HDF5File) throws -> Void)] = [
            ("float dataset without noise_floor_max_abs", [:], { h5 in
                try h5.writeFloats("/activations/f", Tensor(shape: [1], data: [1]))
                for (k, v) in [("order", HDF5AttributeValue.integers([4])), ("kind", .string("module")), ("layout", .string("BTC")),
                               ("inputs", .strings(["/activations/e"])), ("input_args", .strings(["input"]))] { try h5.setAttribute(k, v, on: "/activations/f") }
            }),
            ("above 0.001", ["/activations/e@noise_floor_rel_l2": .floats([0.01])], none),
            ("non-finite value", [:], { h5 in
                try h5.writeFloats("/activations/n", Tensor(shape: [1], data: [.nan]))
                for (k, v) in [("order", HDF5AttributeValue.integers([4])), ("kind", .string("module")), ("layout", .string("BTC")),
                               ("inputs", .strings([])), ("input_args", .strings([]))] { try h5.setAttribute(k, v, on: "/activations/n") }
            }),
            ("which is not a dataset of the forward pass", ["/intermediates/p@inputs": .strings(["/activations/nowhere"]),
                                                            "/intermediates/p@input_args": .strings(["x"])], none),
            ("order must be topological", ["/activations/e@inputs": .strings(["/intermediates/m"])], none),
            ("outside int32", [:], { h5 in try h5.writeIntegers("/inputs/extra", shape: [1], values: [Int64(Int32.max) + 1])
                for (k, v) in [("order", HDF5AttributeValue.integers([4])), ("kind", .string("input")), ("layout", .string("T"))] {
                    try h5.setAttribute(k, v, on: "/inputs/extra") } }),
        ]
        let (expected, overrides, edit) = edits[index]
        let dir = try TemporaryDirectory()
        try Self.write(dir.file("g.h5"), overrides: overrides, edit: edit)
        #expect { try GoldenFile(path: dir.file("g.h5")) } throws: { error in
            "\(error)".contains(expected) && "\(error)".contains(dir.file("g.h5"))
        }
    }
}
