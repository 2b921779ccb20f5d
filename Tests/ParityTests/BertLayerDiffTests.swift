import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels
import ParityVerify
import Testing

/// Parity's own f32 GGUF of the installed minilm-l6 (GGUFBertConverter, the bytes GGUFBertTests shows equal to
/// llama.cpp's converter's file), built once per test run: every planted file below is these bytes with one mutation.
struct BertLayerDiffBase: Sendable {
    let model: ReferenceModel
    let golden: GoldenFile
    let bytes: [UInt8]
    let file: GGUFFile

    static let shared: Result<BertLayerDiffBase, any Error> = Result {
        let model = try ModelRepository.locate("minilm-l6")
        let (writer, _) = try GGUFBertConverter.build(directory: model.directory, type: .f32)
        let bytes = writer.serialized()
        return BertLayerDiffBase(model: model, golden: try model.golden(), bytes: bytes,
                                 file: try GGUFFile(file: MappedFile(data: Data(bytes), name: "minilm-l6-f32.gguf")))
    }

    static func get() throws -> BertLayerDiffBase { try shared.get() }

    /// The byte range of a tensor's data in `bytes`.
    func range(_ name: String) throws -> Range<Int> {
        let tensor = try #require(file.tensor(named: name), "no tensor \(name) in Parity's GGUF")
        return (file.dataStart + tensor.offset)..<(file.dataStart + tensor.offset + tensor.byteCount)
    }

    /// A float32 tensor's values and its byte range.
    func floats(_ name: String) throws -> (values: [Float], range: Range<Int>) {
        let r = try range(name)
        return (bytes[r].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, r)
    }
}

/// A planted GGUF: the base bytes with one mutation, opened as llama.cpp's bert loader opens a file (in memory: the
/// same bytes a file of that name holds).
func plantedGGUF(_ name: String, _ mutate: (BertLayerDiffBase, inout [UInt8]) throws -> Void) throws -> (BertGraphEngine, BertLayerDiffBase) {
    let base = try BertLayerDiffBase.get()
    var bytes = base.bytes
    try mutate(base, &bytes)
    let file = try GGUFFile(file: MappedFile(data: Data(bytes), name: name))
    let source = try GGUFBertWeights.load(file).get()
    return (BertGraphEngine(source: source, ops: BertGGMLOps(source: source)), base)
}

/// Exchanges the data of two tensors of one size (a converter that mapped each name to the other).
func swapTensors(_ a: String, _ b: String, in bytes: inout [UInt8], base: BertLayerDiffBase) throws {
    let ra = try base.range(a), rb = try base.range(b)
    try #require(ra.count == rb.count, "\(a) and \(b) differ in size")
    let first = Array(bytes[ra])
    bytes.replaceSubrange(ra, with: bytes[rb])
    bytes.replaceSubrange(rb, with: first)
}

func writeFloats(_ values: [Float], at range: Range<Int>, in bytes: inout [UInt8]) {
    bytes.replaceSubrange(range, with: values.withUnsafeBytes { Array($0) })
}

struct PlantedBertCase: Sendable, CustomTestStringConvertible {
    let label: String
    /// The node the mistake breaks first (the first divergence) and the diagnosis expected there.
    let node: String
    let diagnosis: String
    let mutate: @Sendable (BertLayerDiffBase, inout [UInt8]) throws -> Void
    var testDescription: String { label }
}

