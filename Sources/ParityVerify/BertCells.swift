import Foundation
import ParityCore
import ParityEngine
import ParityFormats
import ParityModels

/// The BERT cells of `verify` (minilm-l6): safetensors files in float32/16 read as PyTorch loads them
/// (PyTorchBertWeights) and run through `BertGraphEngine` with PyTorch's ops; GGUF (GGUFBertCells) and MLX (MLXBertCells) cells are added by
/// their readers (`BertGraphEngine` over another `BertWeightSource` and `BertOps`).
public enum BertCells {
    public static func isBert(_ model: ReferenceModel) -> Bool { model.config.modelType == "bert" }

    public static func defaultCells(_ format: Variant.Format) -> [String] {
        switch format {
        case .safetensors: return FloatType.allCases.map(\.rawValue)
        case .mlx: return MLXBertCells.defaultCells
        case .gguf: return GGUFBertCells.defaultCells
        }
    }

    /// The end metric as a verdict input: its summary and limit in the notes, a sentence out of it fails the file.
    static func judge(_ report: inout VerificationReport, _ agreement: SentenceAgreement, cosineLimit: Double, why: String) {
        let margin = agreement.retrievalMargin(cosineLimit)
        let judged = agreement.referenceMargins.filter { $0 > margin }.count
        report.notes.append(agreement.summary + "; limit: cosine ≥ \(String(format: "%.7f", cosineLimit)) (\(why)), and each nearest neighbour kept "
            + "where PyTorch's margin exceeds \(String(format: "%.4f", margin)), what that limit lets an embedding move: \(judged) of \(agreement.count) sentences")
        report.sentenceAgreement = agreement
        report.endMetricFailures = agreement.failures(cosineLimit: cosineLimit, why: why)
        report.notes += report.endMetricFailures.map { "FAIL: " + $0 }
    }

    /// The engine PyTorch would be for a safetensors file of this model (hyperparameters from the reference's config).
    public static func pytorchEngine(_ file: String, model: ReferenceModel) throws(ParityError) -> BertGraphEngine {
        let config = try BertArchitecture.load(path: model.configPath)
        return BertGraphEngine.pytorch(PyTorchBertWeights(weights: try SafetensorsFile(path: file), config: config))
    }

    /// Runs a safetensors file through the graph and compares every recorded node with the goldens.
    public static func verify(_ file: String, format: Variant.Format, model: ReferenceModel, golden: GoldenFile) throws(ParityError) -> VerificationReport {
        if format == .mlx { return try MLXBertCells.verify(file, model: model, golden: golden) }
        if format == .gguf { return try GGUFBertCells.verify(file, model: model, golden: golden) }
        guard format == .safetensors else {
            throw .unsupported(file: file, reason: "a BERT in \(format.rawValue): Parity verifies BERT in safetensors, GGUF and MLX")
        }
        let engine = try pytorchEngine(file, model: model)
        let weights = try SafetensorsFile(path: file)
        let dtypes = Set(weights.entries.filter { $0.dtype.isFloatingPoint }.map(\.dtype))
        let variant = dtypes.count == 1 ? (FloatType(dtypes.first!)?.rawValue ?? dtypes.first!.rawValue) : "mixed"
        var report = try Comparator.verify(model: model, golden: golden, engine: engine, format: format.rawValue, variant: variant, file: file,
                                           checkWeights: false)
        if let stored = engine.source as? any BertStoredTensors {
            report.weights = try WeightVerifier.verify(bert: stored, reference: model.weights())
        }
        if golden.kind == "sentence-embedding" {
            judge(&report, try SentenceAgreement.compute(graph: model.config.graph, engine: engine, golden: golden),
                  cosineLimit: SentenceAgreement.floatCosine, why: "the bar for float files")
        }
        if !golden.omittedModules.isEmpty {
            report.notes.append("the golden omits \(golden.omittedModules.joined(separator: ", ")) to stay small: those layers ran, their nodes were not compared")
        }
        return report
    }
}

/// The end metric of a sentence-embedding model: every reference sentence of the golden (`/reference/*`, more than
/// the node-by-node batch) through the engine, its embedding against PyTorch's, and retrieval: is each sentence's
/// nearest neighbour among the others the same as with PyTorch's embeddings? A verdict input (`failures`).
public struct SentenceAgreement: Sendable {
    /// Cosine similarity of each sentence's embedding to PyTorch's float32 one.
    public let cosines: [Double]
    /// Each sentence's nearest neighbour (by cosine, among the other sentences) with the engine's and PyTorch's embeddings.
    public let nearest: [Int?]
    public let referenceNearest: [Int?]
    /// PyTorch's cosine to the nearest neighbour minus its cosine to the runner-up: how far the embedding must move to change the answer.
    public let referenceMargins: [Double]
    public var count: Int { cosines.count }
    public var minimumCosine: Double { cosines.min() ?? 1 }
    public var sameNearestNeighbour: Int { zip(nearest, referenceNearest).filter { $0 == $1 }.count }

    /// The issue's bar for float files: cosine 0.9999 to PyTorch's embedding (measured: llama.cpp's and Parity's f32/f16
    /// GGUF 1 − cos ≤ 1.2e-6, bf16 1.4e-5; the tanh/F16 GELU alone costs 1.3e-6).
    public static let floatCosine = 0.9999