@Suite("BERT layer-diff: each planted minilm-l6 GGUF is diagnosed at the node it breaks; the correct file has no diagnosis")
struct BertLayerDiffTests {
    static let planted: [PlantedBertCase] = [
        PlantedBertCase(label: "token_embd_norm weight and bias swapped", node: "embeddings.LayerNorm", diagnosis: "norm-weight-bias-swapped") { base, bytes in
            try swapTensors("token_embd_norm.weight", "token_embd_norm.bias", in: &bytes, base: base)
        },
        PlantedBertCase(label: "blk.0.attn_q and attn_k swapped (weight and bias)", node: "encoder.layer.0.attention.self.query", diagnosis: "qk-swapped") { base, bytes in
            try swapTensors("blk.0.attn_q.weight", "blk.0.attn_k.weight", in: &bytes, base: base)
            try swapTensors("blk.0.attn_q.bias", "blk.0.attn_k.bias", in: &bytes, base: base)
        },
        PlantedBertCase(label: "blk.2.attn_k and attn_v swapped (weight and bias)", node: "encoder.layer.2.attention.self.key", diagnosis: "kv-swapped") { base, bytes in
            try swapTensors("blk.2.attn_k.weight", "blk.2.attn_v.weight", in: &bytes, base: base)
            try swapTensors("blk.2.attn_k.bias", "blk.2.attn_v.bias", in: &bytes, base: base)
        },
        PlantedBertCase(label: "token_types zeroed", node: "embeddings.token_type_embeddings", diagnosis: "token-type-missing") { base, bytes in
            let (values, range) = try base.floats("token_types.weight")
            writeFloats([Float](repeating: 0, count: values.count), at: range, in: &bytes)
        },
        PlantedBertCase(label: "position_embd shifted by one row", node: "embeddings.position_embeddings", diagnosis: "position-shifted") { base, bytes in
            // Row p holds the reference's position p − 1: a zero padding row prepended (RoBERTa's padding_idx offset,
            // by one) and the last row dropped to keep the shape.
            let (values, range) = try base.floats("position_embd.weight")
            let width = 384
            writeFloats([Float](repeating: 0, count: width) + Array(values[..<(values.count - width)]), at: range, in: &bytes)
        },
        PlantedBertCase(label: "blk.3.attn_output (384×384) transposed", node: "encoder.layer.3.attention.output.dense", diagnosis: "transposed") { base, bytes in
            let (values, range) = try base.floats("blk.3.attn_output.weight")
            let n = 384
            writeFloats((0..<(n * n)).map { values[($0 % n) * n + $0 / n] }, at: range, in: &bytes)
        },
        PlantedBertCase(label: "bert.attention.layer_norm_epsilon 1e-5 (not 1e-12)", node: "embeddings.LayerNorm", diagnosis: "layer-norm-epsilon") { base, bytes in
            try setFloat32Key("bert.attention.layer_norm_epsilon", to: 1e-5, in: &bytes, headerEnd: base.file.dataStart)
        },
    ]

    @Test("planted GGUF: first divergence at the node the mistake breaks, diagnosed by name; the fix brings the node within tolerance",
          arguments: try nonEmpty(BertLayerDiffTests.planted, "planted files"))
    func plantedGGUFIsDiagnosed(_ c: PlantedBertCase) throws {
        let (engine, base) = try plantedGGUF("planted.gguf", c.mutate)
        let report = try BertLayerDiff.run(engine, variant: "f32", file: "planted.gguf", format: .gguf, model: base.model, golden: base.golden)
        #expect(report.verdict == .fail)
        let first = try #require(report.firstDivergence, "\(c.label): no divergence")
        #expect(first.name == c.node, "\(c.label): first divergence at \(first.name)")
        let diagnosis = try #require(report.layers.first { $0.name == c.node }?.diagnosis, "\(c.label): no diagnosis at \(c.node)")
        #expect(diagnosis.id == c.diagnosis, "\(c.label): \(diagnosis.id): \(diagnosis.message)")
        print("planted \(c.label): first divergence \(first.name), \(diagnosis.id), max abs \(diagnosis.before?.maxAbs ?? .nan) → \(diagnosis.after.maxAbs)")
    }

    @Test("Parity's correct f32 GGUF: no conversion mistake diagnosed; only the runtime's GELU form is named where it shows")
    func correctFileHasNoMistake() throws {
        let (engine, base) = try plantedGGUF("minilm-l6-f32.gguf") { _, _ in }
        let report = try BertLayerDiff.run(engine, variant: "f32", file: "minilm-l6-f32.gguf", format: .gguf, model: base.model, golden: base.golden)
        let diagnoses = report.layers.compactMap(\.diagnosis)
        // llama.cpp computes GELU's tanh form: where its error exceeds a GELU node's tolerance, that is the runtime's
        // convention (gelu-form), never a conversion mistake.
        #expect(diagnoses.allSatisfy { $0.id == "gelu-form" }, "\(diagnoses.map { "\($0.layer): \($0.id)" })")
        for d in diagnoses { print("correct file: \(d.layer): \(d.message)") }
        print("correct f32 GGUF: verdict \(report.verdict), first divergence \(report.firstDivergence?.name ?? "-")")
    }

    @Test("the GELU form is the runtime's convention: ggml's tanh GELU on a GELU node, re-run in erf, passes")
    func geluFormIsTheRuntimes() throws {
        let (engine, base) = try plantedGGUF("minilm-l6-f32.gguf") { _, _ in }
        #expect(engine.computedGELU == .geluTanh)
        let graph = base.model.config.graph
        let node = try #require(graph.node(named: "encoder.layer.0.intermediate.intermediate_act_fn"))
        let expected = try #require(base.golden.activation(at: node.path)?.tensor)
        func isolated(_ e: BertGraphEngine) throws -> LayerMetrics {
            let out = try #require(try GraphExecutor.runIsolated(node, in: graph, engine: e) { base.golden.value(at: $0) }.floats)
            return LayerMetrics.compare(out.data, expected.data)
        }
        let tanh = try isolated(engine), erf = try isolated(engine.computingGELU(.geluErf))
        // tanh vs erf GELU differ by up to ~5e-4 here (golden/README.md); erf in float32 is the reference's own op: ≤ 1e-6.
        #expect(tanh.maxAbs > 1e-5 && erf.maxAbs < 1e-6, "tanh \(tanh.maxAbs), erf \(erf.maxAbs)")
        print("GELU at layer 0 on golden input: tanh max abs \(tanh.maxAbs) → erf \(erf.maxAbs)")
    }

    @Test("a planted file on disk goes through the path API (as `parity layer-diff minilm-l6 X.gguf`)")
    func plantedFileOnDisk() throws {
        let base = try BertLayerDiffBase.get()
        var bytes = base.bytes
        try swapTensors("blk.0.attn_q.weight", "blk.0.attn_k.weight", in: &bytes, base: base)
        try swapTensors("blk.0.attn_q.bias", "blk.0.attn_k.bias", in: &bytes, base: base)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parity-bert-layerdiff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }  // checked: scratch cleanup
        let path = directory.appendingPathComponent("qk-swapped.gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let report = try BertLayerDiff.run(path, format: .gguf, model: base.model, golden: base.golden)
        #expect(report.firstDivergence?.name == "encoder.layer.0.attention.self.query")
        #expect(report.layers.first { $0.name == "encoder.layer.0.attention.self.query" }?.diagnosis?.id == "qk-swapped")
        // The weight check names the swapped tensors too.
        let weights = try #require(report.weights)
        #expect(Set(weights.failing.compactMap(\.referenceName)).isSuperset(of: ["encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.key.weight"]),
                "\(weights.failing.map(\.fileName))")
    }
}

@Suite("BERT layer-diff on safetensors: a planted checkpoint read as PyTorch reads it")
struct BertLayerDiffSafetensorsTests {
    @Test("the reference safetensors with layer 1's attention LayerNorm weight and bias exchanged: diagnosed there")
    func plantedSafetensors() throws {
        let base = try BertLayerDiffBase.get()
        let reference = try base.model.weights()
        var writer = SafetensorsWriter()
        let (w, b) = ("encoder.layer.1.attention.output.LayerNorm.weight", "encoder.layer.1.attention.output.LayerNorm.bias")
        for entry in reference.entries {
            let source = entry.name == w ? b : entry.name == b ? w : entry.name
            let from = try #require(reference.entry(named: source))
            try writer.add(name: entry.name, dtype: from.dtype, shape: from.shape, bytes: try reference.rawBytes(from))
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parity-bert-layerdiff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }  // checked: scratch cleanup
        let path = directory.appendingPathComponent("model.safetensors").path
        try Data(writer.serialized()).write(to: URL(fileURLWithPath: path))
        let report = try BertLayerDiff.run(path, format: .safetensors, model: base.model, golden: base.golden)
        let node = "encoder.layer.1.attention.output.LayerNorm"
        #expect(report.firstDivergence?.name == node)
        let diagnosis = try #require(report.layers.first { $0.name == node }?.diagnosis)
        #expect(diagnosis.id == "norm-weight-bias-swapped", "\(diagnosis.message)")
        print("planted safetensors: \(node), \(diagnosis.id), max abs \(diagnosis.before?.maxAbs ?? .nan) → \(diagnosis.after.maxAbs)")
    }
}

/// Rewrites a float32 metadata value in place (same size: the rest of the file is unchanged), as gguf-py's
/// `gguf_set_metadata.py` does.
func setFloat32Key(_ key: String, to value: Float, in bytes: inout [UInt8], headerEnd: Int) throws {
    // A GGUF key is stored as u64 length + UTF-8 bytes, then the u32 value type (6 = FLOAT32), then the value.
    var needle: [UInt8] = []
    ElementCodec.appendLE(&needle, UInt64(key.utf8.count))
    needle += Array(key.utf8)
    ElementCodec.appendLE(&needle, UInt32(6))
    let at = try #require(bytes[..<headerEnd].firstRange(of: needle), "no float32 key \(key)").lowerBound
    var encoded: [UInt8] = []
    ElementCodec.appendLE(&encoded, value.bitPattern)
    bytes.replaceSubrange((at + needle.count)..<(at + needle.count + 4), with: encoded)
}