    public var summary: String {
        "the \(count) reference sentences' embeddings: min cosine \(String(format: "%.7f", minimumCosine)) to PyTorch's; "
            + "nearest neighbour unchanged for \(sameNearestNeighbour)/\(count)"
    }

    /// The end metric judged: a sentence whose cosine is below `cosineLimit` fails; a sentence whose neighbour changed
    /// fails when PyTorch's margin between its nearest neighbour and the runner-up is wider than the embedding may move:
    /// an embedding within 1 − cos = c of PyTorch's is within √(2c) in L2, which moves each cosine to another unit vector
    /// by at most that, and the margin by at most twice it. A narrower margin may flip within the limit and is reported only.
    public func failures(cosineLimit: Double, why: String) -> [String] {
        var out: [String] = []
        for (i, c) in cosines.enumerated() where !(c >= cosineLimit) {
            out.append("sentence \(i): embedding cosine \(String(format: "%.7f", c)) to PyTorch's < limit \(String(format: "%.7f", cosineLimit)) (\(why))")
        }
        let movable = retrievalMargin(cosineLimit)
        for i in 0..<count where nearest[i] != referenceNearest[i] && referenceMargins[i] > movable {
            out.append("sentence \(i): nearest neighbour is sentence \(nearest[i].map(String.init) ?? "-"), PyTorch's is \(referenceNearest[i].map(String.init) ?? "-") "
                + "(PyTorch's margin \(String(format: "%.4f", referenceMargins[i])) > \(String(format: "%.4f", movable)), what the cosine limit lets it move)")
        }
        return out
    }

    /// How far the cosine limit lets a sentence's margin (nearest minus runner-up) move: 2·√(2(1 − limit)).
    public func retrievalMargin(_ cosineLimit: Double) -> Double { 2 * (2 * max(0, 1 - cosineLimit)).squareRoot() }

    /// Runs `engine` on the golden's reference sentences.
    public static func compute(graph: ModelGraph, engine: GraphEngine, golden: GoldenFile) throws(ParityError) -> SentenceAgreement {
        let file = try HDF5Snapshot.read(golden.path)
        func integers(_ name: String) throws(ParityError) -> IntegerTensor {
            let (shape, values) = try file.readIntegers("/reference/" + name)
            return IntegerTensor(shape: shape, data: values.map { Int32(truncatingIfNeeded: $0) })
        }
        let ids = try integers("input_ids"), mask = try integers("attention_mask"), types = try integers("token_type_ids")
        let expected = try file.readFloats("/reference/embeddings")
        guard ids.rank == 2, mask.shape == ids.shape, types.shape == ids.shape, expected.shape.first == ids.shape[0] else {
            throw .malformed(file: golden.path, at: "/reference", reason: "input_ids \(ids.shape), attention_mask \(mask.shape), token_type_ids \(types.shape) "
                + "and embeddings \(expected.shape) do not describe one batch")
        }
        let (b, t) = (ids.shape[0], ids.shape[1])
        let positions = IntegerTensor(shape: [b, t], data: (0..<b).flatMap { _ in (0..<t).map { Int32($0) } })
        let values: [String: GraphValue] = ["/inputs/input_ids": .integers(ids), "/inputs/token_type_ids": .integers(types),
                                            "/inputs/position_ids": .integers(positions), "/inputs/attention_mask": .integers(mask)]
        let outputs: [String: GraphValue]
        do { outputs = try GraphExecutor.run(graph, engine: engine, inputs: values) } catch {
            throw .mismatch(file: golden.path, reason: "the reference sentences could not run: \(error.layer): \(error.reason)")
        }
        guard let actual = outputs[graph.output]?.floats, actual.shape == expected.shape else {
            throw .mismatch(file: golden.path, reason: "/reference/embeddings has shape \(expected.shape); the graph's output does not")
        }
        return SentenceAgreement(actual: actual, expected: expected)
    }

    /// `actual` and `expected`: `[sentences, features]` embeddings (the engine's and PyTorch's).
    public init(actual: Tensor, expected: Tensor) {
        let (b, c) = (expected.shape[0], expected.shape[1])
        func row(_ x: Tensor, _ i: Int) -> [Double] { (0..<c).map { Double(x.data[i * c + $0]) } }
        func cosine(_ a: [Double], _ b: [Double]) -> Double {
            let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
            let na = a.reduce(0) { $0 + $1 * $1 }.squareRoot(), nb = b.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return na > 0 && nb > 0 ? dot / (na * nb) : 0
        }
        let a = (0..<b).map { row(actual, $0) }, e = (0..<b).map { row(expected, $0) }
        cosines = (0..<b).map { cosine(a[$0], e[$0]) }
        func ranked(_ set: [[Double]], _ i: Int) -> [(Int, Double)] {
            (0..<b).filter { $0 != i }.map { ($0, cosine(set[i], set[$0])) }.sorted { $0.1 > $1.1 }
        }
        nearest = (0..<b).map { ranked(a, $0).first?.0 }
        let reference = (0..<b).map { ranked(e, $0) }
        referenceNearest = reference.map { $0.first?.0 }
        referenceMargins = reference.map { $0.count > 1 ? $0[0].1 - $0[1].1 : 2 }
    }
}
